"""Schema anomalies of served traffic, with TFDV: values the training schema does not allow
(a new category, a value out of its domain, a required feature missing) in the SERVING
environment, where the label is not expected."""
from __future__ import annotations

import pandas as pd
import tensorflow_data_validation as tfdv
from tensorflow_metadata.proto.v0 import schema_pb2, statistics_pb2


def serving_statistics(frame: pd.DataFrame, schema: schema_pb2.Schema | None = None
                       ) -> statistics_pb2.DatasetFeatureStatisticsList:
    """TFDV statistics of the served rows; a missing value (NaN, None or '') counts as
    missing. Columns take the schema's type: an INT column that arrived as floats (an optional
    integer input, NaN = missing) is read back as integers, a FLOAT column whose values were all
    whole numbers as floats."""
    features = frame[[c for c in frame.columns if not c.startswith("_")]].reset_index(drop=True)
    types = {f.name: f.type for f in schema.feature} if schema else {}
    for c in features.columns:
        if types.get(c) == schema_pb2.INT and features[c].dtype.kind == "f":
            features[c] = features[c].round().astype("Int64")
        elif types.get(c) == schema_pb2.FLOAT and features[c].dtype.kind in "iu":
            features[c] = features[c].astype(float)  # whole-number floats were read as ints
        elif features[c].dtype == object:
            features[c] = features[c].where(features[c].astype(str) != "", None)
    return tfdv.generate_statistics_from_dataframe(features)


def find(frame: pd.DataFrame, schema: schema_pb2.Schema) -> dict[str, str]:
    """{feature: "short description (description)"} of the window's schema anomalies."""
    # SERVING is where the label is not expected; a schema without environments has none.
    env = "SERVING" if "SERVING" in schema.default_environment else None
    anomalies = tfdv.validate_statistics(serving_statistics(frame, schema), schema,
                                         environment=env)
    return {k: f"{v.short_description} ({v.description})"
            for k, v in sorted(anomalies.anomaly_info.items())}
