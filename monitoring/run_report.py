"""`fairway report`: one self-contained HTML page per run (no scripts, no network) and an index.

Sections: lineage (MLMD), data (TFDV statistics train vs eval), schema, anomalies, evaluation
(per-slice metrics, fairness by group), error analysis (eval examples sorted by loss, error per
group), global feature importance (mean |attribution| overall and per group). Beside it, the
interactive views: stats/<run>.html (views.stats) and model/<run>.html (views.model: Fairness
Indicators across thresholds, ROC/PR/calibration, error analysis by slice). TFDV's own Facets
HTML loads its code from the internet through HTML imports, which current Chromium no longer
supports, so the statistics, schema and anomalies here are the statistics view's static tables.
"""
from __future__ import annotations

import html
import os
import pathlib
from typing import Any

import numpy as np

from pipeline import artifacts, metadata
from pipeline import pipeline as pipeline_lib
from pipeline.config import PipelineConfig
from pipeline.metrics import EvalData, score

e = html.escape
COLORS = {"train": "#4a7bd0"}
STYLE = """body{font:14px system-ui,sans-serif;margin:2em;color:#222;max-width:1200px}
table{border-collapse:collapse;margin:.5em 0}td,th{padding:3px 8px;border-bottom:1px solid #ddd;
text-align:left;vertical-align:top}th{background:#f4f4f4}.bad{color:#b00}.ok{color:#070}
nav a{margin-right:1em}code{font-size:12px}"""


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


def _errors(cfg: PipelineConfig, summary: dict[str, Any], model_dir: str, per_slice: int = 15):
    """(highest-loss rows, error table per sensitive group) of the model on the eval split.
    The rows are the `per_slice` highest-loss rows of every slice of the EvalConfig (Overall,
    each configured slice value), so the view's slice filter always has rows to show; each row
    lists the slices it is in, named as TFMA names them."""
    import tensorflow as tf

    from monitoring.requests import example_rows

    data = EvalData(metadata.node_artifact(summary, "CsvExampleGen", "Examples"), cfg)
    p = score(tf.saved_model.load(model_dir).signatures["from_examples"], data.serialized)
    y = data.labels.astype(float)
    eps = 1e-7
    loss = -(y * np.log(p + eps) + (1 - y) * np.log(1 - p + eps))
    t = cfg.evaluation.decision_threshold
    order = np.argsort(-loss, kind="stable")
    rows = example_rows(data.serialized)
    specs = [tuple(sorted(s)) for s in cfg.dataset.slices]  # TFMA orders a slice's columns

    def slices_of(row):
        return [", ".join(f"{k}={row[k]}" for k in spec) for spec in specs
                if all(k in row for k in spec)]

    picked: dict[int, None] = dict.fromkeys(order[:per_slice].tolist())
    taken: dict[str, int] = {}
    for i in order.tolist():
        for name in slices_of(rows[i]):
            if taken.get(name, 0) < per_slice:
                taken[name] = taken.get(name, 0) + 1
                picked[i] = None
    worst = []
    for i in sorted(picked, key=lambda i: -loss[i]):
        feats = {k: v for k, v in sorted(rows[i].items()) if k != cfg.dataset.label}
        worst.append({"loss": float(loss[i]), "label": int(y[i]), "prediction": float(p[i]),
                      "features": feats, "slices": slices_of(rows[i])})
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


def _analysis(cfg: PipelineConfig, summary: dict[str, Any]):
    """(highest-loss rows, errors per group, model dir or why there is none)."""
    try:
        model_dir = _model_dir(cfg, summary)
        worst, errors = _errors(cfg, summary, model_dir)
        return worst, errors, model_dir
    except (LookupError, OSError) as err:
        return [], {"unavailable": {"rows": 0, "mean_loss": float("nan"),
                                    "error_rate": float("nan")}}, f"no model to analyse: {err}"


def _columns(rows: list[dict[str, Any]]) -> list[str]:
    """The feature columns of the error analysis: every feature any row has, sorted."""
    return sorted({k for r in rows for k in r["features"]})


def _count(key: str, value: Any) -> Any:
    return int(round(value)) if key == "example_count" and isinstance(value, float) else value


def _table(head: list[str], rows: list[list[Any]], id_: str = "") -> str:
    def cell(v):
        return f"{v:.4f}" if isinstance(v, float) else e(str(v))
    return (f"<table{f' id={id_!r}' if id_ else ''}><tr>"
            + "".join(f"<th>{e(h)}</th>" for h in head) + "</tr>"
            + "".join("<tr>" + "".join(f"<td>{cell(v)}</td>" for v in r) + "</tr>"
                      for r in rows) + "</table>")


def render(cfg: PipelineConfig, summary: dict[str, Any], stats_page: str = "",
           model_page: str = "", model_data: dict[str, Any] | None = None,
           worst: list[dict[str, Any]] | None = None, errors: dict[str, Any] | None = None,
           model_dir: str = "") -> str:
    """`stats_page`, `model_page`: relative links to the interactive statistics and model
    views, if written; `model_data`: views.model.load() of the run's evaluation; `worst`,
    `errors`, `model_dir`: _errors() of the analysed model (computed here when not given)."""
    from views import model as model_view
    from views import stats as view

    from pipeline.eval_config import key_metrics

    shown = key_metrics(cfg.evaluation.decision_threshold)
    at = f"{cfg.evaluation.decision_threshold:g}"
    lineage = [[n["node"], n["state"], f"{n['seconds']:.1f}",
                "; ".join(f"{k}: {v}" for k, v in n["artifacts"].items())]
               for n in summary["nodes"]]
    datasets, schema, anomalies, no_anomalies = _data(summary)
    metric_rows = [[s] + [_count(key, v.get(key, "-")) for _, key in shown]
                   for s, v in summary["metrics"].items()]
    sensitive = cfg.dataset.sensitive
    fairness = "no sensitive feature configured"
    if sensitive and model_data:
        fairness = model_view.metrics_table(
            {**model_data, "slices": [s for s in model_data["slices"]
                                      if s["feature"] in ("", sensitive)]},
            cfg.evaluation.decision_threshold, id_="fairness-table")
    if worst is None:
        worst, errors, model_dir = _analysis(cfg, summary)
    features = _columns(worst)
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
{f'<p><a id="model-link" href="{e(model_page)}">Interactive model view</a> (Fairness '
 f'Indicators across thresholds with confidence intervals, gaps to the reference group, ROC, '
 f'precision-recall and calibration plots, error analysis by slice).</p>' if model_page else ''}
{_table(["slice"] + [label for label, _ in shown], metric_rows, "metrics-table")}
<h3>Fairness by {e(sensitive or '-')}: rates at {at}</h3>
{fairness}
<h2 id="errors">Error analysis</h2>
<p>Model: <code>{e(str(model_dir))}</code>, on the eval split; loss is the log loss.</p>
{_table(["slice", "rows", "mean loss", "error rate"],
        [[k, v["rows"], v["mean_loss"], v["error_rate"]] for k, v in errors.items()],
        "error-table")}
<h3>Highest-loss eval examples</h3>
{_table(["loss", "label", "prediction", *features],
        [[w["loss"], w["label"], w["prediction"], *(w["features"].get(f, "") for f in features)]
         for w in worst[:20]], "worst-table")}
<h2 id="importance">Feature importance (explanations)</h2>
{importance_section(imp, cfg.dataset.sensitive, why_not)}
</body></html>
"""


def _gate(cfg: PipelineConfig) -> dict[str, Any] | None:
    """The fairness gate the Evaluator applies (pipeline.eval_config), or None."""
    ds = cfg.dataset
    if not ds.sensitive or len(ds.groups or ()) != 2:
        return None
    return {"feature": ds.sensitive, "protected": ds.groups[0], "reference": ds.groups[1],
            "bound": cfg.evaluation.max_fpr_gap}


def _error_slices(rows: list[dict[str, Any]]) -> list[str]:
    return sorted({s for r in rows for s in r["slices"]}, key=lambda s: (s.count(","), s))


def model_page(cfg: PipelineConfig, summary: dict[str, Any],
               worst: list[dict[str, Any]] | None = None):
    """(HTML page, data) of the model view of a run (views.model): the Evaluator's TFMA result
    and the highest-loss rows (`worst`, from _errors; scored here when None). (None, None)
    when the run has no evaluation."""
    from views import model as model_view

    from pipeline.eval_config import fairness_thresholds

    try:
        evaluation = metadata.node_artifact(summary, "Evaluator", "ModelEvaluation")
    except LookupError:
        return None, None
    if worst is None:
        worst = _analysis(cfg, summary)[0]
    data = model_view.load(evaluation, fairness_thresholds(cfg))
    return model_view.page(
        data, cfg.evaluation.decision_threshold, gate=_gate(cfg),
        errors=model_view.error_table(worst, _columns(worst), _error_slices(worst)),
        title=f"Model of run {summary['run_id']}"), data


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
    # The model view beside it, in model/: TFMA's result of this run and the error analysis.
    worst, errors, model_dir = _analysis(cfg, summary)
    model_html, model_data = model_page(cfg, summary, worst)
    if model_html:
        path = out_dir / "model" / page.name
        path.parent.mkdir(exist_ok=True)
        path.write_text(model_html)
    page.write_text(render(cfg, summary, f"stats/{page.name}",
                           f"model/{page.name}" if model_html else "", model_data,
                           worst, errors, model_dir))
    runs = sorted((p for p in out_dir.glob("*.html") if p.name != "index.html"), reverse=True)
    (out_dir / "index.html").write_text(
        "<!doctype html><html lang='en'><head><meta charset='utf-8'><title>Fairway runs"
        f"</title><style>{STYLE}</style></head><body><h1>Runs of {e(summary['pipeline'])}"
        "</h1><ul id='runs'>" + "".join(f"<li><a href='{e(p.name)}'>{e(p.stem)}</a></li>"
                                        for p in runs) + "</ul></body></html>\n")
    return page
