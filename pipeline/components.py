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


def missing_groups(statistics_uri: str, split: str, feature: str,
                   groups: list[str]) -> list[str]:
    """Problems with the sensitive feature's groups in one split's statistics (empty: fine)."""
    import tensorflow_data_validation as tfdv

    stats = tfdv.load_stats_binary(os.path.join(statistics_uri, f"Split-{split}",
                                                "FeatureStats.pb"))
    found = [f for f in stats.datasets[0].features if f.path.step == [feature]]
    if not found:
        return [f"split '{split}': sensitive feature '{feature}' (dataset.sensitive) is missing"]
    string_stats = found[0].string_stats
    counts = {b.label: b.sample_count for b in string_stats.rank_histogram.buckets}
    if len(counts) < string_stats.unique:
        return []  # too many values to list them all; the Trainer checks again
    return [f"split '{split}': group {g!r} of '{feature}' (dataset.groups) has no rows; "
            f"values present: {sorted(counts)}" for g in groups if counts.get(g, 0) == 0]


@component
def DataGate(anomalies: tfx.dsl.components.InputArtifact[standard_artifacts.ExampleAnomalies],
             statistics: tfx.dsl.components.InputArtifact[standard_artifacts.ExampleStatistics],
             sensitive: tfx.dsl.components.Parameter[str] = "",
             groups: tfx.dsl.components.Parameter[str] = "[]"):
    """Fail the run, naming every problem, if ExampleValidator found anomalies or a group of the
    sensitive feature (JSON list `groups`) is absent from a split."""
    problems = describe_anomalies(anomalies.uri, json.loads(anomalies.split_names))
    if problems:
        raise DataAnomaliesError(
            "ExampleValidator found data anomalies; nothing was trained or pushed:\n  "
            + "\n  ".join(problems))
    if sensitive and json.loads(groups):
        problems = [line for split in json.loads(statistics.split_names)
                    for line in missing_groups(statistics.uri, split, sensitive,
                                               json.loads(groups))]
        if problems:
            raise DataAnomaliesError("the fairness groups are not in the data; nothing was "
                                     "trained or pushed:\n  " + "\n  ".join(problems))
