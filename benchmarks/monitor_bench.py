"""Monitoring benchmark: Fairway's window calculator vs Evidently and NannyML on the same windows.

    make bench-monitor                       # full run (~30 min on 2 cores, the pipeline included)
    make bench-monitor ARGS="--quick"        # smoke run: few windows per scenario
    make bench-monitor ARGS="--fresh"        # re-run the reference pipeline and the peers' venv
    python -m benchmarks.monitor_bench --config my.toml   # another dataset (same TOML format)

The reference model is a real pipeline run (`fairway run`, as a subprocess) on the dataset split
three ways: train = the dataset's train split, eval = a seeded half of its eval split (the
reference pool: scored and labelled rows), stream = the other half, which the model neither
trained on nor the monitor calibrated on. The run is reused when its pushed model exists.

Windows of 200, 1,000 and 5,000 rows are drawn from the stream (without replacement inside a
window, except where a scenario oversamples more rows than the stream has) and every window
carries its labels and the pushed model's scores:
  clean       80 / 40 / 20 windows at 200 / 1,000 / 5,000 rows (--quick: 20 / 12 / 6)
  numeric     +delta*std added to two numeric features, delta 0.1 / 0.25 / 0.5
  category    one category of a categorical feature oversampled by +5 / +10 / +20 points
  missing     a (servable-optional) categorical feature blanked in 5 / 10 / 25 % more rows
  prior       the positive-label share raised by 5 / 10 / 20 points (resampling by label)
  concept     10 / 25 / 50 % of one sensitive group's labels flipped; inputs unchanged
  8 / 6 / 4 windows per scenario, magnitude and size (--quick: 4 / 3 / 2).
(The counts keep the full run near half an hour on 2 shared cores: Evidently takes 1-3 s a
window.)
On census the oversampling cells category medium/large and prior large at 5,000 rows need more
rows of the category/label than the stream has, so those windows repeat rows (with replacement);
the domain classifier can spot repeats, which flatters "Fairway multivariate" in those cells.
Detection delay: sequences of 5 clean windows then 10 windows whose shift ramps up linearly to
the scenario's large magnitude (1,000 rows; 2 sequences per scenario, --quick: 1); the delay is
the number of shifted windows until a method's first alert (a miss counts as 11).

Columns, categories and groups come from the config's dataset (numeric/categorical features,
label, sensitive groups, the schema's optional features); DEFAULTS only picks, for a known
dataset, which features the scenarios shift.

Methods: Fairway's families (primary rows of a kind: input drift = feature, data quality,
prediction drift, multivariate = domain classifier, realized performance = performance + label,
CBPE estimate; "any" = any alert), Evidently's DataDriftPreset (the dataset-drift decision: a
share of drifted columns >= 0.5), NannyML's UnivariateDriftCalculator (any column alerts;
thresholds from reference chunks of the window size) and CBPE (roc_auc, accuracy; one chunk per
window). The peers run in their own venv (benchmarks/peers/requirements.txt) under the work
folder, never in Fairway's. Results: outputs/bench-monitor/monitor.{json,md}.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import pathlib
import platform
import shutil
import subprocess
import sys
import time

import numpy as np
import pandas as pd

from pipeline import config

HERE = pathlib.Path(__file__).resolve().parent
PEERS = HERE / "peers"
SIZES = (200, 1000, 5000)
MAGNITUDES = ("small", "medium", "large")
SCENARIOS = ("numeric", "category", "missing", "prior", "concept")
LEVELS = {  # scenario -> magnitude per level (see the module docstring)
    "numeric": (0.1, 0.25, 0.5),  # reference standard deviations added
    "category": (0.05, 0.10, 0.20),  # points added to one category's share
    "missing": (0.05, 0.10, 0.25),  # share of rows blanked
    "prior": (0.05, 0.10, 0.20),  # points added to the positive-label share
    "concept": (0.10, 0.25, 0.50),  # share of the group's labels flipped
}
# Which columns a known dataset's scenarios shift; any other dataset gets a generic choice
# (pick_columns). Nothing else names a dataset's columns.
DEFAULTS = {
    # age and fnlwgt have no big spike: +0.1 std moved hours_per_week's 47 % at 40 h whole
    # (rounded to +1 h), which every KS test sees at once, whatever the "magnitude".
    "census": {"numeric": ["age", "fnlwgt"], "category": ("occupation", "Exec-managerial"),
               "missing": "occupation"},
}
CLEAN = {200: 80, 1000: 40, 5000: 20}
SHIFTED = {200: 8, 1000: 6, 5000: 4}
SEQUENCES, QUICK_SEQUENCES = 2, 1
QUICK_CLEAN = {200: 20, 1000: 12, 5000: 6}
QUICK_SHIFTED = {200: 4, 1000: 3, 5000: 2}
SEQ_CLEAN, SEQ_SHIFTED, SEQ_SIZE = 5, 10, 1000
TARGET_FALSE_ALARM, TARGET_AUC_ERROR, TARGET_SECONDS_10K = 0.05, 0.02, 1.0
PEER_PYTHON = "3.11"


# -- data and the reference run ---------------------------------------------------------------
def _read_csvs(path: pathlib.Path) -> pd.DataFrame:
    files = sorted(path.rglob("*.csv")) if path.is_dir() else [path]
    return pd.concat([pd.read_csv(f, skipinitialspace=True) for f in files], ignore_index=True)


def base_splits(cfg) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(train, eval) CSV rows of the config's dataset; unsplit data is split 2:1 (seeded)."""
    ds = cfg.dataset
    if ds.source == "csv":
        base = ds.csv_dir
    else:
        from data import acquire

        base = acquire.prepare(cfg, log=lambda *a: None).base
    base = pathlib.Path(base)
    if (base / "train").is_dir() and (base / "eval").is_dir():
        return _read_csvs(base / "train"), _read_csvs(base / "eval")
    rows = _read_csvs(base).sample(frac=1.0, random_state=0).reset_index(drop=True)
    cut = len(rows) * 2 // 3
    return rows.iloc[:cut], rows.iloc[cut:].reset_index(drop=True)


def _toml(raw: dict) -> str:
    """A minimal TOML writer for a config's tables (strings, numbers, bools, lists, tables)."""
    def value(v):
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, (int, float)):
            return repr(v)
        if isinstance(v, str):
            return json.dumps(v)
        if isinstance(v, (list, tuple)):
            return "[" + ", ".join(value(x) for x in v) + "]"
        if isinstance(v, dict):
            return "{" + ", ".join(f"{json.dumps(k)} = {value(x)}" for k, x in v.items()) + "}"
        raise TypeError(f"cannot write {v!r} as TOML")
    out = []
    for table, fields in raw.items():
        out.append(f"[{table}]")
        out += [f"{json.dumps(k)} = {value(v)}" for k, v in fields.items()]
        out.append("")
    return "\n".join(out)


def prepare(base_toml: pathlib.Path, work: pathlib.Path, seed: int) -> pathlib.Path:
    """Write the three-way split and the benchmark's config (its own output_dir); the config."""
    import tomli

    cfg = config.load(base_toml)
    data = work / "data"  # pipeline/{train,eval}/ for ExampleGen, stream.csv beside it
    if not (data / "stream.csv").is_file():
        train, evalset = base_splits(cfg)
        half = evalset.sample(frac=0.5, random_state=seed).index
        ref, stream = evalset.loc[sorted(half)], evalset.drop(index=half)
        for name, frame in (("pipeline/train/train.csv", train), ("pipeline/eval/eval.csv", ref),
                            ("stream.csv", stream)):
            (data / name).parent.mkdir(parents=True, exist_ok=True)
            frame.to_csv(data / name, index=False)
    raw = tomli.loads(base_toml.read_text())
    raw["dataset"].update(source="csv", csv_dir=str(data / "pipeline"),
                          schema=str(cfg.dataset.schema_file))
    raw.setdefault("pipeline", {})["output_dir"] = str(work / "run")
    raw["pipeline"].pop("mysql", None)  # the benchmark's run keeps its own sqlite metadata
    # The benchmark needs a pushed model, not a gate: the evaluator blesses any candidate.
    raw.setdefault("evaluation", {}).update(min_auc=0.0, max_auc_drop=1.0, max_fpr_gap=1.0)
    path = work / "bench.toml"
    path.write_text("# Written by benchmarks/monitor_bench.py from " + str(base_toml) + "\n"
                    + _toml(raw))
    return path


def pushed_model(cfg) -> pathlib.Path | None:
    base = cfg.serving_dir / cfg.model_name
    versions = sorted((p for p in base.iterdir() if p.name.isdigit()), key=lambda p: int(p.name)) \
        if base.is_dir() else []
    return versions[-1] if versions else None


def reference_run(toml: pathlib.Path, train_steps: int, fresh: bool, log=print):
    """The benchmark's pipeline run (reused unless --fresh); (config, pushed model folder)."""
    cfg = config.load(toml)
    if fresh and cfg.output_dir.exists():
        shutil.rmtree(cfg.output_dir)
    model = pushed_model(cfg)
    if model is None:
        fairway = pathlib.Path(sys.executable).parent / "fairway"
        cmd = [str(fairway), "run", "--config", str(toml), "--train-steps", str(train_steps)]
        logfile = toml.parent / "pipeline.log"
        log(f"reference pipeline: {' '.join(cmd)} (log: {logfile}) ...")
        t = time.perf_counter()
        with logfile.open("w") as f:
            rc = subprocess.call(cmd, stdout=f, stderr=subprocess.STDOUT,
                                 env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
        if rc != 0:
            sys.exit(f"the reference pipeline failed (exit {rc}); see {logfile}")
        log(f"reference pipeline: {time.perf_counter() - t:.0f}s")
        model = pushed_model(cfg)
        if model is None:
            sys.exit(f"the reference pipeline pushed no model under {cfg.serving_dir} (the "
                     f"evaluator did not bless it?); see {logfile}")
    return cfg, model


# -- the stream and the scenarios -------------------------------------------------------------
class Stream:
    """The stream half with the model's scores and 0/1 labels, and how to shift it."""

    def __init__(self, cfg, frame: pd.DataFrame, types: dict[str, str], ref_train: pd.DataFrame,
                 score, seed: int):
        ds = cfg.dataset
        self.ds, self.types, self.score_fn = ds, types, score
        self.features = [f for f in types if f != ds.label]
        label = frame[ds.label]
        if ds.label_map:
            label = label.astype(str).map(dict(ds.label_map))
        self.rows = normalize(frame[self.features], set(ds.numeric))
        self.rows["_label"] = label.astype(float).to_numpy()
        self.rows["_prediction"] = score(serialize(self.rows, types))
        self.std = {f: float(pd.to_numeric(ref_train[f], errors="coerce").std())
                    for f in ds.numeric}
        self.cols = pick_columns(cfg, self.rows)
        self.rng = np.random.default_rng(seed)

    def _draw(self, n: int, pool: np.ndarray | None = None) -> np.ndarray:
        pool = np.arange(len(self.rows)) if pool is None else pool
        return self.rng.choice(pool, n, replace=n > len(pool))

    def _mixed(self, n: int, inside: np.ndarray, share: float) -> pd.DataFrame:
        """n rows of which a share come from the rows where `inside` holds."""
        k = int(round(n * min(max(share, 0.0), 1.0)))
        idx = np.r_[self._draw(k, np.flatnonzero(inside)), self._draw(n - k, np.flatnonzero(~inside))]
        return self.rows.iloc[self.rng.permutation(idx)].reset_index(drop=True)

    def window(self, scenario: str, n: int, level: float) -> pd.DataFrame:
        """A window of n rows shifted by `level` (0: clean) of the scenario."""
        if scenario == "category" and level:
            f, cat = self.cols["category"]
            inside = (self.rows[f] == cat).to_numpy()
            return self._mixed(n, inside, inside.mean() + level)
        if scenario == "prior" and level:
            pos = (self.rows["_label"] == 1).to_numpy()
            return self._mixed(n, pos, pos.mean() + level)
        w = self.rows.iloc[self._draw(n)].reset_index(drop=True)
        if not level:
            return w
        if scenario == "numeric":
            for f in self.cols["numeric"]:
                shifted = w[f] + level * self.std[f]
                w[f] = shifted.round() if self.types[f] == "INT" else shifted
        elif scenario == "missing":
            f = self.cols["missing"]
            present = np.flatnonzero(w[f].notna().to_numpy())
            blank = self.rng.choice(present, min(len(present), int(round(n * level))),
                                    replace=False)
            w.loc[blank, f] = None
        elif scenario == "concept":
            sens, group = self.cols["concept"]
            members = np.flatnonzero((w[sens] == group).to_numpy())
            flip = self.rng.choice(members, int(round(len(members) * level)), replace=False)
            w.loc[flip, "_label"] = 1 - w.loc[flip, "_label"]
            return w  # inputs (and so scores) unchanged
        else:
            raise ValueError(scenario)
        w["_prediction"] = self.score_fn(serialize(w, self.types))
        return w


def pick_columns(cfg, rows: pd.DataFrame) -> dict:
    """The columns each scenario shifts: DEFAULTS for a known dataset, else a generic choice
    from the config (the two most varied numeric features, a categorical feature's ~10 %
    category, an optional categorical feature, the protected group)."""
    ds = cfg.dataset
    out = dict(DEFAULTS.get(ds.name, {}))
    if "numeric" not in out and ds.numeric:
        varied = sorted(ds.numeric, key=lambda f: -(rows[f] != rows[f].mode().iloc[0]).mean())
        out["numeric"] = varied[:2]
    cats = [c for c in ds.categorical if c != ds.sensitive] or list(ds.categorical)
    if "category" not in out and cats:
        best = None
        for f in cats:
            shares = rows[f].value_counts(normalize=True)
            for cat, s in shares.items():
                if best is None or abs(s - 0.1) < abs(best[2] - 0.1):
                    best = (f, cat, s)
        out["category"] = best[:2]
    if "missing" not in out:
        optional = [c for c in ds.categorical if c in ds.optional] or list(ds.optional) or cats
        out["missing"] = optional[0]
    if "concept" not in out:
        if ds.sensitive and ds.groups:
            out["concept"] = (ds.sensitive, ds.groups[0])
        else:
            out["concept"] = tuple(out["category"])
    return out


def normalize(frame: pd.DataFrame, numeric: set[str]) -> pd.DataFrame:
    """Numeric features as floats, the others as strings with None for missing."""
    out = pd.DataFrame(index=range(len(frame)))
    for c in frame.columns:
        col = frame[c].reset_index(drop=True)
        if c in numeric:
            out[c] = pd.to_numeric(col, errors="coerce").astype(float)
        else:
            s = col.astype(object).where(col.notna(), None)
            out[c] = s.map(lambda v: None if v is None or str(v) == "" else str(v))
    return out


def serialize(frame: pd.DataFrame, types: dict[str, str]) -> list[bytes]:
    """Rows as serialized tf.Examples typed by the schema; missing cells are left out."""
    import tensorflow as tf

    cols = [(c, types[c], frame[c].to_numpy(object)) for c in types if c in frame]
    out = []
    for i in range(len(frame)):
        ex = tf.train.Example()
        feature = ex.features.feature
        for c, t, values in cols:
            v = values[i]
            if v is None or (isinstance(v, float) and v != v):
                continue
            if t == "INT":
                feature[c].int64_list.value.append(int(float(v)))
            elif t == "FLOAT":
                feature[c].float_list.value.append(float(v))
            else:
                feature[c].bytes_list.value.append(str(v).encode())
        out.append(ex.SerializeToString())
    return out


def windows(stream: Stream, quick: bool) -> list[dict]:
    """Every window: {id, scenario, magnitude, level, size, seq, step, frame}."""
    clean, shifted = (QUICK_CLEAN, QUICK_SHIFTED) if quick else (CLEAN, SHIFTED)
    out = []

    def add(scenario, magnitude, level, size, seq=None, step=None):
        out.append({"id": len(out), "scenario": scenario, "magnitude": magnitude,
                    "level": level, "size": size, "seq": seq, "step": step,
                    "frame": stream.window(scenario, size, level)})
    for size in SIZES:
        for _ in range(clean[size]):
            add("clean", "", 0.0, size)
        for scenario in SCENARIOS:
            for magnitude, level in zip(MAGNITUDES, LEVELS[scenario]):
                for _ in range(shifted[size]):
                    add(scenario, magnitude, level, size)
    for scenario in SCENARIOS:
        for s in range(QUICK_SEQUENCES if quick else SEQUENCES):
            seq = f"{scenario}-{s}"
            for step in range(SEQ_CLEAN):
                add(scenario, "sequence", 0.0, SEQ_SIZE, seq, step - SEQ_CLEAN)
            for step in range(1, SEQ_SHIFTED + 1):
                add(scenario, "sequence", LEVELS[scenario][-1] * step / SEQ_SHIFTED, SEQ_SIZE,
                    seq, step)
    return out


# -- Fairway ------------------------------------------------------------------------------------
FAMILIES = {  # method family -> the kinds of the calculator's rows it reads (None: every row)
    "Fairway input drift": {"feature"}, "Fairway data quality": {"quality"},
    "Fairway prediction drift": {"prediction"}, "Fairway multivariate": {"multivariate"},
    "Fairway realized performance": {"performance", "label"},
    "Fairway CBPE estimate": {"estimate"}, "Fairway any": None,
}
PEER_METHODS = ("Evidently data drift", "NannyML univariate", "NannyML CBPE")
METHODS = (*FAMILIES, *PEER_METHODS)


def run_fairway(calc, wins: list[dict], columns: list[str], log=print) -> dict[int, dict]:
    """Each window's alerts per family, its CBPE estimate and realized metrics, and seconds."""
    out = {}
    for size in sorted({w["size"] for w in wins}):  # thresholds are calibrated once per size
        t = time.perf_counter()
        calc.thresholds(size)
        log(f"fairway: thresholds at {size} rows calibrated in {time.perf_counter() - t:.1f}s")
    t0 = time.perf_counter()
    for i, w in enumerate(wins):
        frame = w["frame"][columns]
        t = time.perf_counter()
        rows = calc.calculate(frame, key=str(w["id"]))
        seconds = time.perf_counter() - t
        rec = {"seconds": seconds, "alerts": {}, "alerting": sorted(
            f"{r['kind']}:{r['name']}:{r['method']}" for r in rows if r["alert"])}
        for fam, kinds in FAMILIES.items():
            rec["alerts"][fam] = any(r["alert"] and r["primary"] for r in rows
                                     if kinds is None or r["kind"] in kinds)
        for r in rows:
            if r["kind"] == "estimate":
                rec[f"cbpe_{r['name']}"] = r["value"]
                rec[f"realized_{r['name']}"] = r.get("realized")
        out[w["id"]] = rec
        if (i + 1) % 200 == 0:
            log(f"fairway: {i + 1}/{len(wins)} windows, {time.perf_counter() - t0:.0f}s")
    return out


def seconds_10k(calc, stream: Stream, columns: list[str], repeats: int = 3) -> dict:
    """Fairway's seconds per 10,000-row window (thresholds calibrated first, timed apart). The
    window is the whole stream topped up with reference-pool rows: no row twice (duplicates
    would let the domain classifier tell the window from the training sample)."""
    t = time.perf_counter()
    calc.thresholds(10_000)
    calibration = time.perf_counter() - t
    times = []
    pool = calc.ref.pool
    for _ in range(repeats):
        extra = max(10_000 - len(stream.rows), 0)
        top = pool.iloc[stream.rng.choice(len(pool), min(extra, len(pool)), replace=False)]
        frame = pd.concat([stream.rows[columns], top[columns]], ignore_index=True)
        t = time.perf_counter()
        calc.calculate(frame)
        times.append(time.perf_counter() - t)
    return {"median_s": float(np.median(times)), "runs_s": times, "calibration_s": calibration}


# -- the peers ------------------------------------------------------------------------------------
def peers_venv(work: pathlib.Path, fresh: bool, log=print) -> pathlib.Path:
    """The peers' own venv (Python 3.11 from pyenv or PATH, else this interpreter's version)."""
    venv = work / "peers-venv"
    py = venv / "bin" / "python"
    stamp = venv / ".installed"
    req = PEERS / "requirements.txt"
    if fresh and venv.exists():
        shutil.rmtree(venv)
    if stamp.is_file() and stamp.read_text() == req.read_text():
        return py
    if not py.exists():
        base = _python(PEER_PYTHON) or sys.executable
        log(f"peers: creating {venv} with {base}")
        subprocess.check_call([base, "-m", "venv", str(venv)])
    log(f"peers: pip install -r {req} ...")
    subprocess.check_call([str(py), "-m", "pip", "install", "-q", "--disable-pip-version-check",
                           "-r", str(req)])
    stamp.write_text(req.read_text())
    return py


def _python(version: str) -> str | None:
    try:
        root = subprocess.run(["pyenv", "root"], capture_output=True, text=True).stdout.strip()
    except OSError:
        root = ""
    found = sorted(pathlib.Path(root, "versions").glob(f"{version}.*/bin/python3")) if root else []
    return str(found[-1]) if found else shutil.which(f"python{version}")


def run_peers(py: pathlib.Path, work: pathlib.Path, ref, wins: list[dict], columns: list[str],
              threshold: float, log=print) -> dict:
    """Write the reference and the windows as parquet, run benchmarks/peers/peers.py in the
    peers' venv, read its JSON."""
    folder = work / "peers-in"
    folder.mkdir(parents=True, exist_ok=True)
    feats = [c for c in columns if not c.startswith("_")]
    numeric = {f for f, num in ref.numeric.items() if num}
    train = normalize(ref.train[feats], numeric)
    train["y_pred_proba"] = np.asarray(ref.train_scores, float)
    train.to_parquet(folder / "reference_train.parquet")
    # Evidently compares with as many training rows as Fairway's distributions hold (it
    # re-reads its reference on every report: 20k rows cost it ~2x the time).
    rows = np.random.default_rng(0).choice(len(train), min(5000, len(train)), replace=False)
    train.iloc[np.sort(rows)].reset_index(drop=True).to_parquet(
        folder / "reference_evidently.parquet")
    pool = normalize(ref.pool[feats], numeric)
    pool["y_pred_proba"] = ref.pool["_prediction"].to_numpy(float)
    pool["y_true"] = ref.pool["_label"].to_numpy(float)
    pool.to_parquet(folder / "reference_pool.parquet")
    frames = []
    for w in wins:
        f = w["frame"][feats].copy()
        f["y_pred_proba"] = w["frame"]["_prediction"].to_numpy(float)
        f["window"] = w["id"]
        frames.append(f)
    pd.concat(frames, ignore_index=True).to_parquet(folder / "windows.parquet")
    spec = {"features": feats, "categorical": [f for f in feats if f not in numeric],
            "threshold": threshold, "windows": [[w["id"], w["size"]] for w in wins]}
    (folder / "spec.json").write_text(json.dumps(spec))
    result = work / "peers-out.json"
    log(f"peers: running {PEERS / 'peers.py'} on {len(wins)} windows ...")
    env = {**os.environ, "NML_DISABLE_USAGE_LOGGING": "1", "PYTHONWARNINGS": "ignore"}
    subprocess.check_call([str(py), str(PEERS / "peers.py"), str(folder), str(result)], env=env)
    return json.loads(result.read_text())


# -- the report ---------------------------------------------------------------------------------
def alerts_of(wid: int, fairway: dict, peers: dict) -> dict[str, bool]:
    p = peers["windows"][str(wid)]
    return {**fairway[wid]["alerts"], "Evidently data drift": p["evidently"]["alert"],
            "NannyML univariate": p["nml_univariate"]["alert"],
            "NannyML CBPE": p["nml_cbpe"]["alert"]}


def summarize(wins: list[dict], fairway: dict, peers: dict) -> dict:
    alerts = {w["id"]: alerts_of(w["id"], fairway, peers) for w in wins}
    plain = [w for w in wins if w["seq"] is None]
    out = {"false_alarm": {}, "detection": {}, "delay": {}, "cbpe_auc_error": {},
           "seconds_per_window": {}, "clean_alerting": {}, "windows": {}}
    for size in SIZES:
        clean = [w for w in plain if w["scenario"] == "clean" and w["size"] == size]
        out["windows"][f"clean@{size}"] = len(clean)
        out["false_alarm"][str(size)] = {m: float(np.mean([alerts[w["id"]][m] for w in clean]))
                                         for m in METHODS}
        counts: dict[str, int] = {}
        for w in clean:
            for key in fairway[w["id"]]["alerting"]:
                counts[key] = counts.get(key, 0) + 1
        out["clean_alerting"][str(size)] = dict(sorted(counts.items(), key=lambda kv: -kv[1]))
        sized = [w for w in wins if w["size"] == size]
        out["seconds_per_window"][str(size)] = {
            "Fairway (all families)": float(np.mean([fairway[w["id"]]["seconds"] for w in sized])),
            **{m: peers["seconds"][k][str(size)] for m, k in zip(
                PEER_METHODS, ("evidently", "nml_univariate", "nml_cbpe"))}}
        for scenario in SCENARIOS:
            for magnitude in MAGNITUDES:
                cell = [w for w in plain if w["scenario"] == scenario and w["size"] == size
                        and w["magnitude"] == magnitude]
                out["windows"][f"{scenario}/{magnitude}@{size}"] = len(cell)
                out["detection"][f"{scenario}|{magnitude}|{size}"] = {
                    m: float(np.mean([alerts[w["id"]][m] for w in cell])) for m in METHODS}
        for scenario in ("clean", *SCENARIOS):
            cell = [w for w in plain if w["scenario"] == scenario and w["size"] == size]
            errs = {"Fairway CBPE": [], "NannyML CBPE": []}
            for w in cell:
                f = fairway[w["id"]]
                real = f.get("realized_auc")
                if real is None:
                    continue
                if f.get("cbpe_auc") is not None:
                    errs["Fairway CBPE"].append(f["cbpe_auc"] - real)
                nml = peers["windows"][str(w["id"])]["nml_cbpe"].get("roc_auc")
                if nml is not None:
                    errs["NannyML CBPE"].append(nml - real)
            out["cbpe_auc_error"][f"{scenario}|{size}"] = {
                m: {"mae": float(np.mean(np.abs(e))) if e else None,
                    "bias": float(np.mean(e)) if e else None, "windows": len(e)}
                for m, e in errs.items()}
    diffs = [abs(fairway[w["id"]]["cbpe_auc"] - peers["windows"][str(w["id"])]["nml_cbpe"]["roc_auc"])
             for w in wins if fairway[w["id"]].get("cbpe_auc") is not None
             and peers["windows"][str(w["id"])]["nml_cbpe"].get("roc_auc") is not None]
    out["cbpe_auc_max_difference"] = float(max(diffs)) if diffs else None
    for scenario in SCENARIOS:
        seqs = sorted({w["seq"] for w in wins if w["seq"] and w["scenario"] == scenario})
        per = {m: [] for m in METHODS}
        prefix = {m: [] for m in METHODS}
        for seq in seqs:
            steps = sorted((w for w in wins if w["seq"] == seq), key=lambda w: w["step"])
            for m in METHODS:
                hit = [w["step"] for w in steps if w["step"] > 0 and alerts[w["id"]][m]]
                per[m].append(hit[0] if hit else SEQ_SHIFTED + 1)
                prefix[m] += [alerts[w["id"]][m] for w in steps if w["step"] <= 0]
        out["delay"][scenario] = {m: {"mean": float(np.mean(per[m])), "runs": per[m],
                                      "clean_prefix_alarms": int(np.sum(prefix[m]))}
                                  for m in METHODS}
    return out


def targets(s: dict, ten_k: dict) -> list[tuple[str, bool]]:
    out = []
    for size in SIZES:
        fa = s["false_alarm"][str(size)]["Fairway any"]
        out.append((f"false alarms on clean {size}-row windows <= {TARGET_FALSE_ALARM:.0%} "
                    f"(Fairway any): {fa:.1%}", fa <= TARGET_FALSE_ALARM))
    for scenario in SCENARIOS:
        cells = [v for k, v in s["detection"].items() if k.startswith(scenario + "|")]
        ours = float(np.mean([c["Fairway any"] for c in cells]))
        best, name = max((float(np.mean([c[m] for c in cells])), m) for m in PEER_METHODS)
        worse = sum(c["Fairway any"] < max(c[m] for m in PEER_METHODS) for c in cells)
        out.append((f"detection on {scenario} shifts >= the better peer: Fairway any "
                    f"{ours:.1%} vs {name} {best:.1%} (Fairway below the best peer in {worse} "
                    f"of {len(cells)} magnitude x size cells)", ours >= best))
        # The same, counting a peer only at the sizes where its false alarms meet the target.
        fair = {m: [s["false_alarm"][k.split("|")[2]][m] <= TARGET_FALSE_ALARM for k in keys]
                for m in PEER_METHODS for keys in [[k for k in s["detection"]
                                                    if k.startswith(scenario + "|")]]}
        peer_best = [max([c[m] for m, ok in zip(PEER_METHODS, col) if ok], default=0.0)
                     for c, col in zip(cells, zip(*fair.values()))]
        best_fair = float(np.mean(peer_best))
        out.append((f"  ... against peers only where their false alarms are <= "
                    f"{TARGET_FALSE_ALARM:.0%}: Fairway any {ours:.1%} vs {best_fair:.1%} (the "
                    f"better such peer per cell)", ours >= best_fair))
    for size in SIZES:
        errs = [s["cbpe_auc_error"][f"{sc}|{size}"]["Fairway CBPE"]
                for sc in ("clean", "numeric", "category", "missing")]
        worst = max(e["mae"] for e in errs if e["mae"] is not None)
        out.append((f"CBPE AUC within {TARGET_AUC_ERROR} of realized on clean and covariate-shift "
                    f"{size}-row windows (worst scenario's mean absolute error): {worst:.4f}",
                    worst <= TARGET_AUC_ERROR))
    out.append((f"seconds per 10k-row window <= {TARGET_SECONDS_10K}: {ten_k['median_s']:.3f}s",
                ten_k["median_s"] <= TARGET_SECONDS_10K))
    return out


_SHORT = {"Fairway input drift": "F input", "Fairway data quality": "F quality",
          "Fairway prediction drift": "F pred", "Fairway multivariate": "F multivar",
          "Fairway realized performance": "F realized", "Fairway CBPE estimate": "F CBPE",
          "Fairway any": "**F any**", "Evidently data drift": "Evidently",
          "NannyML univariate": "NML univar", "NannyML CBPE": "NML CBPE"}


def _pct(v) -> str:
    return "-" if v is None else f"{100 * v:.0f}%"


def markdown(s: dict, ten_k: dict, checks: list, meta: dict) -> str:
    heads = [_SHORT[m] for m in METHODS]
    lines = [f"# Monitoring benchmark ({meta['dataset']}, model {meta['model']})", "",
             f"Scenario columns: {meta['columns']}. Window counts: {meta['counts']}.", "",
             "## False alarms on clean windows", "",
             "| rows | " + " | ".join(heads) + " |", "|---" * (len(heads) + 1) + "|"]
    for size in SIZES:
        fa = s["false_alarm"][str(size)]
        lines.append(f"| {size} | " + " | ".join(_pct(fa[m]) for m in METHODS) + " |")
    lines += ["", "## Detection rate (share of shifted windows that alert)", "",
              "| scenario | magnitude | rows | " + " | ".join(heads) + " |",
              "|---" * (len(heads) + 3) + "|"]
    for scenario in SCENARIOS:
        for magnitude, level in zip(MAGNITUDES, LEVELS[scenario]):
            for size in SIZES:
                d = s["detection"][f"{scenario}|{magnitude}|{size}"]
                lines.append(f"| {scenario} | {magnitude} ({level:g}) | {size} | "
                             + " | ".join(_pct(d[m]) for m in METHODS) + " |")
    lines += ["", f"## Detection delay (shifted {SEQ_SIZE}-row windows until the first alert; "
              f"the shift ramps to the large magnitude over {SEQ_SHIFTED} windows; a miss = "
              f"{SEQ_SHIFTED + 1}; alarms in the {SEQ_CLEAN} clean windows before it in brackets)",
              "", "| scenario | " + " | ".join(heads) + " |", "|---" * (len(heads) + 1) + "|"]
    for scenario in SCENARIOS:
        d = s["delay"][scenario]
        lines.append(f"| {scenario} | " + " | ".join(
            f"{d[m]['mean']:.1f} ({d[m]['clean_prefix_alarms']})" for m in METHODS) + " |")
    lines += ["", "## CBPE: estimated AUC vs realized (mean absolute error / mean error)", "",
              "| scenario | rows | Fairway CBPE | NannyML CBPE |", "|---|---|---|---|"]
    for scenario in ("clean", *SCENARIOS):
        for size in SIZES:
            e = s["cbpe_auc_error"][f"{scenario}|{size}"]
            cell = ["-" if e[m]["mae"] is None else f"{e[m]['mae']:.4f} / {e[m]['bias']:+.4f}"
                    for m in ("Fairway CBPE", "NannyML CBPE")]
            lines.append(f"| {scenario} | {size} | {cell[0]} | {cell[1]} |")
    if s["cbpe_auc_max_difference"] is not None:
        lines += ["", f"Largest difference between Fairway's and NannyML's estimated AUC on one "
                  f"window: {s['cbpe_auc_max_difference']:.2e}."]
    sec_methods = list(s["seconds_per_window"][str(SIZES[0])])
    lines += ["", "## Seconds per window", "", "| rows | " + " | ".join(sec_methods) + " |",
              "|---" * (len(sec_methods) + 1) + "|"]
    for size in SIZES:
        sec = s["seconds_per_window"][str(size)]
        lines.append(f"| {size} | " + " | ".join(f"{sec[m]:.3f}" for m in sec_methods) + " |")
    lines += ["", f"Fairway on a 10,000-row window: {ten_k['median_s']:.3f}s (median of "
              f"{len(ten_k['runs_s'])}; threshold calibration at that size once: "
              f"{ten_k['calibration_s']:.1f}s).", "",
              "## What raised Fairway's alarms on clean windows (windows per measure)", ""]
    for size in SIZES:
        top = list(s["clean_alerting"][str(size)].items())[:6]
        lines.append(f"- {size} rows: " + (", ".join(f"{k} ({v})" for k, v in top) or "none"))
    lines += ["", "## Targets", ""]
    lines += [f"- {'PASS' if ok else 'FAIL'}: {text}" for text, ok in checks]
    return "\n".join(lines) + "\n"


# -- main ---------------------------------------------------------------------------------------
def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    src = ap.add_mutually_exclusive_group()
    src.add_argument("--dataset", default="census", help="a preset (default: census)")
    src.add_argument("--config", help="a TOML config of another dataset")
    ap.add_argument("--work", default=str(config.outputs_dir("bench-monitor")),
                    help="the benchmark's folder (default: outputs/bench-monitor)")
    ap.add_argument("--train-steps", type=int, default=600,
                    help="training steps of the reference run (default 600)")
    ap.add_argument("--quick", action="store_true", help="few windows: a smoke run")
    ap.add_argument("--fresh", action="store_true",
                    help="redo the data split, the reference run and the peers' venv")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)

    def log(*a):
        print(*a, flush=True)
    work = pathlib.Path(args.work).resolve()
    if args.fresh and (work / "data").exists():
        shutil.rmtree(work / "data")
    work.mkdir(parents=True, exist_ok=True)
    base = pathlib.Path(args.config) if args.config else config.presets().get(args.dataset)
    if base is None:
        sys.exit(f"unknown dataset {args.dataset!r}: expected one of {sorted(config.presets())}")
    toml = prepare(base, work, args.seed)
    cfg, model = reference_run(toml, args.train_steps, args.fresh, log)
    py = peers_venv(work, args.fresh, log)

    from tensorflow_metadata.proto.v0 import schema_pb2

    from monitoring.calculator import Calculator
    from monitoring.reference import Scorer, load

    t = time.perf_counter()
    ref, schema, run_id = load(cfg, None, str(model), log=log)
    types = {f.name: schema_pb2.FeatureType.Name(f.type) for f in schema.feature
             if f.name in cfg.dataset.features}
    stream = Stream(cfg, pd.read_csv(work / "data" / "stream.csv", skipinitialspace=True), types,
                    ref.train, Scorer(str(model)), args.seed)
    log(f"reference and stream ({len(stream.rows)} rows) loaded and scored in "
        f"{time.perf_counter() - t:.0f}s; scenario columns: {stream.cols}")
    t = time.perf_counter()
    wins = windows(stream, args.quick)
    log(f"{len(wins)} windows built in {time.perf_counter() - t:.0f}s")
    columns = [*ref.numeric, "_prediction", "_label"]
    calc = Calculator(ref, k=3.0)
    t = time.perf_counter()
    fairway = run_fairway(calc, wins, columns, log)
    fairway_s = time.perf_counter() - t
    ten_k = seconds_10k(calc, stream, columns)
    log(f"fairway: {fairway_s:.0f}s in all; a 10k-row window {ten_k['median_s']:.3f}s")
    t = time.perf_counter()
    peers = run_peers(py, work, ref, wins, columns, cfg.evaluation.decision_threshold, log)
    log(f"peers: {time.perf_counter() - t:.0f}s in all")

    summary = summarize(wins, fairway, peers)
    checks = targets(summary, ten_k)
    clean, shifted = (QUICK_CLEAN, QUICK_SHIFTED) if args.quick else (CLEAN, SHIFTED)
    meta = {"dataset": cfg.dataset.name, "model": str(model), "run_id": run_id,
            "columns": {k: list(v) if isinstance(v, (list, tuple)) else v
                        for k, v in stream.cols.items()},
            "counts": f"clean {'/'.join(str(clean[s]) for s in SIZES)}, each shift "
                      f"{'/'.join(str(shifted[s]) for s in SIZES)} at "
                      f"{'/'.join(str(s) for s in SIZES)} rows; "
                      f"{QUICK_SEQUENCES if args.quick else SEQUENCES} delay sequences per "
                      "scenario",
            "quick": args.quick, "python": platform.python_version(), "cpus": os.cpu_count(),
            "peer_versions": peers.get("versions"), "fairway_seconds": fairway_s,
            "peer_fit_seconds": peers.get("fit_seconds")}
    md = markdown(summary, ten_k, checks, meta)
    print("\n" + md)
    name = "monitor-quick" if args.quick else "monitor"
    (work / f"{name}.md").write_text(md)
    (work / f"{name}.json").write_text(json.dumps(
        {"meta": meta, "summary": summary, "ten_k": ten_k,
         "targets": [{"target": t, "pass": ok} for t, ok in checks],
         "windows": [{k: v for k, v in w.items() if k != "frame"}
                     | {"fairway": fairway[w["id"]], "peers": peers["windows"][str(w["id"])]}
                     for w in wins]}, indent=1, default=_json_default))
    log(f"results: {work / (name + '.md')} and {work / (name + '.json')}")
    return 0


def _json_default(v):
    if isinstance(v, (np.floating, np.integer)):
        return v.item()
    if isinstance(v, float) and math.isnan(v):
        return None
    raise TypeError(type(v))


if __name__ == "__main__":
    sys.exit(main())
