"""TF Serving's REST JSON ↔ tensors (util/json_tensor.cc semantics).

Requests: row (`instances`) and columnar (`inputs`) formats, `{"b64": ...}` strings, the dtype
rules (floats take any number, integers need JSON integers, bool is strict) and ragged-list
checks. Responses: `predictions`/`outputs`, `_bytes` aliases as b64, floats in %g form when it
round-trips.
"""
from __future__ import annotations

import base64
import binascii
import functools
import json
from typing import Any, Mapping

import numpy as np
import tensorflow as tf

from serving.errors import invalid
from serving.servable import Signature, dtype_name


def parse_body(body: bytes) -> dict:
    """The request object; bytes after it are ignored, NaN/Infinity accepted (as TF Serving)."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as e:
        raise invalid(f"JSON Parse error: Invalid encoding in string. at offset: {e.start}")
    start = len(text) - len(text.lstrip())
    if start == len(text):
        raise invalid("JSON Parse error: The document is empty")
    try:
        doc, _ = json.JSONDecoder().raw_decode(text, start)
    except json.JSONDecodeError as e:
        raise invalid(f"JSON Parse error: {e.msg} at offset: {e.pos}") from None
    except RecursionError:
        raise invalid("JSON Parse error: nesting too deep") from None
    if not isinstance(doc, dict):
        raise invalid("JSON Parse error: the request body must be a JSON object")
    return doc


def signature_name(doc: dict) -> str:
    name = doc.get("signature_name", "")
    if not isinstance(name, str):
        raise invalid("'signature_name' key must be a string value.")
    return name


def _b64(value: dict) -> bytes:
    if set(value) != {"b64"} or not isinstance(value["b64"], str):
        raise invalid(f"JSON Value: {_dump(value)} Expecting a single 'b64' key with a string "
                      "value for a base64 encoded string")
    try:
        return base64.b64decode(value["b64"], validate=True)
    except (binascii.Error, ValueError):
        raise invalid(f"Unable to base64 decode: {value['b64'][:64]!r}") from None


def _dump(v: Any) -> str:
    text = json.dumps(v)
    return text if len(text) <= 200 else text[:200] + "..."


@functools.lru_cache(maxsize=None)  # building one costs ~20 µs (dtype.min/max): once per dtype
def _leaf_converter(dtype: tf.DType):
    """A function JSON leaf -> Python value of `dtype`, raising TF Serving's type error."""
    def wrong(v):
        raise invalid(f"JSON Value: {_dump(v)} is not of expected type: {dtype_name(dtype)}")

    if dtype == tf.string:
        def conv(v):
            if isinstance(v, str):
                return v.encode("utf-8")
            return _b64(v) if isinstance(v, dict) else wrong(v)
    elif dtype == tf.bool:
        def conv(v):
            return v if type(v) is bool else wrong(v)
    elif dtype.is_floating:
        def conv(v):
            return v if type(v) in (int, float) else wrong(v)
    elif dtype.is_integer:
        lo, hi = dtype.min, dtype.max

        def conv(v):
            if type(v) is not int:
                wrong(v)
            if not lo <= v <= hi:
                raise invalid(f"JSON Value: {v} is out of range for type {dtype_name(dtype)}")
            return v
    else:
        def conv(v):
            raise invalid(f"tensors of type {dtype_name(dtype)} are not supported in JSON")
    return conv


@functools.lru_cache(maxsize=None)
def _np_dtype(dtype: tf.DType):
    return object if dtype == tf.string else dtype.as_numpy_dtype


def tensor(value: Any, dtype: tf.DType, name: str) -> np.ndarray:
    """A (nested) JSON list -> ndarray of `dtype`; every list at one depth must be equally long."""
    shape, v = [], value
    while isinstance(v, list) and v:
        shape.append(len(v))
        v = v[0]
    if isinstance(v, list):  # an empty list somewhere: a zero-sized dimension
        shape.append(0)
    conv, np_dtype = _leaf_converter(dtype), _np_dtype(dtype)
    flat = []
    if len(shape) == 1 and not any(isinstance(x, list) for x in value):  # the common case
        return np.array([conv(x) for x in value], dtype=np_dtype)

    def walk(v, depth):
        if depth < len(shape):
            if not isinstance(v, list) or len(v) != shape[depth]:
                got = len(v) if isinstance(v, list) else "a scalar"
                raise invalid(f"Encountered list at unexpected size: {got} at depth {depth} of "
                              f"input '{name}'; expected {shape[depth]} (lists must not be "
                              "ragged)")
            for x in v:
                walk(x, depth + 1)
        elif isinstance(v, list):
            raise invalid(f"Encountered list at unexpected size: {len(v)} at depth {depth} of "
                          f"input '{name}'; expected a scalar (lists must not be ragged)")
        else:
            flat.append(conv(v))

    walk(value, 0)
    return np.array(flat, dtype=np_dtype).reshape(shape)


def _is_b64(v: Any) -> bool:
    return isinstance(v, dict) and "b64" in v


def predict_inputs(doc: dict, sig: Signature) -> tuple[dict[str, np.ndarray], bool]:
    """(inputs, row_format) from a :predict body."""
    has_rows, has_cols = "instances" in doc, "inputs" in doc
    if has_rows == has_cols:
        raise invalid("Missing 'inputs' or 'instances' key" if not has_rows else
                      "Not both 'instances' and 'inputs' can be specified in the request")
    names = list(sig.inputs)
    if has_rows:
        rows = doc["instances"]
        if not isinstance(rows, list) or not rows:
            raise invalid("Expecting 'instances' to be a non-empty list/array")
        named = isinstance(rows[0], dict) and not _is_b64(rows[0])
        if len(names) == 1 and not named:
            cols = {names[0]: rows}
        else:
            for i, row in enumerate(rows):
                if not isinstance(row, dict) or _is_b64(row):
                    raise invalid(f"Expecting object but got {type(row).__name__} at item {i} "
                                  f"of 'instances' (the signature has inputs {names})")
                if set(row) != set(names):
                    missing, extra = sorted(set(names) - set(row)), sorted(set(row) - set(names))
                    raise invalid(f"Failed to process element: {i} of 'instances' list. "
                                  f"Missing keys: {missing}; unexpected keys: {extra}; every "
                                  f"instance needs exactly the keys {names}")
            cols = {n: [row[n] for row in rows] for n in names}
        return {n: tensor(cols[n], sig.inputs[n].dtype, n) for n in names}, True
    cols = doc["inputs"]
    if len(names) == 1 and not (isinstance(cols, dict) and not _is_b64(cols)):
        return {names[0]: tensor(cols, sig.inputs[names[0]].dtype, names[0])}, False
    if not isinstance(cols, dict):
        raise invalid(f"Expecting 'inputs' to be an object with the keys {names}")
    for n in names:
        if n not in cols:
            raise invalid(f"Missing named input: {n} in 'inputs' object")
    return {n: tensor(cols[n], sig.inputs[n].dtype, n) for n in names}, False


def _float_text(x: float, dtype) -> float:
    """%g when it round-trips to the same value, else max_digits10 (as TF Serving writes)."""
    short = "%g" % x
    if dtype(short) == x:
        return float(short)
    return float("%.9g" % x if dtype == np.float32 else "%.17g" % x)


def _jsonable(arr: np.ndarray, alias: str):
    if arr.dtype.kind == "f":
        t = arr.dtype.type
        return np.vectorize(lambda x: _float_text(x, t), otypes=[object])(arr).tolist() \
            if arr.size else arr.tolist()
    if arr.dtype == object or arr.dtype.kind == "S":
        return np.vectorize(lambda b: _bytes_json(b, alias), otypes=[object])(arr).tolist() \
            if arr.size else arr.tolist()
    return arr.tolist()


def _bytes_json(b: bytes, alias: str):
    if not alias.endswith("_bytes"):
        try:
            return b.decode("utf-8")
        except UnicodeDecodeError:
            pass  # not text: b64 keeps the response valid JSON
    return {"b64": base64.b64encode(b).decode("ascii")}


def predict_response(outputs: Mapping[str, np.ndarray], row_format: bool) -> dict:
    if not row_format:
        if len(outputs) == 1:
            [(alias, arr)] = outputs.items()
            return {"outputs": _jsonable(arr, alias)}
        return {"outputs": {k: _jsonable(v, k) for k, v in outputs.items()}}
    sizes = {k: (v.shape[0] if v.ndim else None) for k, v in outputs.items()}
    if None in sizes.values() or len(set(sizes.values())) != 1:
        raise invalid(f"Tensors in the output must be non-scalar and share dimension 0 to "
                      f"be written in row format; got {sizes}. Use the columnar 'inputs' format")
    cols = {k: _jsonable(v, k) for k, v in outputs.items()}
    if len(cols) == 1:
        return {"predictions": next(iter(cols.values()))}
    return {"predictions": [dict(zip(cols, vals)) for vals in zip(*cols.values())]}


EXPLAIN_SIGNATURE = "explain"  # modules.signatures.EXPLAIN_SIGNATURE: serving reads no modules
ATTRIBUTION_PREFIX = "attribution_"  # modules.explain.ATTRIBUTION_PREFIX
_EXPLAIN_OUTPUTS = ("probability", "logit", "baseline_logit")


def check_explain_signature(sig: Signature) -> None:
    """:explain needs a signature with a score and attributions (a model exported by Fairway)."""
    missing = [k for k in _EXPLAIN_OUTPUTS if k not in sig.outputs]
    if missing or not any(k.startswith(ATTRIBUTION_PREFIX) for k in sig.outputs):
        raise invalid(f"signature '{sig.name}' cannot explain: :explain needs the outputs "
                      f"{list(_EXPLAIN_OUTPUTS)} and '{ATTRIBUTION_PREFIX}<feature>' ones; it has "
                      f"{sorted(sig.outputs)} (models pushed before explanations have no "
                      f"'{EXPLAIN_SIGNATURE}' signature)")


def explain_response(outputs: Mapping[str, np.ndarray]) -> dict:
    """One object per row: the score, the logit, the baseline's logit and the attribution of
    every raw feature (contributions to the logit; they add up to logit - baseline_logit)."""
    n = len(outputs["probability"])
    cols = {k: _jsonable(v, k) for k, v in outputs.items()}
    names = sorted(k for k in outputs if k.startswith(ATTRIBUTION_PREFIX))
    return {"explanations": [
        {**{k: cols[k][i] for k in _EXPLAIN_OUTPUTS},
         "attributions": {k[len(ATTRIBUTION_PREFIX):]: cols[k][i] for k in names}}
        for i in range(n)]}


def _feature(value: Any, key: str) -> tf.train.Feature:
    values = value if isinstance(value, list) else [value]
    kinds = set()
    for v in values:
        if isinstance(v, bool) or isinstance(v, int):
            kinds.add("int")
        elif isinstance(v, float):
            kinds.add("float")
        elif isinstance(v, str) or (isinstance(v, dict) and "b64" in v):
            kinds.add("bytes")
        else:
            raise invalid(f"feature '{key}': JSON Value: {_dump(v)} is not a string, number, "
                          "bool or {\"b64\": ...} (null and nested lists are not allowed)")
    if len(kinds) > 1:
        raise invalid(f"feature '{key}': mixed value types {sorted(kinds)} in one list")
    kind = kinds.pop() if kinds else "float"
    if kind == "int":
        return tf.train.Feature(int64_list=tf.train.Int64List(value=[int(v) for v in values]))
    if kind == "float":
        return tf.train.Feature(float_list=tf.train.FloatList(value=values))
    return tf.train.Feature(bytes_list=tf.train.BytesList(
        value=[v.encode("utf-8") if isinstance(v, str) else _b64(v) for v in values]))


def _example_features(obj: Any, where: str) -> dict[str, tf.train.Feature]:
    if not isinstance(obj, dict):
        raise invalid(f"{where} must be a JSON object of feature name to value(s)")
    return {k: _feature(v, k) for k, v in obj.items()}


def examples(doc: dict) -> list[bytes]:
    """Serialized tf.Examples of a :classify/:regress body (`context` merged into each)."""
    rows = doc.get("examples")
    if not isinstance(rows, list) or not rows:
        raise invalid("'examples' must be a non-empty list of objects")
    context = _example_features(doc["context"], "'context'") if "context" in doc else {}
    out = []
    for i, row in enumerate(rows):
        feats = dict(context)
        feats.update(_example_features(row, f"item {i} of 'examples'"))
        out.append(tf.train.Example(
            features=tf.train.Features(feature=feats)).SerializeToString())
    return out


def classify_response(classes, scores) -> dict:
    n = (classes if classes is not None else scores).shape[0]
    results = []
    for i in range(n):
        k = (classes if classes is not None else scores).shape[1]
        results.append([[_bytes_json(classes[i, j], "") if classes is not None else "",
                         _float_text(scores[i, j], scores.dtype.type) if scores is not None
                         else 0.0] for j in range(k)])
    return {"results": results}


def regress_response(values: np.ndarray) -> dict:
    return {"results": _jsonable(values, "outputs")}


def dumps(doc: Any) -> bytes:
    return json.dumps(doc, separators=(",", ":")).encode("utf-8")
