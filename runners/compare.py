"""`fairway compare`: baseline (no MinDiff) vs MinDiff teacher vs distilled student.

The three models come from one pipeline run (BaselineTrainer is added for this command), read
back from ML Metadata, and are scored through their exported signatures on the eval split:
what a client of the pushed model would see. With `--seeds N` the run is repeated for
training.seed = 1..N in a side output folder and each value is summarised over the seeds.
"""
from __future__ import annotations

import dataclasses
import json
import math
import operator
import pathlib
import time
from typing import Any

import numpy as np

from pipeline import artifacts, metadata
from pipeline import pipeline as pipeline_lib
from pipeline.config import PipelineConfig
from pipeline.errors import FairwayError
from pipeline.metrics import EvalData, auc, dense, group_rates, rate_gap, score

VARIANTS = {"baseline": pipeline_lib.BASELINE, "teacher": pipeline_lib.TEACHER,
            "student": pipeline_lib.STUDENT}
LATENCY_CALLS = {1: 1000, 256: 100}  # p50 over this many calls per batch size
QUALITY = ("auc", "accuracy", "fpr_gap", "fnr_gap")
# Per model, the values summarised over seeds: measured, then derived vs the same seed's models.
SUMMARY = {"baseline": QUALITY, "teacher": (*QUALITY, "fpr_gap_cut", "auc_drop"),
           "student": (*QUALITY, "fpr_gap_cut", "auc_drop", "kept_reduction",
                       "auc_below_teacher")}
LABELS = {"auc": "AUC", "accuracy": "accuracy", "fpr_gap": "FPR gap", "fnr_gap": "FNR gap",
          "fpr_gap_cut": "FPR-gap cut vs baseline", "auc_drop": "AUC drop vs baseline",
          "kept_reduction": "share of the teacher's cut kept",
          "auc_below_teacher": "AUC below the teacher"}
_OPS = {">=": (operator.ge, np.min), "<=": (operator.le, np.max)}  # (met, worst seed)


def _timed(call, calls: int) -> dict[str, float]:
    for _ in range(20):  # warm-up
        call()
    times = []
    for _ in range(calls):
        t = time.perf_counter()
        call()
        times.append((time.perf_counter() - t) * 1e3)
    return {"p50_ms": float(np.percentile(times, 50)), "p99_ms": float(np.percentile(times, 99))}


def _latency(fn, serialized: np.ndarray) -> dict[str, dict[str, Any]]:
    """Milliseconds per call of `serving_default` (raw named tensors) on real eval rows.

    `call`: the Python signature call (what an in-process Python client pays; binding 14 named
    arguments alone costs ~1 ms here). `graph`: the same concrete function called with flat
    tensors, i.e. the graph a C++ server such as TF Serving executes.
    """
    import tensorflow as tf

    spec = fn.structured_input_signature[1]
    rows = serialized[:max(LATENCY_CALLS)]
    parsed = {k: dense(v, len(rows)) for k, v in tf.io.parse_example(
        rows, {k: tf.io.VarLenFeature(s.dtype) for k, s in spec.items()}).items()}
    out = {}
    for batch, calls in LATENCY_CALLS.items():
        inputs = {k: v[:batch] for k, v in parsed.items()}
        flat = [inputs[k] for k in fn._arg_keywords]  # the signature's argument order
        if not np.allclose(fn(**inputs)["probability"],
                           fn._call_flat(flat, fn.captured_inputs)["probability"]):
            raise FairwayError("flat and named signature calls disagree")
        out[f"batch_{batch}"] = {
            "call": _timed(lambda: fn(**inputs), calls),
            "graph": _timed(lambda: fn._call_flat(flat, fn.captured_inputs), calls)}
    return out


def measure(cfg: PipelineConfig, summary: dict[str, Any], progress=print,
            latency: bool = True) -> dict[str, Any]:
    """`latency=False` skips the latency (a model's size, not its seed, sets it)."""
    import tensorflow as tf

    data = EvalData(metadata.node_artifact(summary, "CsvExampleGen", "Examples"), cfg)
    protected, reference = cfg.dataset.groups
    threshold = cfg.evaluation.decision_threshold
    result: dict[str, Any] = {
        "dataset": cfg.dataset.name, "eval_rows": int(len(data.labels)),
        "sensitive": cfg.dataset.sensitive, "groups": [protected, reference],
        "threshold": threshold, "run_id": summary["run_id"], "models": {},
        "blessed": summary["blessed"], "blessing_failures": summary.get("blessing_failures", [])}
    for name, node in VARIANTS.items():
        model_dir = artifacts.serving_model_dir(metadata.node_artifact(summary, node, "Model"))
        sigs = tf.saved_model.load(model_dir).signatures
        progress(f"  scoring {name} ({node}) on {len(data.labels)} eval rows ...")
        scores = score(sigs["from_examples"], data.serialized)
        m = {"model_dir": model_dir,
             "params": tf.keras.models.load_model(model_dir, compile=False).count_params(),
             **quality(data.labels, scores, data.groups, cfg)}
        if latency:
            m["latency"] = _latency(sigs["serving_default"], data.serialized)
        result["models"][name] = m
    result["checks"] = checks(result, cfg)
    return result


def quality(labels: np.ndarray, scores: np.ndarray, groups: np.ndarray,
            cfg: PipelineConfig) -> dict[str, Any]:
    """AUC, accuracy, rates of the two groups and their gaps at the decision threshold; a
    clear error (no traceback) when a group lacks the rows a rate needs."""
    protected, reference = cfg.dataset.groups
    threshold = cfg.evaluation.decision_threshold
    by_group = group_rates(labels, scores, groups, threshold)
    where = f"the eval split (dataset.sensitive '{cfg.dataset.sensitive}')"
    return {"auc": auc(labels, scores),
            "accuracy": float(((scores >= threshold) == (labels == 1)).mean()),
            "fpr_gap": rate_gap(by_group, protected, reference, "fpr", where),
            "fnr_gap": rate_gap(by_group, protected, reference, "fnr", where),
            "groups": {g: by_group[g] for g in (protected, reference)}}


def values(result: dict[str, Any]) -> dict[str, dict[str, float]]:
    """Per model, the values the targets judge: the measured ones and those derived from the
    same run's models (cuts and drops against its baseline)."""
    models = result["models"]
    b, t, s = (models[k] for k in ("baseline", "teacher", "student"))
    out = {name: {k: m[k] for k in QUALITY} for name, m in models.items()}

    def cut(m):
        return 1 - m["fpr_gap"] / b["fpr_gap"] if b["fpr_gap"] else float("nan")

    # A teacher that cut nothing leaves no share for the student to keep.
    kept = cut(s) / cut(t) if cut(t) > 0 else float("nan")
    out["teacher"].update(fpr_gap_cut=cut(t), auc_drop=b["auc"] - t["auc"])
    out["student"].update(fpr_gap_cut=cut(s), auc_drop=b["auc"] - s["auc"],
                          kept_reduction=kept, auc_below_teacher=t["auc"] - s["auc"],
                          param_ratio=s["params"] / t["params"])
    if "latency" in t and "latency" in s:
        out["student"]["speedup"] = (t["latency"]["batch_1"]["graph"]["p50_ms"]
                                     / s["latency"]["batch_1"]["graph"]["p50_ms"])
    return out


def targets(cfg: PipelineConfig, seeds: bool = False) -> list[tuple]:
    """(check, model, value, op, target, shown as): the config's [compare] targets; `seeds`
    adds those of `--seeds` (#22), judged on the mean of the seeds."""
    c, max_drop = cfg.compare, cfg.evaluation.max_auc_drop
    rows = [
        ("MinDiff cuts the FPR gap (vs baseline)", "teacher", "fpr_gap_cut", ">=",
         c.min_gap_cut, f">= {c.min_gap_cut:.0%}"),
        ("AUC cost of MinDiff", "teacher", "auc_drop", "<=", max_drop, f"<= {max_drop}"),
        ("student AUC", "student", "auc", ">=", c.min_student_auc, f">= {c.min_student_auc}"),
        ("student AUC below teacher", "student", "auc_below_teacher", "<=", 0.01, "<= 0.01"),
        ("student / teacher parameters", "student", "param_ratio", "<=",
         cfg.distillation.max_param_ratio, f"<= {cfg.distillation.max_param_ratio}"),
        ("batch-1 speed-up of the student (graph p50)", "student", "speedup", ">=",
         c.min_speedup, f">= {c.min_speedup}x"),
    ]
    if seeds:
        rows += [
            ("the student cuts the FPR gap (vs baseline)", "student", "fpr_gap_cut", ">=",
             c.min_student_gap_cut, f">= {c.min_student_gap_cut:.0%}"),
            ("AUC cost of the student (vs baseline)", "student", "auc_drop", "<=",
             c.max_student_auc_drop, f"<= {c.max_student_auc_drop}"),
            ("share of MinDiff's FPR-gap cut the student keeps", "student", "kept_reduction",
             ">=", c.min_kept_reduction, f">= {c.min_kept_reduction:.0%}"),
        ]
    return rows


def checks(result: dict[str, Any], cfg: PipelineConfig) -> list[dict[str, Any]]:
    """The config's [compare] targets, each with the measured value and whether it was met
    (a run scored without latency has no speed-up check)."""
    measured = values(result)
    return [{"check": check, "value": measured[model][key], "target": shown,
             "met": bool(_OPS[op][0](measured[model][key], target))}
            for check, model, key, op, target, shown in targets(cfg)
            if key in measured[model]]


def interval(xs: list[float]) -> tuple[float, float]:
    """The 95 % interval: where 95 % of seeds are expected to fall. A t prediction interval for
    one more seed, mean ± t(0.975, n-1)·s·√(1 + 1/n), not the mean's confidence interval
    (s/√n): the question is how a single run (the pushed model) may turn out. For n <= 8 it
    contains every seed's value (no value is further than s·(n-1)/√n from the mean)."""
    from scipy import stats

    v = np.asarray(xs, dtype=float)
    if len(v) < 2:
        return float("nan"), float("nan")
    half = stats.t.ppf(0.975, len(v) - 1) * v.std(ddof=1) * math.sqrt(1 + 1 / len(v))
    return _mean(v) - half, _mean(v) + half


def _mean(v: np.ndarray) -> float:
    # Rounding can put the mean of equal values an ulp outside them (0.1 * 3 / 3).
    return float(np.clip(v.mean(), v.min(), v.max()))


def describe(xs: list[float]) -> dict[str, Any]:
    lo, hi = interval(xs)
    v = np.asarray(xs, dtype=float)
    return {"mean": _mean(v), "min": float(v.min()), "max": float(v.max()), "lo": lo,
            "hi": hi, "values": [float(x) for x in v]}


def summarize(seeds: list[dict[str, Any]], cfg: PipelineConfig) -> dict[str, Any]:
    """The seeds' results (each `measure`'s, with "seed") as one: the values per seed, their
    summary per model, and the targets judged on the mean and on the worst seed. Latency and
    the speed-up come from the first seed, the only one timed."""
    per_seed = [values(r) for r in seeds]
    summary = {model: {key: describe([v[model][key] for v in per_seed]) for key in keys}
               for model, keys in SUMMARY.items()}
    first = seeds[0]
    result = {k: first[k] for k in ("dataset", "eval_rows", "sensitive", "groups", "threshold")}
    result.update(
        seeds=seeds, summary=summary,
        params={name: m["params"] for name, m in first["models"].items()},
        latency={name: m["latency"] for name, m in first["models"].items() if "latency" in m},
        latency_seed=first["seed"])
    rows = []
    for check, model, key, op, target, shown in targets(cfg, seeds=True):
        xs = np.array([v[model][key] for v in per_seed if key in v[model]], dtype=float)
        met, worst = _OPS[op]
        rows.append({"check": check, "value": _mean(xs), "worst": float(worst(xs)),
                     "target": shown, "met": bool(met(_mean(xs), target)),
                     "judged_on": "mean" if len(xs) == len(seeds) else f"seed {first['seed']}"})
    c = cfg.compare
    worst_cut = float(np.min([v["student"]["fpr_gap_cut"] for v in per_seed]))
    rows.append({"check": "the student cuts the FPR gap on the worst seed", "value": worst_cut,
                 "worst": worst_cut, "target": f">= {c.min_worst_student_gap_cut:.0%}",
                 "met": bool(worst_cut >= c.min_worst_student_gap_cut),
                 "judged_on": "worst seed"})
    blessed = [r["blessed"] is True for r in seeds]
    rows.append({"check": "the Evaluator blesses the student", "value": float(np.mean(blessed)),
                 "worst": float(min(blessed)), "target": "on every seed", "met": all(blessed),
                 "judged_on": "every seed"})
    result["checks"] = rows
    return result


def seed_config(cfg: PipelineConfig, seed: int) -> PipelineConfig:
    """One seed's run: training.seed set, in a side output folder with its own SQLite store,
    shared by the seeds (ExampleGen .. Transform run once), so the seed runs never touch the
    user's store (SQLite or MySQL), serving folder or registry."""
    return dataclasses.replace(cfg, output_dir=cfg.command_dir("compare") / "seeds", mysql=None,
                               training=dataclasses.replace(cfg.training, seed=seed))


def _say(line: str) -> None:
    print(line, flush=True)


def measure_seeds(cfg: PipelineConfig, n: int, progress=_say) -> dict[str, Any]:
    """Train and score seeds 1..n (`fairway compare --seeds n`), then `summarize`.

    Each seed's Evaluator compares its student with the latest blessed one of the earlier seed
    runs (as a retrained model is compared with the served one): its blessing is read from
    that seed's run."""
    from runners import local

    results, start = [], time.monotonic()
    for seed in range(1, n + 1):
        seed_cfg, began = seed_config(cfg, seed), time.monotonic()
        progress(f"seed {seed}/{n}: training (training.seed = {seed}) ..."
                 + (f" in {seed_cfg.output_dir}" if seed == 1 else ""))
        seconds = local.run(seed_cfg, with_baseline=True)
        progress(f"seed {seed}/{n}: pipeline finished in {seconds:.1f}s; scoring ...")
        run = metadata.run_summary(seed_cfg)
        results.append({"seed": seed, **measure(seed_cfg, run, progress, latency=seed == 1)})
        took = time.monotonic() - began
        # The first seed also runs ExampleGen .. Transform and times the models: the last
        # seed's time is the better guess for the next ones.
        left = f", about {took * (n - seed) / 60:.0f} min left" if seed < n else ""
        progress(f"seed {seed}/{n}: done in {took:.0f}s (blessed: {run['blessed']}); elapsed "
                 f"{time.monotonic() - start:.0f}s{left}")
    return summarize(results, cfg)


def markdown(result: dict[str, Any]) -> str:
    protected, reference = result["groups"]
    t = result["threshold"]
    lines = [f"# Fairway comparison: {result['dataset']}", "",
             f"{result['eval_rows']} eval rows, decision threshold {t}, sensitive feature "
             f"`{result['sensitive']}` ({protected} vs {reference}); run {result['run_id']}.", "",
             f"| model | params | AUC | accuracy | FPR {protected} | FPR {reference} | FPR gap "
             f"| FNR {protected} | FNR {reference} | FNR gap | graph ms b=1 | graph ms b=256 "
             "| call ms b=1 |",
             "|---" * 13 + "|"]
    for name, m in result["models"].items():
        p, r, lat = m["groups"][protected], m["groups"][reference], m["latency"]
        lines.append(
            f"| {name} | {m['params']:,} | {m['auc']:.4f} | {m['accuracy']:.4f} | {p['fpr']:.4f} "
            f"| {r['fpr']:.4f} | {m['fpr_gap']:.4f} | {p['fnr']:.4f} | {r['fnr']:.4f} "
            f"| {m['fnr_gap']:.4f} | {lat['batch_1']['graph']['p50_ms']:.3f} "
            f"| {lat['batch_256']['graph']['p50_ms']:.3f} | {lat['batch_1']['call']['p50_ms']:.3f} |")
    if "blessed" in result:
        lines += ["", f"Evaluator blessed the student: {result['blessed']}"]
        lines += [f"- not blessed: {f}" for f in result.get("blessing_failures", [])]
    lines += ["", "Latency: p50 of `serving_default` on real eval rows; *graph* calls the concrete "
              "function with flat tensors (what a C++ server runs), *call* is the Python "
              "signature call with named arguments.", "",
              "| target | measured | required | met |", "|---|---|---|---|"]
    for c in result["checks"]:
        lines.append(f"| {c['check']} | {c['value']:.4f} | {c['target']} | "
                     f"{'yes' if c['met'] else 'NO'} |")
    return "\n".join(lines) + "\n"


def _pct(x: float) -> str:
    return "n/a" if math.isnan(x) else f"{x:.0%}"


def _num(x: float) -> str:
    return "n/a" if math.isnan(x) else f"{x:.4f}"


def markdown_seeds(result: dict[str, Any]) -> str:
    """The report of `--seeds N`: a row per seed, the summary over seeds, the targets."""
    protected, reference = result["groups"]
    seeds, summary = result["seeds"], result["summary"]
    n = len(seeds)
    lines = [f"# Fairway comparison: {result['dataset']}, {n} seeds", "",
             f"{result['eval_rows']} eval rows, decision threshold {result['threshold']}, "
             f"sensitive feature `{result['sensitive']}` ({protected} vs {reference}); one run "
             f"per training.seed = 1..{n}. FPR gap = |FPR {protected} - FPR {reference}|; cut = "
             "the share of the same seed's baseline gap removed.", "",
             "| seed | baseline AUC / FPR gap | teacher AUC / FPR gap (cut) "
             "| student AUC / FPR gap (cut) | blessed |", "|---|---|---|---|---|"]
    for r in seeds:
        v = values(r)
        b, t, s = v["baseline"], v["teacher"], v["student"]
        lines.append(
            f"| {r['seed']} | {_num(b['auc'])} / {_num(b['fpr_gap'])} "
            f"| {_num(t['auc'])} / {_num(t['fpr_gap'])} ({_pct(t['fpr_gap_cut'])}) "
            f"| {_num(s['auc'])} / {_num(s['fpr_gap'])} ({_pct(s['fpr_gap_cut'])}) "
            f"| {'yes' if r['blessed'] else 'NO'} |")
    for r in seeds:
        lines += [f"- seed {r['seed']} not blessed: {f}" for f in r["blessing_failures"]]
    lines += ["", f"## Summary over {n} seeds", "",
              "95 % interval: where 95 % of seeds are expected to fall (a t prediction interval "
              "for one more seed: mean ± t(0.975, n-1)·s·√(1+1/n)).", "",
              "| model | value | mean | min | max | 95 % interval |", "|---|---|---|---|---|---|"]
    for model, by_key in summary.items():
        for key, d in by_key.items():
            lines.append(f"| {model} | {LABELS[key]} | {_num(d['mean'])} | {_num(d['min'])} "
                         f"| {_num(d['max'])} | [{_num(d['lo'])}, {_num(d['hi'])}] |")
    lines += ["", f"Parameters and latency (p50 of `serving_default` on real eval rows, graph "
              f"calls with flat tensors) of seed {result['latency_seed']}:", "",
              "| model | params | graph ms b=1 | graph ms b=256 | call ms b=1 |",
              "|---|---|---|---|---|"]
    for name, lat in result["latency"].items():
        lines.append(f"| {name} | {result['params'][name]:,} "
                     f"| {lat['batch_1']['graph']['p50_ms']:.3f} "
                     f"| {lat['batch_256']['graph']['p50_ms']:.3f} "
                     f"| {lat['batch_1']['call']['p50_ms']:.3f} |")
    lines += ["", "## Targets", "",
              "| target | mean | worst seed | required | judged on | met |",
              "|---|---|---|---|---|---|"]
    for c in result["checks"]:
        shown = ((f"{c['value'] * n:.0f}/{n} seeds", "yes" if c["worst"] else "NO")
                 if c["judged_on"] == "every seed" else (_num(c["value"]), _num(c["worst"])))
        lines.append(f"| {c['check']} | {shown[0]} | {shown[1]} | {c['target']} "
                     f"| {c['judged_on']} | {'yes' if c['met'] else 'NO'} |")
    return "\n".join(lines) + "\n"


def plot_seeds(result: dict[str, Any], path: pathlib.Path) -> None:
    """Each seed's value (dots), the mean (bar) and the 95 % interval (whiskers)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = (("auc", ("baseline", "teacher", "student")),
              ("fpr_gap", ("baseline", "teacher", "student")),
              ("fnr_gap", ("baseline", "teacher", "student")),
              ("fpr_gap_cut", ("teacher", "student")))
    fig, axes = plt.subplots(1, len(panels), figsize=(16, 4))
    for ax, (key, names) in zip(axes, panels):
        for i, name in enumerate(names):
            d = result["summary"][name][key]
            ax.bar(i, d["mean"], color="#88aacc", width=0.6)
            ax.errorbar(i, d["mean"], yerr=[[d["mean"] - d["lo"]], [d["hi"] - d["mean"]]],
                        color="black", capsize=6)
            ax.plot(np.full(len(d["values"]), i) + np.linspace(-0.15, 0.15, len(d["values"])),
                    d["values"], "o", color="#cc6677")
        if key == "auc":  # bars from 0 would hide the differences
            low = np.nanmin([min(d["lo"], d["min"]) for d in
                             (result["summary"][name][key] for name in names)])
            ax.set_ylim(low - 0.01, 1.0)
        ax.set_xticks(range(len(names)), names)
        ax.set_title(f"{LABELS[key]} ({len(result['seeds'])} seeds)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot(result: dict[str, Any], path: pathlib.Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(result["models"])
    protected, reference = result["groups"]
    fig, axes = plt.subplots(1, 3, figsize=(13, 4))
    x = np.arange(len(names))
    axes[0].bar(x, [result["models"][n]["auc"] for n in names], color="#4477aa")
    axes[0].set_ylim(min(result["models"][n]["auc"] for n in names) - 0.02, 1.0)
    axes[0].set_title("AUC")
    for ax, rate in ((axes[1], "fpr"), (axes[2], "fnr")):
        for i, (g, color) in enumerate(((protected, "#cc6677"), (reference, "#117733"))):
            ax.bar(x + (i - 0.5) * 0.38, [result["models"][n]["groups"][g][rate] for n in names],
                   width=0.38, label=g, color=color)
        ax.set_title(f"{rate.upper()} at {result['threshold']} by {result['sensitive']}")
        ax.legend()
    for ax in axes:
        ax.set_xticks(x, names)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def render(result: dict[str, Any]) -> str:
    """The Markdown report of a result of either kind (one run, or `--seeds`)."""
    return (markdown_seeds if "seeds" in result else markdown)(result)


def write(result: dict[str, Any], out_dir: pathlib.Path) -> dict[str, pathlib.Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {"markdown": out_dir / "comparison.md", "json": out_dir / "comparison.json",
             "plot": out_dir / "comparison.png"}
    paths["markdown"].write_text(render(result))
    paths["json"].write_text(json.dumps(result, indent=2, sort_keys=True))
    (plot_seeds if "seeds" in result else plot)(result, paths["plot"])
    return paths
