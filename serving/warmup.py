"""SavedModel warmup (TF Serving's assets.extra/tf_serving_warmup_requests).

`write` builds PredictionLogs from real tf.Examples for every signature the model serves;
`replay` runs them against a freshly loaded version before it takes traffic, with TF Serving's
rules: at most 1,000 records, any failure fails the load.
"""
from __future__ import annotations

import os
from typing import Sequence

import numpy as np
import tensorflow as tf
from tensorflow_serving.apis import (classification_pb2, input_pb2, model_pb2, predict_pb2,
                                     prediction_log_pb2, regression_pb2)

from serving import protos
from serving.servable import CLASSIFY, REGRESS, Servable, read_signature_defs

FILE = os.path.join("assets.extra", "tf_serving_warmup_requests")
MAX_RECORDS = 1000  # servables/tensorflow/saved_model_warmup_util.cc


def replay(servable: Servable) -> int:
    """Replays the version's warmup file, if any; returns the number of requests."""
    path = os.path.join(servable.path, FILE)
    if not tf.io.gfile.exists(path):
        return 0
    records = list(tf.data.TFRecordDataset(path).as_numpy_iterator())
    if len(records) > MAX_RECORDS:
        raise ValueError(f"{path}: {len(records)} warmup records; at most {MAX_RECORDS} allowed")
    for i, raw in enumerate(records):
        log = prediction_log_pb2.PredictionLog()
        try:
            log.ParseFromString(raw)
        except Exception:
            raise ValueError(f"{path}: record {i} is not a PredictionLog") from None
        kind = log.WhichOneof("log_type")
        call = {"predict_log": protos.predict, "classify_log": protos.classify,
                "regress_log": protos.regress, "multi_inference_log": protos.multi_inference}
        if kind not in call:
            raise ValueError(f"{path}: record {i}: unsupported log type {kind!r}")
        call[kind](servable, getattr(log, kind).request)
    return len(records)


def _values(examples, key: str, dtype: tf.DType, rank: int):
    """The feature's values per example as a [batch] (rank 1) or [batch, k] list; None if the
    examples cannot fill this input."""
    out = []
    for e in examples:
        feat = e.features.feature.get(key)
        kind = feat.WhichOneof("kind") if feat is not None else None
        values = list(getattr(feat, kind).value) if kind else []
        if rank == 1:  # one value per example; a missing optional value is '' or NaN
            out.append(values[0] if values else
                       (b"" if dtype == tf.string else float("nan") if dtype.is_floating else 0))
        elif not values:
            return None
        else:
            out.append(values)
    return out


def _predict_request(spec, sig, examples, serialized):
    req = predict_pb2.PredictRequest(model_spec=spec)
    for key, info in sig.inputs.items():
        dtype, rank = tf.dtypes.as_dtype(info.dtype), len(info.tensor_shape.dim)
        if len(sig.inputs) == 1 and dtype == tf.string and rank == 1 \
                and key not in examples[0].features.feature:
            values = serialized  # a serialized-tf.Example input
        else:
            values = _values(examples, key, dtype, rank)
            if values is None:
                return None
        req.inputs[key].CopyFrom(tf.make_tensor_proto(
            np.array(values, dtype=object) if dtype == tf.string else values, dtype))
    return req


def requests(model_dir: str, model_name: str, examples: Sequence[tf.train.Example],
             per_signature: int = 1) -> list[prediction_log_pb2.PredictionLog]:
    """One request of all `examples` for each signature they can feed, `per_signature` times.

    Predict signatures get tensors from the examples' features (or the serialized examples for
    a single string input); Classify/Regress signatures get the ExampleList.
    """
    logs = []
    serialized = [e.SerializeToString() for e in examples]
    inp = input_pb2.Input(example_list=input_pb2.ExampleList(examples=list(examples)))
    for name, sig in sorted(read_signature_defs(model_dir).items()):
        spec = model_pb2.ModelSpec(name=model_name, signature_name=name)
        if sig.method_name == CLASSIFY:
            log = prediction_log_pb2.PredictionLog(classify_log=prediction_log_pb2.ClassifyLog(
                request=classification_pb2.ClassificationRequest(model_spec=spec, input=inp)))
        elif sig.method_name == REGRESS:
            log = prediction_log_pb2.PredictionLog(regress_log=prediction_log_pb2.RegressLog(
                request=regression_pb2.RegressionRequest(model_spec=spec, input=inp)))
        else:
            req = _predict_request(spec, sig, examples, serialized)
            if req is None:
                continue
            log = prediction_log_pb2.PredictionLog(
                predict_log=prediction_log_pb2.PredictLog(request=req))
        logs.extend([log] * per_signature)
    if not logs:
        raise ValueError(f"{model_dir}: the examples feed none of the model's signatures")
    if len(logs) > MAX_RECORDS:
        raise ValueError(f"{len(logs)} warmup requests; TF Serving allows {MAX_RECORDS}")
    return logs


def write(model_dir: str, logs: Sequence[prediction_log_pb2.PredictionLog]) -> str:
    path = os.path.join(model_dir, FILE)
    tf.io.gfile.makedirs(os.path.dirname(path))
    with tf.io.TFRecordWriter(path) as w:
        for log in logs:
            # Deterministic: a map's order (PredictRequest.inputs) otherwise varies between
            # processes, and the Pusher recognises an already pushed model by its bytes.
            w.write(log.SerializeToString(deterministic=True))
    return path

