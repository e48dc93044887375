"""Drift of serving traffic against the training baseline, with TFDV.

Each feature's comparator comes from the curated schema (`skew_comparator`: L-infinity distance
for categorical features, Jensen-Shannon divergence for numeric ones). A score above its
threshold is an alert; values the schema does not allow are reported as anomalies.
"""
from __future__ import annotations

import dataclasses
from typing import Any

import pandas as pd
import tensorflow_data_validation as tfdv
from tensorflow_metadata.proto.v0 import anomalies_pb2, schema_pb2, statistics_pb2

MEASURES = {anomalies_pb2.DriftSkewInfo.Measurement.L_INFTY: "L-infinity",
            anomalies_pb2.DriftSkewInfo.Measurement.JENSEN_SHANNON_DIVERGENCE:
                "Jensen-Shannon divergence"}


@dataclasses.dataclass(frozen=True)
class FeatureDrift:
    feature: str
    measure: str
    score: float
    threshold: float

    @property
    def alert(self) -> bool:
        return self.score > self.threshold


def serving_statistics(frame: pd.DataFrame, schema: schema_pb2.Schema | None = None
                       ) -> statistics_pb2.DatasetFeatureStatisticsList:
    """TFDV statistics of the served rows; a missing value (NaN) counts as missing. An INT
    column of the schema that arrived as floats (an optional integer input, NaN = missing) is
    read back as integers."""
    features = frame[[c for c in frame.columns if not c.startswith("_")]].reset_index(drop=True)
    ints = {f.name for f in schema.feature if f.type == schema_pb2.INT} if schema else set()
    for c in features.columns:
        if c in ints and features[c].dtype.kind == "f":
            features[c] = features[c].round().astype("Int64")
    return tfdv.generate_statistics_from_dataframe(features)


def compare(training: statistics_pb2.DatasetFeatureStatisticsList, schema: schema_pb2.Schema,
            serving: statistics_pb2.DatasetFeatureStatisticsList) -> dict[str, Any]:
    """Per-feature scores (every feature with a comparator) and schema anomalies of serving."""
    skew = tfdv.validate_statistics(training, schema, serving_statistics=serving)
    scores = []
    for info in skew.drift_skew_info:
        for m in info.skew_measurements:
            scores.append(FeatureDrift(".".join(info.path.step), MEASURES.get(m.type, "?"),
                                       float(m.value), float(m.threshold)))
    compared = {f.name for f in schema.feature
                if f.HasField("skew_comparator")}
    missing = compared - {s.feature for s in scores}
    anomalies = tfdv.validate_statistics(serving, schema, environment="SERVING")
    return {
        "features": sorted(scores, key=lambda s: s.score / (s.threshold or 1), reverse=True),
        "not_compared": sorted(missing),
        "anomalies": {k: f"{v.short_description} ({v.description})"
                      for k, v in sorted(anomalies.anomaly_info.items())},
    }
