"""pipeline.metrics (AUC, rates per group, gaps, the eval data) and pipeline.artifacts (the
artifact layout): what compare, monitor and report measure with."""
import dataclasses

import numpy as np
import pytest
import tensorflow as tf

from pipeline import artifacts, config, metrics


def brute_force_auc(labels, scores):
    pos, neg = scores[labels == 1], scores[labels == 0]
    wins = (pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()
    return wins / (len(pos) * len(neg))


def test_auc_matches_the_pairwise_definition_with_ties():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 300)
    scores = np.round(rng.random(300) + 0.3 * labels, 1)  # rounding makes ties
    assert metrics.auc(labels, scores) == pytest.approx(brute_force_auc(labels, scores))
    assert metrics.auc(np.array([0, 1]), np.array([0.1, 0.9])) == 1.0
    assert np.isnan(metrics.auc(np.array([1, 1]), np.array([0.1, 0.9])))


def test_group_rates_count_errors_per_group():
    labels = np.array([0, 0, 1, 1, 0, 0, 1, 1])
    scores = np.array([0.9, 0.1, 0.8, 0.2, 0.1, 0.1, 0.9, 0.9])
    groups = np.array(["F"] * 4 + ["M"] * 4)
    rates = metrics.group_rates(labels, scores, groups, 0.5)
    assert rates["F"]["fpr"] == 0.5 and rates["F"]["fnr"] == 0.5
    assert rates["M"]["fpr"] == 0.0 and rates["M"]["fnr"] == 0.0
    assert rates["M"]["rows"] == 4
    assert metrics.rate_gap(rates, "F", "M") == 0.5


def test_an_undefined_rate_is_none_and_its_gap_a_metric_error():
    rates = metrics.group_rates(np.array([1, 1, 0]), np.array([0.9, 0.2, 0.7]),
                                np.array(["F", "F", "M"]), 0.5)
    assert rates["F"]["fpr"] is None and rates["M"]["fnr"] is None
    with pytest.raises(metrics.MetricError, match="group 'F' has no negative examples"):
        metrics.rate_gap(rates, "F", "M", "fpr")
    with pytest.raises(metrics.MetricError, match="group 'M' has no positive examples"):
        metrics.rate_gap(rates, "F", "M", "fnr")
    assert issubclass(metrics.MetricError, config.FairwayError)  # the CLI prints it, exit 1


def _examples_artifact(root, rows):
    """An Examples artifact as CsvExampleGen writes it: Split-eval/ of GZIP TFRecords."""
    split = root / "Split-eval"
    split.mkdir(parents=True)
    with tf.io.TFRecordWriter(str(split / "data_tfrecord-00000-of-00001.gz"), "GZIP") as w:
        for label, sex in rows:
            feats = {"income": tf.train.Feature(int64_list=tf.train.Int64List(value=[label]))}
            if sex is not None:
                feats["sex"] = tf.train.Feature(bytes_list=tf.train.BytesList(value=[sex.encode()]))
            w.write(tf.train.Example(features=tf.train.Features(feature=feats))
                    .SerializeToString())
    return str(root)


def test_eval_data_reads_labels_and_groups(tmp_path):
    uri = _examples_artifact(tmp_path / "ex", [(1, "Female"), (0, "Male"), (0, None)])
    data = metrics.EvalData(uri, config.preset("census"))
    assert data.labels.tolist() == [1, 0, 0]
    assert data.groups.tolist() == ["Female", "Male", ""]
    assert len(artifacts.read_examples(uri, "eval", limit=2)) == 2


def test_eval_data_without_a_sensitive_feature(tmp_path):
    """`fairway report` on a config without dataset.sensitive: no traceback in EvalData."""
    cfg = config.preset("census")
    cfg = dataclasses.replace(cfg, dataset=dataclasses.replace(cfg.dataset, sensitive=None,
                                                               groups=()))
    data = metrics.EvalData(_examples_artifact(tmp_path / "ex", [(1, "Female"), (0, None)]), cfg)
    assert data.labels.tolist() == [1, 0] and len(data.groups) == 2


def test_missing_artifact_files_are_clear_errors(tmp_path):
    with pytest.raises(artifacts.ArtifactError, match="no 'eval' split"):
        artifacts.read_examples(str(tmp_path), "eval")
    with pytest.raises(artifacts.ArtifactError, match=r"Split-train/FeatureStats.pb: not found"):
        artifacts.load_stats(str(tmp_path), "train")
    with pytest.raises(artifacts.ArtifactError, match=r"schema.pbtxt: not found"):
        artifacts.load_schema(str(tmp_path))
    assert artifacts.serving_model_dir("/m/1") == "/m/1/Format-Serving"
