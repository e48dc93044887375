"""The monitoring benchmark's peers on the benchmark's windows (run in the peers' own venv).

    peers.py IN_FOLDER OUT.json

IN_FOLDER (written by benchmarks/monitor_bench.py): reference_train.parquet (training sample:
features, y_pred_proba), reference_evidently.parquet (5,000 of those rows),
reference_pool.parquet (held-out rows: features, y_pred_proba, y_true),
windows.parquet (every window's rows: features, y_pred_proba, window) and spec.json (features,
categorical, the decision threshold, [[window id, rows], ...]).

- Evidently DataDriftPreset, one report per window against 5,000 training rows: the dataset
  drift decision (share of drifted columns >= 0.5, its default) and the share itself.
- NannyML UnivariateDriftCalculator (its default Jensen-Shannon, thresholds from the reference's
  chunks), fitted per window size on the training sample with chunk_size = the window size; the
  windows of a size are one analysis frame whose chunks are exactly the windows. A window alerts
  when any column alerts.
- NannyML CBPE (roc_auc, accuracy), fitted per window size on the held-out pool; likewise one
  chunk per window, without its labels. A window alerts when either estimate alerts.
Seconds per window: Evidently's own per window; NannyML's the calculate/estimate call of a size
divided by its windows (the fit is reported apart).
"""
from __future__ import annotations

import json
import os
import pathlib
import sys
import time
import warnings

os.environ.setdefault("NML_DISABLE_USAGE_LOGGING", "1")
warnings.filterwarnings("ignore")

import pandas as pd  # noqa: E402


def evidently_windows(ref: pd.DataFrame, wins: pd.DataFrame, spec: dict) -> tuple[dict, dict]:
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    feats, cats = spec["features"], spec["categorical"]
    definition = DataDefinition(numerical_columns=[f for f in feats if f not in cats],
                                categorical_columns=cats)
    reference = Dataset.from_pandas(ref[feats], data_definition=definition)
    out, seconds = {}, {}
    for wid, frame in wins.groupby("window", sort=False):
        t = time.perf_counter()
        snap = Report([DataDriftPreset()]).run(
            Dataset.from_pandas(frame[feats].reset_index(drop=True), data_definition=definition),
            reference)
        metrics = snap.dict()["metrics"]
        elapsed = time.perf_counter() - t
        count = next(m for m in metrics if m["metric_name"].startswith("DriftedColumnsCount"))
        share = float(count["value"]["share"])
        drifted = [m["config"]["column"] for m in metrics
                   if m["config"].get("type", "").endswith("ValueDrift")
                   and _drifted(m)]
        out[str(wid)] = {"alert": share >= 0.5, "share": share, "drifted": drifted}
        seconds.setdefault(len(frame), []).append(elapsed)
    return out, {str(n): sum(v) / len(v) for n, v in seconds.items()}


def _drifted(metric: dict) -> bool:
    """A ValueDrift metric's decision: a p-value below, or a distance above, its threshold."""
    method, value, threshold = (metric["config"].get("method", ""), metric["value"],
                                metric["config"].get("threshold"))
    if threshold is None:
        return False
    return value < threshold if "p_value" in method or "test" in method.lower() \
        else value >= threshold


def nannyml_windows(train: pd.DataFrame, pool: pd.DataFrame, wins: pd.DataFrame, spec: dict
                    ) -> tuple[dict, dict, dict, dict]:
    import nannyml as nml

    feats, cats, threshold = spec["features"], spec["categorical"], spec["threshold"]
    uni, cbpe = {}, {}
    seconds = {"nml_univariate": {}, "nml_cbpe": {}}
    fit = {"nml_univariate": {}, "nml_cbpe": {}}
    pool = pool.assign(y_pred=(pool["y_pred_proba"] >= threshold).astype(int),
                       y_true=pool["y_true"].astype(int))
    sizes = sorted({n for _, n in spec["windows"]})
    for size in sizes:
        ids = [w for w, n in spec["windows"] if n == size]
        frame = wins[wins["window"].isin(ids)]
        # windows in the spec's order, each exactly `size` rows: chunk i is window ids[i]
        frame = frame.set_index("window").loc[ids].reset_index()
        frame = frame.assign(y_pred=(frame["y_pred_proba"] >= threshold).astype(int))

        calc = nml.UnivariateDriftCalculator(column_names=feats, treat_as_categorical=cats,
                                             chunk_size=size)
        t = time.perf_counter()
        calc.fit(train[feats])
        fit["nml_univariate"][str(size)] = time.perf_counter() - t
        t = time.perf_counter()
        res = calc.calculate(frame[feats]).filter(period="analysis").to_df()
        seconds["nml_univariate"][str(size)] = (time.perf_counter() - t) / len(ids)
        alert_cols = [c for c in res.columns if c[-1] == "alert"]
        for i, wid in enumerate(ids):
            row = res.iloc[i]
            cols = [c[0] for c in alert_cols if bool(row[c])]
            uni[str(wid)] = {"alert": bool(cols), "columns": cols}

        est = nml.CBPE(y_pred_proba="y_pred_proba", y_pred="y_pred", y_true="y_true",
                       problem_type="classification_binary", metrics=["roc_auc", "accuracy"],
                       chunk_size=size)
        t = time.perf_counter()
        est.fit(pool[feats + ["y_pred_proba", "y_pred", "y_true"]])
        fit["nml_cbpe"][str(size)] = time.perf_counter() - t
        t = time.perf_counter()
        res = est.estimate(frame[feats + ["y_pred_proba", "y_pred"]]).filter(
            period="analysis").to_df()
        seconds["nml_cbpe"][str(size)] = (time.perf_counter() - t) / len(ids)
        if len(res) != len(ids):
            raise SystemExit(f"NannyML made {len(res)} chunks of {len(ids)} windows at {size}")
        for i, wid in enumerate(ids):
            row = res.iloc[i]
            cbpe[str(wid)] = {"alert": bool(row[("roc_auc", "alert")]) or
                              bool(row[("accuracy", "alert")]),
                              "roc_auc": _num(row[("roc_auc", "value")]),
                              "accuracy": _num(row[("accuracy", "value")])}
    return uni, cbpe, seconds, fit


def _num(v):
    v = float(v)
    return None if v != v else v


def main(folder: str, out: str) -> None:
    import evidently
    import nannyml

    folder = pathlib.Path(folder)
    spec = json.loads((folder / "spec.json").read_text())
    train = pd.read_parquet(folder / "reference_train.parquet")
    pool = pd.read_parquet(folder / "reference_pool.parquet")
    wins = pd.read_parquet(folder / "windows.parquet")
    t = time.perf_counter()
    ev, ev_seconds = evidently_windows(pd.read_parquet(folder / "reference_evidently.parquet"),
                                       wins, spec)
    print(f"peers: Evidently {time.perf_counter() - t:.0f}s", flush=True)
    t = time.perf_counter()
    uni, cbpe, seconds, fit = nannyml_windows(train, pool, wins, spec)
    print(f"peers: NannyML {time.perf_counter() - t:.0f}s", flush=True)
    result = {
        "versions": {"evidently": evidently.__version__, "nannyml": nannyml.__version__,
                     "pandas": pd.__version__, "python": sys.version.split()[0]},
        "seconds": {"evidently": ev_seconds, **seconds}, "fit_seconds": fit,
        "windows": {str(w): {"evidently": ev[str(w)], "nml_univariate": uni[str(w)],
                             "nml_cbpe": cbpe[str(w)]} for w, _ in spec["windows"]}}
    pathlib.Path(out).write_text(json.dumps(result))


if __name__ == "__main__":
    main(*sys.argv[1:3])
