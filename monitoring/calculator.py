"""Fit once on the reference, score many windows (NannyML's calculator shape).

`Reference` is what the model was built on: a sample of its training rows (the distributions
every window is compared with) and held-out labelled rows with the model's scores (the pool the
thresholds are drawn from, and the calibration of the label-free estimate).

`Calculator.calculate(window)` returns one tidy table, a row per (measure, method):
window, start, end, rows, version, kind, name, method, value, threshold, direction, alert,
primary (the method that decides the alert), and for some kinds lower/upper/realized/detail.
The HTML page, the Prometheus exposition, the history and the exit code all read that table.

Thresholds are calibrated to the window size: many windows of that size are drawn from the
held-out pool (a bootstrap), every measure is computed on each, and a window alerts when its
value is more than k standard deviations beyond their mean. Drift scores are positive and
skewed, so their mean and standard deviation are taken on the log scale (a k-sigma bound on
log(score)); rates (missing, label) on the arcsine-square-root scale, where a binomial rate's
spread no longer depends on the rate; AUC and accuracy as they are. Calibration runs once per size on a grid
(sizes a factor sqrt(2) apart, interpolated in log size between the two neighbours) and can be
saved, so hourly windows of varying size cost nothing more.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np
import pandas as pd

from monitoring import cbpe, domain, measures
from monitoring.measures import category_text, present

REFERENCE_ROWS = 5000
MIN_ROWS = 50  # a window smaller than this is reported, not scored
_GRID = 50 * 2 ** (np.arange(0, 41) / 2)  # 50 .. 52M rows, a factor sqrt(2) apart
_LOG_KINDS = {"feature", "prediction"}  # positive, skewed scores: k-sigma on the log scale
_RATE_KINDS = {"quality", "label"}  # rates: k-sigma on the arcsine-square-root scale
_PRIMARY = {"attribution": "mean_abs_change"}  # the deciding method of kinds with several
_DIAGNOSTIC = {"attribution"}  # shown with a threshold, never an alert of their own
ATTR = "_attr:"  # window columns: per-row attribution of a feature (logit units)
LITTLE = 0.05  # a feature with less than this share of the attribution matters little


def labelled(frame: pd.DataFrame) -> pd.DataFrame:
    """The rows with a label and a score: what realized performance is measured on."""
    if "_label" not in frame or "_prediction" not in frame:
        return frame.iloc[:0]
    return frame[frame["_label"].notna() & frame["_prediction"].notna()]


@dataclasses.dataclass
class Reference:
    train: pd.DataFrame  # feature columns of a training sample
    pool: pd.DataFrame  # held-out rows: the features, "_prediction" and "_label"
    numeric: dict[str, bool]  # feature -> numeric (else categorical), in schema order
    train_scores: np.ndarray | None = None
    train_labels: np.ndarray | None = None
    sensitive: str | None = None
    groups: tuple[str, ...] = ()  # (protected, reference) values of `sensitive`
    threshold: float = 0.5  # the model's decision threshold

    @property
    def labelled(self) -> bool:
        return "_label" in self.pool and "_prediction" in self.pool and \
            self.pool["_label"].notna().any()


class Calculator:
    def __init__(self, ref: Reference, k: float = 3.0, bootstrap: int = 100, seed: int = 0,
                 drift_share: float = 0.5, domain_rows: int = 5000,
                 methods: dict[str, str] | None = None):
        """`methods` may fix the deciding method per type ({"numeric": "psi", "categorical":
        "linf"}); by default it follows the window size (measures.primary)."""
        self.ref, self.k, self.bootstrap, self.seed = ref, k, bootstrap, seed
        self.drift_share, self.domain_rows = drift_share, domain_rows
        self.methods = methods or {}
        rng = np.random.default_rng(seed)
        # The distributions come from at most REFERENCE_ROWS training rows: enough for their
        # deciles and categories, and KS/Wasserstein sort the reference on every call.
        sample = ref.train.iloc[rng.choice(len(ref.train), REFERENCE_ROWS, replace=False)] \
            if len(ref.train) > REFERENCE_ROWS else ref.train
        self.columns = {f: measures.Column(self._values(sample, f), num)
                        for f, num in ref.numeric.items()}
        self.missing = {f: 1 - len(present(ref.train[f])) / max(len(ref.train), 1)
                        for f in ref.numeric}
        scores = ref.train_scores if ref.train_scores is not None else (
            ref.pool["_prediction"].to_numpy(float) if "_prediction" in ref.pool else None)
        if scores is not None and len(scores) > REFERENCE_ROWS:
            scores = rng.choice(scores, REFERENCE_ROWS, replace=False)
        self.scores = measures.Column(scores, True) if scores is not None else None
        labels = ref.train_labels if ref.train_labels is not None else (
            ref.pool["_label"].to_numpy(float) if ref.labelled else None)
        self.label_rate = float(np.nanmean(labels)) if labels is not None else None
        self.estimator = cbpe.Estimator(ref.pool["_prediction"].to_numpy(float),
                                        ref.pool["_label"].to_numpy(float), ref.threshold,
                                        seed=seed) if ref.labelled else None
        self.categories = {f: list(c.categories[:-1]) for f, c in self.columns.items()
                           if not c.numeric}
        self.null: dict[int, dict[tuple, tuple[float, float]]] = {}  # grid size -> key -> (m, sd)
        # Mean |attribution| per feature on the pool, when the model explains: the reference
        # of attribution drift, and each feature's share of what the model looks at.
        self.attr = {c[len(ATTR):]: float(ref.pool[c].abs().mean())
                     for c in ref.pool.columns if c.startswith(ATTR)}
        total = sum(self.attr.values()) or 1.0
        self.share = {f: v / total for f, v in self.attr.items()}

    # -- raw measures (the same code scores a window and every bootstrap window) --------------
    def _values(self, frame: pd.DataFrame, f: str) -> np.ndarray:
        """A feature's present values; categories in one string form; a column the frame
        lacks has none (all missing)."""
        if f not in frame:
            return np.array([], dtype=object)
        values = present(frame[f])
        return values.to_numpy() if self.ref.numeric[f] else category_text(values).to_numpy()

    def _method(self, numeric: bool, rows: int) -> str:
        return self.methods.get("numeric" if numeric else "categorical") or \
            measures.primary(numeric, rows)

    def _raw(self, frame: pd.DataFrame, all_methods: bool) -> dict[tuple, float]:
        """{(kind, name, method): value}. With all_methods False only the deciding ones (the
        bootstrap's work)."""
        n = len(frame)
        out: dict[tuple, float] = {}
        for f, col in self.columns.items():
            values = self._values(frame, f)
            primary = self._method(col.numeric, n)
            for m, v in col.score(values, None if all_methods else (primary,)).items():
                out[("feature", f, m)] = v
            out[("quality", f, "missing_rate")] = 1 - len(values) / n if n else float("nan")
        if self.scores is not None and "_prediction" in frame and frame["_prediction"].notna().any():
            p = frame["_prediction"].dropna().to_numpy(float)
            primary = self._method(True, n)
            for m, v in self.scores.score(p, None if all_methods else (primary,)).items():
                out[("prediction", "score", m)] = v
        for f, ref_mean in self.attr.items():
            if ATTR + f in frame:
                m = float(frame[ATTR + f].abs().mean())
                out[("attribution", f, "mean_abs_change")] = abs(m - ref_mean)
                if all_methods:
                    out[("attribution", f, "mean_abs")] = m
        lab = labelled(frame)
        if len(lab):
            y = lab["_label"].to_numpy(float)
            if self.label_rate is not None:
                out[("label", "positive_rate", "abs_difference")] = abs(y.mean() - self.label_rate)
            out.update(self._performance(lab, y, lab["_prediction"].to_numpy(float)))
        return out

    def _performance(self, lab: pd.DataFrame, y: np.ndarray, p: np.ndarray) -> dict[tuple, float]:
        from pipeline.metrics import auc, group_rates

        t = self.ref.threshold
        out = {("performance", "auc", "realized"): auc(y, p),
               ("performance", "accuracy", "realized"): float(((p >= t) == (y == 1)).mean())}
        sens = self.ref.sensitive
        if sens and sens in lab:
            rates = group_rates(y, p, category_text(lab[sens]).fillna("").to_numpy(), t)
            for g, r in rates.items():
                for rate in ("fpr", "fnr"):
                    if r[rate] is not None:
                        out[("performance", f"{rate}:{g}", "realized")] = r[rate]
            if len(self.ref.groups) == 2:
                a, b = (rates.get(g, {}).get("fpr") for g in self.ref.groups)
                if a is not None and b is not None:
                    out[("performance", "fpr_gap", "realized")] = abs(a - b)
        return out

    # -- thresholds calibrated to the window size ----------------------------------------------
    def _null_at(self, size: int) -> dict[tuple, tuple[float, float]]:
        if size not in self.null:
            rng = np.random.default_rng(self.seed + size)
            pool = self.ref.pool
            draws: dict[tuple, list[float]] = {}
            for _ in range(self.bootstrap):
                sample = pool.iloc[rng.integers(0, len(pool), size)]
                for key, v in self._raw(sample, all_methods=True).items():
                    draws.setdefault(key, []).append(v)
            self.null[size] = {key: _moments(key[0], np.array(v, float))
                               for key, v in draws.items()}
        return self.null[size]

    def thresholds(self, rows: int) -> dict[tuple, tuple[float, float]]:
        """{key: (mean, sd)} of the null at `rows`, interpolated in log size on the grid."""
        i = int(np.searchsorted(_GRID, rows))
        hi = int(round(_GRID[min(i, len(_GRID) - 1)]))
        lo = int(round(_GRID[max(i - 1, 0)]))
        a, b = self._null_at(lo), self._null_at(hi)
        w = 0.0 if hi == lo else (math.log(rows) - math.log(lo)) / (math.log(hi) - math.log(lo))
        w = min(max(w, 0.0), 1.0)
        # The pool is itself a sample: its own error (variance ~ 1/N against the window's 1/n)
        # widens the spread of a window's value around the pool's.
        widen = math.sqrt(1 + rows / len(self.ref.pool))
        return {key: ((1 - w) * a[key][0] + w * b[key][0],
                      ((1 - w) * a[key][1] + w * b[key][1]) * widen)
                for key in a.keys() & b.keys()}

    def state(self) -> dict[str, Any]:
        return {str(s): [[list(k), m, sd] for k, (m, sd) in v.items()]
                for s, v in self.null.items()}

    def load_state(self, state: dict[str, Any]) -> None:
        for s, items in state.items():
            self.null[int(s)] = {tuple(k): (m, sd) for k, m, sd in items}

    # -- one window ----------------------------------------------------------------------------
    def calculate(self, window: pd.DataFrame, key: str = "", version: str = "",
                  start: str = "", end: str = "") -> list[dict[str, Any]]:
        n = len(window)
        base = {"window": key, "start": start, "end": end, "rows": n, "version": version}
        if n < MIN_ROWS:
            return [{**base, "kind": "window", "name": "rows", "method": "count", "value": n,
                     "threshold": MIN_ROWS, "direction": "below", "alert": False,
                     "primary": True, "detail": f"fewer than {MIN_ROWS} rows: not scored"}]
        null = self.thresholds(n)
        # Label-based measures are judged at the number of labelled rows, not the window's:
        # a window with 40 labels has the spread of 40 rows. Too few labels: not measured yet.
        m = len(labelled(window))
        if 0 < m < MIN_ROWS:
            window = window.drop(columns="_label")
        base["labelled"] = m if m >= MIN_ROWS else 0
        null_labelled = self.thresholds(m) if m >= MIN_ROWS else {}
        out = []
        deciding = {(kind, name): self._method(self.columns[name].numeric, n)
                    if kind == "feature" else self._method(True, n)
                    for kind, name, _ in null if kind in ("feature", "prediction")}
        for (kind, name, method), value in self._raw(window, all_methods=True).items():
            by_labels = kind in ("label", "performance")
            threshold, direction = self._bound(kind, name, method,
                                               null_labelled if by_labels else null,
                                               m if by_labels else n)
            primary = deciding.get((kind, name), _PRIMARY.get(kind, method)) == method and \
                not name.startswith(("fpr:", "fnr:"))
            row = {**base, "kind": kind, "name": name, "method": method,
                   "value": _clean(value), "threshold": threshold, "direction": direction,
                   "alert": bool(primary and kind not in _DIAGNOSTIC and
                                 _beyond(value, threshold, direction)),
                   "primary": primary}
            if kind in ("feature", "attribution") and name in self.share:
                row["importance"] = round(self.share[name], 4)
                if row["alert"] and self.share[name] < LITTLE:
                    row["detail"] = (f"drifts, but carries {self.share[name]:.1%} of the "
                                     "model's attribution: it matters little to the model")
            out.append(row)
        drifting = [r for r in out if r["kind"] == "feature" and r["primary"]]
        share = sum(r["alert"] for r in drifting) / max(len(drifting), 1)
        out.append({**base, "kind": "dataset", "name": "drift_share", "method": "share",
                    "value": share, "threshold": self.drift_share, "direction": "above",
                    "alert": share >= self.drift_share, "primary": True})
        out.append(self._domain(window, base))
        if self.estimator is not None and "_prediction" in window and \
                window["_prediction"].notna().any():
            out.extend(self._estimate(window, base, null, out))
        for r in out:
            r.setdefault("labelled", base["labelled"])
        return out

    def _bound(self, kind, name, method, null, rows) -> tuple[float | None, str]:
        below = kind == "performance" and name in ("auc", "accuracy")
        direction = "below" if below else "above"
        if (kind, name, method) not in null:
            return None, direction
        m, sd = null[(kind, name, method)]
        if kind in _RATE_KINDS:  # a rate never seen moving in the pool still has binomial noise
            sd = max(sd, 1 / (2 * math.sqrt(rows)))
        return _back(kind, m - self.k * sd if below else m + self.k * sd), direction

    def _domain(self, window: pd.DataFrame, base: dict) -> dict[str, Any]:
        rng = np.random.default_rng(self.seed)
        rows = min(len(window), self.domain_rows)
        w = window.iloc[rng.choice(len(window), rows, replace=False)] if rows < len(window) \
            else window
        train = self.ref.train
        r = train.iloc[rng.choice(len(train), min(rows, len(train)), replace=False)]
        features = list(self.ref.numeric)
        cats = [not self.ref.numeric[f] for f in features]
        res = domain.drift(domain.encode(r, self.ref.numeric, self.categories),
                           domain.encode(w, self.ref.numeric, self.categories), features, cats,
                           self.k, seed=self.seed)
        threshold = res["threshold"]
        return {**base, "kind": "multivariate", "name": "domain_classifier",
                "method": "domain_classifier_auc", "value": res["auc"], "threshold": threshold,
                "direction": "above", "alert": res["auc"] > threshold, "primary": True,
                "detail": res["top"]}

    def _estimate(self, window, base, null, realized_rows) -> list[dict[str, Any]]:
        est = self.estimator.estimate(window["_prediction"].dropna().to_numpy(float))
        realized = {r["name"]: r["value"] for r in realized_rows
                    if r["kind"] == "performance" and r["method"] == "realized"}
        out = []
        for metric, e in est.items():
            # The bound is the realized metric's: an estimate alerts when the performance it
            # predicts would have alerted.
            threshold, direction = self._bound("performance", metric, "realized", null,
                                                 base["rows"])
            row = {**base, "kind": "estimate", "name": metric, "method": "cbpe",
                   "value": _clean(e["value"]), "lower": _clean(e["lower"]),
                   "upper": _clean(e["upper"]), "threshold": threshold,
                   "direction": direction, "primary": True,
                   "alert": _beyond(e["value"], threshold, direction)}
            if metric in realized:
                row["realized"] = realized[metric]
            out.append(row)
        return out


def _forward(kind: str, v: np.ndarray) -> np.ndarray:
    if kind in _LOG_KINDS:
        return np.log(np.maximum(v, 1e-12))
    if kind in _RATE_KINDS:  # arcsine-square-root: a rate's variance no longer depends on it
        return np.arcsin(np.sqrt(np.clip(v, 0.0, 1.0)))
    return v


def _back(kind: str, x: float) -> float:
    if kind in _LOG_KINDS:
        return math.exp(x)
    if kind in _RATE_KINDS:
        return math.sin(min(max(x, 0.0), math.pi / 2)) ** 2
    return x


def _moments(kind: str, v: np.ndarray) -> tuple[float, float]:
    """Mean and standard deviation of the null draws, on the kind's scale (_forward)."""
    v = v[~np.isnan(v)]
    if not len(v):
        return float("nan"), float("nan")
    v = _forward(kind, v)
    return float(v.mean()), float(v.std(ddof=1)) if len(v) > 1 else 0.0


def _beyond(value, threshold, direction) -> bool:
    if threshold is None or value is None or value != value or threshold != threshold:
        return False
    return bool(value > threshold if direction == "above" else value < threshold)


def _clean(v):
    return None if v is None or (isinstance(v, float) and math.isnan(v)) else float(v)
