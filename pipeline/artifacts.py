"""Where TFX's standard components put their files inside an artifact's URI, and their readers.

The one home of the artifact layout (`Split-<name>/`, `FeatureStats.pb`, `SchemaDiff.pb`,
`schema.pbtxt`, `Format-Serving`): every reader of a pipeline's output goes through here.
TensorFlow and TFDV are imported only by the readers that need them.
"""
from __future__ import annotations

import os

from pipeline.errors import FairwayError


class ArtifactError(FairwayError):
    """An artifact's file is missing: the run that wrote it failed or it was deleted."""


def split_dir(uri: str, split: str) -> str:
    """The folder of one split ("train", "eval") in an Examples, ExampleStatistics or
    ExampleAnomalies artifact."""
    return os.path.join(uri, f"Split-{split}")


def stats_path(uri: str, split: str) -> str:
    """StatisticsGen's statistics (a DatasetFeatureStatisticsList) of one split."""
    return os.path.join(split_dir(uri, split), "FeatureStats.pb")


def anomalies_path(uri: str, split: str) -> str:
    """ExampleValidator's anomalies (an Anomalies proto) of one split."""
    return os.path.join(split_dir(uri, split), "SchemaDiff.pb")


def schema_path(uri: str) -> str:
    """The schema inside a Schema artifact (ImportSchemaGen, SchemaGen)."""
    return os.path.join(uri, "schema.pbtxt")


def serving_model_dir(model_uri: str) -> str:
    """The SavedModel a Trainer exported for serving, inside its Model artifact."""
    return os.path.join(model_uri, "Format-Serving")


def _existing(path: str) -> str:
    import tensorflow as tf

    if not tf.io.gfile.exists(path):
        raise ArtifactError(f"{path}: not found (the artifact is incomplete or was deleted)")
    return path


def load_stats(uri: str, split: str):
    """The DatasetFeatureStatisticsList of one split."""
    import tensorflow_data_validation as tfdv

    return tfdv.load_stats_binary(_existing(stats_path(uri, split)))


def load_schema(uri: str):
    import tensorflow_data_validation as tfdv

    return tfdv.load_schema_text(_existing(schema_path(uri)))


def load_anomalies(uri: str, split: str):
    import tensorflow as tf
    from tensorflow_metadata.proto.v0 import anomalies_pb2

    with tf.io.gfile.GFile(_existing(anomalies_path(uri, split)), "rb") as f:
        return anomalies_pb2.Anomalies.FromString(f.read())


def read_examples(uri: str, split: str, limit: int | None = None) -> list[bytes]:
    """The serialized tf.Examples of one split of an Examples artifact (ExampleGen writes
    GZIP TFRecords), in file order; the first `limit` only, if given."""
    import tensorflow as tf

    files = sorted(tf.io.gfile.glob(os.path.join(split_dir(uri, split), "*")))
    if not files:
        raise ArtifactError(f"{uri}: no '{split}' split (no files in Split-{split}/)")
    data = tf.data.TFRecordDataset(files, compression_type="GZIP")
    if limit is not None:
        data = data.take(limit)
    return list(data.as_numpy_iterator())
