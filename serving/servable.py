"""One loaded model version: its SignatureDefs and the checked calls every API shares.

Inputs arrive as numpy arrays (from JSON or TensorProtos); they are checked against the
SignatureDef's dtypes and shapes here, so a bad request is an INVALID_ARGUMENT, never a crash
inside TensorFlow.
"""
from __future__ import annotations

import dataclasses
import os
from typing import Any, Mapping, Sequence

import grpc
import numpy as np
import tensorflow as tf
from tensorflow.core.protobuf import saved_model_pb2

from serving.errors import ServingError, invalid, precondition

DEFAULT_SIGNATURE = "serving_default"
PREDICT = "tensorflow/serving/predict"
CLASSIFY = "tensorflow/serving/classify"
REGRESS = "tensorflow/serving/regress"


_CODES = {tf.errors.INVALID_ARGUMENT: grpc.StatusCode.INVALID_ARGUMENT,
          tf.errors.RESOURCE_EXHAUSTED: grpc.StatusCode.RESOURCE_EXHAUSTED,
          tf.errors.DEADLINE_EXCEEDED: grpc.StatusCode.DEADLINE_EXCEEDED}


def dtype_name(dtype: tf.DType) -> str:
    """TensorFlow's DataTypeString spelling, used in TF Serving's messages."""
    return {tf.float32: "float", tf.float64: "double"}.get(dtype, dtype.name)


@dataclasses.dataclass(frozen=True)
class Tensor:
    dtype: tf.DType
    shape: tf.TensorShape

    def __post_init__(self):  # plain-Python forms: checks run on every request
        object.__setattr__(self, "np_dtype", np.dtype(object) if self.dtype == tf.string
                           else np.dtype(self.dtype.as_numpy_dtype))
        object.__setattr__(self, "dims", None if self.shape.rank is None
                           else tuple(self.shape.as_list()))

    def accepts_shape(self, shape: tuple) -> bool:
        return self.dims is None or (len(shape) == len(self.dims) and all(
            d is None or d == s for d, s in zip(self.dims, shape)))


@dataclasses.dataclass(frozen=True)
class Signature:
    name: str
    method: str
    inputs: Mapping[str, Tensor]
    outputs: Mapping[str, Tensor]
    fn: Any  # the loaded ConcreteFunction
    order: Sequence[str]  # the function's flat argument order


def _tensors(infos) -> dict[str, Tensor]:
    return {k: Tensor(tf.dtypes.as_dtype(v.dtype),
                      tf.TensorShape(None if v.tensor_shape.unknown_rank
                                     else [d.size if d.size >= 0 else None
                                           for d in v.tensor_shape.dim]))
            for k, v in infos.items()}


def read_signature_defs(path: str) -> dict:
    """SignatureDefs of the `serve` MetaGraph, as written in saved_model.pb."""
    sm = saved_model_pb2.SavedModel()
    with tf.io.gfile.GFile(os.path.join(path, "saved_model.pb"), "rb") as f:
        sm.ParseFromString(f.read())
    for meta in sm.meta_graphs:
        if "serve" in meta.meta_info_def.tags:
            return {k: v for k, v in meta.signature_def.items() if not k.startswith("__")}
    raise ValueError(f"{path}: no MetaGraph tagged 'serve'")


class Servable:
    def __init__(self, name: str, version: int, path: str):
        self.name, self.version, self.path = name, version, path
        # --validate flag|reject: serving.validation.Policy.attach sets both once the version
        # is loaded and warmed up (warmup requests are not checked).
        self.validator = self.policy = None
        self.signature_defs = read_signature_defs(path)
        self._loaded = tf.saved_model.load(path)
        self.signatures = {}
        for key, sig in self.signature_defs.items():
            fn = self._loaded.signatures[key]
            self.signatures[key] = Signature(key, sig.method_name, _tensors(sig.inputs),
                                             _tensors(sig.outputs), fn, list(fn._arg_keywords))

    def signature(self, name: str) -> Signature:
        sig = self.signatures.get(name or DEFAULT_SIGNATURE)
        if sig is None:
            raise precondition(f'Serving signature name: "{name}" not found in signature def')
        return sig

    def run(self, sig: Signature, inputs: Mapping[str, np.ndarray],
            output_filter: Sequence[str] = ()) -> dict[str, np.ndarray]:
        """Calls the signature after checking names, dtypes and shapes of every input (and,
        with --validate, the values against the version's schema)."""
        if set(inputs) != set(sig.inputs):
            extra, missing = set(inputs) - set(sig.inputs), set(sig.inputs) - set(inputs)
            raise invalid(f"input size does not match signature: {len(inputs)}!={len(sig.inputs)} "
                          f"len({sorted(inputs)}) != len({sorted(sig.inputs)}). "
                          f"Sent extra: {sorted(extra)}. Missing but required: {sorted(missing)}.")
        for alias in output_filter:
            if alias not in sig.outputs:
                raise invalid(f"output tensor alias not found in signature: {alias} Outputs "
                              f"expected to be in the set {sorted(sig.outputs)}.")
        flat = []
        for i, key in enumerate(sig.order):
            spec, value = sig.inputs[key], inputs[key]
            if value.dtype != spec.np_dtype:
                got = tf.string if value.dtype.kind in "OSU" else tf.dtypes.as_dtype(value.dtype)
                raise invalid(f"Expects arg[{i}] ('{key}') to be {dtype_name(spec.dtype)} but "
                              f"{dtype_name(got)} is provided")
            if not spec.accepts_shape(value.shape):
                raise invalid(f"input '{key}' has shape {list(value.shape)}; the signature "
                              f"expects {spec.shape}")
            flat.append(tf.constant(value, spec.dtype))
        if self.validator is not None:  # the one place REST, gRPC and tf.Examples meet
            self.policy.enforce(self, sig, inputs)
        try:
            # The flat call skips ~1 ms of Python argument binding per request.
            out = sig.fn._call_flat(flat, sig.fn.captured_inputs)
        except tf.errors.OpError as e:
            raise ServingError(_CODES.get(e.error_code, grpc.StatusCode.INTERNAL),
                               e.message) from None
        keys = output_filter or sig.outputs
        return {k: out[k].numpy() for k in keys}

    def examples_signature(self, name: str, method: str) -> Signature:
        """A Classify/Regress signature: right method_name, one DT_STRING input."""
        sig = self.signature(name)
        if sig.method != method:
            kind = "classification" if method == CLASSIFY else "regression"
            raise invalid(f"Expected {kind} signature method_name to be {method}. "
                          f"Was: {sig.method}")
        if len(sig.inputs) != 1 or next(iter(sig.inputs.values())).dtype != tf.string:
            raise invalid(f"Expected one input Tensor of type string in signature {sig.name}")
        return sig

    def classify(self, name: str, serialized: Sequence[bytes]):
        """(classes [n, k] bytes or None, scores [n, k] float or None)."""
        sig = self.examples_signature(name, CLASSIFY)
        out = self.run(sig, {next(iter(sig.inputs)): _examples(serialized)})
        classes, scores = out.get("classes"), out.get("scores")
        if classes is None and scores is None:
            raise invalid(f"signature {sig.name} has neither 'classes' nor 'scores' outputs")
        n = len(serialized)
        for k, v in (("classes", classes), ("scores", scores)):
            if v is not None and (v.ndim != 2 or v.shape[0] != n):
                raise invalid(f"Expected output Tensor '{k}' of shape [{n}, num_classes]; "
                              f"got {list(v.shape)}")
        return classes, scores

    def regress(self, name: str, serialized: Sequence[bytes]) -> np.ndarray:
        sig = self.examples_signature(name, REGRESS)
        out = self.run(sig, {next(iter(sig.inputs)): _examples(serialized)})
        if "outputs" not in out:
            raise invalid(f"signature {sig.name} has no 'outputs' output")
        values = out["outputs"]
        if values.shape not in ((len(serialized),), (len(serialized), 1)):
            raise invalid(f"Expected output Tensor of shape [{len(serialized)}] or "
                          f"[{len(serialized)}, 1]; got {list(values.shape)}")
        return values.reshape(-1)


def _examples(serialized: Sequence[bytes]) -> np.ndarray:
    if not serialized:
        raise invalid("Input is empty")
    return np.array(list(serialized), dtype=object)
