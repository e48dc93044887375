"""`fairway monitor` pieces: reading serving request logs, and drift scores with real TFDV."""
import numpy as np
import pandas as pd
import pytest
import tensorflow as tf
import tensorflow_data_validation as tfdv

from monitoring import drift, monitor, requests
from pipeline import config
from pipeline.errors import FairwayError
from serving import rest

RAW = config.preset("census").dataset
pytestmark = pytest.mark.usefixtures("census_dir")  # most tests read the census CSVs


def eval_frame() -> pd.DataFrame:
    return pd.read_csv(config.data_home() / "census" / "eval" / "adult.test.csv",
                       keep_default_na=False).drop(columns=[RAW.label])


def write_log(path, frame: pd.DataFrame, version: int = 7, batch: int = 50, scores=None):
    """PredictionLogs exactly as `fairway serve` writes them for REST :predict requests."""
    with tf.io.TFRecordWriter(str(path)) as w:
        for start in range(0, len(frame), batch):
            part = frame.iloc[start:start + batch]
            inputs = {c: (np.array([v.encode() for v in part[c]], dtype=object)
                          if part[c].dtype == object else part[c].to_numpy(np.int64))
                      for c in part.columns}
            p = np.zeros(len(part)) if scores is None else scores[start:start + batch]
            log = rest.predict_log(inputs, {"probability": np.asarray(p, np.float32)},
                                   "serving_default")()
            log.log_metadata.model_spec.name = "census"
            log.log_metadata.model_spec.version.value = version
            w.write(log.SerializeToString())


@pytest.fixture(scope="module")
def training():
    frame = pd.read_csv(config.data_home() / "census" / "train" / "adult.data.csv",
                        keep_default_na=False).drop(columns=[RAW.label])
    schema = tfdv.load_schema_text(str(config.REPO_ROOT / "schemas" / "census" / "schema.pbtxt"))
    return tfdv.generate_statistics_from_dataframe(frame), schema


def test_request_logs_become_rows_with_version_and_request_id(tmp_path):
    rows = eval_frame().head(120)
    write_log(tmp_path / "requests-a.tfrecord", rows)
    frame = requests.read(str(tmp_path))
    assert len(frame) == 120 and set(frame["_version"]) == {7}
    assert frame["_request_id"].iloc[51] == "requests-a.tfrecord:1:1"
    assert frame["age"].tolist() == rows["age"].tolist()
    assert frame["sex"].tolist() == rows["sex"].tolist()


def test_empty_malformed_and_missing_logs_are_clear_errors(tmp_path):
    with pytest.raises(requests.RequestLogError, match="no requests-\\*.tfrecord files"):
        requests.read(str(tmp_path))
    (tmp_path / "requests-empty.tfrecord").write_bytes(b"")
    with pytest.raises(requests.RequestLogError, match="hold no requests"):
        requests.read(str(tmp_path))
    bad = tmp_path / "requests-bad.tfrecord"
    bad.write_bytes(b"this is not a TFRecord file at all")
    with pytest.raises(requests.RequestLogError, match="requests-bad.tfrecord: not a TFRecord"):
        requests.read(str(bad))
    with pytest.raises(requests.RequestLogError, match="no such file or folder"):
        requests.read(str(tmp_path / "nope"))


def test_clean_traffic_raises_no_alert(training, tmp_path):
    stats, schema = training
    write_log(tmp_path / "requests-clean.tfrecord", eval_frame().sample(1000, random_state=1))
    frame = requests.read(str(tmp_path))
    result = drift.compare(stats, schema, drift.serving_statistics(frame))
    assert len(result["features"]) == 14 and not result["not_compared"]
    assert [f.feature for f in result["features"] if f.alert] == []
    assert result["anomalies"] == {}


def test_injected_drift_is_detected_on_the_shifted_features(training, tmp_path):
    stats, schema = training
    shifted = eval_frame().sample(1000, random_state=4).reset_index(drop=True)
    shifted["age"] = shifted["age"] + 15
    shifted.loc[shifted.sample(frac=0.3, random_state=5).index, "workclass"] = "Gig-economy"
    write_log(tmp_path / "requests-drift.tfrecord", shifted)
    result = drift.compare(stats, schema, drift.serving_statistics(requests.read(str(tmp_path))))
    alerts = {f.feature: f for f in result["features"] if f.alert}
    assert {"age", "workclass"} <= set(alerts)
    assert alerts["age"].measure == "Jensen-Shannon divergence"
    assert alerts["workclass"].measure == "L-infinity" and alerts["workclass"].score > 0.25
    assert "Gig-economy" in result["anomalies"]["workclass"]


def test_labels_that_arrive_later_give_the_served_models_quality(tmp_path):
    cfg = config.preset("census")
    rows = eval_frame().head(400)
    labels = pd.read_csv(config.data_home() / "census" / "eval" / "adult.test.csv",
                         nrows=400)[RAW.label].to_numpy()
    # A model that is right on Female rows and inverted on Male rows.
    scores = np.where(rows["sex"] == "Female", labels * 0.8 + 0.1, 0.9 - labels * 0.8)
    write_log(tmp_path / "requests-x.tfrecord", rows, scores=scores)
    frame = requests.read(str(tmp_path))
    csv_path = tmp_path / "labels.csv"
    pd.DataFrame({"request_id": frame["_request_id"][:300], "label": labels[:300]}).to_csv(
        csv_path, index=False)
    perf = monitor.performance(cfg, frame, monitor.read_labels(str(csv_path)))
    assert perf["labelled"] == 300 and perf["unmatched_labels"] == 0
    assert perf["by_group"]["Female"]["auc"] == 1.0 and perf["by_group"]["Male"]["auc"] == 0.0
    assert 0.0 < perf["accuracy"] < 1.0


@pytest.mark.parametrize("text,message", [
    ("id,y\nx,1\n", "expected a CSV with the header 'request_id,label'"),
    ("request_id,label\nx,2\n", "labels.csv:2: label '2' is not 0 or 1"),
    ("request_id,label\n", "no labels"),
])
def test_bad_label_files_name_the_file_and_row(tmp_path, text, message):
    path = tmp_path / "labels.csv"
    path.write_text(text)
    with pytest.raises(FairwayError, match=message):
        monitor.read_labels(str(path))


def test_classify_logs_with_context_carry_the_context_features(tmp_path):
    from tensorflow_serving.apis import prediction_log_pb2

    log = prediction_log_pb2.PredictionLog()
    inp = log.classify_log.request.input.example_list_with_context
    inp.context.features.feature["sex"].bytes_list.value.append(b"Female")
    for age in (30, 40):
        ex = inp.examples.add()
        ex.features.feature["age"].int64_list.value.append(age)
    with tf.io.TFRecordWriter(str(tmp_path / "requests-c.tfrecord")) as w:
        w.write(log.SerializeToString())
    frame = requests.read(str(tmp_path))
    assert frame["sex"].tolist() == ["Female", "Female"]
    assert frame["age"].tolist() == [30, 40]


def test_nan_and_empty_inputs_are_missing_values(tmp_path):
    log = rest.predict_log({"x": np.array([1.5, np.nan]), "s": np.array([b"a", b""], object)},
                           {"probability": np.zeros(2, np.float32)}, "serving_default")()
    with tf.io.TFRecordWriter(str(tmp_path / "requests-n.tfrecord")) as w:
        w.write(log.SerializeToString())
    frame = requests.read(str(tmp_path))
    assert frame["x"].isna().tolist() == [False, True]
    assert frame["s"].isna().tolist() == [False, True]
