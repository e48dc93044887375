"""`fairway monitor`: a window of serving request logs against the training statistics of the
run that pushed the model which served them; writes monitor.{json,html}; alerts per feature."""
from __future__ import annotations

import collections
import csv
import html
import json
import pathlib
import time
from typing import Any

from monitoring import drift, requests
from pipeline import artifacts, metadata
from pipeline.config import PipelineConfig
from pipeline.errors import FairwayError
from pipeline.metrics import auc, group_rates

SMALL_WINDOW = 500  # below this, drift scores of sparse features are noisy (see the schema)


def baseline(cfg: PipelineConfig, version: int | None, log=print):
    """(training statistics, schema, run name) of the run that pushed `version`."""
    run = metadata.pushing_run(cfg, version) if version else None
    if run is None:
        log(f"no run in {cfg.metadata_path} pushed version {version}; using the latest run")
    summary = metadata.run_summary(cfg, run)
    stats_uri = metadata.node_artifact(summary, "StatisticsGen", "ExampleStatistics")
    schema_uri = metadata.node_artifact(summary, "ImportSchemaGen", "Schema")
    return artifacts.load_stats(stats_uri, "train"), artifacts.load_schema(schema_uri), \
        summary["run_id"]


def read_labels(path: str) -> dict[str, int]:
    """request id -> 0/1 label from a CSV with the header `request_id,label`."""
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        if not reader.fieldnames or not {"request_id", "label"} <= set(reader.fieldnames):
            raise FairwayError(f"{path}: expected a CSV with the header 'request_id,label' "
                               f"(request ids as in the monitor report), got "
                               f"{reader.fieldnames}")
        out = {}
        for i, row in enumerate(reader, 2):
            if row["label"] not in ("0", "1"):
                raise FairwayError(f"{path}:{i}: label {row['label']!r} is not 0 or 1")
            out[row["request_id"]] = int(row["label"])
    if not out:
        raise FairwayError(f"{path}: no labels")
    return out


def performance(cfg: PipelineConfig, frame, labels: dict[str, int]) -> dict[str, Any]:
    """The served model's quality on the labelled part of the window (concept drift)."""
    joined = frame[frame["_request_id"].isin(labels) & frame["_prediction"].notna()]
    if joined.empty:
        raise FairwayError("no labelled request id matches a logged prediction in this window")
    y = joined["_request_id"].map(labels).to_numpy()
    p = joined["_prediction"].to_numpy(float)
    t = cfg.evaluation.decision_threshold
    result = {"labelled": int(len(joined)), "unmatched_labels": len(labels) - len(joined),
              "auc": auc(y, p), "accuracy": float(((p >= t) == (y == 1)).mean())}
    sensitive = cfg.dataset.sensitive
    if sensitive and sensitive in joined:
        result["by_group"] = group_rates(y, p, joined[sensitive].astype(str).to_numpy(), t)
    return result


def run(cfg: PipelineConfig, logs: str, out_dir: pathlib.Path, labels: str | None = None,
        log=print) -> dict[str, Any]:
    frame = requests.read(logs)
    versions = collections.Counter(int(v) for v in frame["_version"])
    served = versions.most_common(1)[0][0] if versions else None
    log(f"{len(frame)} served examples from {logs} (versions {dict(versions)})")
    if len(frame) < SMALL_WINDOW:
        log(f"warning: a window of {len(frame)} examples is small; drift scores of sparse "
            f"features are noisy below {SMALL_WINDOW}")
    train_stats, schema, run_id = baseline(cfg, served, log)
    if not any(f.HasField("skew_comparator") for f in schema.feature):
        raise FairwayError("the schema has no skew_comparator on any feature: nothing to "
                           "compare (add them to the curated schema.pbtxt)")
    result = drift.compare(train_stats, schema, drift.serving_statistics(frame, schema))
    report = {
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "requests": logs, "examples": int(len(frame)),
        "versions": {str(k): v for k, v in versions.items()}, "baseline_run": run_id,
        "features": [{"feature": f.feature, "measure": f.measure, "score": round(f.score, 4),
                      "threshold": f.threshold, "alert": f.alert} for f in result["features"]],
        "not_compared": result["not_compared"], "anomalies": result["anomalies"],
    }
    # Values the schema does not allow in production (e.g. a new category) alert as drift does.
    drifted = [f["feature"] for f in report["features"] if f["alert"]]
    report["alerts"] = drifted + [k for k in report["anomalies"] if k not in drifted]
    if labels:
        report["performance"] = performance(cfg, frame, read_labels(labels))
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "monitor.json").write_text(json.dumps(report, indent=2))
    (out_dir / "monitor.html").write_text(to_html(report))
    return report


def alert_lines(report: dict[str, Any]) -> list[str]:
    lines = [f"ALERT {f['feature']}: {f['measure']} {f['score']:.4f} > threshold "
             f"{f['threshold']:g}" for f in report["features"] if f["alert"]]
    lines += [f"ANOMALY {k}: {v}" for k, v in report["anomalies"].items()]
    return lines


def _num(v) -> str:
    return "-" if v is None or v != v else f"{v:.4f}"


def to_html(r: dict[str, Any]) -> str:
    """A self-contained page (no scripts, no network)."""
    e = html.escape
    rows = []
    for f in r["features"]:
        width = min(100.0, 100.0 * f["score"] / (2 * f["threshold"])) if f["threshold"] else 0
        rows.append(
            f"<tr class='{'alert' if f['alert'] else 'ok'}'><td>{e(f['feature'])}</td>"
            f"<td>{e(f['measure'])}</td><td>{f['score']:.4f}</td><td>{f['threshold']:g}</td>"
            f"<td><div class='bar'><div style='width:{width:.1f}%'></div>"
            f"<span style='left:50%'></span></div></td>"
            f"<td>{'ALERT' if f['alert'] else 'ok'}</td></tr>")
    perf = r.get("performance")
    perf_html = "<p>No labels given (--labels CSV of request_id,label).</p>" if not perf else (
        f"<p>{perf['labelled']} labelled examples: AUC {perf['auc']:.4f}, accuracy "
        f"{perf['accuracy']:.4f}.</p><table id='groups'><tr><th>group</th><th>rows</th>"
        "<th>AUC</th><th>FPR</th><th>FNR</th></tr>" + "".join(
            f"<tr><td>{e(g)}</td><td>{v['rows']}</td><td>{_num(v['auc'])}</td>"
            f"<td>{_num(v['fpr'])}</td><td>{_num(v['fnr'])}</td></tr>"
            for g, v in perf.get("by_group", {}).items()) + "</table>")
    anomalies = "".join(f"<li><b>{e(k)}</b>: {e(v)}</li>" for k, v in r["anomalies"].items())
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Fairway monitor</title>
<style>
body {{ font: 14px system-ui, sans-serif; margin: 2em; color: #222 }}
table {{ border-collapse: collapse }} td, th {{ padding: 4px 10px; border-bottom: 1px solid #ddd }}
tr.alert td {{ background: #fde8e8 }} .bar {{ position: relative; width: 200px; height: 10px;
background: #eee }} .bar div {{ height: 10px; background: #4a7 }} tr.alert .bar div
{{ background: #c33 }} .bar span {{ position: absolute; top: -2px; height: 14px;
border-left: 2px solid #333 }}
</style></head><body>
<h1>Serving traffic vs training baseline</h1>
<p id="summary">{r['examples']} served examples from <code>{e(r['requests'])}</code>; versions
{e(json.dumps(r['versions']))}; baseline: run <code>{e(r['baseline_run'])}</code>;
{len(r['alerts'])} alert(s). Created {e(r['created'])}.</p>
<h2>Drift per feature</h2>
<p>The black mark is the threshold (from the schema's skew_comparator).</p>
<table id="features"><tr><th>feature</th><th>measure</th><th>score</th><th>threshold</th>
<th></th><th>status</th></tr>{''.join(rows)}</table>
<h2>Model performance on labelled requests</h2>
{perf_html}
<h2>Schema anomalies in serving data</h2>
<ul id="anomalies">{anomalies or '<li>none</li>'}</ul>
</body></html>
"""


