"""DataGate's executor: the checks between ExampleValidator and Transform, on artifacts.

The component (`pipeline.components.DataGate`) only declares the inputs, outputs and parameters
and calls `run`; the tests run this code on real TFDV artifacts.
"""
from __future__ import annotations

from typing import Sequence

from pipeline import artifacts
from pipeline.errors import FairwayError

# Custom properties of `accepted` (recorded in MLMD with the artifact).
SOURCE = "source_statistics"  # the StatisticsGen artifact it is a copy of
DRIFT_REFERENCE = "drift_reference"  # what it was compared with ("": nothing, or itself)


class DataAnomaliesError(FairwayError):
    """ExampleValidator found anomalies: the run stops before training and pushing."""


def describe_anomalies(anomalies_uri: str, split_names: list[str]) -> list[str]:
    """One line per anomalous feature: split, feature, short and long description."""
    lines = []
    for split in split_names:
        found = artifacts.load_anomalies(anomalies_uri, split)
        for feature, info in sorted(found.anomaly_info.items()):
            lines.append(f"split '{split}', feature '{feature}': {info.short_description} "
                         f"({info.description})")
        if found.HasField("dataset_anomaly_info"):
            info = found.dataset_anomaly_info
            lines.append(f"split '{split}', dataset: {info.short_description} "
                         f"({info.description})")
    return lines


def missing_groups(statistics_uri: str, split: str, feature: str,
                   groups: Sequence[str]) -> list[str]:
    """Problems with the sensitive feature's groups in one split's statistics (empty: fine)."""
    stats = artifacts.load_stats(statistics_uri, split)
    found = [f for f in stats.datasets[0].features if f.path.step == [feature]]
    if not found:
        return [f"split '{split}': sensitive feature '{feature}' (dataset.sensitive) is missing"]
    string_stats = found[0].string_stats
    counts = {b.label: b.sample_count for b in string_stats.rank_histogram.buckets}
    if len(counts) < string_stats.unique:
        return []  # too many values to list them all; the Trainer checks again
    return [f"split '{split}': group {g!r} of '{feature}' (dataset.groups) has no rows; "
            f"values present: {sorted(counts)}" for g in groups if counts.get(g, 0) == 0]


def drift_problems(current_uri: str, previous_uri: str, schema_uri: str,
                   split: str = "train") -> list[str]:
    """Features whose drift against the previous data crosses the schema's drift_comparator."""
    import tensorflow_data_validation as tfdv
    from tensorflow_metadata.proto.v0 import anomalies_pb2

    result = tfdv.validate_statistics(
        artifacts.load_stats(current_uri, split), artifacts.load_schema(schema_uri),
        previous_statistics=artifacts.load_stats(previous_uri, split))
    names = anomalies_pb2.DriftSkewInfo.Measurement.Type.Name
    return [f"split '{split}', feature '{'.'.join(info.path.step)}': drift "
            f"({names(m.type)}) {m.value:.4f} > threshold {m.threshold:g} against the "
            f"previous data ({previous_uri})"
            for info in result.drift_skew_info for m in info.drift_measurements
            if m.value > m.threshold]


def is_same_data(previous, statistics) -> bool:
    """`previous` (an `accepted` artifact) is a copy of this very `statistics` artifact: a
    re-run whose StatisticsGen came from the cache. Comparing it with itself is skipped (its
    drift is 0). `accepted` is always a copy at its own URI, so comparing the two URIs cannot
    tell; the copy records its source instead."""
    return (previous.has_custom_property(SOURCE)
            and previous.get_string_custom_property(SOURCE) == statistics.uri)


def run(anomalies, statistics, schema, accepted, previous_statistics=None,
        sensitive: str = "", groups: Sequence[str] = ()) -> None:
    """Fail, naming every problem, if ExampleValidator found anomalies, the training data
    drifted beyond the schema's drift_comparators from `previous_statistics` (the last data
    that passed; None on a first run), or a group of `sensitive` is absent from a split. Data
    that passes is copied to `accepted`, the next run's reference. Arguments are TFX
    artifacts."""
    import json

    problems = describe_anomalies(anomalies.uri, json.loads(anomalies.split_names))
    reference = ""
    if previous_statistics is not None and not is_same_data(previous_statistics, statistics):
        reference = previous_statistics.uri
        problems += drift_problems(statistics.uri, reference, schema.uri)
    if problems:
        raise DataAnomaliesError(
            "ExampleValidator found data anomalies or drift; nothing was trained or pushed:"
            "\n  " + "\n  ".join(problems))
    if sensitive and groups:
        problems = [line for split in json.loads(statistics.split_names)
                    for line in missing_groups(statistics.uri, split, sensitive, groups)]
        if problems:
            raise DataAnomaliesError("the fairness groups are not in the data; nothing was "
                                     "trained or pushed:\n  " + "\n  ".join(problems))
    from tfx.utils import io_utils

    io_utils.copy_dir(statistics.uri, accepted.uri)
    accepted.split_names = statistics.split_names
    accepted.set_string_custom_property(SOURCE, statistics.uri)
    accepted.set_string_custom_property(DRIFT_REFERENCE, reference)
