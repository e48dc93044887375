"""The monitor's page (monitoring.page) and Prometheus exposition (monitoring.exposition), on
tidy rows made here: one row per (window, measure), as `fairway monitor` produces them."""
import html
import math
import pathlib
import re
import shutil
import subprocess

import pytest
from prometheus_client.parser import text_string_to_metric_families

from monitoring import exposition, page

REPO = pathlib.Path(__file__).resolve().parent.parent
ODD = '<b>&"x"'  # a feature name that must be escaped everywhere


def make_rows(windows: int = 6, alert_at: int | None = 3, nan_at: int | None = 1) -> list[dict]:
    """Rows for `windows` hourly windows. Window `alert_at` drifts: `age` (primary wasserstein)
    and the domain classifier alert and `workclass` has a schema anomaly. `ODD`'s primary value
    is NaN in window `nan_at`. The model version changes from 3 to 4 half-way. Values grow with
    the window index, so the latest window's are the largest."""
    rows = []
    for w in range(windows):
        drift = w == alert_at
        base = {"window": f"2026-11-30T{w:02d}:00:00Z", "start": f"2026-11-30T{w:02d}:00:03Z",
                "end": f"2026-11-30T{w:02d}:59:58Z", "rows": 1000 + w,
                "version": "3" if w < windows // 2 else "4"}

        def add(kind, name, method, value, threshold=None, direction="above", primary=True,
                **extra):
            alert = (threshold is not None and not math.isnan(value)
                     and (value > threshold if direction == "above" else value < threshold))
            rows.append({**base, "kind": kind, "name": name, "method": method, "value": value,
                         "threshold": threshold, "direction": direction, "alert": alert,
                         "primary": primary, **extra})

        add("feature", "age", "wasserstein", 0.5 if drift else 0.01 * (w + 1), 0.1)
        add("feature", "age", "ks", 0.3 if drift else 0.02 * (w + 1), 0.2, primary=False)
        add("feature", "age", "psi", 0.4 if drift else 0.03 * (w + 1), 0.25, primary=False)
        add("feature", "workclass", "jensen_shannon", 0.01 * (w + 1), 0.1)
        add("feature", "workclass", "chi2", 0.001 * (w + 1), 0.05, direction="below",
            primary=False)
        add("feature", ODD, "linf", math.nan if w == nan_at else 0.02 * (w + 1), 0.3)
        add("feature", ODD, "psi", 0.01 * (w + 1), 0.25, primary=False)
        add("quality", "age", "missing_rate", 0.001 * w, 0.05)
        add("prediction", "probability", "wasserstein", 0.005 * (w + 1), 0.1)
        add("label", "label", "psi", 0.004 * (w + 1), 0.25)
        add("dataset", "drift_share", "share", 0.6 if drift else 0.0, 0.5)
        add("estimate", "auc", "cbpe", 0.80 + 0.001 * w, 0.7, direction="below",
            lower=0.76 + 0.001 * w, upper=0.84 + 0.001 * w,
            **({"realized": 0.79 + 0.002 * w} if w < windows - 2 else {}))
        add("estimate", "accuracy", "cbpe", 0.83 - 0.001 * w, 0.75, direction="below",
            lower=0.80 - 0.001 * w, upper=0.86 - 0.001 * w)
        if w < windows - 2:  # labels arrive late: no realized metrics for the newest windows
            add("performance", "auc", "realized", 0.79 + 0.002 * w, 0.7, direction="below")
            add("performance", "fpr:Female", "realized", 0.05, 0.2)
        add("multivariate", "domain_classifier", "domain_classifier_auc",
            0.8 if drift else 0.5 + 0.01 * w, 0.6,
            detail=[{"feature": "age", "importance": 0.6 if drift else 0.1},
                    {"feature": ODD, "importance": 0.2}, {"feature": "workclass",
                                                         "importance": 0.05}])
        if drift:
            add("anomaly", "workclass", "schema", 1.0,
                detail="Unexpected string values: Gig-economy")
            rows[-1]["alert"] = True
    return rows


def charted(rows: list[dict]) -> set[tuple[str, str]]:
    return {(r["kind"], r["name"]) for r in rows if r["primary"] and r["kind"] != "anomaly"}


def figures(text: str) -> dict[tuple[str, str], str]:
    """(kind, name) → the figure's HTML."""
    found = re.findall(r'<figure class="chart" data-kind="([^"]*)" data-name="([^"]*)"'
                       r'(.*?)</figure>', text, re.S)
    return {(html.unescape(k), html.unescape(n)): body for k, n, body in found}


def coordinates_ok(svg: str) -> bool:
    """Every coordinate attribute is numbers (and path commands): no NaN or inf drawn."""
    found = re.findall(r" (?:d|points|cx|cy|x|y|width|height)='([^']*)'", svg)
    return bool(found) and all(re.fullmatch(r"[-0-9., MLHV]+", v) for v in found)


def samples(text: bytes) -> dict[str, list]:
    return {f.name: f.samples for f in text_string_to_metric_families(text.decode())}


def test_the_exposition_has_the_latest_window_only():
    rows = make_rows(alert_at=5)  # the latest window alerts
    got = samples(exposition.exposition(rows, "census"))
    values = {(s.labels["kind"], s.labels["name"], s.labels["method"]): s.value
              for s in got["fairway_monitor_value"]}
    latest = [r for r in rows if r["window"] == rows[-1]["window"]]
    assert len(values) == len(latest)
    assert values[("feature", "age", "wasserstein")] == 0.5
    assert values[("feature", "workclass", "jensen_shannon")] == pytest.approx(0.06)  # not 0.05
    assert ("performance", "auc", "realized") not in values  # only earlier windows have it
    assert {s.labels["version"] for s in got["fairway_monitor_value"]} == {"4"}
    assert {s.labels["model"] for s in got["fairway_monitor_value"]} == {"census"}
    alerts = {(s.labels["name"], s.labels["method"]): s.value
              for s in got["fairway_monitor_alert"]}
    assert alerts[("age", "wasserstein")] == 1 and alerts[("age", "ks")] == 1
    assert alerts[("workclass", "jensen_shannon")] == 0 and alerts[("workclass", "schema")] == 1
    thresholds = {(s.labels["name"], s.labels["method"]) for s in got["fairway_monitor_threshold"]}
    assert ("age", "wasserstein") in thresholds and ("workclass", "schema") not in thresholds
    [lower] = [s.value for s in got["fairway_monitor_lower"] if s.labels["name"] == "auc"]
    assert lower == pytest.approx(0.765)
    [window_rows] = got["fairway_monitor_window_rows"]
    assert window_rows.value == 1005 and window_rows.labels == {"model": "census", "version": "4"}
    [end] = got["fairway_monitor_window_end_timestamp_seconds"]
    assert end.value == 1796018398  # 2026-11-30T05:59:58Z
    assert [s.value for s in got["fairway_monitor_alerting"]] == [1]


def test_the_exposition_alerts_only_on_primary_rows_and_escapes_names():
    rows = make_rows(alert_at=2)  # an earlier window alerts; the latest does not
    got = samples(exposition.exposition(rows, 'm"1'))
    assert [s.value for s in got["fairway_monitor_alerting"]] == [0]
    alerts = {(s.labels["name"], s.labels["method"]): s.value
              for s in got["fairway_monitor_alert"]}
    assert alerts[("workclass", "chi2")] == 1  # informational: below its threshold
    assert {v for k, v in alerts.items() if k != ("workclass", "chi2")} == {0}
    assert ODD in {s.labels["name"] for s in got["fairway_monitor_value"]}
    assert {s.labels["model"] for s in got["fairway_monitor_value"]} == {'m"1'}
    # An informational method over its threshold does not make the window alert.
    latest = [dict(r, alert=r["method"] == "ks") for r in make_rows(windows=1, alert_at=None)]
    got = samples(exposition.exposition(latest, "m"))
    assert [s.value for s in got["fairway_monitor_alerting"]] == [0]
    # NaN survives as NaN.
    [nan] = [s.value for s in samples(exposition.exposition(make_rows(nan_at=5), "m"))[
        "fairway_monitor_value"] if s.labels["name"] == ODD and s.labels["method"] == "linf"]
    assert math.isnan(nan)


def test_no_rows_give_an_exposition_without_series(tmp_path):
    got = samples(exposition.exposition([], "m"))
    assert "fairway_monitor_value" in got and all(s == [] for s in got.values())


def test_write_is_atomic_and_readable(tmp_path):
    rows = make_rows()
    target = tmp_path / "fairway.prom"
    target.write_text("old")
    assert exposition.write(target, rows, "census") == target
    assert target.read_bytes() == exposition.exposition(rows, "census")
    assert target.stat().st_mode & 0o777 == 0o644
    assert [p.name for p in tmp_path.iterdir()] == ["fairway.prom"]  # no temp file left


def test_the_page_has_a_chart_per_primary_series_and_marks_the_alert():
    rows = make_rows()
    text = page.to_html(rows, meta={"baseline run": "run-42", "k": 5})
    figs = figures(text)
    assert set(figs) == charted(rows)
    alerting = "2026-11-30T03:00:00Z"
    for key, body in figs.items():
        markers = re.findall(r"class='alert-marker' data-window='([^']*)'", body)
        expected = [alerting] if key in {("feature", "age"), ("dataset", "drift_share"),
                                         ("multivariate", "domain_classifier")} else []
        assert markers == expected, key
    assert "class='threshold'" in figs[("feature", "age")]
    estimate = figs[("estimate", "auc")]
    assert "class='band'" in estimate and "class='realized'" in estimate
    assert "class='realized'" not in figs[("estimate", "accuracy")]
    # Headings group the kinds; the summary counts the alerting window and the versions.
    charts = text.split('id="charts"')[1].split('id="latest"')[0]
    for heading in ("Input drift", "Data quality", "Prediction drift",
                    "Label drift &amp; realized performance", "Estimated performance (CBPE)",
                    "Multivariate drift"):
        assert f"<h3>{heading}</h3>" in charts
    summary = text.split('id="summary"')[1].split('id="charts"')[0]
    assert "<dt>alerting windows</dt><dd>1 (2026-11-30T03:00:00Z)</dd>" in summary
    assert "3 (3 windows), 4 (3 windows)" in summary and "run-42" in summary
    # The latest table has every row of the latest window; the anomaly is under its window.
    latest = text.split('id="latest"')[1].split('id="top-features"')[0]
    assert latest.count("<tr class=") == sum(r["window"] == rows[-1]["window"] for r in rows)
    assert "<tr class='alert'>" not in latest
    anomalies = text.split('id="anomalies"')[1]
    assert f"<h3>{alerting}</h3><ul><li><b>workclass</b>: Unexpected string values: " \
           "Gig-economy</li></ul>" in anomalies
    top = text.split('id="top-features"')[1].split('id="anomalies"')[0]
    assert top.count("<h3>") == 2 and alerting in top and "(latest)" in top
    assert "http://" not in text and "https://" not in text and "<script" not in text


def test_the_page_escapes_user_strings():
    rows = make_rows()
    for r in rows:
        if r["kind"] == "anomaly":
            r["detail"] = "<img src=x onerror=alert(1)>"
    text = page.to_html(rows, title="<t>", meta={"<k>": "<v>"})
    assert ODD not in text and "<img" not in text and "<t>" not in text and "<k>" not in text
    assert html.escape(ODD) in text
    assert f'data-name="{html.escape(ODD)}"' in text
    assert ("feature", ODD) in figures(text)


def test_links_sit_under_the_title_escaped():
    """`fairway monitor` links the latest window's statistics page (stats/<window>.html)."""
    text = page.to_html(make_rows(windows=2), links=[(ODD, "stats/1000 from a&b.html")])
    nav = text.split("</h1>")[1].split('<section id="summary">')[0]
    assert nav == f"<nav id=\"links\"><a href='stats/1000 from a&amp;b.html'>{html.escape(ODD)}" \
                  "</a></nav>"
    assert "<nav" not in page.to_html(make_rows(windows=2))


def test_the_page_draws_gaps_for_nan_and_a_single_window():
    rows = make_rows(nan_at=2)
    text = page.to_html(rows)
    body = figures(text)[("feature", ODD)]
    [d] = re.findall(r"<path class='value' d='([^']*)'", body)
    assert d.count("M") == 2  # the line breaks at the NaN window
    assert body.count("class='point'") == 5
    assert coordinates_ok(body)

    one = make_rows(windows=1, alert_at=0)
    text = page.to_html(one)
    figs = figures(text)
    assert set(figs) == charted(one)
    for key, body in figs.items():
        assert coordinates_ok(body), key
        assert body.count("class='point'") == 1, key
    assert "class='alert-marker'" in figs[("feature", "age")]
    only_nan = figures(page.to_html([dict(one[0], value=math.nan, alert=False)]))
    assert list(only_nan) == [("feature", "age")]  # a chart with nothing to draw, no error
    assert "class='point'" not in only_nan[("feature", "age")]
    assert coordinates_ok(only_nan[("feature", "age")])

    empty = page.to_html([])
    assert 'id="summary"' in empty and "No windows scored" in empty


def test_unknown_kinds_get_their_own_heading():
    rows = make_rows(windows=2) + [dict(make_rows(windows=1)[0], kind="latency", name="p99",
                                        method="ms", value=120.0, threshold=200.0)]
    text = page.to_html(rows)
    assert "<h3>latency</h3>" in text and ("latency", "p99") in figures(text)


BROWSER = shutil.which("chromium") or shutil.which("chromium-browser")


def chromium(url: str, *args: str) -> subprocess.CompletedProcess:
    """Headless Chromium on `url` with `args` (--screenshot=…, --dump-dom), as test_e2e runs it."""
    return subprocess.run([BROWSER, "--headless=new", "--no-sandbox", "--disable-gpu",
                           "--enable-logging=stderr", "--v=0", "--window-size=1280,2600",
                           *args, url], capture_output=True, text=True, timeout=60)


@pytest.mark.skipif(not BROWSER, reason="needs Chromium on PATH (`make test` installs it with "
                    "`make chromium`)")
def test_the_page_renders_in_headless_chromium(tmp_path):
    """The page opened by a real browser: no console errors, every chart and section shown.
    The screenshot is kept in test-artifacts/monitor.png to look at."""
    rows = make_rows()
    target = tmp_path / "monitor.html"
    target.write_text(page.to_html(rows, meta={"baseline run": "run-42"}))
    artifacts = REPO / "test-artifacts"
    artifacts.mkdir(exist_ok=True)
    shot = chromium(target.as_uri(), f"--screenshot={artifacts / 'monitor.png'}")
    assert shot.returncode == 0, shot.stderr[-2000:]
    assert (artifacts / "monitor.png").stat().st_size > 50_000
    assert [line for line in shot.stderr.splitlines() if "CONSOLE" in line] == []
    dom = chromium(target.as_uri(), "--dump-dom").stdout
    for section in ("summary", "charts", "latest", "top-features", "anomalies"):
        assert f'id="{section}"' in dom, section
    assert dom.count('<figure class="chart"') == dom.count("<svg") == len(charted(rows))
    assert dom.count('class="alert-marker"') == 3  # age, drift_share, the domain classifier
