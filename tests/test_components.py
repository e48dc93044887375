"""DataGate's and ServingCheck's executors (the classes TFX runs, `<name>_Executor`) on small
real artifacts: TFDV statistics, anomalies and schema; a SavedModel and tf.Examples."""
import os

import numpy as np
import pandas as pd
import pytest
import tensorflow as tf
import tensorflow_data_validation as tfdv
from tfx.types import artifact_utils, standard_artifacts

import serving_support
from pipeline import artifacts, components, data_gate, serving_check
from serving import warmup

SPLITS = ["train", "eval"]
GROUPS = '["Female", "Male"]'


def frame(n=200, seed=0, age_shift=0, sexes=("Female", "Male"), workclass=("Private", "State")):
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"age": rng.integers(20, 60, n) + age_shift,
                         "sex": rng.choice(list(sexes), n),
                         "workclass": rng.choice(list(workclass), n)})


def artifact(cls, uri, splits=None):
    a = cls()
    a.uri = str(uri)
    if splits:
        a.split_names = artifact_utils.encode_split_names(splits)
    return a


@pytest.fixture(scope="module")
def schema(tmp_path_factory):
    """The curated schema's shape: domains, and drift comparators on both kinds of feature."""
    uri = tmp_path_factory.mktemp("schema")
    s = tfdv.infer_schema(tfdv.generate_statistics_from_dataframe(frame()))
    tfdv.get_feature(s, "workclass").drift_comparator.infinity_norm.threshold = 0.1
    tfdv.get_feature(s, "age").drift_comparator.jensen_shannon_divergence.threshold = 0.1
    tfdv.write_schema_text(s, artifacts.schema_path(str(uri)))
    return artifact(standard_artifacts.Schema, uri)


def statistics(tmp_path, name, schema, train, eval=None):
    """StatisticsGen's and ExampleValidator's artifacts for two splits of dataframes."""
    stats = artifact(standard_artifacts.ExampleStatistics, tmp_path / name / "statistics", SPLITS)
    anomalies = artifact(standard_artifacts.ExampleAnomalies, tmp_path / name / "anomalies",
                         SPLITS)
    s = artifacts.load_schema(schema.uri)
    for split, df in zip(SPLITS, [train, train if eval is None else eval]):
        os.makedirs(artifacts.split_dir(stats.uri, split))
        os.makedirs(artifacts.split_dir(anomalies.uri, split))
        split_stats = tfdv.generate_statistics_from_dataframe(df)
        with open(artifacts.stats_path(stats.uri, split), "wb") as f:
            f.write(split_stats.SerializeToString())  # as StatisticsGen writes FeatureStats.pb
        with open(artifacts.anomalies_path(anomalies.uri, split), "wb") as f:
            f.write(tfdv.validate_statistics(split_stats, s).SerializeToString())
    return stats, anomalies


def gate(tmp_path, schema, stats, anomalies, previous=None, sensitive="sex", groups=GROUPS):
    """Runs DataGate_Executor as TFX does; returns the `accepted` artifact."""
    accepted = artifact(standard_artifacts.ExampleStatistics,
                        tmp_path / f"accepted-{len(os.listdir(tmp_path))}")
    inputs = {"anomalies": [anomalies], "statistics": [stats], "schema": [schema]}
    if previous is not None:
        inputs["previous_statistics"] = [previous]
    components.DataGate.EXECUTOR_SPEC.executor_class().Do(
        inputs, {"accepted": [accepted]}, {"sensitive": sensitive, "groups": groups})
    return accepted


def test_clean_data_passes_and_is_published_as_accepted(tmp_path, schema):
    stats, anomalies = statistics(tmp_path, "clean", schema, frame())
    accepted = gate(tmp_path, schema, stats, anomalies)
    assert artifact_utils.decode_split_names(accepted.split_names) == SPLITS
    for split in SPLITS:
        assert artifacts.load_stats(accepted.uri, split) == artifacts.load_stats(stats.uri, split)
    assert accepted.get_string_custom_property(data_gate.SOURCE) == stats.uri
    assert accepted.get_string_custom_property(data_gate.DRIFT_REFERENCE) == ""  # first run


def test_anomalies_fail_naming_the_feature(tmp_path, schema):
    stats, anomalies = statistics(tmp_path, "bad", schema, frame(),
                                  frame(seed=1, workclass=("Private", "Gig-economy")))
    with pytest.raises(data_gate.DataAnomaliesError,
                       match=r"split 'eval', feature 'workclass': Unexpected string values"):
        gate(tmp_path, schema, stats, anomalies)
    assert not [p for p in os.listdir(tmp_path) if p.startswith("accepted") and
                os.listdir(tmp_path / p)]  # nothing published


def test_drift_from_the_accepted_data_fails_naming_the_feature(tmp_path, schema):
    first, first_anomalies = statistics(tmp_path, "first", schema, frame())
    previous = gate(tmp_path, schema, first, first_anomalies)
    # A clean new batch (other rows of the same distribution) passes against it ...
    clean, clean_anomalies = statistics(tmp_path, "clean", schema, frame(seed=2))
    accepted = gate(tmp_path, schema, clean, clean_anomalies, previous)
    assert accepted.get_string_custom_property(data_gate.DRIFT_REFERENCE) == previous.uri
    # ... a batch twenty years older does not.
    old, old_anomalies = statistics(tmp_path, "old", schema, frame(seed=3, age_shift=20))
    with pytest.raises(data_gate.DataAnomaliesError) as e:
        gate(tmp_path, schema, old, old_anomalies, previous)
    assert "feature 'age': drift (JENSEN_SHANNON_DIVERGENCE)" in str(e.value)
    assert "workclass" not in str(e.value)


def test_a_rerun_on_the_same_statistics_is_not_compared_with_itself(tmp_path, schema,
                                                                     monkeypatch):
    """The guard the always-true `previous_statistics.uri != statistics.uri` meant: `accepted` is
    a copy at its own URI, so a cached re-run's reference is recognised by its recorded source."""
    stats, anomalies = statistics(tmp_path, "same", schema, frame())
    previous = gate(tmp_path, schema, stats, anomalies)
    compared = []
    monkeypatch.setattr(data_gate, "drift_problems", lambda *a, **k: compared.append(a) or [])
    again = gate(tmp_path, schema, stats, anomalies, previous)
    assert compared == []
    assert again.get_string_custom_property(data_gate.DRIFT_REFERENCE) == ""
    other, other_anomalies = statistics(tmp_path, "other", schema, frame(seed=4))
    gate(tmp_path, schema, other, other_anomalies, previous)
    assert compared == [(other.uri, previous.uri, schema.uri)]


def test_a_missing_group_fails_naming_it(tmp_path, schema):
    stats, anomalies = statistics(tmp_path, "groups", schema, frame(),
                                  frame(seed=5, sexes=("Male",)))
    with pytest.raises(data_gate.DataAnomaliesError,
                       match=r"split 'eval': group 'Female' of 'sex' \(dataset.groups\) has no "
                             r"rows; values present: \['Male'\]"):
        gate(tmp_path, schema, stats, anomalies)
    assert gate(tmp_path, schema, stats, anomalies, sensitive="")  # no sensitive feature: fine


# ServingCheck


def examples_artifact(tmp_path, rows):
    examples = artifact(standard_artifacts.Examples, tmp_path / "examples", ["eval"])
    os.makedirs(artifacts.split_dir(examples.uri, "eval"))
    path = os.path.join(artifacts.split_dir(examples.uri, "eval"), "data.gz")
    with tf.io.TFRecordWriter(path, options="GZIP") as w:
        for x, n, s in rows:
            w.write(tf.train.Example(features=tf.train.Features(feature={
                "x": tf.train.Feature(float_list=tf.train.FloatList(value=x)),
                "n": tf.train.Feature(int64_list=tf.train.Int64List(value=[n])),
                "s": tf.train.Feature(bytes_list=tf.train.BytesList(value=[s])),
            })).SerializeToString())
    return examples


ROWS = [([1.0, 2.0], 3, b"a"), ([0.5, -1.0], 0, b"bc"), ([2.0, 2.0], 7, b"")]


class CannotAnswer(tf.Module):
    """Loads, but fails every request."""

    @tf.function(input_signature=[tf.TensorSpec([None, 2], tf.float32, name="x")])
    def serve(self, x):
        tf.debugging.assert_less(tf.reduce_sum(x), -1e9, message="this model cannot answer")
        return {"y": tf.reduce_sum(x, 1)}


def check(tmp_path, model_dir_writer, rows=ROWS, num_examples=8):
    """Runs ServingCheck_Executor as TFX does; returns the `blessing` artifact."""
    model = artifact(standard_artifacts.Model, tmp_path / "model")
    model_dir_writer(tmp_path / "model" / "Format-Serving")
    blessing = artifact(standard_artifacts.InfraBlessing, tmp_path / "blessing")
    components.ServingCheck.EXECUTOR_SPEC.executor_class().Do(
        {"model": [model], "examples": [examples_artifact(tmp_path, rows)]},
        {"blessing": [blessing]},
        {"model_name": "toy", "split": "eval", "num_examples": num_examples})
    return blessing


def test_serving_check_writes_and_replays_warmup_requests(tmp_path):
    def write(path):
        path.parent.mkdir(parents=True)
        serving_support.toy_model(path)

    blessing = check(tmp_path, write, num_examples=2)
    stamped = tmp_path / "blessing" / "stamped_model"
    assert (stamped / "saved_model.pb").is_file()
    logs = list(tf.data.TFRecordDataset(str(stamped / warmup.FILE)).as_numpy_iterator())
    # One request per signature: serving_default and single (predict; `single`'s input `v` is
    # not in the rows, so it has none), classification, regression; two rows each.
    assert len(logs) == blessing.get_int_custom_property("warmup_requests") == 3
    assert blessing.get_int_custom_property("blessed") == 1
    assert blessing.get_int_custom_property("has_model") == 1
    from tensorflow_serving.apis import prediction_log_pb2

    kinds = sorted(prediction_log_pb2.PredictionLog.FromString(r).WhichOneof("log_type")
                   for r in logs)
    assert kinds == ["classify_log", "predict_log", "regress_log"]
    first = prediction_log_pb2.PredictionLog.FromString(logs[0])
    assert len(first.classify_log.request.input.example_list.examples) == 2


def test_a_model_that_cannot_answer_fails_the_check(tmp_path):
    def write(path):
        path.parent.mkdir(parents=True)
        m = CannotAnswer()
        tf.saved_model.save(m, str(path), signatures={"serving_default": m.serve})

    with pytest.raises(serving_check.ServingCheckError,
                       match=r"(?s)failed its serving check .*tf_serving_warmup_requests.*"
                             r"nothing is pushed: .*this model cannot answer"):
        check(tmp_path, write)


def test_no_rows_to_warm_up_with_fails_the_check(tmp_path):
    def write(path):
        path.parent.mkdir(parents=True)
        serving_support.toy_model(path)

    model = artifact(standard_artifacts.Model, tmp_path / "model")
    write(tmp_path / "model" / "Format-Serving")
    examples = examples_artifact(tmp_path, ROWS)
    with pytest.raises(serving_check.ServingCheckError, match="no 'train' split"):
        serving_check.run(model, examples, artifact(standard_artifacts.InfraBlessing,
                                                    tmp_path / "blessing"), "toy", "train")
