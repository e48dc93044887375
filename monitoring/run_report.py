"""`fairway report`: one self-contained HTML page per run (no scripts, no network) and an index.

Sections: lineage (MLMD), data (TFDV statistics train vs eval), schema, anomalies, evaluation
(per-slice metrics, fairness by group), error analysis (eval examples sorted by loss, error per
group), global feature importance (mean |attribution| overall and per group). TFDV's own Facets HTML loads its code from the internet through HTML imports, which
current Chromium no longer supports, so the statistics, schema and anomalies are the statistics
view's tables (views.stats, static here); its interactive page (charts, sorting, filter) is
written beside the report as stats/<run>.html.
"""
from __future__ import annotations

import html
import json
import os
import pathlib
from typing import Any

import numpy as np

from pipeline import artifacts, metadata
from pipeline import pipeline as pipeline_lib
from pipeline.config import PipelineConfig
from pipeline.metrics import EvalData, score

e = html.escape
COLORS = {"train": "#4a7bd0", "eval": "#e08a2c", "FPR": "#c33", "FNR": "#37a"}
STYLE = """body{font:14px system-ui,sans-serif;margin:2em;color:#222;max-width:1200px}
table{border-collapse:collapse;margin:.5em 0}td,th{padding:3px 8px;border-bottom:1px solid #ddd;
text-align:left;vertical-align:top}th{background:#f4f4f4}.bad{color:#b00}.ok{color:#070}
nav a{margin-right:1em}code{font-size:12px}"""


def _svg_bars(series: dict[str, list[float]], labels: list[str], width: int = 220) -> str:
    """Grouped bars (one colour per split) of fractions in [0, 1]."""
    n = max(len(labels), 1)
    group_w = width / n
    bar_w = group_w / (len(series) + 1)
    parts = [f"<svg width='{width}' height='60' role='img'>"]
    for i, label in enumerate(labels):
        for j, (split, values) in enumerate(series.items()):
            h = 55 * (values[i] if i < len(values) else 0)
            x = i * group_w + j * bar_w
            parts.append(f"<rect x='{x:.1f}' y='{58 - h:.1f}' width='{bar_w:.1f}' "
                         f"height='{h:.1f}' fill='{COLORS.get(split, '#888')}'>"
                         f"<title>{e(split)} {e(label)}: {values[i]:.3f}</title></rect>")
    parts.append("</svg>")
    return "".join(parts)


def _data(summary: dict[str, Any], splits=("train", "eval")):
    """([(split, statistics)], schema, {split: anomalies} or None, why there are none)."""
    stats_uri = metadata.node_artifact(summary, "StatisticsGen", "ExampleStatistics")
    schema = artifacts.load_schema(metadata.node_artifact(summary, "ImportSchemaGen", "Schema"))
    datasets = [(split, artifacts.load_stats(stats_uri, split)) for split in splits
                if os.path.exists(artifacts.stats_path(stats_uri, split))]
    try:
        uri = metadata.node_artifact(summary, "ExampleValidator", "ExampleAnomalies")
        anomalies = {split: artifacts.load_anomalies(uri, split) for split, _ in datasets}
        return datasets, schema, anomalies, ""
    except LookupError:
        return datasets, schema, None, "ExampleValidator did not run in this run"


def _errors(cfg: PipelineConfig, summary: dict[str, Any], model_dir: str, top: int = 20):
    """(worst examples, error table per sensitive group) of the model on the eval split."""
    import tensorflow as tf

    from monitoring.requests import example_rows

    data = EvalData(metadata.node_artifact(summary, "CsvExampleGen", "Examples"), cfg)
    p = score(tf.saved_model.load(model_dir).signatures["from_examples"], data.serialized)
    y = data.labels.astype(float)
    eps = 1e-7
    loss = -(y * np.log(p + eps) + (1 - y) * np.log(1 - p + eps))
    t = cfg.evaluation.decision_threshold
    worst = []
    order = np.argsort(-loss)[:top]
    for i, row in zip(order, example_rows(data.serialized[order])):
        feats = {k: v for k, v in sorted(row.items()) if k != cfg.dataset.label}
        worst.append({"loss": float(loss[i]), "label": int(y[i]), "prediction": float(p[i]),
                      "features": feats})
    groups = {"Overall": np.ones(len(y), bool)}
    for g in sorted(set(data.groups)) if cfg.dataset.sensitive else ():
        groups[f"{cfg.dataset.sensitive}={g}"] = data.groups == g
    table = {name: {"rows": int(m.sum()), "mean_loss": float(loss[m].mean()),
                    "error_rate": float(((p[m] >= t) != (y[m] == 1)).mean())}
             for name, m in groups.items() if m.any()}
    return worst, table


def _importance(cfg: PipelineConfig, summary: dict[str, Any], model_dir: str):
    from pipeline import explanations

    data = EvalData(metadata.node_artifact(summary, "CsvExampleGen", "Examples"), cfg)
    pairs = [tuple(cfg.dataset.groups)] if len(cfg.dataset.groups or ()) == 2 else []
    return explanations.eval_importance(model_dir, data.serialized, data.groups, pairs)


def importance_section(imp: dict[str, Any] | None, sensitive: str | None,
                       why_not: str = "") -> str:
    """Mean |attribution| per feature, overall and per group, and the features whose
    importance differs most between groups."""
    if imp is None:
        return f"<p id='importance-none'>no explanations: {e(why_not)}</p>"
    groups = list(imp["groups"])
    top = max(imp["overall"].values(), default=0.0) or 1.0
    rows = []
    gap = {d["feature"]: d for d in imp["differs_most"]}
    for k, v in imp["overall"].items():
        bar = (f"<svg width='120' height='10' role='img'><rect width='{120 * v / top:.1f}' "
               f"height='10' fill='{COLORS['train']}'><title>{e(k)}: {v:.4f}</title></rect>"
               "</svg>")
        rows.append(f"<tr><td>{e(k)}</td><td>{v:.4f}</td><td>{bar}</td>"
                    + "".join(f"<td>{imp['groups'][g][k]:.4f}</td>" for g in groups)
                    + (f"<td>{gap[k]['gap']:.4f}</td>" if groups else "") + "</tr>")
    head = ("<tr><th>feature</th><th>overall</th><th></th>"
            + "".join(f"<th>{e(f'{sensitive}={g}')}</th>" for g in groups)
            + ("<th>largest gap</th>" if groups else "") + "</tr>")
    leads = ", ".join(f"{d['feature']} ({d['gap']:.3f} higher for {d['high']} than {d['low']})"
                      for d in imp["differs_most"][:3])
    return (f"<p>Mean |attribution| (logit units, integrated gradients from the training "
            f"baseline) on {imp['rows']} eval rows.</p>"
            f"<table id='importance-table'>{head}{''.join(rows)}</table>"
            + (f"<p id='importance-gaps'>Importance differs most between groups for: "
               f"{e(leads)}. A lead for fairness work: the model leans on these features "
               f"differently for each group.</p>" if leads else ""))


def _model_dir(cfg: PipelineConfig, summary: dict[str, Any]) -> str:
    if summary.get("pushed_to"):
        return summary["pushed_to"]
    node = pipeline_lib.STUDENT if cfg.distillation.enabled else pipeline_lib.TEACHER
    return artifacts.serving_model_dir(metadata.node_artifact(summary, node, "Model"))


def _table(head: list[str], rows: list[list[Any]], id_: str = "") -> str:
    def cell(v):
        return f"{v:.4f}" if isinstance(v, float) else e(str(v))
    return (f"<table{f' id={id_!r}' if id_ else ''}><tr>"
            + "".join(f"<th>{e(h)}</th>" for h in head) + "</tr>"
            + "".join("<tr>" + "".join(f"<td>{cell(v)}</td>" for v in r) + "</tr>"
                      for r in rows) + "</table>")


def render(cfg: PipelineConfig, summary: dict[str, Any], stats_page: str = "") -> str:
    """`stats_page`: the relative link to the interactive statistics page, if written."""
    from views import stats as view

    from pipeline.eval_config import key_metrics

    shown = key_metrics(cfg.evaluation.decision_threshold)
    at = f"{cfg.evaluation.decision_threshold:g}"
    lineage = [[n["node"], n["state"], f"{n['seconds']:.1f}",
                "; ".join(f"{k}: {v}" for k, v in n["artifacts"].items())]
               for n in summary["nodes"]]
    datasets, schema, anomalies, no_anomalies = _data(summary)
    metric_rows = [[s] + [v.get(key, "-") for _, key in shown]
                   for s, v in summary["metrics"].items()]
    fairness = ""
    groups = {s: v for s, v in summary["metrics"].items()
              if cfg.dataset.sensitive and s.startswith(f"{cfg.dataset.sensitive}=")}
    fpr, fnr = dict(shown)[f"fpr@{at}"], dict(shown)[f"fnr@{at}"]
    if groups:
        fairness = _svg_bars({"FPR": [groups[g].get(fpr, 0.0) for g in groups],
                              "FNR": [groups[g].get(fnr, 0.0) for g in groups]},
                             list(groups), width=320)
    worst, errors = [], {}
    model_dir = None
    try:
        model_dir = _model_dir(cfg, summary)
        worst, errors = _errors(cfg, summary, model_dir)
    except (LookupError, OSError) as err:
        errors = {"unavailable": {"rows": 0, "mean_loss": float("nan"),
                                  "error_rate": float("nan")}}
        model_dir = f"no model to analyse: {err}"
    imp, why_not = None, ""
    try:
        imp = _importance(cfg, summary, model_dir)
    except (LookupError, OSError) as err:
        why_not = str(err)
    status = (f"<span class='ok'>blessed</span>" if summary["blessed"]
              else "<span class='bad'>not blessed</span>")
    pushed = (f"pushed version {summary['pushed_version']}" if summary["pushed"]
              else "not pushed")
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Fairway run {e(summary['run_id'])}</title>
<style>{STYLE}</style></head><body>
<h1>Run {e(summary['run_id'])} of {e(summary['pipeline'])}</h1>
<p id="verdict">{status}, {pushed}.
{''.join(f"<br><span class='bad'>not blessed: {e(x)}</span>"
         for x in summary.get('blessing_failures', []))}</p>
<nav><a href="#lineage">Lineage</a><a href="#data">Data</a><a href="#schema">Schema</a>
<a href="#anomalies">Anomalies</a><a href="#evaluation">Evaluation</a>
<a href="#errors">Error analysis</a><a href="#importance">Feature importance</a>
<a href="index.html">All runs</a></nav>
<h2 id="lineage">Lineage (ML Metadata)</h2>
{_table(["node", "state", "seconds", "artifacts"], lineage, "lineage-table")}
<h2 id="data">Data: statistics, train vs eval</h2>
{f'<p><a href="{e(stats_page)}">Interactive statistics</a> (histograms, quantiles, log '
 f'scale, sorting, filter).</p>' if stats_page else ''}
<div id="stats-table">{view.section(datasets, schema, anomalies, interactive=False,
                                    tables_too=False, id_="report-stats")}</div>
<p>Drift: the DataGate compared this run's training statistics with the last accepted data
(see Anomalies); `fairway monitor` compares serving traffic with these training statistics.</p>
<h2 id="schema">Schema (curated)</h2>
{view.schema_table(schema)}
<h2 id="anomalies">Anomalies (ExampleValidator)</h2>
{view.anomalies_table(anomalies) if anomalies is not None else f'<p>{e(no_anomalies)}</p>'}
<h2 id="evaluation">Evaluation (TFMA, per slice)</h2>
{_table(["slice"] + [label for label, _ in shown], metric_rows, "metrics-table")}
<h3>Fairness by {e(cfg.dataset.sensitive or '-')}: FPR and FNR at {at}</h3>
<p>{fairness or 'no sensitive feature configured'}<br>
<span style="color:{COLORS['FPR']}">■ FPR</span>
<span style="color:{COLORS['FNR']}">■ FNR</span>; groups left to right:
{e(', '.join(groups))}</p>
<h2 id="errors">Error analysis</h2>
<p>Model: <code>{e(str(model_dir))}</code>, on the eval split; loss is the log loss.</p>
{_table(["slice", "rows", "mean loss", "error rate"],
        [[k, v["rows"], v["mean_loss"], v["error_rate"]] for k, v in errors.items()],
        "error-table")}
<h3>Highest-loss eval examples</h3>
{_table(["loss", "label", "prediction", "features"],
        [[w["loss"], w["label"], w["prediction"], json.dumps(w["features"], ensure_ascii=False)]
         for w in worst], "worst-table")}
<h2 id="importance">Feature importance (explanations)</h2>
{importance_section(imp, cfg.dataset.sensitive, why_not)}
</body></html>
"""


def write(cfg: PipelineConfig, out_dir: pathlib.Path | None = None) -> pathlib.Path:
    """Writes <out>/<run id>.html and refreshes index.html (every report in the folder)."""
    out_dir = out_dir or cfg.command_dir("report")
    out_dir.mkdir(parents=True, exist_ok=True)
    summary = metadata.run_summary(cfg)
    page = out_dir / (summary['run_id'].replace(':', '-') + '.html')  # ':' is a URL scheme mark
    # The interactive statistics view beside it, in stats/ (the index lists this folder only).
    from views import stats as view

    stats_page = out_dir / "stats" / page.name
    stats_page.parent.mkdir(exist_ok=True)
    datasets, schema, anomalies, _ = _data(summary)
    stats_page.write_text(view.page(datasets, schema, anomalies,
                                    title=f"Statistics of run {summary['run_id']}"))
    page.write_text(render(cfg, summary, f"stats/{page.name}"))
    runs = sorted((p for p in out_dir.glob("*.html") if p.name != "index.html"), reverse=True)
    (out_dir / "index.html").write_text(
        "<!doctype html><html lang='en'><head><meta charset='utf-8'><title>Fairway runs"
        f"</title><style>{STYLE}</style></head><body><h1>Runs of {e(summary['pipeline'])}"
        "</h1><ul id='runs'>" + "".join(f"<li><a href='{e(p.name)}'>{e(p.stem)}</a></li>"
                                        for p in runs) + "</ul></body></html>\n")
    return page
