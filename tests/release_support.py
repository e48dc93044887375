"""Deliberately bad versions of a real pushed model, and bounded load on 127.0.0.1, for the
release tests.

A bad version wraps the pushed SavedModel: every signature keeps its inputs and outputs (the
server, its metadata and the warmup requests see the same model); only the scores change
(`shifted`) or some rows fail with a TensorFlow error (`failing`). It is published under the
serving folder the way the Pusher does (saved_model.pb last).
"""
from __future__ import annotations

import csv
import http.client
import json
import math
import pathlib
import shutil
import threading
import time
import uuid
from typing import Callable, Sequence

import numpy as np
import tensorflow as tf
from tensorflow_serving.apis import prediction_log_pb2

from modules import signatures
from serving_support import publish

WARMUP = pathlib.Path("assets.extra") / "tf_serving_warmup_requests"
# Outputs that hold the positive-class score (as probability) or its logit.
_PROBABILITY_OUTPUTS = (signatures.OUTPUT_KEY, signatures.REGRESS_OUTPUT_KEY)
_LOGIT_OUTPUT = "logit"
_EXAMPLE_INPUTS = (signatures.CLASSIFY_INPUT_KEY, "examples")


def _feature(inputs: dict, name: str, raw: dict) -> tf.Tensor:
    """Feature `name` per row, from raw named tensors or from serialized tf.Examples, as
    float32 for a number (an absent value is NaN) or a string ('')."""
    if name in inputs:
        x = inputs[name]
    else:
        # In a tf.Example an integer column is int64 (its raw input may be float64: NaN for
        # a missing value), a float column float32.
        dtype = raw[name].dtype
        dtype = tf.int64 if dtype == tf.float64 else dtype
        [key] = [k for k in _EXAMPLE_INPUTS if k in inputs]
        parsed = tf.io.parse_example(inputs[key], {name: tf.io.VarLenFeature(dtype)})[name]
        dense = tf.sparse.to_dense(tf.sparse.reset_shape(parsed, [parsed.dense_shape[0], 1]))
        present = tf.sparse.to_dense(tf.sparse.map_values(tf.ones_like, tf.sparse.reset_shape(
            parsed, [parsed.dense_shape[0], 1]))) if dtype != tf.string else None
        x = tf.reshape(dense, [-1])
        if present is not None:
            x = tf.where(tf.reshape(present, [-1]) > 0, tf.cast(x, tf.float32), math.nan)
    return x if x.dtype == tf.string else tf.cast(x, tf.float32)


def _shift_outputs(outputs: dict, delta: tf.Tensor) -> dict:
    """The same outputs with `delta` added to the logit of each row."""
    out = dict(outputs)
    for k in _PROBABILITY_OUTPUTS:
        if k in out:
            p = tf.clip_by_value(tf.cast(out[k], tf.float32), 1e-7, 1 - 1e-7)
            out[k] = tf.cast(tf.sigmoid(tf.math.log(p / (1 - p)) + delta), out[k].dtype)
    if _LOGIT_OUTPUT in out:
        out[_LOGIT_OUTPUT] = out[_LOGIT_OUTPUT] + tf.cast(delta, out[_LOGIT_OUTPUT].dtype)
    if signatures.SCORES_KEY in out:  # classification: [1 - p, p]
        s = tf.clip_by_value(tf.cast(out[signatures.SCORES_KEY][:, 1], tf.float32), 1e-7, 1 - 1e-7)
        p = tf.sigmoid(tf.math.log(s / (1 - s)) + delta)
        out[signatures.SCORES_KEY] = tf.cast(tf.stack([1 - p, p], axis=1),
                                             out[signatures.SCORES_KEY].dtype)
    return out


class _Wrapped(tf.Module):
    def __init__(self, inner):
        super().__init__()
        self.inner = inner  # tracked: the Transform graph's assets are saved again


def _wrap(src: pathlib.Path, dst: pathlib.Path,
          change: Callable[[dict, dict, dict], dict], keep_warmup: Callable[[list[dict]], bool]
          ) -> pathlib.Path:
    """Version folder `dst`: the SavedModel at `src` with change(inputs, outputs) applied to
    every signature's outputs (`raw`: the serving_default input specs); warmup records kept where keep_warmup(rows) is true."""
    inner = tf.saved_model.load(str(src))
    module = _Wrapped(inner)
    raw = inner.signatures[signatures.RAW_SIGNATURE].structured_input_signature[1]
    sigs = {}
    for name, fn in inner.signatures.items():
        spec = fn.structured_input_signature[1]

        def make(fn=fn, spec=spec):
            @tf.function(input_signature=[spec])
            def call(inputs):
                return change(inputs, fn(**inputs), raw)
            return call.get_concrete_function()
        sigs[name] = make()
    tmp = dst.with_name(f".{dst.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tf.saved_model.save(module, str(tmp), signatures=sigs)
    signatures.set_method_names(str(tmp))
    if (src / WARMUP).exists():
        kept = [r for r in tf.data.TFRecordDataset(str(src / WARMUP)).as_numpy_iterator()
                if keep_warmup(_warmup_rows(r))]
        if kept:
            (tmp / WARMUP).parent.mkdir(exist_ok=True)
            with tf.io.TFRecordWriter(str(tmp / WARMUP)) as w:
                for r in kept:
                    w.write(r)
    publish(tmp, dst)
    return dst


def _warmup_rows(record: bytes) -> list[dict]:
    from monitoring import requests
    log = prediction_log_pb2.PredictionLog.FromString(record)
    kind = log.WhichOneof("log_type")
    if kind == "predict_log":
        inputs = log.predict_log.request.inputs
        if "examples" in inputs:
            return requests.example_rows(tf.make_ndarray(inputs["examples"]).tolist())
        arrays = {k: tf.make_ndarray(v).tolist() for k, v in inputs.items()}
        n = len(next(iter(arrays.values())))
        return [{k: v[i] for k, v in arrays.items()} for i in range(n)]
    return requests.example_rows(getattr(log, kind).request.input.example_list.examples)


def next_version(model_dir: pathlib.Path) -> int:
    return max(int(p.name) for p in model_dir.iterdir() if p.name.isdigit()) + 1


def shifted(src: pathlib.Path, version: int, delta: float, feature: str | None = None,
            group: str | None = None) -> pathlib.Path:
    """A version that adds `delta` to the logit of every row, or only of the rows whose
    `feature` is `group` (e.g. +2 logits for one group of the sensitive feature)."""
    def change(inputs, outputs, raw):
        n = tf.shape(next(iter(outputs.values())))[0]
        if feature is None:
            d = tf.fill([n], tf.constant(delta, tf.float32))
        else:
            hit = tf.equal(_feature(inputs, feature, raw), group)
            d = tf.where(hit, tf.constant(delta, tf.float32), 0.0)
        return _shift_outputs(outputs, d)
    return _wrap(src, src.parent / str(version), change, lambda rows: True)


def failing(src: pathlib.Path, version: int, feature: str, above: float) -> pathlib.Path:
    """A version whose request fails (InvalidArgumentError from a tf assertion) when a row's
    numeric `feature` is above `above`. Warmup records holding such rows are dropped, so the
    version loads and the failure reaches live traffic."""
    def change(inputs, outputs, raw):
        x = _feature(inputs, feature, raw)
        ok = tf.debugging.assert_less_equal(
            tf.where(tf.math.is_nan(x), 0.0, x), tf.constant(above, tf.float32),
            message=f"injected failure: {feature} > {above}")
        with tf.control_dependencies([ok]):
            return {k: tf.identity(v) for k, v in outputs.items()}

    def keep(rows):
        return all(float(r.get(feature, 0) or 0) <= above for r in rows)
    return _wrap(src, src.parent / str(version), change, keep)


def eval_rows(path: pathlib.Path, n: int, drop: Sequence[str] = ()) -> list[dict[str, str]]:
    """The first n rows of a CSV (strings, as `fairway predict` reads them)."""
    with path.open(newline="") as f:
        return [{k: v for k, v in row.items() if k not in drop}
                for _, row in zip(range(n), csv.DictReader(f))]


class Load:
    """Bounded load on 127.0.0.1: `threads` senders, each posting one row per request to the
    REST :predict of `model` (an X-Request-Id per request, rows drawn at random) at most `rate`
    requests per second in all, until stop() or `seconds` have passed.

    `sent` maps request id -> row index; `failed` counts non-200 answers and connection errors
    (with the first few messages in `errors`), `versions` counts the answering versions.
    """

    def __init__(self, port: int, model: str, rows: Sequence[dict], types: dict[str, str],
                 rate: float = 40.0, threads: int = 2, seconds: float = 300.0):
        assert rate <= 200 and threads <= 8 and seconds <= 900, "load stays bounded"
        self.port, self.model, self.rate, self.seconds = port, model, rate, seconds
        self.bodies = [json.dumps({"instances": [_typed(r, types)]}).encode() for r in rows]
        self.sent: dict[str, int] = {}
        self.failed = 0
        self.errors: list[str] = []
        self.versions: dict[int, int] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._count = 0
        self._threads = [threading.Thread(target=self._run, args=(i, threads), daemon=True)
                         for i in range(threads)]

    def __enter__(self) -> "Load":
        self._started = time.monotonic()
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(30)

    def _run(self, index: int, threads: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        period = threads / self.rate
        rng = np.random.default_rng(index)  # users arrive in no particular order of rows
        next_at = time.monotonic()
        while not self._stop.is_set() and time.monotonic() - self._started < self.seconds:
            rid = f"load-{uuid.uuid4().hex[:12]}"
            i = int(rng.integers(len(self.bodies)))
            body = self.bodies[i]
            try:
                conn.request("POST", f"/v1/models/{self.model}:predict", body=body,
                             headers={"Content-Type": "application/json", "X-Request-Id": rid})
                resp = conn.getresponse()
                data = resp.read()
                ok, what = resp.status == 200, f"HTTP {resp.status}: {data[:200]!r}"
                version = resp.getheader("X-Model-Version")
            except (OSError, http.client.HTTPException) as e:
                conn.close()
                ok, what, version = False, f"{type(e).__name__}: {e}", None
            with self._lock:
                self.sent[rid] = i
                if not ok:
                    self.failed += 1
                    if len(self.errors) < 5:
                        self.errors.append(what)
                if version:
                    self.versions[int(version)] = self.versions.get(int(version), 0) + 1
            next_at += period
            self._stop.wait(max(0.0, next_at - time.monotonic()))
        conn.close()


class Labels:
    """Labels arriving while a rollout runs: every `every` seconds, `path` is rewritten with
    request_id,label for each request `load` has sent (label_of(row index))."""

    def __init__(self, load: Load, path: pathlib.Path, label_of: Callable[[int], int],
                 every: float = 1.0):
        self.load, self.path, self.label_of, self.every = load, path, label_of, every
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.write()

    def write(self) -> None:
        with self.load._lock:
            sent = dict(self.load.sent)
        tmp = self.path.with_name(f".{self.path.name}.tmp")
        with tmp.open("w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["request_id", "label"])
            w.writerows((rid, self.label_of(i)) for rid, i in sent.items())
        tmp.replace(self.path)

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            self.write()

    def __enter__(self) -> "Labels":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def _typed(row: dict, types: dict[str, str]) -> dict:
    """CSV strings as the signature's dtypes (empty: missing)."""
    out = {}
    for k, dtype in types.items():
        v = row.get(k, "")
        if dtype == "DT_STRING":
            out[k] = v
        elif v == "":
            out[k] = float("nan") if dtype in ("DT_FLOAT", "DT_DOUBLE") else 0
        else:
            out[k] = float(v) if dtype in ("DT_FLOAT", "DT_DOUBLE") else int(float(v))
    return out


def quantile(rows: Sequence[dict], feature: str, q: float) -> float:
    return float(np.quantile([float(r[feature]) for r in rows if r.get(feature, "") != ""], q))
