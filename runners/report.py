"""Human-readable rendering of a run summary (the dict from pipeline.metadata.run_summary)."""
from __future__ import annotations

from typing import Any

_FI = "fairness_indicators_metrics/{}@{}"
# (column label, metric key) shown in the text report; --json has every metric.
_KEY_METRICS = (("count", "example_count"), ("auc", "auc"), ("accuracy", "binary_accuracy"),
                ("precision", "precision"), ("recall", "recall"), ("calibration", "calibration"),
                ("fpr@0.5", _FI.format("false_positive_rate", 0.5)),
                ("fnr@0.5", _FI.format("false_negative_rate", 0.5)),
                ("fpr gap", "false_positive_rate_gap"))


def text(summary: dict[str, Any]) -> str:
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
        shown = [(label, key) for label, key in _KEY_METRICS
                 if any(key in v for v in summary["metrics"].values())]
        lines.append(f"{'slice':40}" + "".join(f"{label:>13}" for label, _ in shown))
        for slice_name, values in summary["metrics"].items():
            cells = "".join(_cell(values.get(key, "-")) for _, key in shown)
            lines.append(f"{slice_name[:40]:40}{cells}")
    lines.append("")
    lines.append(f"Blessed: {summary['blessed']}")
    for failure in summary.get("blessing_failures", []):
        lines.append(f"  not blessed: {failure}")
    if summary["pushed"]:
        lines.append(f"Pushed: version {summary['pushed_version']} -> {summary['pushed_to']}")
    else:
        lines.append("Pushed: no")
    return "\n".join(lines)


def _cell(value) -> str:
    return f"{value:>13.4f}" if isinstance(value, float) else f"{value!s:>13}"
