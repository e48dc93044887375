"""`fairway monitor`'s page: serving traffic scored in time windows, as one self-contained HTML
file (no scripts, no network, no external CSS or fonts; the charts are inline SVG).

The input is the monitor's tidy rows, one per (window, measure): window, start, end, rows,
version, kind, name, method, value, threshold, direction, alert, primary and optionally lower,
upper, realized, detail. The page renders whatever rows it is given: a kind it does not know gets
a heading of its own, and a method is only a label, so new measures need no change here.
"""
from __future__ import annotations

import html
import math
import re
from typing import Any, Sequence

# Chart headings, in page order. Kinds not listed follow in the order they appear, each under
# its own name.
SECTIONS = {
    "dataset": "Input drift",
    "feature": "Input drift",
    "quality": "Data quality",
    "prediction": "Prediction drift",
    "label": "Label drift & realized performance",
    "performance": "Label drift & realized performance",
    "estimate": "Estimated performance (CBPE)",
    "multivariate": "Multivariate drift",
}
# Anomalies are events with a description, not a series: listed per window, not charted.
NOT_CHARTED = {"anomaly"}

# Chart geometry (px): the plot area is inside the padding; the labels live in the padding.
WIDTH, HEIGHT = 360, 150
LEFT, RIGHT, TOP, BOTTOM = 52, 12, 10, 30

STYLE = """body{font:14px system-ui,sans-serif;margin:2em;color:#222;max-width:1240px}
h2{margin-top:1.6em;border-bottom:1px solid #ccc}h3{margin:1em 0 .3em}
dl{display:grid;grid-template-columns:max-content auto;gap:2px 12px}dt{color:#555}dd{margin:0}
table{border-collapse:collapse;margin:.5em 0}td,th{padding:3px 8px;border-bottom:1px solid #ddd;
text-align:left;vertical-align:top}th{background:#f4f4f4}td.num{text-align:right}
tr.alert td{background:#fde8e8}tr.alert td.status{color:#b00;font-weight:bold}
tr.info td{color:#666}tr.warn td.status{color:#a60}
.grid{display:flex;flex-wrap:wrap;gap:12px}
figure.chart{margin:0;padding:6px;border:1px solid #e4e4e4;border-radius:4px;width:360px}
figure.chart:not([data-alerts="0"]){border-color:#e99}
figcaption{font-size:12px;margin-bottom:2px}
figcaption .method{color:#666}figcaption .flag{color:#b00;font-weight:bold}
svg text{font-size:10px;fill:#555}.bar{display:inline-block;height:9px;background:#4a7bd0}
.legend span{margin-right:1em;font-size:12px}.swatch{display:inline-block;width:14px;height:3px;
vertical-align:middle;margin-right:4px}"""


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _number(value: Any) -> float | None:
    """A plottable number, or None for a gap (missing, NaN, infinite or not a number)."""
    try:
        f = float(value)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def _fmt(value: Any) -> str:
    if value is None:
        return "–"
    try:
        f = float(value)
    except (TypeError, ValueError):
        return _e(value)
    return "NaN" if math.isnan(f) else f"{f:.4g}"


def _primary(row: dict) -> bool:
    return bool(row.get("primary", True))


def _decides(row: dict) -> bool:
    """The row alerts and is the one that decides (other methods are informational)."""
    return bool(row.get("alert")) and _primary(row)


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "other"


def windows(rows: list[dict]) -> list[dict[str, Any]]:
    """One entry per window in the order given (the rows come in time order): its key, start,
    end, rows, version, and whether any deciding row alerted."""
    out: dict[str, dict[str, Any]] = {}
    for r in rows:
        w = out.setdefault(r["window"], {"key": r["window"], "start": r.get("start"),
                                         "end": r.get("end"), "rows": r.get("rows"),
                                         "version": r.get("version"), "alert": False})
        w["alert"] = w["alert"] or _decides(r)
    return list(out.values())


def _summary(rows: list[dict], wins: list[dict], meta: dict | None) -> str:
    if not wins:
        return '<section id="summary"><p>No windows scored: no rows were given.</p></section>'
    versions: dict[str, int] = {}
    for w in wins:
        versions[str(w["version"])] = versions.get(str(w["version"]), 0) + 1
    alerting = [w["key"] for w in wins if w["alert"]]
    items = {
        "windows": str(len(wins)),
        "requests": str(sum(int(w["rows"] or 0) for w in wins)),
        "time range": f"{_e(wins[0]['start'])} – {_e(wins[-1]['end'])}",
        "alerting windows": f"{len(alerting)}" + (
            " (" + ", ".join(_e(k) for k in alerting) + ")" if alerting else ""),
        "model versions": ", ".join(f"{_e(v)} ({n} window{'s' * (n != 1)})"
                                    for v, n in versions.items()),
        "latest window": f"{_e(wins[-1]['key'])}: {_e(wins[-1]['rows'])} requests, version "
                         f"{_e(wins[-1]['version'])}",
    }
    dl = "".join(f"<dt>{k}</dt><dd>{v}</dd>" for k, v in items.items())
    meta_dl = "".join(f"<dt>{_e(k)}</dt><dd>{_e(v)}</dd>" for k, v in (meta or {}).items())
    return (f'<section id="summary"><dl>{dl}</dl>'
            + (f'<dl id="meta">{meta_dl}</dl>' if meta_dl else "") + "</section>")


class _Scale:
    """Window index → x, value → y, shared by everything drawn in one chart."""

    def __init__(self, n: int, values: list[float]):
        self.n = n
        lo, hi = (min(values), max(values)) if values else (0.0, 1.0)
        if hi - lo < 1e-12:  # one value (or all equal): give the line some room
            pad = abs(lo) * 0.1 or 0.5
            lo, hi = lo - pad, hi + pad
        margin = (hi - lo) * 0.05
        # Scores, rates and AUCs are not negative: an axis starting below 0 would only confuse.
        self.lo = lo - margin if lo < 0 else max(lo - margin, 0.0)
        self.hi = hi + margin
        # Width of one window's slot; a single window sits in the middle of the plot.
        self.step = (WIDTH - LEFT - RIGHT) / max(n - 1, 1)

    def x(self, i: int) -> float:
        if self.n == 1:
            return (LEFT + WIDTH - RIGHT) / 2
        return LEFT + i * self.step

    def y(self, v: float) -> float:
        return TOP + (self.hi - v) / (self.hi - self.lo) * (HEIGHT - TOP - BOTTOM)

    def slot(self, i: int) -> tuple[float, float]:
        """Left and right edge of window i's slot, inside the plot area."""
        half = self.step / 2
        return max(LEFT, self.x(i) - half), min(WIDTH - RIGHT, self.x(i) + half)


def _runs(values: list[float | None]) -> list[list[int]]:
    """Indices of the consecutive present values: a gap (NaN, missing window) breaks a line."""
    runs: list[list[int]] = []
    for i, v in enumerate(values):
        if v is None:
            continue
        if runs and runs[-1][-1] == i - 1:
            runs[-1].append(i)
        else:
            runs.append([i])
    return runs


def _line(s: _Scale, values: list[float | None], cls: str, color: str) -> str:
    d = " ".join("M" + " L".join(f"{s.x(i):.1f},{s.y(values[i]):.1f}" for i in run)
                 for run in _runs(values))
    return f"<path class='{cls}' d='{d}' fill='none' stroke='{color}' stroke-width='1.6'/>" \
        if d else ""


def _points(s: _Scale, values: list[float | None], keys: list[str], label: str, cls: str,
            color: str) -> str:
    """A dot per value, so a lone value between gaps (or a single window) is still seen."""
    return "".join(
        f"<circle class='{cls}' cx='{s.x(i):.1f}' cy='{s.y(v):.1f}' r='2.2' fill='{color}'>"
        f"<title>{_e(keys[i])}: {_e(label)} {_fmt(v)}</title></circle>"
        for i, v in enumerate(values) if v is not None)


def _threshold(s: _Scale, values: list[float | None]) -> str:
    """A dashed step line: each window's threshold across its slot (thresholds may change)."""
    parts = []
    for run in _runs(values):
        left, right = s.slot(run[0])
        parts.append(f"M{left:.1f},{s.y(values[run[0]]):.1f} H{right:.1f}")
        for i in run[1:]:
            parts.append(f"V{s.y(values[i]):.1f} H{s.slot(i)[1]:.1f}")
    if not parts:
        return ""
    return (f"<path class='threshold' d='{' '.join(parts)}' fill='none' stroke='#333' "
            "stroke-width='1' stroke-dasharray='4 3'/>")


def _band(s: _Scale, lower: list[float | None], upper: list[float | None]) -> str:
    """The estimate's interval as a shaded band; a lone window gets a narrow box."""
    both = [lo if lo is not None and up is not None else None for lo, up in zip(lower, upper)]
    shapes = []
    for run in _runs(both):
        xs = [s.x(i) for i in run]
        if len(run) == 1:
            run, xs = run * 2, [xs[0] - 4, xs[0] + 4]
        pts = [f"{x:.1f},{s.y(upper[i]):.1f}" for x, i in zip(xs, run)]
        pts += [f"{x:.1f},{s.y(lower[i]):.1f}" for x, i in reversed(list(zip(xs, run)))]
        shapes.append(f"<polygon class='band' points='{' '.join(pts)}' fill='#4a7bd0' "
                      "fill-opacity='0.18' stroke='none'/>")
    return "".join(shapes)


def _chart(kind: str, name: str, series: list[dict | None], wins: list[dict]) -> str:
    """One figure: the primary rows of (kind, name), one slot per window (None: not scored)."""
    keys = [w["key"] for w in wins]

    def col(key: str) -> list[float | None]:
        return [_number(r.get(key)) if r else None for r in series]

    value, threshold = col("value"), col("threshold")
    lower, upper, realized = col("lower"), col("upper"), col("realized")
    s = _Scale(len(wins), [v for c in (value, threshold, lower, upper, realized)
                           for v in c if v is not None])
    bottom = HEIGHT - BOTTOM
    svg = [f"<svg width='{WIDTH}' height='{HEIGHT}' viewBox='0 0 {WIDTH} {HEIGHT}' role='img'>",
           f"<rect x='{LEFT}' y='{TOP}' width='{WIDTH - LEFT - RIGHT}' height='{bottom - TOP}' "
           "fill='#fafafa' stroke='#ddd'/>"]
    alerts = [i for i, r in enumerate(series) if r and r.get("alert")]
    for i in alerts:  # shade the alerting window's slot behind the lines
        left, right = s.slot(i) if len(wins) > 1 else (LEFT, WIDTH - RIGHT)
        svg.append(f"<rect class='alert-window' x='{left:.1f}' y='{TOP}' "
                   f"width='{right - left:.1f}' height='{bottom - TOP}' fill='#fde0e0'/>")
    svg += [_band(s, lower, upper), _threshold(s, threshold),
            _line(s, realized, "realized", "#e08a2c"),
            _points(s, realized, keys, "realized", "realized-point", "#e08a2c"),
            _line(s, value, "value", "#4a7bd0"),
            _points(s, value, keys, "value", "point", "#4a7bd0")]
    for i in alerts:  # a missing value still gets its marker, at the top of the plot
        y = s.y(value[i]) if value[i] is not None else TOP + 5
        svg.append(f"<circle class='alert-marker' data-window='{_e(keys[i])}' cx='{s.x(i):.1f}' "
                   f"cy='{y:.1f}' r='4.5' fill='#d22' stroke='#fff'><title>ALERT "
                   f"{_e(keys[i])}: {_fmt(series[i].get('value'))}</title></circle>")
    # Axis labels: the value range on the left, the first and last window below.
    svg.append(f"<text x='{LEFT - 4}' y='{TOP + 8}' text-anchor='end'>{s.hi:.3g}</text>"
               f"<text x='{LEFT - 4}' y='{bottom}' text-anchor='end'>{s.lo:.3g}</text>")
    if len(wins) == 1:
        svg.append(f"<text x='{s.x(0):.1f}' y='{bottom + 14}' text-anchor='middle'>"
                   f"{_e(keys[0])}</text>")
    elif wins:
        svg.append(f"<text x='{LEFT}' y='{bottom + 14}'>{_e(keys[0])}</text>"
                   f"<text x='{WIDTH - RIGHT}' y='{bottom + 26}' text-anchor='end'>"
                   f"{_e(keys[-1])}</text>")
    svg.append("</svg>")

    last = next((r for r in reversed(series) if r), {})
    methods = list(dict.fromkeys(str(r.get("method", "")) for r in series if r))
    rule = (f" · alert {_e(last.get('direction', 'above'))} {_fmt(last.get('threshold'))}"
            if last.get("threshold") is not None else "")
    flag = f" <span class='flag'>{len(alerts)} alert(s)</span>" if alerts else ""
    caption = (f"<figcaption><b>{_e(name)}</b> <span class='method'>{_e(', '.join(methods))}"
               f"</span> · latest {_fmt(last.get('value'))}{rule}{flag}</figcaption>")
    # Double quotes on the figure: tests and people grep for class="chart".
    return (f'<figure class="chart" data-kind="{_e(kind)}" data-name="{_e(name)}" '
            f'data-alerts="{len(alerts)}">{caption}{"".join(svg)}</figure>')


def _charts(rows: list[dict], wins: list[dict]) -> str:
    index = {w["key"]: i for i, w in enumerate(wins)}
    series: dict[tuple[str, str], list[dict | None]] = {}
    for r in rows:
        if r.get("kind") in NOT_CHARTED or not _primary(r):
            continue
        slots = series.setdefault((str(r["kind"]), str(r["name"])), [None] * len(wins))
        slots[index[r["window"]]] = slots[index[r["window"]]] or r  # first primary row wins
    groups: dict[str, list[str]] = {}
    for (kind, name), s in series.items():
        groups.setdefault(SECTIONS.get(kind, kind), []).append(_chart(kind, name, s, wins))
    order = list(dict.fromkeys(SECTIONS.values()))
    ordered = sorted(groups, key=lambda h: order.index(h) if h in order else len(order))
    legend = ("<p class='legend'><span><i class='swatch' style='background:#4a7bd0'></i>value"
              "</span><span><i class='swatch' style='background:#333'></i>threshold (dashed)"
              "</span><span><i class='swatch' style='background:#4a7bd0;opacity:.3'></i>"
              "estimate interval</span><span><i class='swatch' style='background:#e08a2c'></i>"
              "realized</span><span><i class='swatch' style='background:#d22'></i>alert</span>"
              "</p>")
    body = "".join(f'<section class="kind" id="charts-{_slug(h)}"><h3>{_e(h)}</h3>'
                   f"<div class='grid'>{''.join(groups[h])}</div></section>" for h in ordered)
    return (f'<section id="charts"><h2>Over time</h2>{legend}'
            f"{body or '<p>Nothing to chart.</p>'}</section>")


def _detail(detail: Any) -> str:
    if isinstance(detail, list):  # the domain classifier's top features
        return ", ".join(
            f"{_e(d.get('feature'))} ({_fmt(d.get('importance'))})" if isinstance(d, dict)
            else _e(d) for d in detail)
    return "" if detail is None else _e(detail)


def _latest(rows: list[dict], wins: list[dict]) -> str:
    if not wins:
        return '<section id="latest"><h2>Latest window</h2><p>No rows.</p></section>'
    key = wins[-1]["key"]
    order = list(SECTIONS)
    latest = sorted((r for r in rows if r["window"] == key),
                    key=lambda r: order.index(r["kind"]) if r["kind"] in order else len(order))
    body = []
    for r in latest:
        alert, primary = bool(r.get("alert")), _primary(r)
        # An informational method over its threshold is shown, but it does not alert.
        cls, status = ((("alert", "ALERT") if primary else ("warn", "over (info)")) if alert
                       else (("ok", "ok") if primary else ("info", "info")))
        interval = (f"[{_fmt(r.get('lower'))}, {_fmt(r.get('upper'))}]"
                    if "lower" in r or "upper" in r else "")
        rule = (f"{_e(r.get('direction', 'above'))} {_fmt(r['threshold'])}"
                if r.get("threshold") is not None else "")
        body.append(f"<tr class='{cls}'><td>{_e(r['kind'])}</td><td>{_e(r['name'])}</td>"
                    f"<td>{_e(r.get('method', ''))}</td><td class='num'>{_fmt(r.get('value'))}"
                    f"</td><td>{rule}</td><td>{interval}</td><td class='num'>"
                    f"{_fmt(r.get('realized')) if 'realized' in r else ''}</td>"
                    f"<td>{_detail(r.get('detail'))}</td><td class='status'>{status}</td></tr>")
    w = wins[-1]
    return (f'<section id="latest"><h2>Latest window: {_e(key)}</h2><p>{_e(w["start"])} – '
            f"{_e(w['end'])}, {_e(w['rows'])} requests, model version {_e(w['version'])}.</p>"
            '<table id="latest-table"><tr><th>kind</th><th>name</th><th>method</th><th>value</th>'
            "<th>alert when</th><th>interval</th><th>realized</th><th>detail</th><th>status</th>"
            f"</tr>{''.join(body)}</table></section>")


def _top_features(rows: list[dict], wins: list[dict]) -> str:
    """The domain classifier's top features, for the latest window and every alerting one."""
    shown = [w["key"] for w in wins if w["alert"] or w is wins[-1]]
    parts = []
    for key in shown:
        for r in rows:
            if r["window"] != key or r.get("kind") != "multivariate" \
                    or not isinstance(r.get("detail"), list):
                continue
            feats = [d for d in r["detail"] if isinstance(d, dict)]
            top = max((_number(d.get("importance")) or 0.0 for d in feats), default=0.0) or 1.0
            trs = "".join(
                f"<tr><td>{_e(d.get('feature'))}</td><td class='num'>"
                f"{_fmt(d.get('importance'))}</td><td><span class='bar' style='width:"
                f"{120 * max(_number(d.get('importance')) or 0.0, 0.0) / top:.0f}px'></span>"
                "</td></tr>" for d in feats)
            parts.append(f"<h3>{_e(key)}{' (latest)' if key == wins[-1]['key'] else ''}: "
                         f"{_e(r['name'])} {_e(r.get('method', ''))} {_fmt(r.get('value'))}"
                         f"{' · ALERT' if r.get('alert') else ''}</h3><table class='features'>"
                         f"<tr><th>feature</th><th>importance</th><th></th></tr>{trs}</table>")
    return ('<section id="top-features"><h2>What tells serving from training apart</h2>'
            + ("".join(parts) or "<p>No domain classifier in these windows.</p>")
            + "</section>")


def _anomalies(rows: list[dict], wins: list[dict]) -> str:
    parts = []
    for w in wins:
        items = "".join(f"<li><b>{_e(r['name'])}</b>: {_detail(r.get('detail'))}</li>"
                        for r in rows if r["window"] == w["key"] and r.get("kind") == "anomaly")
        if items:
            parts.append(f"<h3>{_e(w['key'])}</h3><ul>{items}</ul>")
    return ('<section id="anomalies"><h2>Schema anomalies</h2>'
            + ("".join(parts) or "<p>No schema anomalies.</p>") + "</section>")


def to_html(rows: list[dict], title: str = "Fairway monitor", meta: dict | None = None,
            links: Sequence[tuple[str, str]] = ()) -> str:
    """The page for `rows` (see the module docstring); `meta` (e.g. baseline run, k) is shown as
    given in the summary, `links` ([(text, relative URL)], e.g. the statistics page of the
    latest window) under the title. Windows are taken in the order the rows give them; the
    last is the latest."""
    wins = windows(rows)
    nav = ('<nav id="links">' + " ".join(f"<a href='{_e(href)}'>{_e(text)}</a>"
                                         for text, href in links) + "</nav>") if links else ""
    return (f"<!doctype html>\n<html lang='en'><head><meta charset='utf-8'><title>{_e(title)}"
            f"</title><style>{STYLE}</style></head><body><h1>{_e(title)}</h1>{nav}"
            f"{_summary(rows, wins, meta)}{_charts(rows, wins)}{_latest(rows, wins)}"
            f"{_top_features(rows, wins)}{_anomalies(rows, wins)}</body></html>\n")
