"""Fairway's own small TFX components.

No `from __future__ import annotations` here: TFX reads the type hints at decoration time.
"""

import json

from tfx import v1 as tfx
from tfx.dsl.component.experimental.decorators import component
from tfx.types import standard_artifacts

from pipeline import artifacts
from pipeline.errors import FairwayError


class LatestOrNone(tfx.dsl.experimental.ResolverStrategy):
    """The newest artifact of each channel, or none on a first run (TFX's LatestArtifactStrategy
    fails its resolver node when there is nothing yet)."""

    def resolve_artifacts(self, store, input_dict):
        return {k: sorted(v, key=lambda a: a.id)[-1:] for k, v in input_dict.items()}


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
                   groups: list[str]) -> list[str]:
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


@component
def DataGate(anomalies: tfx.dsl.components.InputArtifact[standard_artifacts.ExampleAnomalies],
             statistics: tfx.dsl.components.InputArtifact[standard_artifacts.ExampleStatistics],
             schema: tfx.dsl.components.InputArtifact[standard_artifacts.Schema],
             accepted: tfx.dsl.components.OutputArtifact[standard_artifacts.ExampleStatistics],
             previous_statistics: tfx.dsl.components.InputArtifact[
                 standard_artifacts.ExampleStatistics] = None,  # None: first run
             sensitive: tfx.dsl.components.Parameter[str] = "",
             groups: tfx.dsl.components.Parameter[str] = "[]"):
    """Fail the run, naming every problem, if ExampleValidator found anomalies, the training data
    drifted beyond the schema's drift_comparators from the last data that passed this gate
    (`previous_statistics`), or a group of the sensitive feature (JSON list `groups`) is absent
    from a split. Data that passes is published as `accepted`, the next run's reference."""
    problems = describe_anomalies(anomalies.uri, json.loads(anomalies.split_names))
    if previous_statistics is not None and previous_statistics.uri != statistics.uri:
        problems += drift_problems(statistics.uri, previous_statistics.uri, schema.uri)
    if problems:
        raise DataAnomaliesError(
            "ExampleValidator found data anomalies or drift; nothing was trained or pushed:"
            "\n  " + "\n  ".join(problems))
    if sensitive and json.loads(groups):
        problems = [line for split in json.loads(statistics.split_names)
                    for line in missing_groups(statistics.uri, split, sensitive,
                                               json.loads(groups))]
        if problems:
            raise DataAnomaliesError("the fairness groups are not in the data; nothing was "
                                     "trained or pushed:\n  " + "\n  ".join(problems))
    from tfx.utils import io_utils

    io_utils.copy_dir(statistics.uri, accepted.uri)
    accepted.split_names = statistics.split_names


class ServingCheckError(FairwayError):
    """The candidate did not load or answer its warmup requests: it is not pushed."""


def _eval_examples(examples_uri: str, split: str, n: int):
    import tensorflow as tf

    try:
        records = artifacts.read_examples(examples_uri, split, limit=n)
    except artifacts.ArtifactError as e:
        raise ServingCheckError(f"{e}: no rows to build warmup requests from") from None
    return [tf.train.Example.FromString(r) for r in records]


@component
def ServingCheck(model: tfx.dsl.components.InputArtifact[standard_artifacts.Model],
                 examples: tfx.dsl.components.InputArtifact[standard_artifacts.Examples],
                 blessing: tfx.dsl.components.OutputArtifact[standard_artifacts.InfraBlessing],
                 model_name: tfx.dsl.components.Parameter[str],
                 split: tfx.dsl.components.Parameter[str] = "eval",
                 num_examples: tfx.dsl.components.Parameter[int] = 8):
    """The step before the Pusher: copies the candidate with TF Serving warmup requests built
    from real `split` rows (assets.extra/tf_serving_warmup_requests, one request per
    signature), loads the copy in Fairway's serving runtime and replays them. The Pusher pushes
    this copy, so real TF Serving warms up with the same requests."""
    from tfx.utils import io_utils, path_utils

    from serving import servable, warmup

    src = path_utils.serving_model_path(model.uri, path_utils.is_old_model_artifact(model))
    dst = path_utils.stamped_model_path(blessing.uri)
    io_utils.copy_dir(src, dst)
    rows = _eval_examples(examples.uri, split, num_examples)
    path = warmup.write(dst, warmup.requests(dst, model_name, rows))
    try:
        replayed = warmup.replay(servable.Servable(model_name, 0, dst))
    except Exception as e:
        raise ServingCheckError(f"the candidate model failed its serving check ({path}); "
                                f"nothing is pushed: {e}") from e
    blessing.set_int_custom_property("blessed", 1)
    blessing.set_int_custom_property("has_model", 1)  # the Pusher pushes this copy
    blessing.set_int_custom_property("warmup_requests", replayed)
