"""`fairway status`: the human-readable rendering of a run summary (the dict from
pipeline.metadata.run_summary)."""
from __future__ import annotations

from typing import Any


def status(cfg, as_json: bool = False, cache: bool = False) -> str:
    """`fairway status`: the latest run of `cfg` (a PipelineConfig) from ML Metadata, with the
    engine jobs it recorded, as text or JSON. `cache`: instead, each node's cache hit or why it
    ran (pipeline.metadata.cache_summary)."""
    from pipeline import metadata
    from runners import engine_jobs

    if cache:
        summary = metadata.cache_summary(cfg)
        return metadata.to_json(summary) if as_json else cache_text(summary)

    summary = engine_jobs.attach(cfg, metadata.run_summary(cfg))
    if as_json:
        return metadata.to_json(summary)
    return text(summary, cfg.evaluation.decision_threshold)


def text(summary: dict[str, Any], threshold: float = 0.5) -> str:
    """`threshold`: the decision threshold the rates are shown at."""
    from pipeline.eval_config import key_metrics  # TFMA: seconds, not needed by cache_text

    lines = [f"Run {summary['run_id']} of {summary['pipeline']}", ""]
    if "engine" in summary:
        lines[-1:] = [f"Beam components ran on {summary['engine']['name']} at "
                      f"{summary['engine']['master']}", ""]
    lines.append(f"{'node':34} {'state':10} {'seconds':>8}")
    for n in summary["nodes"]:
        lines.append(f"{n['node']:34} {n['state']:10} {n['seconds']:>8.1f}")
        for kind, uri in n["artifacts"].items():
            lines.append(f"    {kind}: {uri}")
        for a in n.get("spark_applications", []):
            lines.append(f"    Spark application: {a['id']} ({a['state']}, "
                         f"{a['duration'] / 1000:.1f}s) {a['name']}")
    if summary["metrics"]:
        lines += ["", "Evaluation (candidate model)"]
        shown = [(label, key) for label, key in key_metrics(threshold)
                 if any(key in v for v in summary["metrics"].values())]
        lines.append(f"{'slice':40}" + "".join(f"{label:>13}" for label, _ in shown))
        for slice_name, values in summary["metrics"].items():
            cells = "".join(_cell(values.get(key, "-"), key) for _, key in shown)
            lines.append(f"{slice_name[:40]:40}{cells}")
    lines.append("")
    lines.append(f"Blessed: {summary['blessed']}")
    for failure in summary.get("blessing_failures", []):
        lines.append(f"  not blessed: {failure}")
    if summary["pushed"]:
        lines.append(f"Pushed: version {summary['pushed_version']} -> {summary['pushed_to']}")
    elif summary.get("same_as_version"):
        lines.append(f"Pushed: no new version: the model is version {summary['same_as_version']}, "
                     "already in the serving folder")
    else:
        lines.append("Pushed: no")
    return "\n".join(lines)


_VERB = {"COMPLETE": "re-ran", "FAILED": "ran and failed", "CANCELED": "ran, canceled"}


def cache_text(summary: dict[str, Any]) -> str:
    """One line per node: `cached`, or why it ran (`re-ran: code changed (modules/trainer.py)`)."""
    lines = [f"Run {summary['run_id']} of {summary['pipeline']}: cache", "",
             f"{'node':34} {'state':10} why"]
    for n in summary["nodes"]:
        why = "; ".join(n["reasons"])
        if n["cache_hit"] is False:
            verb = _VERB.get(n["state"], n["state"].lower())
            if n["compared_with"] is None and n["state"] == "COMPLETE":
                verb = "ran"  # nothing earlier to compare with
            why = f"{verb}: {why}"
        lines.append(f"{n['node']:34} {n['state']:10} {why}")
    hits = sum(n["cache_hit"] is True for n in summary["nodes"])
    ran = sum(n["cache_hit"] is False for n in summary["nodes"])
    lines += ["", f"{hits} cached, {ran} ran"
              + (" (compared with each node's previous successful execution)" if ran else "")]
    return "\n".join(lines)


def _cell(value, key: str = "") -> str:
    if key == "example_count" and isinstance(value, float):
        return f"{int(round(value)):>13,}"  # a count, not 16281.0000
    return f"{value:>13.4f}" if isinstance(value, float) else f"{value!s:>13}"
