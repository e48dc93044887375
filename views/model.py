"""The model view: what Fairness Indicators shows, offline, from the Evaluator's own TFMA result.

- Per slice: example count (an integer), AUC, and FPR, FNR, precision and recall at every
  Fairness Indicators threshold (evaluation.fairness_thresholds, 0.1 to 0.9 by default), each
  with its confidence interval when the Evaluator computed them (evaluation.confidence_intervals,
  TFMA's Poisson bootstrap by default).
- Each group of the sensitive feature against the reference group: the gap of a rate across
  thresholds, drawn against the gate's bound (evaluation.max_fpr_gap) for the FPR, and the
  gate's own metric (false_positive_rate_gap) at the decision threshold.
- ROC and precision-recall curves (TFMA's ConfusionMatrixPlot) and the calibration plot (TFMA's
  CalibrationPlot) per slice.
- Error analysis: the highest-loss eval rows, one column per feature, filterable by slice.

One source of truth: the metrics and curves are read from the EvalResult (tfma.load_eval_result)
and only re-shaped. Error analysis is the one part TFMA does not write (per-row predictions):
it is passed in, scored by the same model on the same eval split (monitoring.run_report).
Charts: the vendored Vega-Lite of views.stats, inlined: one file, no network.
"""
from __future__ import annotations

import html
import json
import math
from typing import Any, Mapping, Sequence

from views.stats import COLORS, VEGA_LOGGER, _json, scripts

e = html.escape
FI = "fairness_indicators_metrics/{}@{:g}"
# (page label, Fairness Indicators sub-metric): the rates charted across thresholds.
RATES = (("FPR", "false_positive_rate"), ("FNR", "false_negative_rate"),
         ("precision", "precision"), ("recall", "recall"))
GAP_METRIC = "false_positive_rate_gap"  # pipeline.tfma_metrics.NAME
CI_NAMES = {"POISSON_BOOTSTRAP": "Poisson bootstrap (20 samples)",
            "JACKKNIFE": "jackknife (20 buckets)"}


def _value(v: Mapping[str, Any] | None) -> list[float | None] | None:
    """[value, lower, upper] of a metric as tfma.load_eval_result gives it (a doubleValue, or a
    boundedValue when confidence intervals were computed); None when absent."""
    if not v:
        return None
    if "boundedValue" in v:
        b = v["boundedValue"]
        out = [b.get("value"), b.get("lowerBound"), b.get("upperBound")]
    elif "doubleValue" in v:
        out = [v["doubleValue"], None, None]
    else:
        return None
    # json_format writes NaN and infinities as strings ("NaN"): undefined -> None.
    floats = [None if x is None else float(x) for x in out]
    return [x if x is not None and math.isfinite(x) else None for x in floats]


def slice_name(key: Sequence[tuple[str, Any]]) -> str:
    return ", ".join(f"{k}={v}" for k, v in key) or "Overall"


def _curves(plots: Mapping[str, Any]) -> dict[str, list[list[float]]]:
    """ROC [fpr, tpr, threshold], PR [recall, precision, threshold] and calibration
    [mean prediction, mean label, examples] from one slice's TFMA plots."""
    out: dict[str, list[list[float]]] = {"roc": [], "pr": [], "calibration": []}
    for m in plots.get("confusionMatrixAtThresholds", {}).get("matrices", []):
        if "threshold" not in m:  # TFMA repeats the first matrix without a threshold
            continue
        tp, fp = m.get("truePositives", 0.0), m.get("falsePositives", 0.0)
        fn, tn = m.get("falseNegatives", 0.0), m.get("trueNegatives", 0.0)
        t = max(float(m["threshold"]), 0.0)
        if tp + fn and fp + tn:
            out["roc"].append([fp / (fp + tn), tp / (tp + fn), t])
        if tp + fp and tp + fn:
            out["pr"].append([tp / (tp + fn), tp / (tp + fp), t])
    for b in plots.get("calibrationHistogramBuckets", {}).get("buckets", []):
        n = b.get("numWeightedExamples", 0.0)
        if n > 0:
            out["calibration"].append([b.get("totalWeightedRefinedPrediction", 0.0) / n,
                                       b.get("totalWeightedLabel", 0.0) / n, n])
    return out


def load(evaluation_uri: str, thresholds: Sequence[float]) -> dict[str, Any]:
    """The view's data from a ModelEvaluation artifact: slices (count, AUC, rates across
    `thresholds`, the gate's gap) and curves, all read from TFMA's EvalResult."""
    import tensorflow_model_analysis as tfma

    result = tfma.load_eval_result(evaluation_uri)
    options = result.config.options  # the EvalConfig the result was computed with
    ci = (tfma.ConfidenceIntervalOptions.ConfidenceIntervalMethod.Name(
        options.confidence_intervals.method)
        if options.compute_confidence_intervals.value else None)
    slices = []
    for key, by_output in result.slicing_metrics:
        metrics = by_output.get("", {}).get("", {})
        count = _value(metrics.get("example_count"))
        row = {"slice": slice_name(key), "feature": ", ".join(k for k, _ in key),
               "count": int(round(count[0])) if count and count[0] is not None else None,
               "auc": _value(metrics.get("auc")), "gap": _value(metrics.get(GAP_METRIC)),
               "rates": {}}
        for label, name in RATES:
            row["rates"][label] = [[t, *(_value(metrics.get(FI.format(name, t))) or
                                         [None, None, None])] for t in thresholds]
        slices.append(row)
    slices.sort(key=lambda r: (r["feature"].count(",") if r["feature"] else -1, r["feature"],
                               r["slice"]))
    curves = {slice_name(key): _curves(by_output.get("", {}).get("", {}))
              for key, by_output in result.plots}
    return {"slices": slices, "curves": curves, "thresholds": list(thresholds),
            "confidence_intervals": ci}


def _fmt(v: list[float | None] | None, digits: int = 4) -> str:
    if not v or v[0] is None:
        return "–"
    s = f"{v[0]:.{digits}f}"
    if len(v) > 2 and v[1] is not None and v[2] is not None:
        s += f" <small>[{v[1]:.{digits}f}, {v[2]:.{digits}f}]</small>"
    return s


def _at(row: Mapping[str, Any], label: str, threshold: float) -> list[float | None] | None:
    for t, *v in row["rates"][label]:
        if abs(t - threshold) < 1e-9:
            return v
    return None


def metrics_table(data: Mapping[str, Any], threshold: float, id_: str = "model-metrics") -> str:
    """Per slice: count (integer), AUC and the rates at `threshold`, with their intervals."""
    head = ["slice", "examples", "AUC"] + [f"{label}@{threshold:g}" for label, _ in RATES]
    rows = []
    for r in data["slices"]:
        cells = [e(r["slice"]), f"{r['count']:,}" if r["count"] is not None else "–",
                 _fmt(r["auc"])] + [_fmt(_at(r, label, threshold)) for label, _ in RATES]
        rows.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    ci = data.get("confidence_intervals")
    note = (f"<p>[lower, upper]: 95 % confidence interval, TFMA's {e(CI_NAMES.get(ci, ci))}.</p>"
            if ci else "<p>No confidence intervals: the Evaluator ran with "
            "evaluation.confidence_intervals = \"off\".</p>")
    return (f"{note}<table id=\"{e(id_)}\"><tr>" + "".join(f"<th>{e(h)}</th>" for h in head)
            + "</tr>" + "".join(rows) + "</table>")


def error_table(rows: Sequence[Mapping[str, Any]], features: Sequence[str],
                slices: Sequence[str], id_: str = "model-errors") -> str:
    """The highest-loss rows, one column per feature; `rows`: {loss, label, prediction,
    features: {name: value}, slices: [slice names the row is in]}. A select filters by slice."""
    head = ["loss", "label", "prediction", *features]
    body = []
    for r in rows:
        f = r["features"]
        cells = [f"{r['loss']:.4f}", str(r["label"]), f"{r['prediction']:.4f}",
                 *(e("" if f.get(k) is None else str(f.get(k))) for k in features)]
        body.append(f"<tr data-slices=\"{e(json.dumps(list(r['slices'])))}\">"
                    + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    options = "".join(f"<option>{e(s)}</option>" for s in ["Overall", *slices])
    return (f"<div class=\"fw-errors\" id=\"{e(id_)}\"><label>slice <select class=\"fw-slice\">"
            f"{options}</select></label> <span class=\"fw-shown\"></span>"
            "<div class=\"scroll\"><table><tr>" + "".join(f"<th>{e(h)}</th>" for h in head)
            + "</tr>" + "".join(body) + "</table></div></div>")


STYLE = """.fw-model{font:13px system-ui,sans-serif;color:#222}
.fw-model table{border-collapse:collapse;margin:.5em 0}.fw-model td,.fw-model th{padding:2px 8px;
border-bottom:1px solid #ddd;text-align:left;vertical-align:top}.fw-model th{background:#f4f4f4}
.fw-model small{color:#666}.fw-model .controls{margin:.5em 0}.fw-model .controls>*{margin-right:1em}
.fw-model .charts{display:flex;flex-wrap:wrap;gap:16px}.fw-model .scroll{overflow-x:auto;
max-height:520px}.fw-model .hidden{display:none}.fw-model .gate{color:#555}"""

SCRIPT = r"""
(function () {
  const root = document.getElementById(ROOT_ID);
  const data = JSON.parse(root.querySelector('script.fw-model-data').textContent);
  VEGA_LOGGER
  const palette = data.colors;
  const views = {};
  function render(el, spec) {
    if (views[el.className]) views[el.className].finalize();
    const compiled = vegaLite.compile(spec, {logger}).spec;
    const view = new vega.View(vega.parse(compiled), {renderer: 'svg', container: el, hover: true,
                                                     logger});
    views[el.className] = view;
    return view.runAsync();
  }
  function chosen() {
    const feature = root.querySelector('.fw-feature').value;
    return data.slices.filter(s => s.feature === '' || s.feature === feature);
  }
  const color = names => ({field: 'slice', type: 'nominal', title: 'slice',
                           scale: {domain: names, range: palette}});
  const rule = (x) => ({mark: {type: 'rule', strokeDash: [4, 3], color: '#888'},
                        encoding: {x: {datum: x}}});
  function ratesSpec() {
    const label = root.querySelector('.fw-rate').value, slices = chosen();
    const values = [];
    for (const s of slices) for (const r of s.rates[label]) if (r[1] !== null)
      values.push({slice: s.slice, t: r[0], v: r[1], lo: r[2] ?? r[1], hi: r[3] ?? r[1]});
    const names = slices.map(s => s.slice);
    const enc = {x: {field: 't', type: 'quantitative', title: 'decision threshold',
                     scale: {domain: [0, 1]}}, color: color(names)};
    return {width: 420, height: 240, data: {values}, layer: [
      {mark: {type: 'area', opacity: 0.15}, encoding: Object.assign({}, enc,
        {y: {field: 'lo', type: 'quantitative', title: label}, y2: {field: 'hi'}})},
      {mark: {type: 'line', point: true}, encoding: Object.assign({}, enc,
        {y: {field: 'v', type: 'quantitative'},
         tooltip: [{field: 'slice'}, {field: 't', title: 'threshold'},
                   {field: 'v', title: label, format: '.4f'}, {field: 'lo', format: '.4f'},
                   {field: 'hi', format: '.4f'}]})},
      rule(data.decision_threshold)]};
  }
  function gapSpec() {
    const label = root.querySelector('.fw-rate').value, g = data.gate;
    if (!g) return null;
    const ref = data.slices.find(s => s.slice === g.feature + '=' + g.reference);
    if (!ref) return null;
    const refAt = Object.fromEntries(ref.rates[label].map(r => [r[0], r[1]]));
    const values = [];
    for (const s of data.slices) {
      if (s.feature !== g.feature || s === ref) continue;
      for (const r of s.rates[label]) if (r[1] !== null && refAt[r[0]] !== null)
        values.push({slice: s.slice, t: r[0], gap: r[1] - refAt[r[0]]});
    }
    const layers = [{mark: {type: 'line', point: true}, encoding: {
      x: {field: 't', type: 'quantitative', title: 'decision threshold', scale: {domain: [0, 1]}},
      y: {field: 'gap', type: 'quantitative',
          title: label + ' gap to ' + g.feature + '=' + g.reference},
      color: color(values.map(v => v.slice).filter((v, i, a) => a.indexOf(v) === i)),
      tooltip: [{field: 'slice'}, {field: 't'}, {field: 'gap', format: '+.4f'}]}},
      rule(data.decision_threshold),
      {mark: {type: 'rule', color: '#999'}, encoding: {y: {datum: 0}}}];
    if (label === 'FPR') for (const b of [g.bound, -g.bound])
      layers.push({mark: {type: 'rule', color: '#c33', strokeDash: [6, 3]},
                   encoding: {y: {datum: b}}});
    return {width: 420, height: 240, data: {values}, layer: layers};
  }
  function curveSpec(kind) {
    const slices = chosen(), values = [];
    for (const s of slices) for (const p of (data.curves[s.slice] || {})[kind] || [])
      values.push({slice: s.slice, x: p[0], y: p[1], z: p[2]});
    const titles = {roc: ['false positive rate', 'true positive rate', 'threshold'],
                    pr: ['recall', 'precision', 'threshold'],
                    calibration: ['mean prediction', 'mean label', 'examples']}[kind];
    const enc = {x: {field: 'x', type: 'quantitative', title: titles[0], scale: {domain: [0, 1]}},
                 y: {field: 'y', type: 'quantitative', title: titles[1], scale: {domain: [0, 1]}},
                 color: color(slices.map(s => s.slice)), order: {field: 'z'},
                 tooltip: [{field: 'slice'}, {field: 'x', format: '.3f', title: titles[0]},
                           {field: 'y', format: '.3f', title: titles[1]},
                           {field: 'z', format: '.4~g', title: titles[2]}]};
    const line = kind === 'calibration'
      ? {mark: {type: 'point', filled: true}, encoding: Object.assign({}, enc,
          {size: {field: 'z', type: 'quantitative', title: 'examples', legend: null}})}
      : {mark: 'line', encoding: enc};
    const diag = {data: {values: [{x: 0, y: kind === 'pr' ? null : 0}, {x: 1, y: 1}]},
                  mark: {type: 'line', color: '#bbb', strokeDash: [3, 3]},
                  encoding: {x: {field: 'x', type: 'quantitative'},
                             y: {field: 'y', type: 'quantitative'}}};
    return {width: 260, height: 240, title: {roc: 'ROC', pr: 'Precision-recall',
            calibration: 'Calibration'}[kind], data: {values},
            layer: kind === 'pr' ? [line] : [diag, line]};
  }
  function drawAll() {
    const t0 = performance.now(), jobs = [];
    jobs.push(render(root.querySelector('.fw-rates-chart'), ratesSpec()));
    const gap = gapSpec(), gapEl = root.querySelector('.fw-gap-chart');
    if (gap && gapEl) jobs.push(render(gapEl, gap));
    for (const kind of ['roc', 'pr', 'calibration'])
      jobs.push(render(root.querySelector('.fw-' + kind + '-chart'), curveSpec(kind)));
    return Promise.all(jobs).then(() => {
      root.dataset.renderMs = Math.round(performance.now() - t0);
      root.dataset.charts = jobs.length;
      root.dataset.warnings = warnings.length;
      root.dataset.warningText = warnings.join(' | ');
      root.dataset.rendered = 'yes';
    });
  }
  function filterErrors() {
    const box = root.querySelector('.fw-errors');
    if (!box) return;
    const want = box.querySelector('.fw-slice').value;
    let shown = 0;
    for (const r of box.querySelectorAll('tr[data-slices]')) {
      const show = want === 'Overall' || JSON.parse(r.dataset.slices).includes(want);
      r.classList.toggle('hidden', !show);
      shown += show;
    }
    box.querySelector('.fw-shown').textContent = shown + ' rows';
    box.dataset.shown = shown;
  }
  for (const c of root.querySelectorAll('.fw-rate, .fw-feature'))
    c.addEventListener('change', drawAll);
  const sel = root.querySelector('.fw-errors .fw-slice');
  if (sel) sel.addEventListener('change', filterErrors);
  filterErrors();
  drawAll();
})();
"""


def section(data: Mapping[str, Any], decision_threshold: float,
            gate: Mapping[str, Any] | None = None, errors: str = "",
            id_: str = "fw-model", with_scripts: bool = True) -> str:
    """The view as an HTML fragment. `data`: from load(); `gate`: {feature, protected,
    reference, bound} of the fairness gate, or None; `errors`: error_table()'s HTML."""
    features = sorted({s["feature"] for s in data["slices"] if s["feature"]},
                      key=lambda f: (f.count(","), f))
    first = gate["feature"] if gate and gate["feature"] in features else (features or [""])[0]
    chart_data = {"slices": data["slices"], "curves": data["curves"],
                  "decision_threshold": decision_threshold, "gate": gate,
                  "colors": list(COLORS) + ["#555", "#2aa", "#a52", "#77c", "#c7a"]}
    feature_opts = "".join(f"<option value=\"{e(f)}\"{' selected' if f == first else ''}>"
                           f"{e(f)}</option>" for f in features)
    rate_opts = "".join(f"<option>{e(label)}</option>" for label, _ in RATES)
    overall = next((s for s in data["slices"] if s["slice"] == "Overall"), None)
    gate_html = ""
    if gate:
        value = overall and overall.get("gap")
        verdict = ("" if not value or value[0] is None else
                   " <b class='ok'>within the bound</b>" if value[0] <= gate["bound"] else
                   " <b class='bad'>outside the bound</b>")
        gate_html = (f"<p class=\"gate\" id=\"{e(id_)}-gate\">Gate: |FPR({e(gate['feature'])}="
                     f"{e(gate['protected'])}) − FPR({e(gate['feature'])}={e(gate['reference'])})|"
                     f" at {decision_threshold:g} = {_fmt(value)}; bound {gate['bound']:g}:"
                     f"{verdict}"
                     " (TFMA's false_positive_rate_gap; red lines: ± the bound).</p>")
    script = SCRIPT.replace("VEGA_LOGGER", VEGA_LOGGER).replace("ROOT_ID", json.dumps(id_))
    gap_chart = ("<div><h4>Gap to the reference group</h4><div class=\"fw-gap-chart\"></div>"
                 "</div>" if gate else "")
    return (f"<div class=\"fw-model\" id=\"{e(id_)}\"><style>{STYLE}</style>"
            f"{metrics_table(data, decision_threshold, id_=f'{id_}-metrics')}"
            f"<h3>Across decision thresholds</h3>{gate_html}"
            f"<div class=\"controls\"><label>rate <select class=\"fw-rate\">{rate_opts}"
            f"</select></label><label>slices by <select class=\"fw-feature\">{feature_opts}"
            "</select></label><span>dashed line: the decision threshold; bands: the "
            "confidence intervals</span></div>"
            "<div class=\"charts\"><div><h4>Per slice</h4><div class=\"fw-rates-chart\"></div>"
            f"</div>{gap_chart}</div>"
            "<h3>ROC, precision-recall and calibration</h3><div class=\"charts\">"
            "<div class=\"fw-roc-chart\"></div><div class=\"fw-pr-chart\"></div>"
            "<div class=\"fw-calibration-chart\"></div></div>"
            + (f"<h3>Error analysis</h3>{errors}" if errors else "")
            + f"<script type=\"application/json\" class=\"fw-model-data\">{_json(chart_data)}"
            "</script>" + (scripts() if with_scripts else "")
            + f"<script>{script}</script></div>")


def page(data: Mapping[str, Any], decision_threshold: float,
         gate: Mapping[str, Any] | None = None, errors: str = "",
         title: str = "Model") -> str:
    """A whole self-contained HTML page of the view (scripts inlined: no network)."""
    return (f"<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{e(title)}"
            "</title><style>body{font:14px system-ui,sans-serif;margin:1.5em;color:#222}"
            ".ok{color:#070}.bad{color:#b00}</style></head><body>"
            f"<h1>{e(title)}</h1>{section(data, decision_threshold, gate, errors)}"
            "</body></html>\n")
