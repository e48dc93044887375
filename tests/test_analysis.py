"""release.analysis: each check passes on alike arms, fails on a worse arm, and says
"insufficient" below its minimum sample; inputs are real Prometheus expositions (serving's own
Metrics) and real PredictionLog files read back by monitoring.requests."""
import numpy as np
import pandas as pd
import pytest
import tensorflow as tf
from tensorflow_serving.apis import prediction_log_pb2

from monitoring import requests
from release import analysis
from release.analysis import FAIL, INSUFFICIENT, PASS, Thresholds
from serving.telemetry import Metrics

TH = Thresholds(resamples=500)
GROUPS = ("Female", "Male")


def frame(n: int, version: int, seed: int, delta: float = 0.0, group: str | None = None,
          labelled: bool = False, noise: float = 0.0) -> pd.DataFrame:
    """Logged rows: a latent score, a group (1/3 protected), the model's probability (with
    `delta` logits added for `group`, or for everyone when group is None)."""
    rng = np.random.default_rng(seed)
    sex = np.where(rng.random(n) < 1 / 3, "Female", "Male")
    z = rng.normal(-1.2 - 0.6 * (sex == "Female"), 1.5)
    y = (rng.random(n) < 1 / (1 + np.exp(-z))).astype(float)
    logit = z + rng.normal(0, noise, n) if noise else z.copy()
    logit += delta * (np.ones(n, bool) if group is None else sex == group)
    out = pd.DataFrame({"sex": sex, "_prediction": 1 / (1 + np.exp(-logit)),
                        "_version": version, "_time": 1000 + np.arange(n) // 100,
                        "_request_id": [f"r{seed}-{i}" for i in range(n)]})
    if labelled:
        out["_label"] = y
    return out


def by_check(rows):
    return {r.check: r for r in rows}


# -- Prometheus ----------------------------------------------------------------------------------

def scrape(metrics: Metrics) -> analysis.Scrape:
    return analysis.parse_metrics(metrics.exposition().decode(), "m")


def test_scrape_deltas_count_requests_errors_and_latency_per_version():
    m = Metrics()
    m.observe("m", "1", "predict", "REST", "OK", 0.002)
    m.observe("other", "1", "predict", "REST", "OK", 0.002)  # another model: not counted
    start = scrape(m)
    for _ in range(9):
        m.observe("m", "2", "predict", "REST", "OK", 0.003)
    m.observe("m", "2", "predict", "gRPC", "INVALID_ARGUMENT", 0.3)
    m.observe("m", "1", "classify", "REST", "OK", 0.001)
    d = scrape(m) - start
    assert analysis.counts(d, 2) == (10, 1)
    assert analysis.counts(d, 1) == (1, 0)
    assert d.latency["2"][5000.0] == 9 and d.latency["2"][float("inf")] == 10
    with pytest.raises(ValueError, match="restart"):
        start - scrape(m)


def test_error_rate_fails_a_worse_arm_only_beyond_the_minimum_effect():
    assert analysis.error_rate((1000, 2), (4000, 8), TH).verdict == PASS
    bad = analysis.error_rate((300, 30), (2000, 4), TH)
    assert bad.verdict == FAIL and bad.p_value < 1e-10
    assert "error rate: 10.0% (30/300) vs production 0.2% (4/2000)" in bad.reason
    # Significant, but +0.4 points is below the +1 point that matters.
    small = analysis.error_rate((100_000, 500), (100_000, 100), TH)
    assert small.p_value < 1e-10 and small.verdict == PASS
    assert analysis.error_rate((50, 25), (2000, 0), TH).verdict == INSUFFICIENT


def latency_buckets(seconds: np.ndarray) -> dict[float, float]:
    m = Metrics()
    for s in seconds:
        m.observe("m", "1", "predict", "REST", "OK", float(s))
    return scrape(m).latency["1"]


def test_latency_fails_when_many_canary_requests_exceed_productions_p99():
    rng = np.random.default_rng(0)
    prod = latency_buckets(rng.lognormal(np.log(0.003), 0.4, 2000))
    same = latency_buckets(rng.lognormal(np.log(0.003), 0.4, 500))
    slow = latency_buckets(rng.lognormal(np.log(0.009), 0.4, 500))
    assert analysis.latency(same, prod, TH).verdict == PASS
    row = analysis.latency(slow, prod, TH)
    assert row.verdict == FAIL and row.canary > 0.3 and "p99 latency" in row.reason
    assert analysis.latency(latency_buckets(rng.lognormal(np.log(0.009), 0.4, 20)), prod,
                            TH).verdict == INSUFFICIENT


# -- predictions ---------------------------------------------------------------------------------

def test_alike_arms_pass_every_prediction_check():
    rows = analysis.prediction_checks(frame(600, 2, 1, labelled=True),
                                      frame(2000, 1, 2, labelled=True), TH, "sex", GROUPS)
    assert [r.check for r in rows] == [
        "prediction shift", "prediction shift in sex=Female", "prediction shift in sex=Male",
        "positive-rate gap sex=Female - Male", "AUC", "FPR gap sex=Female - Male"]
    assert {r.verdict for r in rows} == {PASS}, [r.reason for r in rows]


def test_two_logits_for_one_group_fail_that_groups_shift_with_numbers():
    rows = by_check(analysis.prediction_checks(frame(600, 2, 1, 2.0, "Female"),
                                               frame(2000, 1, 2), TH, "sex", GROUPS))
    female = rows["prediction shift in sex=Female"]
    assert female.verdict == FAIL and female.p_value < 1e-10
    assert female.reason.startswith("prediction shift in sex=Female: KS 0.")
    assert "> 0.15" in female.reason
    assert rows["prediction shift in sex=Male"].verdict == PASS


def test_a_small_harmless_shift_is_significant_but_passes_on_effect_size():
    row = analysis.shift(analysis._scores(frame(20_000, 2, 1, 0.15)),
                         analysis._scores(frame(20_000, 1, 2)), TH)
    assert row.p_value < TH.alpha and row.verdict == PASS


def test_prediction_checks_need_their_minimum_sample():
    rows = by_check(analysis.prediction_checks(frame(60, 2, 1, 3.0), frame(2000, 1, 2), TH,
                                               "sex", GROUPS))
    assert rows["prediction shift"].verdict == INSUFFICIENT
    assert "60 canary / 2000 production logged rows, 100 per arm needed" in \
        rows["prediction shift"].reason
    assert rows["prediction shift in sex=Female"].verdict == INSUFFICIENT


def test_a_wider_positive_rate_gap_fails():
    # +2.5 logits for Male only: Male positives rise, so the gap between the groups widens.
    row = analysis.fairness_gap(frame(1500, 2, 1, 2.5, "Male"), frame(3000, 1, 2), "sex",
                                GROUPS, TH)
    assert row.verdict == FAIL and row.canary < row.production < 0
    assert row.reason.startswith("positive-rate gap sex=Female - Male: -0.")
    alike = analysis.fairness_gap(frame(1500, 2, 1), frame(3000, 1, 2), "sex", GROUPS, TH)
    assert alike.verdict == PASS


def test_auc_and_fpr_gap_once_labelled():
    prod = frame(2000, 1, 2, labelled=True)
    worse = frame(800, 2, 1, labelled=True, noise=3.0)  # scores blurred: AUC drops
    row = analysis.auc(worse, prod, TH)
    assert row.verdict == FAIL and row.production - row.canary > 0.05, row
    assert analysis.auc(frame(800, 2, 3, labelled=True), prod, TH).verdict == PASS
    few = frame(800, 2, 1, labelled=True)
    few.loc[few.index[100:], "_label"] = np.nan  # labels arrived for 100 rows only
    assert analysis.auc(few, prod, TH).verdict == INSUFFICIENT
    fpr = analysis.fairness_gap(frame(2000, 2, 1, 2.5, "Male", labelled=True), prod, "sex",
                                GROUPS, TH, labelled=True)
    assert fpr.verdict == FAIL and fpr.check == "FPR gap sex=Female - Male"


def test_ab_accuracy_is_two_sided():
    prod = frame(2000, 1, 2, labelled=True)
    worse = analysis.accuracy(frame(2000, 2, 1, labelled=True, noise=3.0), prod, TH)
    better = analysis.accuracy(prod, frame(2000, 2, 1, labelled=True, noise=3.0), TH)
    assert worse.verdict == FAIL and worse.canary < worse.production
    assert better.verdict == PASS and better.p_value < TH.alpha


def test_shadow_pairs_requests_and_counts_decision_flips():
    prod = frame(1000, 1, 2)
    same = prod.assign(_version=2)
    flipped = frame(1000, 2, 2, 2.0, "Female")  # the same requests, +2 logits for Female
    rows = by_check(analysis.paired_checks(same, prod, TH, "sex", GROUPS))
    assert rows["decision flips"].canary == 0 and rows["decision flips"].verdict == PASS
    rows = by_check(analysis.paired_checks(flipped, prod, TH, "sex", GROUPS))
    assert rows["decision flips"].verdict == FAIL and rows["decision flips"].n_canary == 1000
    assert rows["prediction shift in sex=Female"].verdict == FAIL


# -- real request logs ---------------------------------------------------------------------------

def write_log(path, rows: pd.DataFrame) -> None:
    """PredictionLogs as `fairway serve` writes them (one row per request)."""
    with tf.io.TFRecordWriter(str(path)) as w:
        for sex, p, version, t, rid in zip(rows["sex"], rows["_prediction"], rows["_version"],
                                           rows["_time"], rows["_request_id"]):
            log = prediction_log_pb2.PredictionLog()
            req = log.predict_log.request
            req.model_spec.name = "m"
            req.inputs["sex"].CopyFrom(tf.make_tensor_proto([sex.encode()]))
            log.predict_log.response.outputs["probability"].CopyFrom(
                tf.make_tensor_proto([p], tf.float32))
            log.log_metadata.model_spec.version.value = int(version)
            log.log_metadata.timestamp_secs = int(t)
            log.log_metadata.request_origin = rid
            w.write(log.SerializeToString())


def test_a_step_judges_its_checks_at_alpha_over_their_number():
    rows = analysis.prediction_checks(frame(600, 2, 1, 2.0, "Female"), frame(2000, 1, 2), TH,
                                      "sex", GROUPS)
    borderline = analysis.Row("error rate", 0.05, 0.0, 200, 200, 0.005, "+1.0% and p < 0.01",
                              FAIL, "error rate: ... fails at +1.0% and p < 0.01")
    judged, per = analysis.bonferroni([borderline, *rows], TH.alpha)
    assert per == pytest.approx(0.01 / 5)  # the Female/Male shifts, overall, gap, error rate
    assert judged[0].verdict == PASS and judged[0].reason == ""
    assert judged[0].threshold == "+1.0% and p < 0.002 (α 0.01 / 5 checks)"
    female = by_check(judged)["prediction shift in sex=Female"]
    assert female.verdict == FAIL and "p < 0.002" in female.threshold
    assert analysis.bonferroni([borderline], TH.alpha) == ([borderline], TH.alpha)


def test_checks_on_request_logs_read_back_from_disk(tmp_path):
    write_log(tmp_path / "requests-20261130T000000Z-1.tfrecord",
              pd.concat([frame(1500, 1, 2), frame(400, 2, 1, 2.0, "Female")]))
    logged = requests.read(str(tmp_path))
    canary, prod = analysis.arm(logged, 2, 0), analysis.arm(logged, 1, 0)
    assert len(canary) == 400 and len(prod) == 1500
    rows = by_check(analysis.prediction_checks(canary, prod, TH, "sex", GROUPS))
    assert rows["prediction shift in sex=Female"].verdict == FAIL
    assert rows["prediction shift in sex=Male"].verdict == PASS
    # Rows before a step began are not the step's.
    assert len(analysis.arm(logged, 2, since=1002.5)) == 200
