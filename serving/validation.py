"""Requests checked at the door (`fairway serve --validate off|flag|reject`).

Each pushed version may carry `assets.extra/schema.pbtxt` (written by the pipeline's
ServingCheck: the curated schema restricted to the SERVING environment, a tensorflow_metadata
Schema in text format). At load, it becomes one precomputed check per feature (type, domain,
numeric range, presence); every request is checked where its inputs meet, Servable.run, after
REST JSON, gRPC TensorProtos or serialized tf.Examples have become arrays:

- inputs named as schema features (raw-feature signatures such as serving_default) are checked
  as arrays, vectorized;
- a single string input that is not a schema feature (from_examples, classification,
  regression) holds serialized tf.Examples: they are parsed and their features checked;
- other inputs are not checked.

A missing value is "" (string), NaN (number) or an absent/empty feature of a tf.Example, as the
model reads it; a required feature (presence.min_fraction 1.0) must not be missing.
"""
from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import json
import os
from typing import Callable, Iterator, Mapping, NamedTuple, Sequence

import numpy as np
from google.protobuf import text_format
from tensorflow_metadata.proto.v0 import schema_pb2

OFF, FLAG, REJECT = "off", "flag", "reject"
MODES = (OFF, FLAG, REJECT)
SCHEMA_FILE = os.path.join("assets.extra", "schema.pbtxt")
SERVING = "SERVING"
TYPE, DOMAIN, RANGE, MISSING = "type", "domain", "range", "missing"
_INT, _FLOAT, _BYTES = schema_pb2.INT, schema_pb2.FLOAT, schema_pb2.BYTES
_TYPE_TEXT = {_INT: "a number (INT)", _FLOAT: "a number (FLOAT)", _BYTES: "a string (BYTES)"}
_SHOWN_VALUES = 5  # domain values quoted in a message

# The request being answered (Service.call sets it): its id goes into the flag log; shadow
# copies are not checked (their answers are only logged, never returned).
_request_id: contextvars.ContextVar[str] = contextvars.ContextVar("fairway_request", default="")
_skip: contextvars.ContextVar[bool] = contextvars.ContextVar("fairway_skip_check", default=False)


@contextlib.contextmanager
def request(request_id: str, checked: bool = True) -> Iterator[None]:
    a, b = _request_id.set(request_id), _skip.set(not checked)
    try:
        yield
    finally:
        _request_id.reset(a)
        _skip.reset(b)


class Anomaly(NamedTuple):
    feature: str
    kind: str  # TYPE | DOMAIN | RANGE | MISSING
    message: str


# -- the schema ----------------------------------------------------------------------------------
def in_environment(feature: schema_pb2.Feature, schema: schema_pb2.Schema,
                   env: str = SERVING) -> bool:
    """TFDV's rule: in_environment if given; else not in not_in_environment and, when the
    schema has default environments, in them."""
    if feature.in_environment:
        return env in feature.in_environment
    if env in feature.not_in_environment:
        return False
    return not schema.default_environment or env in schema.default_environment


def serving_schema(schema: schema_pb2.Schema) -> schema_pb2.Schema:
    """A copy with only the features of the SERVING environment (the label goes)."""
    out = schema_pb2.Schema()
    out.CopyFrom(schema)
    del out.feature[:]
    out.feature.extend(f for f in schema.feature if in_environment(f, schema))
    return out


def parse_schema(text: str, source: str) -> schema_pb2.Schema:
    try:
        return text_format.Parse(text, schema_pb2.Schema())
    except text_format.ParseError as e:
        raise ValueError(f"{source}: not a Schema in text format: {e}") from None


# -- per-feature checks, built once per version --------------------------------------------------
def _json(v) -> str:
    """A request value as the client wrote it: strings in double quotes (JSON)."""
    if isinstance(v, bytes):
        v = v.decode("utf-8", "replace")
    if isinstance(v, str):
        return json.dumps(v if len(v) <= 60 else v[:60] + "...", ensure_ascii=False)
    return repr(v) if isinstance(v, float) else str(v)


def _quote(v: bytes) -> str:
    text = v.decode("utf-8", "replace")
    return repr(text if len(text) <= 60 else text[:60] + "...")


def _num(v: float) -> str:
    return str(int(v)) if float(v).is_integer() else f"{v:g}"


@dataclasses.dataclass
class FeatureCheck:
    name: str
    type: int  # schema_pb2.FeatureType
    required: bool
    domain: frozenset | None = None  # bytes values
    domain_text: str = ""
    lo: float | None = None
    hi: float | None = None

    @classmethod
    def of(cls, f: schema_pb2.Feature, schema: schema_pb2.Schema) -> "FeatureCheck":
        c = cls(f.name, f.type, f.HasField("presence") and f.presence.min_fraction >= 1.0)
        kind = f.WhichOneof("domain_info")
        values = None
        if kind == "domain":
            values = next((d.value for d in schema.string_domain if d.name == f.domain), None)
        elif kind == "string_domain":
            values = f.string_domain.value
        elif kind in ("int_domain", "float_domain"):
            d = getattr(f, kind)
            c.lo = d.min if d.HasField("min") else None
            c.hi = d.max if d.HasField("max") else None
        if values is not None and f.type == _BYTES:
            c.domain = frozenset(v.encode("utf-8") for v in values)
            shown = ", ".join(repr(v) for v in list(values)[:_SHOWN_VALUES])
            more = ", ..." if len(values) > _SHOWN_VALUES else ""
            c.domain_text = f"({len(values)} values: {shown}{more})"
        return c

    def _anomaly(self, kind: str, text: str, n: int, row: int) -> Anomaly:
        where = f" (row {row + 1} of {n})" if n > 1 else ""
        if kind == MISSING:
            return Anomaly(self.name, kind, f"feature '{self.name}' is required but missing"
                           + where)
        return Anomaly(self.name, kind, f"feature '{self.name}': {text}{where}")

    def check(self, arr: np.ndarray, n: int, rows: np.ndarray | None = None,
              absent: Sequence[int] = ()) -> list[Anomaly]:
        """Anomalies of the flat values `arr` of a request of `n` rows; `rows[i]` is the row of
        value i (None: row i); `absent`: rows without the feature (tf.Examples)."""
        out: list[Anomaly] = []
        if self.required and len(absent):
            out.append(self._anomaly(MISSING, "", n, absent[0]))
        if not arr.size:
            return out

        def row(i: int) -> int:
            return i if rows is None else int(rows[i])

        if arr.dtype.kind == "O":  # strings (bytes)
            if self.type != _BYTES:
                return out + [self._anomaly(TYPE, f"expected {_TYPE_TEXT.get(self.type)}, got "
                                            f"{_json(arr[0])}", n, row(0))]
            values = arr.tolist()
            if self.required and b"" in values:
                out.append(self._anomaly(MISSING, "", n, row(values.index(b""))))
            if self.domain is not None:
                domain = self.domain
                for i, v in enumerate(values):
                    if v not in domain and v != b"":
                        out.append(self._anomaly(DOMAIN, f"value {_quote(v)} is not in the "
                                                 f"schema's domain {self.domain_text}", n, row(i)))
                        break
            return out
        if arr.dtype.kind not in "biuf":
            return out
        if self.type == _BYTES:
            return out + [self._anomaly(TYPE, f"expected a string (BYTES), got "
                                        f"{_json(arr[0].item())}", n, row(0))]
        if arr.dtype.kind == "f":
            nan = np.isnan(arr)
            if self.required and nan.any():
                out.append(self._anomaly(MISSING, "", n, row(int(np.argmax(nan)))))
            if self.type == _INT:
                with np.errstate(invalid="ignore"):
                    fraction = ~nan & (np.isinf(arr) | (np.floor(arr) != arr))
                if fraction.any():
                    i = int(np.argmax(fraction))
                    out.append(self._anomaly(TYPE, f"expected an integer (INT), got "
                                             f"{arr[i].item()!r}", n, row(i)))
        with np.errstate(invalid="ignore"):
            for bound, mask, word in (
                    (self.lo, (lambda: arr < self.lo), "below the schema's min"),
                    (self.hi, (lambda: arr > self.hi), "above the schema's max")):
                if bound is None:
                    continue
                bad = mask()
                if bad.any():
                    i = int(np.argmax(bad))
                    out.append(self._anomaly(RANGE, f"{_json(arr[i].item())} is {word} "
                                             f"{_num(bound)}", n, row(i)))
        return out


_NP = {"bytes_list": object, "int64_list": np.int64, "float_list": np.float64}


def _example_columns(serialized: list, checks: Mapping[str, FeatureCheck]):
    """{feature: ({kind: (values, rows)}, rows without the feature)} of serialized
    tf.Examples; None if one does not parse (the model then answers its own error)."""
    from tensorflow.core.example import example_pb2

    cols = {k: ({}, []) for k in checks}
    for r, raw in enumerate(serialized):
        try:
            fmap = example_pb2.Example.FromString(raw).features.feature
        except Exception:
            return None
        for name, (by_kind, absent) in cols.items():
            feat = fmap.get(name)
            kind = feat.WhichOneof("kind") if feat is not None else None
            got = getattr(feat, kind).value if kind else ()
            if not got:
                absent.append(r)
                continue
            values, rows = by_kind.setdefault(kind, ([], []))
            values.extend(got)
            rows.extend([r] * len(got))
    return {name: ({kind: (np.array(v, dtype=_NP[kind]), np.array(rows, dtype=np.int64))
                    for kind, (v, rows) in by_kind.items()}, absent)
            for name, (by_kind, absent) in cols.items()}


class Validator:
    """The checks of one version's schema; `check` returns a request's anomalies."""

    def __init__(self, schema: schema_pb2.Schema, source: str):
        self.source = source
        self.checks = {f.name: FeatureCheck.of(f, schema) for f in schema.feature
                       if in_environment(f, schema)}
        self._plans: dict[str, tuple] = {}

    def _plan(self, sig) -> tuple:
        """("tensors", [(input, check)]) | ("examples", input) | ("none",), per signature."""
        plan = self._plans.get(sig.name)
        if plan is None:
            named = [(k, self.checks[k]) for k in sig.order if k in self.checks]
            if named:
                plan = ("tensors", named)
            elif len(sig.inputs) == 1 and next(iter(sig.inputs.values())).np_dtype.kind == "O":
                plan = ("examples", next(iter(sig.inputs)))
            else:
                plan = ("none",)
            self._plans[sig.name] = plan
        return plan

    def check(self, sig, inputs: Mapping[str, np.ndarray]) -> list[Anomaly]:
        plan = self._plan(sig)
        out: list[Anomaly] = []
        if plan[0] == "tensors":
            for key, c in plan[1]:
                arr = inputs[key]
                if arr.ndim == 1:
                    out += c.check(arr, arr.shape[0])
                else:  # [batch, k] (or a scalar): each value's row
                    n = arr.shape[0] if arr.ndim else 1
                    flat = arr.reshape(-1)
                    out += c.check(flat, n, np.repeat(np.arange(n), flat.size // max(n, 1)))
        elif plan[0] == "examples":
            serialized = inputs[plan[1]].reshape(-1).tolist()
            cols = _example_columns(serialized, self.checks)
            if cols is None:
                return []
            n = len(serialized)
            for name, (by_kind, absent) in cols.items():
                c = self.checks[name]
                found = c.check(np.array([]), n, None, absent)
                for values, rows in by_kind.values():
                    found += c.check(values, n, rows)
                out += found
        return out


def load(version_path: str) -> Validator | None:
    """The validator of a version folder, None when it has no schema (pushed before schemas
    were written). A file that does not parse raises ValueError."""
    import tensorflow as tf

    path = os.path.join(version_path, SCHEMA_FILE)
    if not tf.io.gfile.exists(path):
        return None
    with tf.io.gfile.GFile(path) as f:
        return Validator(parse_schema(f.read(), path), path)


def message(anomalies: Sequence[Anomaly]) -> str:
    return "request does not match the model's schema: " + "; ".join(a.message
                                                                     for a in anomalies)


class Policy:
    """What the server does with anomalies (the --validate mode); `attach` gives a freshly
    loaded (and warmed-up) version its validator."""

    def __init__(self, mode: str, counter=None, log: Callable[[str], None] = print):
        if mode not in MODES:
            raise ValueError(f"--validate {mode!r}: expected one of {', '.join(MODES)}")
        self.mode, self.counter, self.log = mode, counter, log

    def attach(self, servable) -> None:
        if self.mode == OFF:
            return
        where = f"[{servable.name}] version {servable.version}"
        try:
            validator = load(servable.path)
        except ValueError as e:
            self.log(f"{where}: requests NOT validated: {e}")
            return
        if validator is None:
            self.log(f"{where} has no {SCHEMA_FILE} (pushed before the serving schema): its "
                     f"requests are NOT validated (--validate {self.mode})")
            return
        servable.validator, servable.policy = validator, self
        self.log(f"{where}: requests validated against {SCHEMA_FILE} ({len(validator.checks)} "
                 f"features, --validate {self.mode})")

    def enforce(self, servable, sig, inputs: Mapping[str, np.ndarray]) -> None:
        """Raises INVALID_ARGUMENT (reject) or counts and logs (flag) a request's anomalies."""
        if _skip.get():
            return
        anomalies = servable.validator.check(sig, inputs)
        if not anomalies:
            return
        if self.counter is not None:
            for feature, kind in {(a.feature, a.kind) for a in anomalies}:
                self.counter.labels(servable.name, str(servable.version), feature, kind).inc()
        if self.mode == REJECT:
            from serving.errors import invalid

            raise invalid(message(anomalies))
        rid = _request_id.get()
        self.log(f"[{servable.name}] version {servable.version}: request "
                 f"{rid or '(no id)'} flagged (served): {'; '.join(a.message for a in anomalies)}")
