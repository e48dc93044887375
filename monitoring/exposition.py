"""`fairway monitor`'s latest window as Prometheus gauges, for the node-exporter textfile collector
(or any scraper of the text format).

The input is the monitor's tidy rows (see monitoring.page). Only the latest window (the last one
the rows give; they come in time order) is exported: a gauge holds a current value, and the
history is Prometheus's own. The text is written by prometheus_client from a fresh registry, so
the format (escaping of label values, NaN) is the library's, not ours.
"""
from __future__ import annotations

import datetime
import os
import pathlib
import tempfile

from prometheus_client import CollectorRegistry, Gauge, generate_latest

PREFIX = "fairway_monitor"
SERIES = ["model", "version", "kind", "name", "method"]
WINDOW = ["model", "version"]


def _timestamp(iso: str) -> float:
    """Seconds since the epoch of an ISO-8601 time; a trailing Z or no zone means UTC."""
    t = datetime.datetime.fromisoformat(iso.replace("Z", "+00:00"))
    return (t if t.tzinfo else t.replace(tzinfo=datetime.timezone.utc)).timestamp()


def exposition(rows: list[dict], model: str) -> bytes:
    """The Prometheus text exposition of the latest window's rows.

    Per row (labels model, version, kind, name, method): `fairway_monitor_value`,
    `fairway_monitor_threshold` (rows with a threshold), `fairway_monitor_alert` (0/1, as the row
    says, informational methods included), `fairway_monitor_lower`/`_upper`/`_realized` (rows
    that have them, e.g. CBPE estimates). Per window (labels model, version):
    `fairway_monitor_window_rows`, `fairway_monitor_window_end_timestamp_seconds` and
    `fairway_monitor_alerting`: 1 when a deciding (primary) row of the window alerts, the number
    to put an alerting rule on.

    No rows give an exposition with the HELP/TYPE lines and no series: a scrape then finds
    nothing rather than failing, and an absent() rule can tell.
    """
    registry = CollectorRegistry()

    def gauge(name: str, doc: str, labels: list[str]) -> Gauge:
        return Gauge(f"{PREFIX}_{name}", doc, labels, registry=registry)

    value = gauge("value", "Score of the measure in the latest window (NaN: not computable).",
                  SERIES)
    threshold = gauge("threshold", "Alert threshold of the measure.", SERIES)
    alert = gauge("alert", "1 if the measure is over its threshold in the latest window.", SERIES)
    extras = {key: gauge(key, doc, SERIES) for key, doc in (
        ("lower", "Lower end of the measure's interval (e.g. a CBPE estimate)."),
        ("upper", "Upper end of the measure's interval (e.g. a CBPE estimate)."),
        ("realized", "Realized value once labels arrived, next to an estimate."))}
    window_rows = gauge("window_rows", "Requests in the latest window.", WINDOW)
    window_end = gauge("window_end_timestamp_seconds", "Time of the latest window's last "
                       "request.", WINDOW)
    alerting = gauge("alerting", "1 if any deciding measure alerts in the latest window.",
                     WINDOW)
    if not rows:
        return generate_latest(registry)

    latest_key = list(dict.fromkeys(r["window"] for r in rows))[-1]
    latest = [r for r in rows if r["window"] == latest_key]
    for r in latest:
        labels = dict(model=model, version=str(r.get("version", "")), kind=str(r["kind"]),
                      name=str(r["name"]), method=str(r.get("method", "")))
        value.labels(**labels).set(float("nan") if r.get("value") is None else r["value"])
        alert.labels(**labels).set(1 if r.get("alert") else 0)
        if r.get("threshold") is not None:
            threshold.labels(**labels).set(r["threshold"])
        for key, g in extras.items():
            if r.get(key) is not None:
                g.labels(**labels).set(r[key])
    first = latest[0]
    window = dict(model=model, version=str(first.get("version", "")))
    window_rows.labels(**window).set(first.get("rows") or 0)
    if first.get("end"):
        window_end.labels(**window).set(_timestamp(first["end"]))
    alerting.labels(**window).set(
        1 if any(r.get("alert") and r.get("primary", True) for r in latest) else 0)
    return generate_latest(registry)


def write(path: str | os.PathLike, rows: list[dict], model: str) -> pathlib.Path:
    """Write `exposition(rows, model)` to `path` atomically, as the node-exporter textfile
    collector wants (it reads *.prom files in its directory at every scrape): a temp file in the
    same directory, not ending in .prom, then os.replace, so a scrape never sees half a file."""
    path = pathlib.Path(path)
    data = exposition(rows, model)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes it 0600; the exporter often runs as another user
        os.replace(tmp, path)
    except BaseException:
        pathlib.Path(tmp).unlink(missing_ok=True)
        raise
    return path
