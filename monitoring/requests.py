"""Serving request logs (PredictionLog TFRecords written by `fairway serve`) as feature rows."""
from __future__ import annotations

import calendar
import glob
import os
import re
import time
from typing import Iterable

import numpy as np
import pandas as pd
import tensorflow as tf
from tensorflow_serving.apis import prediction_log_pb2

from pipeline.errors import FairwayError

PATTERN = "requests-*.tfrecord"
SCORE_KEY = "probability"  # the score among several outputs
_STAMP = re.compile(r"(\d{8}T\d{6}Z)")  # the UTC time `fairway serve` names a log file by


class RequestLogError(FairwayError):
    pass


def log_files(location: str) -> list[str]:
    """A log file, or every requests-*.tfrecord under a folder."""
    if os.path.isdir(location):
        files = sorted(glob.glob(os.path.join(location, "**", PATTERN), recursive=True))
        if not files:
            raise RequestLogError(f"{location}: no {PATTERN} files (written by `fairway serve "
                                  "--request-log-dir DIR --log-sampling-rate R`)")
        return files
    if not os.path.isfile(location):
        raise RequestLogError(f"{location}: no such file or folder")
    return [location]


def example_rows(serialized: Iterable[bytes]) -> list[dict]:
    """tf.Examples (serialized or parsed) as {feature: first value}, bytes decoded."""
    rows = []
    for s in serialized:
        ex = tf.train.Example.FromString(s) if isinstance(s, bytes) else s
        row = {}
        for k, f in ex.features.feature.items():
            kind = f.WhichOneof("kind")
            values = list(getattr(f, kind).value) if kind else []
            if values:
                v = values[0]
                row[k] = v.decode("utf-8", "replace") if isinstance(v, bytes) else v
        rows.append(row)
    return rows


def _predict_rows(req) -> list[dict]:
    arrays = {k: tf.make_ndarray(v) for k, v in req.inputs.items()}
    if len(arrays) == 1:
        [(key, arr)] = arrays.items()
        if arr.dtype == object and key == "examples":  # serialized tf.Examples
            return example_rows(arr.tolist())
    n = {a.shape[0] if a.ndim else 1 for a in arrays.values()}
    if len(n) != 1:
        raise ValueError("inputs do not share a batch dimension")
    size = n.pop()
    rows = [{} for _ in range(size)]
    for k, a in arrays.items():
        if a.ndim != 1:
            continue  # not a per-row scalar feature
        for i, v in enumerate(a.tolist()):
            if isinstance(v, float) and np.isnan(v):
                continue  # NaN says "missing" for an optional numeric input
            if isinstance(v, bytes):
                if not v:
                    continue  # an empty optional column is a missing value, as in CsvExampleGen
                v = v.decode("utf-8", "replace")
            rows[i][k] = v
    return rows


def _predictions(log, kind: str, n: int) -> list[float | None]:
    """The model's score per example (single-output predict or its `probability` output,
    positive-class score of classify, regress value), or None where the log holds no usable
    answer."""
    try:
        if kind == "predict_log":
            outputs = log.predict_log.response.outputs
            # One output, or the score of a multi-output answer (the explain signature).
            key = next(iter(outputs)) if len(outputs) == 1 else SCORE_KEY
            if key in outputs:
                values = tf.make_ndarray(outputs[key])
                if values.shape == (n,) and values.dtype.kind == "f":
                    return values.astype(float).tolist()
        elif kind == "classify_log":
            rows = log.classify_log.response.result.classifications
            if len(rows) == n:
                return [r.classes[-1].score if r.classes else None for r in rows]
        elif kind == "regress_log":
            rows = log.regress_log.response.result.regressions
            if len(rows) == n:
                return [r.value for r in rows]
    except Exception:  # a malformed response only loses the prediction
        pass
    return [None] * n


def file_time(path: str) -> int:
    """When a file's records arrived, for logs whose records carry no time (real TF Serving
    before it filled timestamp_secs): the UTC time in its name, else its modification time."""
    m = _STAMP.search(os.path.basename(path))
    if m:
        return calendar.timegm(time.strptime(m.group(1), "%Y%m%dT%H%M%SZ"))
    return int(os.path.getmtime(path))


def _records(path: str) -> list[bytes]:
    records = []
    try:
        for r in tf.data.TFRecordDataset(path).as_numpy_iterator():
            records.append(r)
    except tf.errors.OpError as e:
        what = e.message.splitlines()[0]
        if records:
            raise RequestLogError(f"{path}: truncated or corrupted after record {len(records)} "
                                  f"({what}); move the file aside or cut it to its complete "
                                  f"records") from None
        raise RequestLogError(f"{path}: not a TFRecord file of PredictionLogs ({what})") from None
    return records


def read(location: str) -> pd.DataFrame:
    """One row per served example, in arrival order: its raw features plus `_version`,
    `_prediction`, `_time` (arrival, UTC seconds) and `_request_id` (the request's id, with
    `:<row>` for a request of several rows; `<file>:<record>:<row>` for a log without ids),
    the key for labels that arrive later."""
    out = []
    for path in log_files(location):
        records = _records(path)
        name = os.path.basename(path)
        fallback_time = file_time(path) if records else 0
        for i, raw in enumerate(records):
            log = prediction_log_pb2.PredictionLog()
            try:
                log.ParseFromString(raw)
                kind = log.WhichOneof("log_type")
                if kind == "predict_log":
                    rows = _predict_rows(log.predict_log.request)
                elif kind in ("classify_log", "regress_log"):
                    inp = getattr(log, kind).request.input
                    if inp.HasField("example_list"):
                        rows = example_rows(inp.example_list.examples)
                    else:  # the context's features belong to every example, as in serving
                        ctx = example_rows([inp.example_list_with_context.context])[0]
                        rows = [{**ctx, **r} for r in
                                example_rows(inp.example_list_with_context.examples)]
                else:
                    raise ValueError(f"unsupported log type {kind!r}")
            except Exception as e:
                raise RequestLogError(f"{path}: record {i} is not a usable PredictionLog: "
                                      f"{e}") from None
            meta = log.log_metadata
            version = meta.model_spec.version.value
            arrived = meta.timestamp_secs or fallback_time
            rid = meta.request_origin
            for j, (row, p) in enumerate(zip(rows, _predictions(log, kind, len(rows)))):
                row["_version"] = version
                row["_prediction"] = p
                row["_time"] = arrived
                row["_request_id"] = (rid if len(rows) == 1 else f"{rid}:{j}") if rid \
                    else f"{name}:{i}:{j}"
            out.extend(rows)
    if not out:
        raise RequestLogError(f"{location}: the request logs hold no requests")
    frame = pd.DataFrame(out)
    for c in frame.columns:  # ints stay ints where every value is present
        if frame[c].dtype == float and frame[c].notna().all() and \
                np.all(np.mod(frame[c], 1) == 0):
            frame[c] = frame[c].astype(np.int64)
    return frame.sort_values("_time", kind="stable").reset_index(drop=True)
