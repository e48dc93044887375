"""The model view (views.model) on a real TFMA result of data with known rates: the numbers on
the page are TFMA's, the intervals are TFMA's bootstrap, and the page renders offline."""
from __future__ import annotations

import html
import json
import pathlib
import re
import shutil
import subprocess

import numpy as np
import pytest

from views import model as view

REPO = pathlib.Path(__file__).resolve().parents[1]
THRESHOLDS = [round(0.1 * i, 1) for i in range(1, 10)]
BROWSER = shutil.which("chromium") or shutil.which("chromium-browser")


def _frame(n: int = 800, seed: int = 3):
    """Two groups; group 'b' gets scores shifted up, so its FPR is higher at every threshold."""
    import pandas as pd

    rng = np.random.default_rng(seed)
    group = np.where(rng.random(n) < 0.4, "b", "a")
    label = (rng.random(n) < 0.35).astype(int)
    score = np.clip(0.3 * label + 0.45 * rng.random(n) + np.where(group == "b", 0.15, 0.0),
                    0.0, 1.0)
    return pd.DataFrame({"label": label, "prediction": score.astype(np.float32),
                         "group": group})


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory):
    """TFMA (analyze_raw_data: a DataFrame of labels and predictions, no model) with the
    Evaluator's metrics and plots, the gate's metric, and Poisson-bootstrap intervals."""
    import runners  # noqa: F401  (the process environment TF expects)
    import tensorflow_model_analysis as tfma

    from pipeline import tfma_metrics

    df = _frame()
    out = tmp_path_factory.mktemp("tfma")
    metrics = [tfma.MetricConfig(class_name="ExampleCount"), tfma.MetricConfig(class_name="AUC"),
               tfma.MetricConfig(class_name="FairnessIndicators",
                                 module="fairness_indicators.fairness_indicators_metrics",
                                 config=json.dumps({"thresholds": THRESHOLDS})),
               tfma.MetricConfig(class_name="CalibrationPlot",
                                 config=json.dumps({"num_buckets": 20})),
               tfma.MetricConfig(class_name="ConfusionMatrixPlot",
                                 config=json.dumps({"num_thresholds": 100})),
               tfma.MetricConfig(class_name="FalsePositiveRateGap", module=tfma_metrics.__name__,
                                 config=json.dumps({"feature": "group", "protected": "b",
                                                    "reference": "a", "threshold": 0.5}))]
    config = tfma.EvalConfig(
        model_specs=[tfma.ModelSpec(label_key="label", prediction_key="prediction")],
        slicing_specs=[tfma.SlicingSpec(), tfma.SlicingSpec(feature_keys=["group"])],
        metrics_specs=[tfma.MetricsSpec(metrics=metrics)],
        options=tfma.Options(compute_confidence_intervals={"value": True},
                             confidence_intervals=tfma.ConfidenceIntervalOptions(
                                 method=tfma.ConfidenceIntervalOptions.POISSON_BOOTSTRAP)))
    tfma.analyze_raw_data(df, config, output_path=str(out))
    return df, view.load(str(out), THRESHOLDS)


def _rate(df, rate: str, t: float, group: str | None = None) -> float:
    d = df if group is None else df[df.group == group]
    y, p = d.label.to_numpy(), d.prediction.to_numpy()
    if rate == "FPR":
        return float((p[y == 0] >= t).mean())
    if rate == "FNR":
        return float((p[y == 1] < t).mean())
    if rate == "precision":
        return float(y[p >= t].mean()) if (p >= t).any() else float("nan")
    return float((p[y == 1] >= t).mean())


def test_the_numbers_are_tfmas_with_bootstrap_intervals(evaluated):
    df, data = evaluated
    assert data["confidence_intervals"] == "POISSON_BOOTSTRAP"
    by = {s["slice"]: s for s in data["slices"]}
    assert list(by)[:3] == ["Overall", "group=a", "group=b"]
    for name, group in (("Overall", None), ("group=a", "a"), ("group=b", "b")):
        s = by[name]
        assert s["count"] == len(df if group is None else df[df.group == group])
        assert isinstance(s["count"], int)
        for label, _ in view.RATES:
            for t, value, lo, hi in s["rates"][label]:
                want = _rate(df, label, t, group)
                if np.isnan(want):  # e.g. precision with no positive decision: undefined
                    assert value is None, (name, label, t)
                    continue
                # TFMA's threshold rule: a prediction above t is positive (ties are measure-0).
                assert value == pytest.approx(want, abs=1e-6), (name, label, t)
                assert lo is not None and hi is not None and lo <= value + 1e-9 <= hi + 2e-9
        assert s["auc"][1] < s["auc"][0] < s["auc"][2]
    # The gate's metric, on the Overall slice, with its own interval.
    gap = by["Overall"]["gap"]
    assert gap[0] == pytest.approx(abs(_rate(df, "FPR", 0.5, "b") - _rate(df, "FPR", 0.5, "a")),
                                   abs=1e-6)
    # ROC from ConfusionMatrixPlot: from (1, 1) at threshold 0 down to (0, 0); calibration
    # buckets count every row once.
    roc = data["curves"]["Overall"]["roc"]
    assert roc[0][:2] == [1.0, 1.0] and len(roc) > 50
    assert all(a[0] >= b[0] and a[1] >= b[1] for a, b in zip(roc, roc[1:]))
    assert sum(c[2] for c in data["curves"]["Overall"]["calibration"]) == len(df)


def test_the_static_table_shows_integer_counts_and_intervals(evaluated):
    df, data = evaluated
    table = view.metrics_table(data, 0.5)
    assert f"<td>{len(df):,}</td>" in table and ".0000</td>" not in table.split("<td>")[2]
    assert "Poisson bootstrap" in table
    assert re.search(r"<small>\[0\.\d{4}, 0\.\d{4}\]</small>", table)


def _errors_html() -> tuple[str, list[dict]]:
    rows = [{"loss": 3.0 - i * 0.1, "label": i % 2, "prediction": 0.5,
             "features": {"group": "ab"[i % 2], "x": i}, "slices": [f"group={'ab'[i % 2]}"]}
            for i in range(10)]
    return view.error_table(rows, ["group", "x"], ["group=a", "group=b"]), rows


def _chromium(url: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([BROWSER, "--headless=new", "--no-sandbox", "--disable-gpu",
                           "--enable-logging=stderr", "--v=0", "--window-size=1280,2200",
                           "--virtual-time-budget=15000", *args, url],
                          capture_output=True, text=True, timeout=180)


@pytest.mark.skipif(not BROWSER, reason="needs Chromium on PATH (`make chromium`)")
def test_the_page_renders_offline_in_headless_chromium(evaluated, tmp_path):
    _, data = evaluated
    errors, rows = _errors_html()
    gate = {"feature": "group", "protected": "b", "reference": "a", "bound": 0.05}
    page = view.page(data, 0.5, gate, errors, title="Model view test")
    # A Content-Security-Policy that blocks every request but inline code and data: URLs, so a
    # request outside the page would show up as a console error.
    page = page.replace("<head>", "<head><meta http-equiv=\"Content-Security-Policy\" "
                        "content=\"default-src 'none'; script-src 'unsafe-inline' "
                        "'unsafe-eval'; style-src 'unsafe-inline'; img-src data:\">", 1)
    target = tmp_path / "model.html"
    target.write_text(page)
    artifacts = REPO / "test-artifacts"
    artifacts.mkdir(exist_ok=True)
    shot = _chromium(target.as_uri(), f"--screenshot={artifacts / 'model-view.png'}")
    assert shot.returncode == 0, shot.stderr[-2000:]
    assert [line for line in shot.stderr.splitlines() if "CONSOLE" in line] == []
    assert (artifacts / "model-view.png").stat().st_size > 50_000
    dom = _chromium(target.as_uri(), "--dump-dom").stdout
    root = re.search(r'<div class="fw-model" id="fw-model"([^>]*)>', dom).group(1)
    assert 'data-rendered="yes"' in root and 'data-warnings="0"' in root, root
    assert 'data-charts="5"' in root  # rates, gap, ROC, PR, calibration
    assert dom.count("<svg") >= 5  # the CSP above turns any request into a console error
    # The slice filter of the error analysis: only group=b's rows are left.
    chosen = target.with_name("filtered.html")
    chosen.write_text(page.replace("<option>group=b</option>",
                                   "<option selected>group=b</option>"))
    dom = _chromium(chosen.as_uri(), "--dump-dom").stdout
    box = dom.split('class="fw-errors"')[1]
    assert 'data-shown="5"' in box.split(">")[0]
    shown = re.findall(r'<tr data-slices="([^"]*)">', box)
    hidden = re.findall(r'<tr data-slices="([^"]*)" class="hidden">', box)
    assert len(shown) == 5 and len(hidden) == 5
    assert all(json.loads(html.unescape(s)) == ["group=b"] for s in shown)


def test_undefined_values_are_none_not_nan():
    assert view._value({"doubleValue": "NaN"}) == [None, None, None]
    assert view._value({"boundedValue": {"value": 0.5, "lowerBound": 0.4,
                                         "upperBound": "Infinity"}}) == [0.5, 0.4, None]
    assert view._value(None) is None
