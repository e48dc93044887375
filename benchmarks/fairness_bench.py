"""Fairness benchmark: Fairway's MinDiff teacher and student vs Fairlearn on the same splits.

    make bench-fairness                                    # census, one seed (~10 min on 2 cores)
    make bench-fairness ARGS="--seeds 3"                   # mean and worst over 3 seeds
    python -m benchmarks.fairness_bench --config my.toml   # another dataset (a `fairway init` TOML)

Fairway's side is `fairway compare` (baseline without MinDiff, MinDiff teacher, distilled
student), run in-process with the same config into the benchmark's own folder (--output,
default outputs/bench-fairness/<dataset>/fairway; never the user's outputs nor their MySQL
store: a config with [pipeline.mysql] is copied without it). Its comparison.json is read in both
shapes: one seed (`models`) or several (`summary`, from `fairway compare --seeds N`).

Fairlearn's side takes the train and eval rows of that run's ExampleGen (the CsvExampleGen
Examples artifact in ML Metadata), writes them as parquet (raw features with missing cells kept
missing, the label as 0/1, the sensitive column) and runs benchmarks/peers/fairness_peers.py in
its own venv (benchmarks/peers/fairness-requirements.txt; outputs/bench-fairness/peers-venv,
Python 3.11; never a Fairway dependency): an unconstrained LogisticRegression, Fairlearn's
ThresholdOptimizer (false-positive-rate parity, post-processing the LR) and
ExponentiatedGradient (FalsePositiveRateParity), fitted once per seed (random_state 1..N).

Every model is scored on the same eval rows: AUC, and the FPR of the config's two groups at the
decision threshold and their gap (the randomized Fairlearn classifiers: AUC of the probability
of a positive prediction, expected FPRs; see docs/fairness-bench.md). Results: fairness.md and
fairness.json in the output folder.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import pathlib
import platform
import shutil
import subprocess
import sys
import time

import numpy as np
import pandas as pd

from benchmarks.monitor_bench import _json_default, _python, _toml
from pipeline import config

HERE = pathlib.Path(__file__).resolve().parent
PEERS = HERE / "peers"
REQUIREMENTS = PEERS / "fairness-requirements.txt"
PEER_PYTHON = "3.11"
# (side, key in its results, row label, the key of its own baseline)
ROWS = (("Fairway", "baseline", "baseline (no MinDiff)", "baseline"),
        ("Fairway", "teacher", "MinDiff teacher", "baseline"),
        ("Fairway", "student", "student (distilled)", "baseline"),
        ("Fairlearn", "lr", "LogisticRegression", "lr"),
        ("Fairlearn", "threshold_optimizer", "ThresholdOptimizer (FPR parity)", "lr"),
        ("Fairlearn", "exponentiated_gradient", "ExponentiatedGradient (FPR parity)", "lr"))
TRAINERS = {"baseline": "BaselineTrainer", "teacher": "TeacherTrainer",
            "student": "StudentTrainer"}
RANDOMIZED = {"threshold_optimizer", "exponentiated_gradient"}


class BenchError(Exception):
    """Something the user can fix or must know; printed without a traceback."""


# -- the config and Fairway's side ---------------------------------------------------------------
def bench_config(args, out: pathlib.Path) -> tuple[list[str], config.PipelineConfig]:
    """The `fairway compare` arguments that select the dataset, and the config as compare will
    load it (output folder out/fairway). A config with [pipeline.mysql] is copied without it
    (absolute data and schema paths) so that the benchmark never writes into the user's store."""
    fairway_out = out / "fairway"
    if not args.config:
        return (["--dataset", args.preset],
                config.preset(args.preset, output_dir=fairway_out))
    path = pathlib.Path(args.config).resolve()
    cfg = config.load(path, output_dir=fairway_out)
    if cfg.mysql is None:
        return ["--config", str(path)], cfg
    import tomli

    raw = tomli.loads(path.read_text())
    raw["pipeline"].pop("mysql")
    raw["pipeline"].pop("output_dir", None)
    raw["dataset"]["schema"] = str(cfg.dataset.schema_file)
    if cfg.dataset.csv_dir is not None:
        raw["dataset"]["csv_dir"] = str(cfg.dataset.csv_dir)
    copy = out / "bench.toml"
    copy.parent.mkdir(parents=True, exist_ok=True)
    copy.write_text(f"# Written by benchmarks/fairness_bench.py from {path} (without "
                    "[pipeline.mysql]: the benchmark keeps its own SQLite store)\n" + _toml(raw))
    return ["--config", str(copy)], config.load(copy, output_dir=fairway_out)


def _compare_has(flag: str) -> bool:
    from runners import cli

    sub = next(a for a in cli.parser()._actions if isinstance(a, argparse._SubParsersAction))
    return flag in sub.choices["compare"]._option_string_actions


def run_compare(select: list[str], cfg, args, log=print) -> float:
    """`fairway compare` in-process into cfg.output_dir; its seconds."""
    from runners import cli

    argv = ["compare", *select, "--output", str(cfg.output_dir)]
    if args.sample:
        argv += ["--sample", str(args.sample)]
    if args.train_steps:
        argv += ["--train-steps", str(args.train_steps)]
    if args.seeds > 1:
        if not _compare_has("--seeds"):
            raise BenchError("this checkout's `fairway compare` has no --seeds yet: run the "
                             "benchmark with --seeds 1")
        argv += ["--seeds", str(args.seeds)]
    log(f"fairway: {' '.join(['fairway', *argv])} ...")
    t = time.perf_counter()
    try:
        rc = cli.main(argv)
    except SystemExit as e:  # argparse refused an argument (its message is above)
        rc = e.code
    if rc != 0:
        raise BenchError(f"`fairway compare` failed (exit {rc}); see its message above")
    seconds = time.perf_counter() - t
    log(f"fairway: compare finished in {seconds:.0f}s")
    return seconds


def _stats(values: list) -> dict:
    vals = [v for v in values if v is not None]
    if not vals or len(vals) < len(values):
        return {"mean": None, "min": None, "max": None, "values": values}
    return {"mean": float(np.mean(vals)), "min": float(np.min(vals)),
            "max": float(np.max(vals)), "values": [float(v) for v in vals]}


def compare_runs(comparison: dict) -> list[dict]:
    """The runs in comparison.json, each in the one-run shape (`models`, `run_id`): the
    `seeds` of `fairway compare --seeds N`, or the one run."""
    seeds = comparison.get("seeds")
    if isinstance(seeds, list) and seeds and all("models" in r for r in seeds):
        return seeds
    return [comparison] if "models" in comparison else []


def fairway_models(comparison: dict, groups: tuple[str, str]) -> dict[str, dict]:
    """model -> metric -> per-seed values, from either shape of comparison.json (a seeds run
    without its per-seed results: the `summary`'s values)."""
    runs = compare_runs(comparison)
    if not runs and "summary" in comparison:
        out = {}
        for model in TRAINERS:
            metrics = comparison["summary"].get(model, {})
            if "auc" not in metrics or "fpr_gap" not in metrics:
                raise BenchError(f"comparison.json: no auc/fpr_gap for {model} in its summary")
            out[model] = {k: list(v["values"]) for k, v in metrics.items()
                          if k in ("auc", "fpr_gap", "accuracy")}
        return out
    if not runs:
        raise BenchError("comparison.json has neither `models` nor a `summary`")
    out = {}
    for model in TRAINERS:
        ms = [r["models"].get(model) for r in runs]
        if any(m is None for m in ms):
            raise BenchError(f"comparison.json has no model {model!r}")
        out[model] = {"auc": [m["auc"] for m in ms], "fpr_gap": [m["fpr_gap"] for m in ms],
                      "accuracy": [m.get("accuracy") for m in ms]}
        for g in groups:
            out[model][f"fpr:{g}"] = [m.get("groups", {}).get(g, {}).get("fpr") for m in ms]
    return out


def run_stores(cfg, comparison: dict) -> list:
    """A config per ML Metadata store that may hold the compare runs: the seeds' store (the
    compare folder's seeds/) for a seeds run, else the run's own; any store under the output
    folder as the fallback."""
    stores = []
    if "summary" in comparison:
        stores = sorted(p.parent for p in (cfg.command_dir("compare") / "seeds").rglob(
            "metadata.sqlite"))
    if not stores and cfg.metadata_path.is_file():
        stores = [cfg.output_dir]
    if not stores:
        stores = sorted(p.parent for p in cfg.output_dir.rglob("metadata.sqlite"))
    return [dataclasses.replace(cfg, output_dir=d) for d in stores]


def _first_fit_seconds(cfg, model_uri: str) -> float | None:
    """Seconds of the execution that wrote this Model (a cached trainer in a later run points
    at the artifact of the run that trained it)."""
    from ml_metadata.proto import metadata_store_pb2 as pb

    from pipeline import metadata

    s = metadata.store(cfg)
    ids = [a.id for a in s.get_artifacts_by_uri(model_uri)]
    execs = {ev.execution_id for ev in s.get_events_by_artifact_ids(ids)
             if ev.type in (pb.Event.OUTPUT, pb.Event.DECLARED_OUTPUT)} if ids else set()
    done = [e for e in s.get_executions_by_id(sorted(execs))
            if e.last_known_state == pb.Execution.COMPLETE]
    if not done:
        return None
    e = min(done, key=lambda e: e.create_time_since_epoch)
    return (e.last_update_time_since_epoch - e.create_time_since_epoch) / 1000


def _find_run(stores: list, run_id: str | None):
    """(config, run_summary) of the named run (None: the latest) in the first store that has
    it, or None."""
    from pipeline import metadata

    for cfg in stores:
        try:
            return cfg, metadata.run_summary(cfg, run_id)
        except (LookupError, FileNotFoundError):
            continue
    return None


def read_runs(stores: list, run_ids: list, log=print) -> tuple[str, dict[str, list]]:
    """(the Examples URI of the first run, model -> trainer seconds per run) of the compare
    runs (comparison.json's run ids; none named: each store's latest run)."""
    from pipeline import metadata

    found = []
    for run_id in run_ids or [None]:
        hit = _find_run(stores, run_id)
        if hit is None and run_id is not None:
            log(f"fairway: note: run {run_id} is in no store found; using the latest run")
            hit = _find_run(stores, None)
        if hit is not None and all(hit[1]["run_id"] != s["run_id"] for _, s in found):
            found.append(hit)
    examples, seconds = None, {m: [] for m in TRAINERS}
    for cfg, summary in found:
        try:
            uri = metadata.node_artifact(summary, "CsvExampleGen", "Examples")
        except LookupError as e:
            log(f"fairway: {cfg.metadata_path}: {e}")
            continue
        if examples is None:
            examples = uri
        elif uri != examples:
            log(f"fairway: note: run {summary['run_id']} has other Examples ({uri}) than the "
                f"first run ({examples}); the peers use the first")
        for model, node in TRAINERS.items():
            n = next((n for n in summary["nodes"] if n["node"] == node), None)
            if n is None:
                continue
            if n["state"] == "COMPLETE":
                seconds[model].append(n["seconds"])
            elif "Model" in n["artifacts"]:
                seconds[model].append(_first_fit_seconds(cfg, n["artifacts"]["Model"]))
    if examples is None:
        where = ", ".join(str(c.metadata_path) for c in stores) or "no store found"
        raise BenchError(f"no compare run with a CsvExampleGen Examples artifact ({where}); "
                         "run the benchmark without --reuse")
    return examples, seconds


# -- the splits -----------------------------------------------------------------------------------
def examples_frame(serialized: list[bytes], cfg) -> pd.DataFrame:
    """The raw features (numeric as float, NaN when missing; categorical as str, None when
    missing), `_label` 0/1 and `_sensitive` ("missing" when missing) of serialized Examples."""
    import tensorflow as tf

    ds = cfg.dataset
    names = [*ds.features, ds.label]
    cells: dict[str, list] = {c: [] for c in names}
    for record in serialized:
        feats = tf.train.Example.FromString(record).features.feature
        for c in names:
            kind = feats[c].WhichOneof("kind") if c in feats else None
            values = getattr(feats[c], kind).value if kind else ()
            v = values[0] if len(values) else None
            cells[c].append(v.decode() if isinstance(v, bytes) else v)
    out = pd.DataFrame({c: pd.to_numeric(pd.Series(cells[c], dtype=object)).astype(float)
                        for c in ds.numeric})
    for c in ds.categorical:
        out[c] = pd.Series([None if v is None else str(v) for v in cells[c]], dtype=object)
    label = pd.Series(cells[ds.label], dtype=object)
    if ds.label_map and not label.isin([0, 1]).all():
        label = label.map(lambda v: dict(ds.label_map).get(str(v)))
    if label.isna().any() or not label.isin([0, 1]).all():
        raise BenchError(f"label '{ds.label}' of the Examples is not 0/1 in every row (values: "
                         f"{sorted(map(str, label.dropna().unique()))[:5]})")
    out["_label"] = label.astype(int).to_numpy()
    out["_sensitive"] = out[ds.sensitive].fillna("missing").to_numpy()
    return out


def export_splits(cfg, examples_uri: str, folder: pathlib.Path, seeds: int, log=print) -> dict:
    """train.parquet, eval.parquet and spec.json for the peers; the row counts."""
    from pipeline import artifacts

    clash = {"_label", "_sensitive"} & set(cfg.dataset.features)
    if clash:
        raise BenchError(f"the benchmark's column names {sorted(clash)} are features here")
    folder.mkdir(parents=True, exist_ok=True)
    t = time.perf_counter()
    rows = {}
    for split in ("train", "eval"):
        frame = examples_frame(artifacts.read_examples(examples_uri, split), cfg)
        frame.to_parquet(folder / f"{split}.parquet")
        rows[split] = len(frame)
        missing = int(frame[list(cfg.dataset.features)].isna().sum().sum())
        log(f"splits: {split}: {len(frame)} rows, {missing} missing cells kept missing")
    ds = cfg.dataset
    spec = {"numeric": list(ds.numeric), "categorical": list(ds.categorical),
            "sensitive": ds.sensitive, "groups": list(ds.groups),
            "threshold": cfg.evaluation.decision_threshold, "seeds": seeds,
            "max_vocab": ds.max_vocab, "examples": examples_uri}
    (folder / "spec.json").write_text(json.dumps(spec, indent=1))
    log(f"splits: written to {folder} in {time.perf_counter() - t:.0f}s")
    return rows


# -- the peers ------------------------------------------------------------------------------------
def peers_venv(root: pathlib.Path, fresh: bool, log=print) -> pathlib.Path:
    """The peers' venv (Python 3.11 from pyenv or PATH, else this interpreter's), built from
    REQUIREMENTS when they changed; a BenchError naming the log when that fails."""
    venv = root / "peers-venv"
    py, stamp, logfile = venv / "bin" / "python", venv / ".installed", root / "peers-venv.log"
    if fresh and venv.exists():
        shutil.rmtree(venv)
    if py.exists() and stamp.is_file() and stamp.read_text() == REQUIREMENTS.read_text():
        return py
    root.mkdir(parents=True, exist_ok=True)
    base = _python(PEER_PYTHON) or sys.executable
    steps = ([] if py.exists() else [[base, "-m", "venv", str(venv)]]) + [
        [str(py), "-m", "pip", "install", "--disable-pip-version-check", "-r",
         str(REQUIREMENTS)]]
    log(f"peers: building {venv} with {base} from {REQUIREMENTS.name} (log: {logfile}) ...")
    t = time.perf_counter()
    with logfile.open("w") as f:
        for cmd in steps:
            try:
                rc = subprocess.call(cmd, stdout=f, stderr=subprocess.STDOUT)
            except OSError as e:
                rc = f"{e.strerror}: {e.filename}"
            if rc != 0:
                why = rc if isinstance(rc, str) else f"exit {rc}"
                raise BenchError(f"cannot build the peers' venv {venv}: `{' '.join(cmd)}` failed "
                                 f"({why}); see {logfile}")
    stamp.write_text(REQUIREMENTS.read_text())
    log(f"peers: venv ready in {time.perf_counter() - t:.0f}s")
    return py


def run_peers(py: pathlib.Path, folder: pathlib.Path, out: pathlib.Path, log=print) -> dict:
    script = PEERS / "fairness_peers.py"
    log(f"peers: {script.name} in {py.parent.parent} ...")
    t = time.perf_counter()
    # One BLAS thread unless set: lbfgs on census fitted in 0.6 s with one, 3 s with two (2
    # cores shared with other work), and the machine stays usable.
    env = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
           **os.environ, "PYTHONWARNINGS": "ignore"}
    try:
        rc = subprocess.call([str(py), str(script), str(folder), str(out)], env=env)
    except OSError as e:
        raise BenchError(f"cannot run the peers' Python {py}: {e}") from None
    if rc != 0 or not out.is_file():
        raise BenchError(f"{script.name} failed (exit {rc}); see its output above")
    log(f"peers: finished in {time.perf_counter() - t:.0f}s")
    return json.loads(out.read_text())


def peer_models(peers: dict) -> dict[str, dict]:
    """method -> metric -> per-seed values (the realized rates as `realized:<metric>`)."""
    out = {}
    for method in ("lr", "threshold_optimizer", "exponentiated_gradient"):
        runs = [r[method] for r in peers["runs"]]
        out[method] = {k: [r[k] for r in runs] for k in runs[0] if not isinstance(runs[0][k], dict)}
        if "realized" in runs[0]:
            out[method].update({f"realized:{k}": [r["realized"][k] for r in runs]
                                for k in runs[0]["realized"]})
    return out


# -- the table ------------------------------------------------------------------------------------
def rows(fairway: dict, fit: dict[str, list], peers: dict) -> list[dict]:
    """The six rows: per-seed values and their mean/min/max; the gap cut is paired by seed
    (1 - gap / gap of the same seed's own baseline)."""
    out = []
    for side, key, label, base in ROWS:
        src = fairway if side == "Fairway" else peers
        m, b = src[key], src[base]
        cuts = [1 - g / bg if bg else None for g, bg in zip(m["fpr_gap"], b["fpr_gap"])]
        seconds = fit.get(key, []) if side == "Fairway" else m["fit_seconds"]
        row = {"side": side, "method": key, "label": label,
               "auc": _stats(m["auc"]), "fpr_gap": _stats(m["fpr_gap"]),
               "gap_cut": _stats(cuts), "fit_seconds": _stats(seconds),
               "auc_change": _stats([a - ba for a, ba in zip(m["auc"], b["auc"])])}
        for metric in m:
            if metric.startswith(("fpr:", "accuracy", "realized:")) and metric not in row:
                row[metric] = _stats(m[metric])
        out.append(row)
    return out


def _seconds(x: float) -> str:
    return f"{x:.2f}" if x < 10 else f"{x:.1f}"


def _cell(s: dict | None, worst: str | None = None, fmt="{:.4f}") -> str:
    if not s or s["mean"] is None:
        return "-"
    show = fmt.format if isinstance(fmt, str) else fmt
    text = show(s["mean"])
    if worst and len(s["values"]) > 1:
        text += f" (worst {show(s[worst])})"
    return text


def markdown(table: list[dict], meta: dict) -> str:
    protected, reference = meta["groups"]
    seeds = meta["seeds"]
    lines = [f"# Fairway vs Fairlearn: {meta['dataset']}", "",
             f"Same splits for every model: {meta['rows']['train']:,} train / "
             f"{meta['rows']['eval']:,} eval rows of Fairway's ExampleGen "
             f"(`{meta['examples']}`). Sensitive feature `{meta['sensitive']}`, FPR gap = "
             f"\\|FPR({protected}) - FPR({reference})\\| at the decision threshold "
             f"{meta['threshold']} on the eval split. "
             + (f"{seeds} seeds: the mean, with the worst seed in brackets (AUC and gap cut: "
                "lowest; FPR gap: highest)." if seeds > 1 else "One seed.")
             + (f" (Fairway's compare run has {meta['fairway_seeds']}.)"
                if meta["fairway_seeds"] != seeds else ""), "",
             "| side | model | AUC | FPR gap | gap cut vs its own baseline | fit seconds |",
             "|---|---|---|---|---|---|"]
    for r in table:
        lines.append(f"| {r['side']} | {r['label']} | {_cell(r['auc'], 'min')} "
                     f"| {_cell(r['fpr_gap'], 'max')} | "
                     + ("-" if r["method"] in ("baseline", "lr")
                        else _cell(r["gap_cut"], "min", "{:.0%}"))
                     + f" | {_cell(r['fit_seconds'], None, _seconds)} |")
    lines += ["", "Details (means over the seeds):", "",
              f"| model | AUC change vs its baseline | accuracy | FPR {protected} "
              f"| FPR {reference} | FPR gap of one draw |", "|---|---|---|---|---|---|"]
    for r in table:
        lines.append(f"| {r['label']} | "
                     + ("-" if r["method"] in ("baseline", "lr")
                        else _cell(r["auc_change"], None, "{:+.4f}"))
                     + f" | {_cell(r.get('accuracy'))} | {_cell(r.get(f'fpr:{protected}'))} "
                     f"| {_cell(r.get(f'fpr:{reference}'))} | "
                     f"{_cell(r.get('realized:fpr_gap'))} |")
    v = meta["peer_versions"]
    lines += [
        "", "How to read it:",
        "- Fairway's rows are `fairway compare` (its comparison.json); fit seconds are the "
        "trainer's (TFX node) seconds: the student's excludes the teacher it distils from, and "
        "no row includes Transform / the peers' one-hot preprocessing "
        f"({meta['peer_prep_seconds']:.1f}s).",
        f"- Fairlearn {v['fairlearn']} (scikit-learn {v['scikit-learn']}, Python {v['python']}, "
        "own venv): LogisticRegression on one-hot categoricals and standardized numerics "
        "(missing: median / a \"missing\" category). ThresholdOptimizer post-processes that LR "
        "(its fit seconds include the LR's); ExponentiatedGradient refits LRs under the "
        "constraint.",
        "- ThresholdOptimizer and ExponentiatedGradient are randomized classifiers: their AUC "
        "ranks rows by the probability of a positive prediction (`_pmf_predict`), their "
        "accuracy and FPRs are the expected ones under it; *FPR gap of one draw* is the gap of "
        "one `predict(random_state=seed)`.",
        "- Fairlearn's constraints cover every value of the sensitive feature; Fairway's MinDiff "
        "pairs the two groups above.",
        "", "Timings: fairway compare " + ("reused (not re-run)" if meta["reused"] else
                                           f"{meta['seconds']['compare']:.0f}s")
        + f", splits export {meta['seconds']['export']:.0f}s, peers' venv "
          f"{meta['seconds']['venv']:.0f}s, peers {meta['seconds']['peers']:.0f}s; "
          f"{meta['cpus']} CPUs."]
    return "\n".join(lines) + "\n"


# -- main -----------------------------------------------------------------------------------------
def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    src = ap.add_mutually_exclusive_group()
    src.add_argument("--preset", "--dataset", default="census",
                     help="a preset dataset (default: census)")
    src.add_argument("--config", metavar="TOML", help="a config of another dataset")
    ap.add_argument("--seeds", type=int, default=1, metavar="N",
                    help="seeds of both sides (Fairway: `fairway compare --seeds N` when N > 1; "
                         "Fairlearn: random_state 1..N)")
    ap.add_argument("--sample", type=int, metavar="N", help="rows per split (fairway --sample)")
    ap.add_argument("--train-steps", type=int, metavar="N",
                    help="training steps of Fairway's models (default: the config's)")
    ap.add_argument("--output", metavar="DIR",
                    help="the benchmark's folder (default: outputs/bench-fairness/<dataset>)")
    ap.add_argument("--reuse", action="store_true",
                    help="reuse the compare run already in the output folder (no training)")
    ap.add_argument("--fresh", action="store_true",
                    help="delete the benchmark's Fairway run and rebuild the peers' venv first")
    args = ap.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    if args.seeds < 1:
        ap.error("--seeds must be at least 1")

    def log(*a):
        print(*a, flush=True)
    try:
        return _run(args, log)
    except (BenchError, config.ConfigError) as e:
        print(f"fairness bench: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("fairness bench: interrupted", file=sys.stderr)
        return 130


def _run(args, log) -> int:
    root = config.outputs_dir("bench-fairness")
    if args.config:
        name = config.load(args.config).dataset.name
    elif args.preset in config.presets():
        name = args.preset
    else:
        raise BenchError(f"unknown preset {args.preset!r}: expected one of "
                         f"{sorted(config.presets())}")
    out = pathlib.Path(args.output).resolve() if args.output else root / name
    select, cfg = bench_config(args, out)
    if not cfg.dataset.sensitive or len(cfg.dataset.groups) != 2:
        raise BenchError(f"{cfg.dataset.name}: the config needs dataset.sensitive and two "
                         "dataset.groups")
    if args.fresh and cfg.output_dir.exists():
        shutil.rmtree(cfg.output_dir)
    log(f"fairness bench: {cfg.dataset.name}, {args.seeds} seed(s), output {out}")
    seconds = {"compare": 0.0}
    result_path = cfg.command_dir("compare") / "comparison.json"
    if not (args.reuse and result_path.is_file()):
        if args.reuse:
            log(f"fairway: nothing to reuse at {result_path}; running compare")
        seconds["compare"] = run_compare(select, cfg, args, log)
    comparison = json.loads(result_path.read_text())
    fairway = fairway_models(comparison, cfg.dataset.groups)
    run_ids = [r["run_id"] for r in compare_runs(comparison) if r.get("run_id")]
    examples, fit = read_runs(run_stores(cfg, comparison), run_ids, log)

    t = time.perf_counter()
    counts = export_splits(cfg, examples, out / "peers-in", args.seeds, log)
    seconds["export"] = time.perf_counter() - t
    t = time.perf_counter()
    py = peers_venv(root, args.fresh, log)
    seconds["venv"] = time.perf_counter() - t
    t = time.perf_counter()
    peers = run_peers(py, out / "peers-in", out / "peers-out.json", log)
    seconds["peers"] = time.perf_counter() - t

    table = rows(fairway, fit, peer_models(peers))
    meta = {"dataset": cfg.dataset.name, "sensitive": cfg.dataset.sensitive,
            "groups": list(cfg.dataset.groups), "threshold": cfg.evaluation.decision_threshold,
            "seeds": args.seeds, "fairway_seeds": len(fairway["baseline"]["auc"]),
            "sample": args.sample, "train_steps": args.train_steps,
            "rows": counts, "examples": examples, "comparison": str(result_path),
            "reused": bool(args.reuse and not seconds["compare"]),
            "seconds": seconds, "peer_versions": peers["versions"],
            "peer_prep_seconds": peers["prep_seconds"], "peer_columns": peers["columns"],
            "python": platform.python_version(), "cpus": os.cpu_count()}
    md = markdown(table, meta)
    print("\n" + md)
    (out / "fairness.md").write_text(md)
    (out / "fairness.json").write_text(json.dumps(
        {"meta": meta, "rows": table, "peers": peers}, indent=1, default=_json_default))
    log(f"results: {out / 'fairness.md'} and {out / 'fairness.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
