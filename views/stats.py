"""The statistics view: Facets Overview's tables, offline, from TFDV's own artifacts.

One row per feature, the datasets (splits, runs, spans, a window) overlaid on the same row:
numeric features with count, missing %, zeros %, mean, std, min, median, max and a histogram
(standard or quantile, linear or log scale); categorical features with unique values, top
values, missing % and average length. Rows sort by name, by the distance between the datasets,
by missing % and by non-uniformity; a filter box narrows them; anomalies sit on their feature's
row. The schema is a table of its own (type, presence, domain, value range, comparators).

One source of truth: every number comes from the DatasetFeatureStatistics, Schema and Anomalies
protos. The median is the 0.5 boundary of TFDV's quantiles histogram (`num_stats.median` is
not always filled). The distance is TFDV's drift comparator, as the DataGate computes it
(`tfdv.validate_statistics(..., previous_statistics=...)`): the schema's own drift_comparator
where it has one, else Jensen-Shannon divergence for numeric and L-infinity for categorical
features (the comparators the curated schemas use). Non-uniformity is 1 − the normalised
entropy of the histogram TFDV wrote (standard buckets, or the rank histogram of categories).

Charts: Vega-Lite, vendored in views/vendor/ (versions, licences and the page-weight numbers
that chose it over Plotly are in views/vendor/README.md) and inlined, so a page is one file
that needs no network.
"""
from __future__ import annotations

import html
import json
import math
import pathlib
from typing import Any, Mapping, Sequence

VENDOR = pathlib.Path(__file__).resolve().parent / "vendor"
# Vega 5.33.1 + Vega-Lite 5.23.0 (BSD-3-Clause), chosen over Plotly 2.35.2 (MIT) on measured
# weight and drawing time: 767 KB of script (257 KB gzipped) vs plotly.min.js's 4.56 MB (1.33 MB);
# 200 features drawn in 2.8 s vs 10.4 s (views/vendor/README.md, `make bench-stats`).
SCRIPTS = ("vega.min.js", "vega-lite.min.js")  # loaded in this order
COLORS = ("#4a7bd0", "#e08a2c", "#3a9a5b", "#b04fb0", "#8c6d31", "#d64d4d")
TOP = 10  # categories charted per feature
e = html.escape


def _dataset(stats) -> Any:
    """The one DatasetFeatureStatistics of a list (StatisticsGen writes one per split)."""
    if hasattr(stats, "datasets"):
        if len(stats.datasets) != 1:
            raise ValueError(f"expected statistics of one dataset, got {len(stats.datasets)}")
        return stats.datasets[0]
    return stats


def _name(f) -> str:
    return ".".join(f.path.step) if f.path.step else f.name


def _common(f):
    kind = f.WhichOneof("stats")
    return getattr(f, kind).common_stats if kind in ("num_stats", "string_stats") else None


def missing_fraction(f) -> float:
    c = _common(f)
    if c is None:
        return float("nan")
    total = c.num_non_missing + c.num_missing
    return c.num_missing / total if total else float("nan")


def _histogram(num_stats, kind: str):
    from tensorflow_metadata.proto.v0 import statistics_pb2

    want = getattr(statistics_pb2.Histogram, kind)
    for h in num_stats.histograms:
        if h.type == want:
            return h
    return None


def median(num_stats) -> float:
    """The 0.5 boundary of TFDV's quantiles histogram (equal-count buckets): the high value of
    the bucket where the cumulative count reaches half. NaN without one."""
    h = _histogram(num_stats, "QUANTILES")
    if h is None or not h.buckets:
        return float("nan")
    total = sum(b.sample_count for b in h.buckets)
    seen = 0.0
    for b in h.buckets:
        seen += b.sample_count
        if seen >= total / 2 - 1e-9 * max(total, 1):
            return b.high_value
    return h.buckets[-1].high_value


def quantiles(num_stats) -> list[list[float]]:
    """[[cumulative fraction, value], ...] from the quantiles histogram: its boundaries."""
    h = _histogram(num_stats, "QUANTILES")
    if h is None or not h.buckets:
        return []
    total = sum(b.sample_count for b in h.buckets) or 1.0
    out, seen = [[0.0, h.buckets[0].low_value]], 0.0
    for b in h.buckets:
        seen += b.sample_count
        out.append([seen / total, b.high_value])
    return out


def _buckets(f) -> list[float]:
    """The counts of the histogram non-uniformity is measured on."""
    if f.HasField("num_stats"):
        h = _histogram(f.num_stats, "STANDARD")
        return [b.sample_count for b in h.buckets] if h else []
    s = f.string_stats
    if s.rank_histogram.buckets:
        return [b.sample_count for b in s.rank_histogram.buckets]
    return [v.frequency for v in s.top_values]


def non_uniformity(f) -> float:
    """1 − entropy / log(buckets) of the feature's histogram: 0 for a flat one, 1 when every
    value is in one bucket. NaN without a histogram of two or more buckets."""
    counts = [c for c in _buckets(f)]
    total = sum(counts)
    if len(counts) < 2 or total <= 0:
        return float("nan")
    h = -sum(c / total * math.log(c / total) for c in counts if c > 0)
    return max(0.0, 1.0 - h / math.log(len(counts)))


def _num(v: float) -> float | None:
    return None if v is None or isinstance(v, float) and not math.isfinite(v) else v


def feature_series(f) -> dict[str, Any]:
    """The numbers of one feature in one dataset, all read from its FeatureNameStatistics."""
    c = _common(f)
    out: dict[str, Any] = {"missing": _num(missing_fraction(f)),
                           "count": int(c.num_non_missing) if c else 0,
                           "nonuniformity": _num(non_uniformity(f))}
    if f.HasField("num_stats"):
        s = f.num_stats
        h = _histogram(s, "STANDARD")
        total = sum(b.sample_count for b in h.buckets) if h else 0
        out.update(
            kind="numeric", mean=s.mean, std=s.std_dev, min=s.min, max=s.max,
            median=_num(median(s)),
            zeros=(s.num_zeros / c.num_non_missing) if c.num_non_missing else None,
            hist=[[b.low_value, b.high_value, b.sample_count / total]
                  for b in (h.buckets if h and total else [])],
            quantiles=quantiles(s))
    elif f.HasField("string_stats"):
        s = f.string_stats
        n = c.num_non_missing or 1
        ranked = ([(b.label, b.sample_count) for b in s.rank_histogram.buckets]
                  or [(v.value, v.frequency) for v in s.top_values])
        out.update(kind="categorical", unique=int(s.unique), avg_length=s.avg_length,
                   top=[[label, count / n] for label, count in ranked])
    else:
        out.update(kind=f.WhichOneof("stats") or "other")
    return out


def _with_comparators(schema, features: Mapping[str, str]):
    """A copy of `schema` in which every feature of `features` ({name: kind}) has a drift
    comparator: its own, else JSD (numeric) or L-infinity (categorical). Features the schema
    lacks are added with their kind's type."""
    from tensorflow_metadata.proto.v0 import schema_pb2

    probe = schema_pb2.Schema()
    if schema is not None:
        probe.CopyFrom(schema)
    known = {f.name: f for f in probe.feature}
    for name, kind in features.items():
        f = known.get(name)
        if f is None:
            f = probe.feature.add(name=name, type=schema_pb2.FLOAT if kind == "numeric"
                                  else schema_pb2.BYTES)
        if f.HasField("drift_comparator"):
            continue
        if kind == "numeric":
            f.drift_comparator.jensen_shannon_divergence.threshold = 1.0
        else:
            f.drift_comparator.infinity_norm.threshold = 1.0
    return probe


def distances(base, others: Sequence, schema=None, kinds: Mapping[str, str] | None = None
              ) -> list[dict[str, tuple[str, float]]]:
    """Per other dataset, {feature: (method, value)}: TFDV's drift measurement of the other
    dataset's statistics against `base`'s (the largest, if the comparator has several)."""
    import tensorflow_data_validation as tfdv
    from tensorflow_metadata.proto.v0 import anomalies_pb2, statistics_pb2

    def as_list(d):
        out = statistics_pb2.DatasetFeatureStatisticsList()
        out.datasets.add().CopyFrom(_dataset(d))
        return out

    kinds = kinds or {_name(f): ("numeric" if f.HasField("num_stats") else "categorical")
                      for f in _dataset(base).features
                      if f.HasField("num_stats") or f.HasField("string_stats")}
    probe = _with_comparators(schema, kinds)
    names = anomalies_pb2.DriftSkewInfo.Measurement.Type.Name
    result = []
    for other in others:
        found: dict[str, tuple[str, float]] = {}
        validated = tfdv.validate_statistics(as_list(other), probe,
                                             previous_statistics=as_list(base))
        for info in validated.drift_skew_info:
            name = ".".join(info.path.step)
            for m in info.drift_measurements:
                if name not in found or m.value > found[name][1]:
                    found[name] = (names(m.type).lower(), m.value)
        result.append(found)
    return result


def model(datasets: Sequence[tuple[str, Any]], schema=None,
          anomalies: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
    """One dict per feature (in the first dataset's order, then features only later datasets
    have): name, kind, {dataset: numbers}, distance (largest over the datasets after the
    first, with its method), anomalies [(dataset, short, long)]."""
    if not datasets:
        raise ValueError("no statistics to show")
    rows: dict[str, dict[str, Any]] = {}
    for label, stats in datasets:
        for f in _dataset(stats).features:
            name = _name(f)
            series = feature_series(f)
            row = rows.setdefault(name, {"name": name, "kind": series["kind"], "series": {},
                                         "distance": None, "method": None, "anomalies": []})
            row["series"][label] = series
    if len(datasets) > 1:
        kinds = {n: r["kind"] for n, r in rows.items() if r["kind"] in ("numeric",
                                                                          "categorical")}
        base = datasets[0][1]
        for (label, _), found in zip(datasets[1:], distances(
                base, [s for _, s in datasets[1:]], schema, kinds)):
            for name, (method, value) in found.items():
                row = rows.get(name)
                if row is not None and (row["distance"] is None or value > row["distance"]):
                    row["distance"], row["method"] = value, method
    for label, found in (anomalies or {}).items():
        for name, info in sorted(found.anomaly_info.items()):
            row = rows.setdefault(name, {"name": name, "kind": "other", "series": {},
                                         "distance": None, "method": None, "anomalies": []})
            row["anomalies"].append((label, info.short_description, info.description))
    return list(rows.values())


def dataset_anomalies(anomalies: Mapping[str, Any] | None) -> list[tuple[str, str, str]]:
    """(dataset, short, long) of the anomalies that belong to no feature."""
    out = []
    for label, found in (anomalies or {}).items():
        if found.HasField("dataset_anomaly_info"):
            info = found.dataset_anomaly_info
            out.append((label, info.short_description, info.description))
    return out


# ---------------------------------------------------------------------------------- schema

def _comparator(c) -> str:
    parts = []
    if c.HasField("infinity_norm"):
        parts.append(f"L-infinity ≤ {c.infinity_norm.threshold:g}")
    if c.HasField("jensen_shannon_divergence"):
        parts.append(f"Jensen-Shannon ≤ {c.jensen_shannon_divergence.threshold:g}")
    if c.HasField("normalized_abs_difference"):
        parts.append(f"normalized abs. difference ≤ {c.normalized_abs_difference.threshold:g}")
    return ", ".join(parts)


def schema_rows(schema) -> list[dict[str, Any]]:
    """One dict per schema feature: name, type, presence, domain values, value range,
    drift and skew comparators, environments it is not in."""
    from tensorflow_metadata.proto.v0 import schema_pb2

    domains = {d.name: list(d.value) for d in schema.string_domain}
    rows = []
    for f in schema.feature:
        values: list[str] = []
        if f.HasField("string_domain"):
            values = list(f.string_domain.value)
        elif f.domain:
            values = domains.get(f.domain, [])
        if f.HasField("int_domain"):
            d = f.int_domain
            lo = str(d.min) if d.HasField("min") else "−∞"
            hi = str(d.max) if d.HasField("max") else "∞"
            value_range = f"[{lo}, {hi}]"
        elif f.HasField("float_domain"):
            d = f.float_domain
            lo = f"{d.min:g}" if d.HasField("min") else "−∞"
            hi = f"{d.max:g}" if d.HasField("max") else "∞"
            value_range = f"[{lo}, {hi}]"
        else:
            value_range = ""
        presence = ""
        if f.HasField("presence"):
            p = f.presence
            presence = (f"≥ {p.min_fraction:.0%}" if p.HasField("min_fraction") else "")
            if p.min_count:
                presence += f" (≥ {p.min_count} examples)"
        rows.append({
            "name": f.name, "type": schema_pb2.FeatureType.Name(f.type),
            "presence": presence.strip(), "domain": f.domain, "values": values,
            "range": value_range,
            "drift": _comparator(f.drift_comparator) if f.HasField("drift_comparator") else "",
            "skew": _comparator(f.skew_comparator) if f.HasField("skew_comparator") else "",
            "not_in": ", ".join(f.not_in_environment)})
    return rows


def schema_table(schema, collapse: int = 8) -> str:
    """The schema as an HTML table; domains longer than `collapse` values fold."""
    rows = []
    for r in schema_rows(schema):
        vals = [e(v) for v in r["values"]]
        if len(vals) > collapse:
            dom = (f"<details><summary>{len(vals)} values: {', '.join(vals[:collapse])}, …"
                   f"</summary>{', '.join(vals)}</details>")
        else:
            dom = ", ".join(vals)
        rows.append(f"<tr data-feature=\"{e(r['name'])}\"><td>{e(r['name'])}</td>"
                    f"<td>{e(r['type'])}</td><td>{e(r['presence'])}</td><td>{dom}</td>"
                    f"<td>{e(r['range'])}</td><td>{e(r['drift'])}</td><td>{e(r['skew'])}</td>"
                    f"<td>{e(r['not_in'])}</td></tr>")
    return ("<table id=\"schema-table\"><thead><tr><th>feature</th><th>type</th>"
            "<th>presence</th><th>domain values</th><th>value range</th>"
            "<th>drift comparator</th><th>skew comparator</th><th>not in</th></tr></thead>"
            f"<tbody>{''.join(rows)}</tbody></table>")


def anomalies_table(anomalies: Mapping[str, Any] | None) -> str:
    """{dataset: Anomalies} as a table: dataset, feature, short and long description."""
    rows = [(label, name, info.short_description, info.description)
            for label, found in (anomalies or {}).items()
            for name, info in sorted(found.anomaly_info.items())]
    rows += [(label, "(dataset)", short, long) for label, short, long in
             dataset_anomalies(anomalies)]
    if not rows:
        return "<p id=\"anomalies-none\">No anomalies.</p>"
    return ("<table id=\"anomalies-table\"><thead><tr><th>dataset</th><th>feature</th>"
            "<th>anomaly</th><th>description</th></tr></thead><tbody>"
            + "".join(f"<tr><td>{e(a)}</td><td>{e(b)}</td><td>{e(c)}</td><td>{e(d)}</td></tr>"
                      for a, b, c, d in rows) + "</tbody></table>")


# ------------------------------------------------------------------------------------ HTML

def fmt(v: Any, pct: bool = False) -> str:
    if v is None or isinstance(v, float) and not math.isfinite(v):
        return "–"
    if pct:
        return f"{100 * v:.1f}%"
    if isinstance(v, int):
        return f"{v:,}"
    return f"{v:.4g}"


def _key(v: float | None) -> str:
    return "" if v is None else repr(float(v))


def _anomaly_cell(row: dict[str, Any]) -> str:
    return "".join(f"<div class=\"anomaly\" title=\"{e(long)}\"><b>{e(label)}</b>: "
                   f"{e(short)}<br><small>{e(long)}</small></div>"
                   for label, short, long in row["anomalies"])


NUMERIC_COLUMNS = ("count", "missing", "zeros", "mean", "std", "min", "median", "max")
CATEGORICAL_COLUMNS = ("count", "missing", "unique", "avg_length", "top")


def _cell(s: dict[str, Any], column: str) -> str:
    if column in ("missing", "zeros"):
        return fmt(s.get(column), True)
    if column == "top":
        return ", ".join(f"{e(v)} {100 * p:.1f}%" for v, p in s.get("top", [])[:3])
    return fmt(s.get(column))


def _numbers(row: dict[str, Any], labels: list[str], columns: Sequence[str]) -> str:
    """The table of one feature's numbers: a line per dataset, a column per statistic."""
    lines = []
    for j, label in enumerate(labels):
        s = row["series"].get(label)
        if s is None:
            lines.append(f"<tr><td>{_swatch(j, label)}</td>"
                         f"<td colspan=\"{len(columns)}\">absent</td></tr>")
            continue
        lines.append(f"<tr data-dataset=\"{e(label)}\"><td>{_swatch(j, label)}</td>"
                     + "".join(f"<td class=\"{c}\">{_cell(s, c)}</td>" for c in columns)
                     + "</tr>")
    names = {"avg_length": "avg length", "top": "top values"}
    head = "".join(f"<th>{names.get(c, c)}</th>" for c in ("", *columns))
    return f"<table class=\"nums\"><tr>{head}</tr>{''.join(lines)}</table>"


def _swatch(j: int, label: str) -> str:
    return (f"<span class=\"swatch\" style=\"background:{COLORS[j % len(COLORS)]}\"></span>"
            f"{e(label)}")


def sort_keys(row: dict[str, Any]) -> dict[str, float | None]:
    """The values a row sorts by: distance, and the largest missing % and non-uniformity over
    the datasets."""
    series = row["series"].values()
    return {"distance": row["distance"],
            "missing": max((s["missing"] for s in series if s["missing"] is not None),
                           default=None),
            "nonuniformity": max((s["nonuniformity"] for s in series
                                  if s.get("nonuniformity") is not None), default=None)}


def ordered(features: list[dict[str, Any]], sort: str) -> list[dict[str, Any]]:
    """The rows in the page's order: by name, or descending by `sort` (missing values last,
    ties by name), as the page's script sorts them."""
    if sort == "name":
        return sorted(features, key=lambda r: r["name"])
    return sorted(features, key=lambda r: (-(sort_keys(r)[sort] if sort_keys(r)[sort]
                                             is not None else -math.inf), r["name"]))


def _row(i: int, row: dict[str, Any], numbers: str, chart: bool = True) -> str:
    keys = sort_keys(row)
    dist = (f"<div class=\"distance\">distance {row['distance']:.4f} "
            f"<small>({e(row['method'] or '')})</small></div>"
            if row["distance"] is not None else "")
    return (f"<tr class=\"feature{' has-anomaly' if row['anomalies'] else ''}\" "
            f"data-name=\"{e(row['name'])}\" data-distance=\"{_key(keys['distance'])}\" "
            f"data-missing=\"{_key(keys['missing'])}\" "
            f"data-nonuniformity=\"{_key(keys['nonuniformity'])}\">"
            f"<td class=\"fname\"><b>{e(row['name'])}</b>{dist}{_anomaly_cell(row)}</td>"
            f"<td>{numbers}</td>"
            + (f"<td><div class=\"chart\" data-index=\"{i}\"></div></td>" if chart else "")
            + "</tr>")


STYLE = """.fw-stats{font:13px system-ui,sans-serif;color:#222}
.fw-stats table{border-collapse:collapse}.fw-stats td,.fw-stats th{padding:2px 6px;
text-align:left;vertical-align:top}.fw-stats tr.feature>td{border-bottom:1px solid #ddd;
padding:6px}.fw-stats th{background:#f4f4f4}.fw-stats .nums td{text-align:right}.fw-stats .nums td:first-child{white-space:nowrap;text-align:left}
.fw-stats .swatch{display:inline-block;width:10px;height:10px;margin-right:4px}
.fw-stats .anomaly{color:#b00;max-width:260px}.fw-stats tr.has-anomaly>td.fname{
border-left:3px solid #b00}.fw-stats .controls{margin:.5em 0;position:sticky;top:0;
background:#fff;padding:4px 0;z-index:1}.fw-stats .controls>*{margin-right:1em}
.fw-stats .distance{color:#555}.fw-stats .chart{min-width:330px;min-height:60px}
.fw-stats .hidden{display:none}"""

# Vega's warnings and errors go to a list the page counts (data-warnings), not the console:
# the tests read it. Shared by every view's script.
VEGA_LOGGER = r"""const warnings = [];
  const logger = {level() { return this; }, error(...a) { warnings.push(a.join(' ')); return this; },
    warn(...a) { warnings.push(a.join(' ')); return this; }, info() { return this; },
    debug() { return this; }};"""

SCRIPT = r"""
(function () {
  const root = document.getElementById(ROOT_ID);
  const data = JSON.parse(root.querySelector('script.fw-data').textContent);
  const colors = {domain: data.datasets, range: data.colors};
  VEGA_LOGGER
  function spec(f, quantile, log) {
    const color = {field: 'dataset', type: 'nominal', scale: colors, legend: null};
    const base = {width: 300, height: 90, config: {view: {stroke: null}}};
    if (f.kind === 'numeric' && !quantile) {
      const values = [];
      for (const s of f.series) for (const b of s.hist)
        if (!log || b[2] > 0) values.push({dataset: s.dataset, lo: b[0], hi: b[1], p: b[2]});
      const floor = log ? Math.min(...values.map(v => v.p), 1) / 2 : 0;
      return Object.assign(base, {data: {values}, mark: {type: 'bar', opacity: 0.55},
        encoding: {x: {field: 'lo', type: 'quantitative', title: f.name},
                   x2: {field: 'hi'},
                   y: {field: 'p', type: 'quantitative', title: 'fraction',
                       scale: {type: log ? 'log' : 'linear'}},
                   y2: {datum: floor},
                   color, tooltip: [{field: 'dataset'}, {field: 'lo', format: '.4~g'},
                                    {field: 'hi', format: '.4~g'}, {field: 'p', format: '.2%'}]}});
    }
    if (f.kind === 'numeric') {
      const values = [];
      for (const s of f.series) for (const q of s.quantiles)
        values.push({dataset: s.dataset, q: q[0], v: q[1]});
      return Object.assign(base, {data: {values},
        mark: {type: 'line', point: true, interpolate: 'linear'},
        encoding: {x: {field: 'v', type: 'quantitative', title: f.name + ' (quantiles)',
                       scale: {type: log ? 'symlog' : 'linear'}},
                   y: {field: 'q', type: 'quantitative', title: 'cumulative fraction'},
                   color, tooltip: [{field: 'dataset'}, {field: 'q', format: '.0%'},
                                    {field: 'v', format: '.4~g'}]}});
    }
    const order = [];
    for (const s of f.series) for (const t of s.top.slice(0, TOP))
      if (!order.includes(t[0]) && order.length < TOP) order.push(t[0]);
    const values = [];
    for (const s of f.series) for (const t of s.top)
      if (order.includes(t[0]) && (!log || t[1] > 0)) values.push({dataset: s.dataset, value: t[0], p: t[1]});
    const floor = log ? Math.min(...values.map(v => v.p), 1) / 2 : 0;
    return Object.assign(base, {height: {step: 6 * Math.max(1, f.series.length) + 4},
      data: {values}, mark: {type: 'bar', opacity: 0.85},
      encoding: {y: {field: 'value', type: 'nominal', sort: order, title: null},
                 yOffset: {field: 'dataset', scale: {domain: data.datasets}},
                 x: {field: 'p', type: 'quantitative', title: 'fraction',
                     scale: {type: log ? 'log' : 'linear'}},
                 x2: {datum: floor},
                 color, tooltip: [{field: 'dataset'}, {field: 'value'}, {field: 'p', format: '.2%'}]}});
  }
  const views = {};
  function draw(el) {
    const i = +el.dataset.index, f = data.features[i];
    if (views[i]) views[i].finalize();
    const quantile = root.querySelector('.fw-quantile').checked;
    const log = root.querySelector('.fw-log').checked;
    const compiled = vegaLite.compile(spec(f, quantile, log), {logger}).spec;
    const view = new vega.View(vega.parse(compiled), {renderer: 'svg', container: el, hover: true,
                                                     logger});
    views[i] = view;
    return view.runAsync();
  }
  function drawAll() {
    const t0 = performance.now();
    const charts = Array.from(root.querySelectorAll('.chart'));
    return Promise.all(charts.map(draw)).then(() => {
      root.dataset.renderMs = Math.round(performance.now() - t0);
      root.dataset.charts = charts.length;
      root.dataset.warnings = warnings.length;
      root.dataset.resources = JSON.stringify(
        performance.getEntriesByType('resource').map(r => r.name));
      root.dataset.rendered = 'yes';
    });
  }
  function num(v) { return v === '' ? -Infinity : +v; }
  function sortRows() {
    const by = root.querySelector('.fw-sort').value;
    for (const body of root.querySelectorAll('tbody.features')) {
      const rows = Array.from(body.children);
      rows.sort((a, b) => by === 'name' ? a.dataset.name.localeCompare(b.dataset.name)
        : (num(b.dataset[by]) - num(a.dataset[by])) || a.dataset.name.localeCompare(b.dataset.name));
      for (const r of rows) body.appendChild(r);
    }
  }
  function filterRows() {
    const q = root.querySelector('.fw-filter').value.toLowerCase();
    for (const r of root.querySelectorAll('tr.feature'))
      r.classList.toggle('hidden', q !== '' && !r.dataset.name.toLowerCase().includes(q));
  }
  root.querySelector('.fw-sort').addEventListener('change', sortRows);
  root.querySelector('.fw-filter').addEventListener('input', filterRows);
  root.querySelector('.fw-quantile').addEventListener('change', drawAll);
  root.querySelector('.fw-log').addEventListener('change', drawAll);
  sortRows();
  drawAll();
})();
"""


def scripts() -> str:
    """The vendored chart scripts, inlined (`</script` cannot occur in them; checked)."""
    parts = []
    for name in SCRIPTS:
        text = (VENDOR / name).read_text(encoding="utf-8")
        if "</script" in text.lower():
            raise ValueError(f"{name}: contains '</script' and cannot be inlined")
        parts.append(f"<script>/* {name}: views/vendor/README.md */\n{text}</script>")
    return "\n".join(parts)


def _json(data: Any) -> str:
    # In a <script type=application/json>: '<' escaped so no '</script>' can end it early.
    return json.dumps(data, ensure_ascii=False, allow_nan=False).replace("<", "\\u003c")


def section(datasets: Sequence[tuple[str, Any]], schema=None,
            anomalies: Mapping[str, Any] | None = None, sort: str | None = None,
            id_: str = "fw-stats", with_scripts: bool = True, interactive: bool = True,
            tables_too: bool = True, quantiles: bool = False, log: bool = False) -> str:
    """The view as an HTML fragment (a <div> with its style, data and script): statistics
    tables (numeric, categorical), then the schema and the anomalies. `datasets`: [(label,
    DatasetFeatureStatistics[List])], the first is the base the distances are measured from.
    `sort`: name | distance | missing | nonuniformity (default: distance when there are two
    or more datasets, else name). `with_scripts=False` leaves out the vendored scripts (a
    page that shows the view twice needs them once). `interactive=False`: the tables only, in
    the `sort` order, with no script, controls or charts (a page that must stay script-free).
    `tables_too=False`: without the schema and anomalies tables (a page that shows them in
    sections of its own, with schema_table and anomalies_table). `quantiles`, `log`: the
    toggles' first state."""
    labels = [label for label, _ in datasets]
    if len(set(labels)) != len(labels):
        raise ValueError(f"dataset labels must differ: {labels}")
    features = model(datasets, schema, anomalies)
    sort = sort or ("distance" if len(datasets) > 1 else "name")
    if sort not in ("name", "distance", "missing", "nonuniformity"):
        raise ValueError(f"sort: expected name, distance, missing or nonuniformity, got {sort!r}")
    chart_data = {"datasets": labels, "colors": [COLORS[j % len(COLORS)]
                                                 for j in range(len(labels))],
                  "features": []}
    numeric, categorical = [], []
    for row in ordered(features, sort):
        if row["kind"] not in ("numeric", "categorical"):
            continue
        i = len(chart_data["features"])
        chart_data["features"].append({
            "name": row["name"], "kind": row["kind"],
            "series": [{"dataset": label,
                        **{k: row["series"][label].get(k, []) for k in ("hist", "quantiles",
                                                                         "top")}}
                       for label in labels if label in row["series"]]})
        if row["kind"] == "numeric":
            numeric.append(_row(i, row, _numbers(row, labels, NUMERIC_COLUMNS), interactive))
        else:
            categorical.append(_row(i, row, _numbers(row, labels, CATEGORICAL_COLUMNS),
                                    interactive))
    other = [r for r in features if r["kind"] not in ("numeric", "categorical")
             and r["anomalies"]]
    options = "".join(f"<option value=\"{v}\"{' selected' if v == sort else ''}>{t}</option>"
                      for v, t in (("name", "name"), ("distance", "distance between datasets"),
                                   ("missing", "missing %"),
                                   ("nonuniformity", "non-uniformity")))
    legend = " ".join(_swatch(j, label) for j, label in enumerate(labels))
    base_note = (f"Distance: TFDV's drift comparator of each dataset against "
                 f"<b>{e(labels[0])}</b> (the schema's, else Jensen-Shannon divergence for "
                 f"numeric and L-infinity for categorical features), the largest shown."
                 if len(labels) > 1 else "")
    tables = ""
    if numeric:
        tables += (f"<h3>Numeric features ({len(numeric)})</h3><table class=\"stats-table\" "
                   f"id=\"{id_}-numeric\"><tbody class=\"features\">{''.join(numeric)}"
                   "</tbody></table>")
    if categorical:
        tables += (f"<h3>Categorical features ({len(categorical)})</h3><table "
                   f"class=\"stats-table\" id=\"{id_}-categorical\"><tbody class=\"features\">"
                   f"{''.join(categorical)}</tbody></table>")
    if other:
        tables += ("<h3>Features with anomalies but no statistics</h3><ul>"
                   + "".join(f"<li><b>{e(r['name'])}</b>{_anomaly_cell(r)}</li>" for r in other)
                   + "</ul>")
    schema_part = (f"<h3 id=\"{id_}-schema\">Schema</h3>{schema_table(schema)}"
                   if schema is not None and tables_too else "")
    anomaly_part = (f"<h3 id=\"{id_}-anomalies\">Anomalies</h3>"
                    f"{anomalies_table(anomalies)}"
                    if anomalies is not None and tables_too else "")
    note = (f"<p>{base_note} Missing: share of examples without the feature; zeros: share of "
            "present values equal to 0; median: the 0.5 boundary of TFDV's quantiles "
            "histogram; non-uniformity: 1 − normalised entropy of the histogram.</p>")
    head = f"<div class=\"fw-stats\" id=\"{e(id_)}\"><style>{STYLE}</style>"
    if not interactive:
        return f"{head}<p>{legend}</p>{note}{tables}{schema_part}{anomaly_part}</div>"
    script = (SCRIPT.replace("VEGA_LOGGER", VEGA_LOGGER)
              .replace("ROOT_ID", json.dumps(id_)).replace("TOP", str(TOP)))
    return (f"{head}<div class=\"controls\"><label>sort by <select class=\"fw-sort\">"
            f"{options}</select></label><label>filter <input class=\"fw-filter\" "
            "type=\"search\" placeholder=\"feature name\"></label><label><input "
            f"class=\"fw-quantile\" type=\"checkbox\"{' checked' * quantiles}> quantiles</label>"
            f"<label><input class=\"fw-log\" type=\"checkbox\"{' checked' * log}> log scale"
            f"</label><span>{legend}</span></div>"
            f"{note}{tables}{schema_part}{anomaly_part}"
            f"<script type=\"application/json\" class=\"fw-data\">{_json(chart_data)}</script>"
            + (scripts() if with_scripts else "")
            + f"<script>{script}</script></div>")


def page(datasets: Sequence[tuple[str, Any]], schema=None,
         anomalies: Mapping[str, Any] | None = None, title: str = "Statistics",
         meta: Mapping[str, str] | None = None, sort: str | None = None,
         **toggles: bool) -> str:
    """A whole self-contained HTML page of the view (no network: scripts inlined);
    `toggles`: quantiles, log (their first state)."""
    info = "".join(f"<dt>{e(str(k))}</dt><dd>{e(str(v))}</dd>" for k, v in (meta or {}).items())
    meta_html = f'<dl id="meta">{info}</dl>' if info else ""
    return (f"<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{e(title)}"
            "</title><style>body{font:14px system-ui,sans-serif;margin:1.5em;color:#222}"
            "dl{display:grid;grid-template-columns:max-content auto;gap:2px 12px}dd{margin:0}"
            f"</style></head><body><h1>{e(title)}</h1>"
            f"{meta_html}"
            f"{section(datasets, schema, anomalies, sort, **toggles)}</body></html>\n")
