"""Automated canary analysis: statistics comparing a new version's arm with production on live
traffic, each check one row of a table (check, canary and production values, n per arm,
p-value, threshold, verdict) that the rollout decides on and the report shows.

Inputs are what a running `fairway serve` exposes: two Prometheus scrapes (request counts by
version and status, the latency histogram) whose difference is a step's traffic, and the
request logs (predicted probabilities and features per row, by version and arrival time),
plus labels when they arrive. A check fails only when the difference is both significant
(p < alpha, one-sided towards "worse") and larger than a minimum effect: with thousands of
requests a harmless retrain differs significantly, so the effect size decides what matters.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Iterable

import numpy as np
import pandas as pd
from prometheus_client.parser import text_string_to_metric_families
from scipy import stats

PASS, FAIL, INSUFFICIENT = "pass", "fail", "insufficient"
REQUEST_COUNT = ":tensorflow:serving:request_count"
LATENCY = ":tensorflow:serving:request_latency"
SHADOW_COUNT = ":fairway:serving:shadow_request_count"
OK = "OK"


@dataclasses.dataclass(frozen=True)
class Thresholds:
    """When a check fails; docs/rollout.md says how the defaults were calibrated."""
    alpha: float = 0.01               # one-sided significance of "canary is worse"
    min_requests: int = 100           # per arm, for error rate and latency
    min_error_increase: float = 0.01  # +1 point of error rate
    latency_quantile: float = 0.99    # production's p99 latency bucket...
    min_latency_excess: float = 0.02  # ...exceeded by > 1 % + 2 points of canary requests
    min_rows: int = 100               # logged rows per arm for a prediction distribution
    min_group_rows: int = 50          # ... and per group of the sensitive feature
    max_ks: float = 0.15              # KS statistic between the arms' predicted probabilities
    max_gap_increase: float = 0.05    # |positive-rate gap| between the groups, canary - prod
    min_labelled: int = 200           # labelled rows per arm for AUC and the FPR gap
    max_auc_drop: float = 0.02
    max_fpr_gap_increase: float = 0.05
    max_flip_rate: float = 0.05       # shadow: share of requests whose decision changes
    decision_threshold: float = 0.5
    resamples: int = 2000             # permutation tests
    seed: int = 0


@dataclasses.dataclass
class Row:
    check: str
    canary: float | None
    production: float | None
    n_canary: int
    n_production: int
    p_value: float | None
    threshold: str
    verdict: str
    reason: str = ""  # for a failure or a missing sample: what, with numbers
    statistic: str = ""  # the test's statistic where it is not the values' difference

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


def failures(rows: Iterable[Row]) -> list[Row]:
    return [r for r in rows if r.verdict == FAIL]


def bonferroni(rows: list[Row], alpha: float) -> tuple[list[Row], float]:
    """The rows judged at alpha / k, k the number of checks that were tested (Bonferroni): a
    step runs several checks, and each at alpha would roll a good version back far more often
    than alpha. Only failures can change (to pass); returns the rows and the per-check level."""
    k = sum(r.p_value is not None for r in rows)
    if k <= 1:
        return rows, alpha
    per = alpha / k
    old, new = f"p < {alpha:g}", f"p < {per:.2g} (α {alpha:g} / {k} checks)"
    out = []
    for r in rows:
        r = dataclasses.replace(r, threshold=r.threshold.replace(old, new),
                                reason=r.reason.replace(old, new))
        if r.verdict == FAIL and r.p_value is not None and r.p_value >= per:
            r = dataclasses.replace(r, verdict=PASS, reason="")
        out.append(r)
    return out, per


def _p(p: float | None) -> str:
    return "n/a" if p is None else f"{p:.2g}"


def _insufficient(check: str, cv, pv, nc: int, np_: int, need: int, threshold: str,
                  what: str = "requests") -> Row:
    return Row(check, cv, pv, nc, np_, None, threshold, INSUFFICIENT,
               f"{check}: {nc} canary / {np_} production {what}, {need} per arm needed")


# -- Prometheus -------------------------------------------------------------------------------

@dataclasses.dataclass
class Scrape:
    """One model's counters from a Prometheus exposition (or the difference of two)."""
    requests: dict[tuple[str, str], float] = dataclasses.field(default_factory=dict)
    latency: dict[str, dict[float, float]] = dataclasses.field(default_factory=dict)
    shadow: dict[tuple[str, str], float] = dataclasses.field(default_factory=dict)

    def __sub__(self, start: "Scrape") -> "Scrape":
        """This scrape's counts since `start` (counters only grow; a smaller one means the
        server restarted in between, and the difference would be meaningless)."""
        def diff(end: dict, begin: dict, what: str) -> dict:
            out = {}
            for k, v in end.items():
                d = v - begin.get(k, 0.0)
                if d < 0:
                    raise ValueError(f"{what} {k}: counter went down from {begin[k]:g} to "
                                     f"{v:g}; did the server restart between the scrapes?")
                out[k] = d
            return out
        return Scrape(diff(self.requests, start.requests, REQUEST_COUNT),
                      {v: diff(b, start.latency.get(v, {}), LATENCY)
                       for v, b in self.latency.items()},
                      diff(self.shadow, start.shadow, SHADOW_COUNT))


def parse_metrics(text: str, model: str) -> Scrape:
    """Request counts by (version, status), latency buckets (upper bound in µs -> cumulative
    count) by version, and shadow counts by (version, status), summed over APIs and
    entrypoints, for `model`."""
    out = Scrape()
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            labels = s.labels
            if labels.get("model_name") != model:
                continue
            version = labels.get("version", "")
            if family.name == REQUEST_COUNT and s.name.endswith("_total"):
                key = (version, labels["status"])
                out.requests[key] = out.requests.get(key, 0.0) + s.value
            elif family.name == LATENCY and s.name.endswith("_bucket"):
                buckets = out.latency.setdefault(version, {})
                le = float(labels["le"])
                buckets[le] = buckets.get(le, 0.0) + s.value
            elif family.name == SHADOW_COUNT and s.name.endswith("_total"):
                key = (version, labels["status"])
                out.shadow[key] = out.shadow.get(key, 0.0) + s.value
    return out


def counts(scrape: Scrape, version: int | str, shadow: bool = False) -> tuple[int, int]:
    """(requests, failed requests) answered by `version` (or copied to it as the shadow)."""
    table = scrape.shadow if shadow else scrape.requests
    n = errors = 0
    for (v, status), c in table.items():
        if v == str(version):
            n += int(round(c))
            errors += int(round(c)) if status != OK else 0
    return n, errors


def error_rate(canary: tuple[int, int], production: tuple[int, int], th: Thresholds,
               name: str = "error rate") -> Row:
    """One-sided Fisher exact test: canary's error rate higher than production's, by at least
    th.min_error_increase. Arms are (requests, errors)."""
    (nc, ec), (np_, ep) = canary, production
    threshold = f"+{th.min_error_increase:.1%} and p < {th.alpha:g}"
    rc = ec / nc if nc else None
    rp = ep / np_ if np_ else None
    if nc < th.min_requests or np_ < th.min_requests:
        return _insufficient(name, rc, rp, nc, np_, th.min_requests, threshold)
    _, p = stats.fisher_exact([[ec, nc - ec], [ep, np_ - ep]], alternative="greater")
    bad = p < th.alpha and rc - rp >= th.min_error_increase
    reason = (f"{name}: {rc:.1%} ({ec}/{nc}) vs production {rp:.1%} ({ep}/{np_}), Fisher p "
              f"{_p(p)}; fails at {threshold}") if bad else ""
    return Row(name, rc, rp, nc, np_, float(p), threshold, FAIL if bad else PASS, reason)


def latency(canary: dict[float, float], production: dict[float, float], th: Thresholds) -> Row:
    """Production's p99 latency bucket (the histogram's upper bounds, µs) and the share of
    canary requests above it: 1 % expected when both arms are alike; a binomial test for more,
    by at least th.min_latency_excess."""
    name = "p99 latency"
    q = th.latency_quantile
    expected = 1 - q
    nc = int(round(max(canary.values(), default=0.0)))
    np_ = int(round(max(production.values(), default=0.0)))
    threshold = f"> {expected + th.min_latency_excess:.0%} above production's p{q * 100:g}"
    if nc < th.min_requests or np_ < th.min_requests:
        return _insufficient(name, None, None, nc, np_, th.min_requests, threshold)
    bound = next(le for le in sorted(production) if production[le] >= q * np_)
    if math.isinf(bound):  # production's p99 is beyond the largest finite bucket
        return Row(name, None, None, nc, np_, None, threshold, PASS)
    above_c = nc - int(round(canary.get(bound, 0.0)))
    above_p = np_ - int(round(production[bound]))
    share_c, share_p = above_c / nc, above_p / np_
    p = stats.binomtest(above_c, nc, expected, alternative="greater").pvalue
    threshold = f"{threshold} (≤ {bound / 1000:g} ms)"
    bad = p < th.alpha and share_c - expected >= th.min_latency_excess
    reason = (f"{name}: {share_c:.1%} of canary requests ({above_c}/{nc}) slower than "
              f"production's p{q * 100:g} bucket ≤ {bound / 1000:g} ms (production "
              f"{share_p:.1%}), binomial p {_p(p)}; fails at {threshold}") if bad else ""
    return Row(name, share_c, share_p, nc, np_, float(p), threshold, FAIL if bad else PASS,
               reason)


# -- predictions (request logs) -------------------------------------------------------------

def arm(frame: pd.DataFrame, version: int, since: float = 0.0) -> pd.DataFrame:
    """Logged rows answered by `version` from `since` (UTC seconds) on, with a prediction."""
    if frame.empty:
        return frame
    keep = (frame["_version"] == int(version)) & (frame["_time"] >= math.floor(since)) \
        & frame["_prediction"].notna()
    return frame[keep]


def _scores(rows: pd.DataFrame) -> np.ndarray:
    return rows["_prediction"].to_numpy(dtype=float)


def shift(canary: np.ndarray, production: np.ndarray, th: Thresholds, where: str = "",
          minimum: int | None = None) -> Row:
    """Two-sample Kolmogorov–Smirnov on predicted probabilities: fails when the statistic is
    above th.max_ks and significant (a harmless retrain moves scores a little, significantly
    so on enough traffic)."""
    name = f"prediction shift{f' in {where}' if where else ''}"
    minimum = th.min_rows if minimum is None else minimum
    threshold = f"KS > {th.max_ks:g} and p < {th.alpha:g}"
    nc, np_ = len(canary), len(production)
    mc = float(np.mean(canary)) if nc else None
    mp = float(np.mean(production)) if np_ else None
    if nc < minimum or np_ < minimum:
        return _insufficient(name, mc, mp, nc, np_, minimum, threshold, "logged rows")
    res = stats.ks_2samp(canary, production)
    bad = res.pvalue < th.alpha and res.statistic > th.max_ks
    reason = (f"{name}: KS {res.statistic:.2f} (p {_p(res.pvalue)}) > {th.max_ks:g}; mean "
              f"score {mc:.3f} vs production {mp:.3f}") if bad else ""
    return Row(name, mc, mp, nc, np_, float(res.pvalue), threshold, FAIL if bad else PASS,
               reason, f"KS {res.statistic:.3f}")


def _gap_change(canary: tuple[np.ndarray, np.ndarray], production: tuple[np.ndarray, np.ndarray],
                th: Thresholds) -> tuple[float, float, float]:
    """(gap canary, gap production, one-sided p) for the positive-rate gap between two groups
    (rate(protected) - rate(reference)) growing in absolute size from production to canary.

    Each arm is (is_protected, positive) per row; the p-value is a permutation test of the arm
    assignment (scipy.stats.permutation_test), so no normal approximation is assumed."""
    def encode(arm):
        protected, positive = arm
        return 2 * protected.astype(int) + positive.astype(int)

    def gap(codes):
        protected, positive = codes >= 2, codes % 2 == 1
        if protected.all() or not protected.any():
            return 0.0
        return positive[protected].mean() - positive[~protected].mean()

    def statistic(x, y):
        return abs(gap(x)) - abs(gap(y))

    c, p = encode(canary), encode(production)
    res = stats.permutation_test((c, p), statistic, permutation_type="independent",
                                 alternative="greater", n_resamples=th.resamples,
                                 random_state=th.seed, vectorized=False)
    return float(gap(c)), float(gap(p)), float(res.pvalue)


def _groups(rows: pd.DataFrame, sensitive: str, groups: tuple[str, str]):
    """(is_protected, positive decision) of the rows in either group."""
    values = rows[sensitive].astype(str) if sensitive in rows else pd.Series([], dtype=str)
    mask = values.isin(groups).to_numpy()
    return (values.to_numpy()[mask] == groups[0]), mask


def fairness_gap(canary: pd.DataFrame, production: pd.DataFrame, sensitive: str,
                 groups: tuple[str, str], th: Thresholds, *, labelled: bool = False) -> Row:
    """The gap in positive-prediction rate between the groups (label-free), or with
    `labelled` the FPR gap (the same on rows labelled 0), canary vs production: fails when
    its absolute size grows by more than the allowed increase, significantly."""
    allowed = th.max_fpr_gap_increase if labelled else th.max_gap_increase
    name = (f"FPR gap {sensitive}={groups[0]} - {groups[1]}" if labelled else
            f"positive-rate gap {sensitive}={groups[0]} - {groups[1]}")
    threshold = f"|gap| +{allowed:g} and p < {th.alpha:g}"
    arms = []
    for rows in (canary, production):
        if labelled:
            rows = rows[rows["_label"] == 0]
        protected, mask = _groups(rows, sensitive, groups)
        positive = _scores(rows)[mask] >= th.decision_threshold
        arms.append((protected, positive))
    need = th.min_group_rows
    sizes = [min(int(a[0].sum()), int((~a[0]).sum())) for a in arms]
    nc, np_ = (len(a[0]) for a in arms)
    if min(sizes) < need:
        what = "negative rows in the smaller group" if labelled else "rows in the smaller group"
        return _insufficient(name, None, None, sizes[0], sizes[1], need, threshold, what)
    gc, gp, p = _gap_change(arms[0], arms[1], th)
    bad = p < th.alpha and abs(gc) - abs(gp) > allowed
    reason = (f"{name}: {gc:+.3f} vs production {gp:+.3f} (|gap| +{abs(gc) - abs(gp):.3f} > "
              f"{allowed:g}, permutation p {_p(p)})") if bad else ""
    return Row(name, gc, gp, nc, np_, p, threshold, FAIL if bad else PASS, reason)


def _auc(y: np.ndarray, s: np.ndarray) -> float:
    """AUC as the Mann–Whitney U of the positives' score ranks (ties at half)."""
    pos = y == 1
    n1, n0 = int(pos.sum()), int((~pos).sum())
    if n1 == 0 or n0 == 0:
        return math.nan
    ranks = stats.rankdata(s)
    return float((ranks[pos].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


def auc(canary: pd.DataFrame, production: pd.DataFrame, th: Thresholds,
        alternative: str = "less", name: str = "AUC") -> Row:
    """AUC per arm on labelled rows; a permutation test of the arm assignment for canary's AUC
    being lower (`alternative="less"`) or different ("two-sided", A/B), with a minimum drop."""
    c = canary[canary["_label"].notna()]
    p = production[production["_label"].notna()]
    threshold = (f"drop > {th.max_auc_drop:g} and p < {th.alpha:g}" if alternative == "less"
                 else f"p < {th.alpha:g} (two-sided)")
    nc, np_ = len(c), len(p)
    yc, sc = c["_label"].to_numpy(int), _scores(c)
    yp, sp = p["_label"].to_numpy(int), _scores(p)
    ac = _auc(yc, sc) if nc else None
    ap = _auc(yp, sp) if np_ else None
    if nc < th.min_labelled or np_ < th.min_labelled or \
            any(v is None or math.isnan(v) for v in (ac, ap)):
        return _insufficient(name, ac, ap, nc, np_, th.min_labelled, threshold,
                             "labelled rows (of both classes)")
    y, s = np.concatenate([yc, yp]), np.concatenate([sc, sp])

    def statistic(i, j):
        return _auc(y[i], s[i]) - _auc(y[j], s[j])

    res = stats.permutation_test((np.arange(nc), np.arange(nc, nc + np_)), statistic,
                                 permutation_type="independent", alternative=alternative,
                                 n_resamples=th.resamples, random_state=th.seed,
                                 vectorized=False)
    pv = float(res.pvalue)
    bad = alternative == "less" and pv < th.alpha and ap - ac > th.max_auc_drop
    reason = (f"{name}: {ac:.3f} vs production {ap:.3f} (drop {ap - ac:.3f} > "
              f"{th.max_auc_drop:g}, permutation p {_p(pv)})") if bad else ""
    return Row(name, ac, ap, nc, np_, pv, threshold, FAIL if bad else PASS, reason)


def accuracy(canary: pd.DataFrame, production: pd.DataFrame, th: Thresholds,
             name: str = "accuracy") -> Row:
    """Accuracy per arm at the decision threshold on labelled rows, compared with a two-sided
    Fisher exact test (A/B: either arm may win); the verdict is pass unless canary is
    significantly worse."""
    arms = []
    for rows in (canary, production):
        rows = rows[rows["_label"].notna()]
        correct = int(((_scores(rows) >= th.decision_threshold)
                       == (rows["_label"].to_numpy() == 1)).sum())
        arms.append((correct, len(rows)))
    (kc, nc), (kp, np_) = arms
    threshold = f"p < {th.alpha:g} (two-sided)"
    ac, ap = (kc / nc if nc else None), (kp / np_ if np_ else None)
    if nc < th.min_labelled or np_ < th.min_labelled:
        return _insufficient(name, ac, ap, nc, np_, th.min_labelled, threshold,
                             "labelled rows")
    _, p = stats.fisher_exact([[kc, nc - kc], [kp, np_ - kp]])
    bad = p < th.alpha and ac < ap
    reason = (f"{name}: {ac:.3f} vs {ap:.3f} (Fisher p {_p(p)})") if bad else ""
    return Row(name, ac, ap, nc, np_, float(p), threshold, FAIL if bad else PASS, reason)


def prediction_checks(canary: pd.DataFrame, production: pd.DataFrame, th: Thresholds,
                      sensitive: str | None = None, groups: tuple[str, ...] = ()) -> list[Row]:
    """Prediction shift overall and per group of the sensitive feature, and the positive-rate
    gap between the groups; with a `_label` column, AUC and the FPR gap too."""
    rows = [shift(_scores(canary), _scores(production), th)]
    if sensitive and groups:
        for g in groups:
            rows.append(shift(_scores(canary[canary[sensitive].astype(str) == g]),
                              _scores(production[production[sensitive].astype(str) == g]),
                              th, f"{sensitive}={g}", th.min_group_rows))
        rows.append(fairness_gap(canary, production, sensitive, tuple(groups[:2]), th))
    if "_label" in canary and "_label" in production:
        rows.append(auc(canary, production, th))
        if sensitive and groups:
            rows.append(fairness_gap(canary, production, sensitive, tuple(groups[:2]), th,
                                     labelled=True))
    return rows


def paired_checks(shadow: pd.DataFrame, production: pd.DataFrame, th: Thresholds,
                  sensitive: str | None = None, groups: tuple[str, ...] = ()) -> list[Row]:
    """Shadow vs production on the same requests (joined by request id): the distribution
    checks of prediction_checks, plus the share of requests whose decision at the threshold
    changes (binomial test against th.max_flip_rate)."""
    joined = production.merge(shadow[["_request_id", "_prediction"]], on="_request_id",
                              suffixes=("", "_shadow"))
    joined = joined[joined["_prediction_shadow"].notna()]
    s = joined.assign(_prediction=joined["_prediction_shadow"])
    rows = prediction_checks(s, joined, th, sensitive, groups)
    n = len(joined)
    name = "decision flips"
    threshold = f"> {th.max_flip_rate:.0%} and p < {th.alpha:g}"
    if n < th.min_rows:
        rows.append(_insufficient(name, None, None, n, n, th.min_rows, threshold,
                                  "paired rows"))
        return rows
    t = th.decision_threshold
    flips = int(((joined["_prediction_shadow"] >= t) != (joined["_prediction"] >= t)).sum())
    p = stats.binomtest(flips, n, th.max_flip_rate, alternative="greater").pvalue
    bad = p < th.alpha and flips / n > th.max_flip_rate
    reason = (f"{name}: {flips / n:.1%} of {n} requests change decision at {t:g} "
              f"(binomial p {_p(p)}) > {th.max_flip_rate:.0%}") if bad else ""
    rows.append(Row(name, flips / n, 0.0, n, n, float(p), threshold,
                    FAIL if bad else PASS, reason))
    return rows
