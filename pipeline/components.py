"""Fairway's own small TFX components.

No `from __future__ import annotations` here: TFX reads the type hints at decoration time.
"""

import json
import os

from tfx import v1 as tfx
from tfx.dsl.component.experimental.decorators import component
from tfx.types import standard_artifacts

from pipeline.config import FairwayError


class DataAnomaliesError(FairwayError):
    """ExampleValidator found anomalies: the run stops before training and pushing."""


def describe_anomalies(anomalies_uri: str, split_names: list[str]) -> list[str]:
    """One line per anomalous feature: split, feature, short and long description."""
    import tensorflow as tf
    from tensorflow_metadata.proto.v0 import anomalies_pb2

    lines = []
    for split in split_names:
        path = os.path.join(anomalies_uri, f"Split-{split}", "SchemaDiff.pb")
        found = anomalies_pb2.Anomalies.FromString(tf.io.gfile.GFile(path, "rb").read())
        for feature, info in sorted(found.anomaly_info.items()):
            lines.append(f"split '{split}', feature '{feature}': {info.short_description} "
                         f"({info.description})")
        if found.HasField("dataset_anomaly_info"):
            info = found.dataset_anomaly_info
            lines.append(f"split '{split}', dataset: {info.short_description} "
                         f"({info.description})")
    return lines


@component
def DataGate(anomalies: tfx.dsl.components.InputArtifact[standard_artifacts.ExampleAnomalies]):
    """Fail the run, naming every anomaly, if ExampleValidator found any."""
    problems = describe_anomalies(anomalies.uri, json.loads(anomalies.split_names))
    if problems:
        raise DataAnomaliesError(
            "ExampleValidator found data anomalies; nothing was trained or pushed:\n  "
            + "\n  ".join(problems))
