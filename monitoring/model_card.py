"""`fairway card`: a model card per pushed model, from ML Metadata and TFMA, as JSON and as one
self-contained HTML page (no scripts, no network).

The Model Card Toolkit does not install against this stack (MCT 2.0.0 requires
tensorflow-model-analysis<0.42, absl-py<1.1 and jsonschema<4; Fairway pins TFMA 0.47), so the
card is written here. The JSON follows MCT's schema sections (model_details, model_parameters,
quantitative_analysis, considerations); Fairway's additions (lineage, blessing, the measured
effect of distillation, feature importance) sit inside those sections. Every number says where
it comes from: the Evaluator's TFMA output, TFDV statistics, the run's MLMD records, or a
measurement made when the card was written.
"""
from __future__ import annotations

import datetime
import html
import json
import math
import pathlib
from typing import Any

import numpy as np

from monitoring.run_report import STYLE, importance_section
from pipeline import artifacts, metadata
from pipeline import pipeline as pipeline_lib
from pipeline.config import PipelineConfig
from pipeline.errors import FairwayError

e = html.escape
SCHEMA = "Model Card Toolkit schema sections (model_details, model_parameters, " \
         "quantitative_analysis, considerations), written by Fairway"
SMALL_SLICE = 100  # eval rows under which a slice's metrics are called noisy
SMALL_GROUP = 30  # negatives (FPR) or positives (FNR) of a group under which its rate is noisy
SMALL_TRAIN = 5000  # training rows under which the card says the model saw little data
# The nodes whose outputs make the pushed model's lineage, in pipeline order.
LINEAGE = (("CsvExampleGen", "Examples", "examples"),
           ("StatisticsGen", "ExampleStatistics", "statistics"),
           ("Transform", "TransformGraph", "transform graph"),
           (pipeline_lib.TEACHER, "Model", "teacher model"),
           (pipeline_lib.STUDENT, "Model", "student model"),
           ("Evaluator", "ModelEvaluation", "evaluation"),
           ("Evaluator", "ModelBlessing", "blessing"),
           ("ServingCheck", "InfraBlessing", "serving check"),
           ("Pusher", "PushedModel", "pushed model"))


class CardError(FairwayError):
    """No pushed model to describe, or an unknown version."""


def resolve(cfg: PipelineConfig, version: str | None) -> tuple[str, str]:
    """(version, pushing run) of `version`, default the newest pushed one."""
    pushed = metadata.pushed_versions(cfg)
    if not pushed:
        raise CardError(f"{cfg.metadata_path}: no pushed model of '{cfg.model_name}' yet; "
                        "`fairway run` pushes one once the Evaluator blesses it")
    if version is None:
        version = max(pushed, key=int)
    if str(version) not in pushed:
        raise CardError(f"no pushed version {version} of '{cfg.model_name}' in "
                        f"{cfg.metadata_path}; available: {', '.join(sorted(pushed, key=int))}")
    return str(version), pushed[str(version)]


def _clean(value):
    """JSON without NaN/inf (not valid JSON) and with plain Python numbers."""
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if isinstance(value, (np.floating, float)):
        return None if not math.isfinite(float(value)) else float(value)
    if isinstance(value, np.integer):
        return int(value)
    return value


def _lineage(s, executions: dict[str, Any]) -> dict[str, Any]:
    types = {t.id: t.name for t in s.get_artifact_types()}
    rows, ids = [], {}
    for node, kind, role in LINEAGE:
        ex = executions.get(node)
        if ex is None:
            continue
        out = [ev.artifact_id for ev in s.get_events_by_execution_ids([ex.id])
               if ev.type in (ev.OUTPUT, ev.DECLARED_OUTPUT)]
        for a in s.get_artifacts_by_id(out):
            if types[a.type_id] == kind:
                rows.append({"role": role, "node": node, "type": kind, "artifact_id": a.id,
                             "uri": a.uri, "execution_id": ex.id})
                ids[role] = a.id
    student = executions.get(pipeline_lib.STUDENT)
    taught = None
    if student is not None and "teacher model" in ids:
        inputs = {ev.artifact_id for ev in s.get_events_by_execution_ids([student.id])
                  if ev.type in (ev.INPUT, ev.DECLARED_INPUT)}
        taught = ids["teacher model"] in inputs
    return {"artifacts": rows, "student_trained_from_teacher": taught}


def _recorded_config(executions: dict[str, Any], node: str) -> dict[str, Any] | None:
    """A Trainer's custom_config as its execution recorded it (the settings of this run)."""
    ex = executions.get(node)
    raw = metadata.execution_property(ex, "custom_config") if ex is not None else None
    try:
        return json.loads(raw) if raw else None
    except ValueError:
        return None


def _data(stats_uri: str) -> list[dict[str, Any]]:
    out = []
    for split in ("train", "eval"):
        try:
            ds = artifacts.load_stats(stats_uri, split).datasets[0]
        except artifacts.ArtifactError:
            continue
        feats = []
        for f in ds.features:
            num = f.HasField("num_stats")
            c = f.num_stats.common_stats if num else f.string_stats.common_stats
            total = c.num_non_missing + c.num_missing
            row = {"name": ".".join(f.path.step), "kind": "numeric" if num else "categorical",
                   "missing": c.num_missing / total if total else 0.0}
            if num:
                row |= {"mean": f.num_stats.mean, "std": f.num_stats.std_dev,
                        "min": f.num_stats.min, "max": f.num_stats.max}
            else:
                top = f.string_stats.top_values
                row |= {"values": f.string_stats.unique,
                        "top": top[0].value if top else None}
            feats.append(row)
        out.append({"name": split, "rows": int(ds.num_examples), "features": feats,
                    "source": f"TFDV statistics (StatisticsGen) {stats_uri}"})
    return out


def _rates(metrics: dict[str, dict[str, float]], cfg: PipelineConfig) -> dict[str, Any]:
    """Fairness Indicators per group of the sensitive feature, from the Evaluator."""
    ds, t = cfg.dataset, cfg.evaluation.decision_threshold
    if not ds.sensitive:
        return {"sensitive": None}
    fi = "fairness_indicators_metrics/{}@{:g}"
    groups = {}
    for name, values in metrics.items():
        if name.startswith(f"{ds.sensitive}=") and "," not in name:
            groups[name.split("=", 1)[1]] = {
                "rows": values.get("example_count"),
                "fpr": values.get(fi.format("false_positive_rate", t)),
                "fnr": values.get(fi.format("false_negative_rate", t)),
                "auc": values.get("auc")}
    return {"sensitive": ds.sensitive, "threshold": t, "groups": groups,
            "protected": ds.groups[0] if ds.groups else None,
            "reference": ds.groups[1] if ds.groups else None,
            "fpr_gap": metrics.get("Overall", {}).get("false_positive_rate_gap")}


def _blessing(cfg: PipelineConfig, summary: dict[str, Any], fairness: dict[str, Any]):
    ev, overall = cfg.evaluation, summary["metrics"].get("Overall", {})
    failures = summary.get("blessing_failures", [])
    checks = [{"metric": "auc", "bound": f">= {ev.min_auc:g}", "threshold": ev.min_auc,
               "value": overall.get("auc")},
              {"metric": "auc change vs the last blessed model",
               "bound": f">= -{ev.max_auc_drop:g}", "threshold": ev.max_auc_drop, "value": None}]
    if cfg.dataset.groups:
        checks.append({"metric": "false_positive_rate_gap", "bound": f"<= {ev.max_fpr_gap:g}",
                       "threshold": ev.max_fpr_gap, "value": fairness.get("fpr_gap")})
    for c in checks:
        name = "auc (change vs baseline)" if c["metric"].startswith("auc change") else c["metric"]
        c["passed"] = not any(f.startswith(f"{name} on ") for f in failures)
    return {"blessed": summary["blessed"], "thresholds": checks, "failures": failures,
            "decision_threshold": ev.decision_threshold,
            "source": "thresholds: the config's [evaluation]; values and result: the "
                      "Evaluator's TFMA validation (ModelBlessing)"}


def _score(model_dir: str, data, threshold: float) -> dict[str, Any]:
    import tensorflow as tf

    from pipeline.metrics import auc, group_rates, score

    model = tf.saved_model.load(model_dir)
    p = score(model.signatures["from_examples"], data.serialized)
    return {"model": model_dir, "rows": int(len(p)), "auc": auc(data.labels, p),
            # Keras SavedModels keep their trainable variables; others have none to count.
            "parameters": int(sum(np.prod(v.shape)
                                  for v in getattr(model, "trainable_variables", ()))) or None,
            "groups": {g: r for g, r in group_rates(data.labels, p, data.groups,
                                                     threshold).items() if g}}


QUICK = ("not measured in the card each run writes (scoring every model would add a minute "
         "to the run): `fairway card VERSION` measures it")


def _effect(cfg: PipelineConfig, summary: dict[str, Any], data,
            measure: bool = True) -> dict[str, Any]:
    """Teacher vs student (vs the baseline without MinDiff, when the run trained one), scored
    through their exported `from_examples` signatures on the run's eval split."""
    out = {"evaluator": "the Evaluator (TFMA) evaluated only the pushed "
                        f"{'student' if cfg.distillation.enabled else 'teacher'}; no TFMA "
                        "metrics of the other models are in the run",
           "measured": {}, "note": ""}
    if not measure:
        out["note"] = QUICK
        return out
    if data is None:
        out["note"] = "the eval split could not be read: nothing measured"
        return out
    nodes = [pipeline_lib.TEACHER, pipeline_lib.STUDENT, pipeline_lib.BASELINE]
    for node in nodes:
        try:
            uri = metadata.node_artifact(summary, node, "Model")
        except LookupError:
            continue
        try:
            out["measured"][node] = _score(artifacts.serving_model_dir(uri), data,
                                           cfg.evaluation.decision_threshold)
        except (OSError, ValueError, KeyError) as err:
            out["measured"][node] = {"error": str(err)}
    rows = len(data.serialized)
    out["source"] = (f"measured by `fairway card` on the run's eval split ({rows} rows, "
                     "Examples from CsvExampleGen) through each exported model's "
                     f"`from_examples` signature at threshold {cfg.evaluation.decision_threshold:g}")
    if pipeline_lib.BASELINE not in out["measured"]:
        out["note"] = ("The effect of MinDiff needs the same teacher trained without it: "
                       "this run has no BaselineTrainer, so it is not measured here "
                       "(`fairway compare` trains one and measures it).")
    return out


def _limitations(cfg: PipelineConfig, summary, fairness, data_stats, eval_data) -> list[str]:
    auto = []
    for name, values in summary["metrics"].items():
        n = values.get("example_count")
        if name != "Overall" and n is not None and n < SMALL_SLICE:
            auto.append(f"slice {name}: {int(n)} eval rows (< {SMALL_SLICE}); its metrics "
                        "are noisy")
    if eval_data is not None and cfg.dataset.sensitive:
        for g in sorted(set(eval_data.groups.tolist()) - {""}):
            y = eval_data.labels[eval_data.groups == g]
            for label, rate in ((0, "FPR"), (1, "FNR")):
                k = int((y == label).sum())
                if k < SMALL_GROUP:
                    auto.append(f"group {cfg.dataset.sensitive}={g}: {k} eval rows with "
                                f"label {label} (< {SMALL_GROUP}); its {rate} is noisy")
    train = next((d for d in data_stats if d["name"] == "train"), None)
    if train and train["rows"] < SMALL_TRAIN:
        auto.append(f"trained on {train['rows']} rows (< {SMALL_TRAIN}: a sample?)")
    if not cfg.dataset.groups:
        auto.append("no sensitive feature and groups configured: fairness is neither "
                    "measured nor gated")
    return auto


def _eval_data(cfg: PipelineConfig, summary: dict[str, Any]):
    from pipeline.metrics import EvalData

    try:
        return EvalData(metadata.node_artifact(summary, "CsvExampleGen", "Examples"), cfg)
    except (LookupError, OSError, artifacts.ArtifactError):
        return None


def build(cfg: PipelineConfig, version: str | None = None,
          importance: bool = True, measure: bool = True) -> dict[str, Any]:
    """The card of a pushed version (default: the newest) as a dict in MCT's sections.
    `measure` False leaves out what the card would compute itself (teacher vs student scores,
    feature importance): the quick card written after every run."""
    importance = importance and measure
    from pipeline import explanations

    version, run = resolve(cfg, version)
    summary = metadata.run_summary(cfg, run)
    s = metadata.store(cfg)
    executions = metadata.node_executions(s, run)
    fairness = _rates(summary["metrics"], cfg)
    stats = _data(metadata.node_artifact(summary, "StatisticsGen", "ExampleStatistics"))
    eval_data = _eval_data(cfg, summary)
    teacher_cfg = _recorded_config(executions, pipeline_lib.TEACHER) or {}
    student_cfg = _recorded_config(executions, pipeline_lib.STUDENT) or {}
    recorded = bool(teacher_cfg)
    mindiff = teacher_cfg.get("mindiff") or {"weight": cfg.mindiff.weight,
                                             "kernel": cfg.mindiff.kernel,
                                             "label": cfg.mindiff.label}
    distillation = student_cfg.get("distillation") or (
        {k: getattr(cfg.distillation, k) for k in ("enabled", "hidden_units", "embedding_dim",
                                                   "alpha", "temperature", "mindiff_weight")}
        if cfg.distillation.enabled else {"enabled": False})
    imp, why_not = None, ""
    if importance and eval_data is not None:
        pairs = [tuple(cfg.dataset.groups)] if len(cfg.dataset.groups) == 2 else []
        try:
            imp = explanations.eval_importance(summary["pushed_to"], eval_data.serialized,
                                               eval_data.groups, pairs)
        except (LookupError, OSError) as err:
            why_not = str(err)
    else:
        why_not = QUICK if not measure else "not computed" if not importance else \
            "the eval split could not be read"
    performance = [{"type": metric, "value": value, "slice": slice_name}
                   for slice_name, values in summary["metrics"].items()
                   for metric, value in sorted(values.items())]
    when = datetime.datetime.fromtimestamp(int(version), datetime.timezone.utc) \
        if version.isdigit() else None
    card = {
        "schema": SCHEMA,
        "model_details": {
            "name": cfg.model_name,
            "overview": cfg.card.intended_use,
            "version": {"name": version, "date": when.isoformat() if when else None},
            "owners": [{"name": o} for o in cfg.card.owners],
            "path": summary["pushed_to"],
            "lineage": {"pipeline": summary["pipeline"], "run_id": run,
                        **_lineage(s, executions),
                        "source": f"ML Metadata {cfg.metadata_path}"},
        },
        "model_parameters": {
            "model_architecture": {
                "teacher": {k: teacher_cfg.get("training", {}).get(k)
                            for k in ("hidden_units", "embedding_dim", "train_steps",
                                      "batch_size", "learning_rate")},
                "student": ({k: distillation.get(k) for k in ("hidden_units", "embedding_dim")}
                            if distillation.get("enabled") else None)},
            "input_format": "serving_default: raw features as named tensors; from_examples: "
                            "serialized tf.Example; explain: attributions per raw feature",
            "output_format": "probability of the positive class (0-1)",
            "label": cfg.dataset.label,
            "features": {"numeric": list(cfg.dataset.numeric),
                         "categorical": list(cfg.dataset.categorical)},
            "data": stats,
            "mindiff": mindiff, "distillation": distillation,
            "settings_source": ("the Trainers' custom_config recorded in ML Metadata" if recorded
                                else "the config (the run recorded no Trainer settings)"),
        },
        "quantitative_analysis": {
            "performance_metrics": performance,
            "source": "the Evaluator's TFMA output " + metadata.node_artifact(
                summary, "Evaluator", "ModelEvaluation"),
            "fairness_indicators": fairness,
            "blessing": _blessing(cfg, summary, fairness),
            "distillation_effect": _effect(cfg, summary, eval_data, measure),
            "feature_importance": imp, "feature_importance_unavailable": why_not or None,
        },
        "considerations": {
            "users": [{"description": u} for u in cfg.card.users],
            "use_cases": [{"description": cfg.card.intended_use}],
            "limitations": [{"description": x, "source": "config"}
                            for x in cfg.card.limitations]
            + [{"description": x, "source": "automatic"}
               for x in _limitations(cfg, summary, fairness, stats, eval_data)],
        },
    }
    return _clean(card)


# ---------------------------------------------------------------- HTML


def _num(v, digits: int = 4) -> str:
    if v is None:
        return "–"
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    return e(str(v))


def _table(head: list[str], rows: list[list[Any]], id_: str) -> str:
    return (f"<table id='{id_}'><tr>" + "".join(f"<th>{e(h)}</th>" for h in head) + "</tr>"
            + "".join("<tr>" + "".join(f"<td>{_num(v)}</td>" for v in r) + "</tr>"
                      for r in rows) + "</table>")


def _metrics_table(card: dict[str, Any]) -> str:
    from pipeline.eval_config import key_metrics

    qa = card["quantitative_analysis"]
    shown = key_metrics(qa["blessing"]["decision_threshold"])
    by_slice: dict[str, dict[str, float]] = {}
    for m in qa["performance_metrics"]:
        by_slice.setdefault(m["slice"], {})[m["type"]] = m["value"]
    keys = [(label, key) for label, key in shown if any(key in v for v in by_slice.values())]
    return _table(["slice"] + [label for label, _ in keys],
                  [[name] + [v.get(key) for _, key in keys] for name, v in by_slice.items()],
                  "metrics-table")


def _effect_html(effect: dict[str, Any], groups: tuple[str, ...]) -> str:
    rows = []
    for node, m in effect["measured"].items():
        if "error" in m:
            rows.append([node, m["error"], None, None, None, None])
            continue
        rates = [m["groups"].get(g, {}) for g in groups]
        gap = (abs(rates[0]["fpr"] - rates[1]["fpr"]) if len(rates) == 2 and all(
            r.get("fpr") is not None for r in rates) else None)
        rows.append([node, m["parameters"], m["auc"],
                     *[r.get("fpr") for r in rates], gap])
    head = ["model", "parameters", "auc", *[f"fpr {g}" for g in groups]] + (
        ["fpr gap"] if len(groups) == 2 else [])
    return (f"<p>{e(effect['evaluator'])}.</p>"
            + (f"<p>Measured: {e(effect.get('source', ''))}.</p>"
               + _table(head, rows, "effect-table") if effect["measured"] else "")
            + (f"<p id='effect-note'>{e(effect['note'])}</p>" if effect["note"] else ""))


def render(card: dict[str, Any]) -> str:
    md, mp = card["model_details"], card["model_parameters"]
    qa, co = card["quantitative_analysis"], card["considerations"]
    fair, bless = qa["fairness_indicators"], qa["blessing"]
    version = md["version"]
    groups = tuple(g for g in (fair.get("protected"), fair.get("reference")) if g)
    data_rows = [[d["name"], d["rows"], f["name"], f["kind"], f"{f['missing']:.1%}",
                  (f"mean {f['mean']:.4g}, std {f['std']:.4g}, min {f['min']:.4g}, max "
                   f"{f['max']:.4g}" if f["kind"] == "numeric"
                   else f"{f['values']} values, top {f['top']}")]
                 for d in mp["data"] for f in d["features"]]
    data_head = "".join(f"<li>{e(d['name'])}: {d['rows']} rows, {len(d['features'])} "
                        "features</li>" for d in mp["data"])
    fairness = "<p>no sensitive feature configured</p>"
    if fair.get("sensitive"):
        fairness = (f"<p>Fairness Indicators at threshold {fair['threshold']:g} by "
                    f"{e(fair['sensitive'])}; FPR gap |FPR({e(str(fair['protected']))}) − "
                    f"FPR({e(str(fair['reference']))})| = <b id='fpr-gap'>"
                    f"{_num(fair['fpr_gap'])}</b>.</p>"
                    + _table(["group", "rows", "FPR", "FNR", "AUC"],
                             [[g, v["rows"], v["fpr"], v["fnr"], v["auc"]]
                              for g, v in fair["groups"].items()], "fairness-table"))
    verdict = ("<span class='ok'>blessed</span>" if bless["blessed"]
               else "<span class='bad'>not blessed</span>")
    lineage = md["lineage"]
    settings = {"MinDiff": mp["mindiff"], "distillation": mp["distillation"]}
    imp = qa["feature_importance"]
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>Model card: {e(md['name'])} version {e(version['name'])}</title>
<style>{STYLE}</style></head><body>
<h1>Model card: {e(md['name'])}, version <span id="version">{e(version['name'])}</span></h1>
<p>Pushed {e(version['date'] or '')} to <code>{e(md['path'] or '')}</code>; {verdict}.
Owners: {e(', '.join(o['name'] for o in md['owners']) or 'not stated ([card] owners)')}.</p>
<nav><a href="#intended-use">Intended use</a><a href="#data">Training data</a>
<a href="#evaluation">Evaluation</a><a href="#fairness">Fairness</a>
<a href="#training">MinDiff and distillation</a><a href="#lineage">Lineage</a>
<a href="#blessing">Blessing</a><a href="#limitations">Limitations</a>
<a href="#importance">Feature importance</a></nav>
<h2 id="intended-use">Intended use</h2>
<p>{e(md['overview'])}</p>
{'<p>Users: ' + e('; '.join(u['description'] for u in co['users'])) + '</p>'
 if co['users'] else ''}
<p>Label <code>{e(mp['label'])}</code>; input: {e(mp['input_format'])}; output:
{e(mp['output_format'])}.</p>
<h2 id="data">Training data (TFDV statistics of the run)</h2>
<ul>{data_head}</ul>
{_table(["split", "rows", "feature", "kind", "missing", "summary"], data_rows, "data-table")}
<h2 id="evaluation">Evaluation overall and per slice (TFMA)</h2>
<p>Source: {e(qa['source'])}.</p>
{_metrics_table(card)}
<h2 id="fairness">Fairness Indicators</h2>
{fairness}
<h2 id="training">MinDiff and distillation</h2>
<p>Settings ({e(mp['settings_source'])}):</p>
{_table(["technique", "settings"], [[k, json.dumps(v, sort_keys=True)]
                                    for k, v in settings.items()], "settings-table")}
<p>Architecture: {e(json.dumps(mp['model_architecture'], sort_keys=True))}</p>
{_effect_html(qa['distillation_effect'], groups)}
<h2 id="lineage">Lineage (ML Metadata)</h2>
<p>Run <code id="run-id">{e(lineage['run_id'])}</code> of {e(lineage['pipeline'])}; the student
was trained from this teacher (base_model input):
{e(str(lineage['student_trained_from_teacher']))}.</p>
{_table(["role", "node", "type", "artifact id", "execution id", "uri"],
        [[a["role"], a["node"], a["type"], a["artifact_id"], a["execution_id"], a["uri"]]
         for a in lineage["artifacts"]], "lineage-table")}
<h2 id="blessing">Blessing thresholds and result</h2>
<p>{verdict}; {e(bless['source'])}.</p>
{_table(["metric", "required", "value", "passed"],
        [[c["metric"], c["bound"], c["value"], "yes" if c["passed"] else "no"]
         for c in bless["thresholds"]], "blessing-table")}
{''.join(f"<p class='bad'>not blessed: {e(f)}</p>" for f in bless['failures'])}
<h2 id="limitations">Known limitations</h2>
<ul id="limitations-list">{''.join(f"<li>{e(x['description'])} <i>({e(x['source'])})</i></li>"
                               for x in co['limitations']) or '<li>none stated</li>'}</ul>
<h2 id="importance">Global feature importance</h2>
{importance_section(imp, fair.get('sensitive'), qa['feature_importance_unavailable'] or '')}
</body></html>
"""


def write(cfg: PipelineConfig, version: str | None = None,
          out_dir: pathlib.Path | None = None,
          measure: bool = True) -> tuple[pathlib.Path, pathlib.Path]:
    """Writes <out>/<version>.html and .json (default out: <output>/cards)."""
    card = build(cfg, version, measure=measure)
    out_dir = out_dir or cfg.command_dir("cards")
    out_dir.mkdir(parents=True, exist_ok=True)
    name = card["model_details"]["version"]["name"]
    page, data = out_dir / f"{name}.html", out_dir / f"{name}.json"
    data.write_text(json.dumps(card, indent=2, sort_keys=True) + "\n")
    page.write_text(render(card))
    return page, data
