"""`fairway compare`: baseline (no MinDiff) vs MinDiff teacher vs distilled student.

The three models come from one pipeline run (BaselineTrainer is added for this command), read
back from ML Metadata, and are scored through their exported signatures on the eval split:
what a client of the pushed model would see.
"""
from __future__ import annotations

import json
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


def measure(cfg: PipelineConfig, summary: dict[str, Any], progress=print) -> dict[str, Any]:
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
             **quality(data.labels, scores, data.groups, cfg),
             "latency": _latency(sigs["serving_default"], data.serialized)}
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


def checks(result: dict[str, Any], cfg: PipelineConfig) -> list[dict[str, Any]]:
    """The config's [compare] targets, each with the measured value and whether it was met."""
    b, t, s = (result["models"][k] for k in ("baseline", "teacher", "student"))
    target = cfg.compare
    cut = 1 - t["fpr_gap"] / b["fpr_gap"] if b["fpr_gap"] else float("nan")
    speedup = (t["latency"]["batch_1"]["graph"]["p50_ms"]
               / s["latency"]["batch_1"]["graph"]["p50_ms"])
    rows = [
        ("MinDiff cuts the FPR gap (vs baseline)", cut, f">= {target.min_gap_cut:.0%}",
         cut >= target.min_gap_cut),
        ("AUC cost of MinDiff", b["auc"] - t["auc"], f"<= {cfg.evaluation.max_auc_drop}",
         b["auc"] - t["auc"] <= cfg.evaluation.max_auc_drop),
        ("student AUC", s["auc"], f">= {target.min_student_auc}",
         s["auc"] >= target.min_student_auc),
        ("student AUC below teacher", t["auc"] - s["auc"], "<= 0.01", t["auc"] - s["auc"] <= 0.01),
        ("student / teacher parameters", s["params"] / t["params"],
         f"<= {cfg.distillation.max_param_ratio}",
         s["params"] / t["params"] <= cfg.distillation.max_param_ratio),
        ("batch-1 speed-up of the student (graph p50)", speedup, f">= {target.min_speedup}x",
         speedup >= target.min_speedup),
    ]
    return [{"check": c, "value": v, "target": tgt, "met": bool(ok)} for c, v, tgt, ok in rows]


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


def write(result: dict[str, Any], out_dir: pathlib.Path) -> dict[str, pathlib.Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {"markdown": out_dir / "comparison.md", "json": out_dir / "comparison.json",
             "plot": out_dir / "comparison.png"}
    paths["markdown"].write_text(markdown(result))
    paths["json"].write_text(json.dumps(result, indent=2, sort_keys=True))
    plot(result, paths["plot"])
    return paths
