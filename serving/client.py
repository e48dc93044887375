"""A small client for TF Serving's REST and gRPC APIs (real TF Serving or `fairway serve`).

Rows are plain dicts (from CSV or JSON); values are coerced to the dtypes the server's
signature metadata declares, so CSV strings become int64/float/string tensors.
"""
from __future__ import annotations

import csv
import dataclasses
import io
import http.client
import json
import pathlib
from typing import Any, Sequence

import numpy as np

REST_PORT, GRPC_PORT = 8501, 8500
EXPLAIN_SIGNATURE = "explain"  # a Fairway model's attributions (modules.explain)
ATTRIBUTION_PREFIX = "attribution_"


class ClientError(Exception):
    pass


@dataclasses.dataclass(frozen=True)
class Result:
    outputs: dict[str, list]  # output alias -> one value per row
    version: int | None  # the version that answered


@dataclasses.dataclass(frozen=True)
class Explanation:
    rows: list[dict]  # probability, logit, baseline_logit, attributions (largest |value| first)
    version: int | None


def read_rows(path: str | pathlib.Path) -> list[dict[str, Any]]:
    """Rows of a CSV file (header line), a JSON list of objects, or JSON lines."""
    path = pathlib.Path(path)
    text = path.read_text()
    if path.suffix.lower() == ".csv":
        rows = list(csv.DictReader(io.StringIO(text, newline=""), skipinitialspace=True))
        for i, row in enumerate(rows, 2):
            if None in row or None in row.values():  # DictReader's filler for a ragged row
                raise ClientError(f"{path}: row {i - 1} (after the header) has a different "
                                  "number of fields than the header")
    else:
        try:
            doc = json.loads(text)
            rows = doc if isinstance(doc, list) else [doc]
        except json.JSONDecodeError:
            rows = []
            for i, line in enumerate(text.splitlines(), 1):
                if line.strip():
                    try:
                        rows.append(json.loads(line))
                    except json.JSONDecodeError as e:
                        raise ClientError(f"{path}:{i}: not JSON: {e.msg}") from None
    if not rows:
        raise ClientError(f"{path}: no rows")
    for i, row in enumerate(rows):
        if not isinstance(row, dict):
            raise ClientError(f"{path}: row {i + 1} is not an object of feature values")
    return rows


def _coerce(value: Any, dtype: str, where: str):
    # An empty CSV cell or a JSON null is a missing value: '' for strings, NaN for floats (the
    # model's serving signature reads them so; an optional integer column takes floats).
    if dtype == "DT_STRING":
        return "" if value is None else value if isinstance(value, str) else str(value)
    try:
        if dtype in ("DT_FLOAT", "DT_DOUBLE", "DT_HALF"):
            return float("nan") if value is None or value == "" else float(value)
        if dtype == "DT_BOOL":
            return value if isinstance(value, bool) else str(value).lower() in ("1", "true")
        if isinstance(value, float) and not value.is_integer():
            raise ValueError
        return int(value)
    except (TypeError, ValueError):
        raise ClientError(f"{where}: {value!r} is not a valid {dtype[3:].lower()}") from None


def coerce(rows: Sequence[dict], inputs: dict[str, str]) -> list[dict]:
    """Keeps the signature's inputs (extra columns such as the label are dropped), typed."""
    out = []
    for i, row in enumerate(rows):
        missing = [k for k in inputs if k not in row]
        if missing:
            raise ClientError(f"row {i + 1}: missing field(s) {missing}; the signature needs "
                              f"{sorted(inputs)}")
        out.append({k: _coerce(row[k], t, f"row {i + 1}, field '{k}'")
                    for k, t in inputs.items()})
    return out


class Client:
    def __init__(self, host: str = "127.0.0.1", port: int | None = None, model: str = "",
                 protocol: str = "rest", version: int | None = None, label: str | None = None,
                 timeout: float = 30.0):
        if protocol not in ("rest", "grpc"):
            raise ClientError(f"protocol {protocol!r}: expected rest or grpc")
        if not model:
            raise ClientError("a model name is needed (the name `fairway serve` serves it as)")
        self.protocol, self.model, self.version, self.label = protocol, model, version, label
        self.timeout = timeout
        port = port or (REST_PORT if protocol == "rest" else GRPC_PORT)
        self.address = f"{host}:{port}"
        if protocol == "rest":
            self._http = http.client.HTTPConnection(host, port, timeout=timeout)
        else:
            import grpc
            from tensorflow_serving.apis import prediction_service_pb2_grpc
            self._channel = grpc.insecure_channel(self.address)
            self._stub = prediction_service_pb2_grpc.PredictionServiceStub(self._channel)
        self._signatures: dict[str, dict] = {}

    # -- REST ------------------------------------------------------------------------------------
    def _path(self) -> str:
        path = f"/v1/models/{self.model}"
        if self.version is not None:
            path += f"/versions/{self.version}"
        elif self.label is not None:
            path += f"/labels/{self.label}"
        return path

    def _rest(self, method: str, path: str, body: bytes | None = None):
        try:
            self._http.request(method, path, body=body,
                               headers={"Content-Type": "application/json"} if body else {})
            resp = self._http.getresponse()
            data = resp.read()
        except (OSError, http.client.HTTPException) as e:
            self._http.close()
            raise ClientError(f"REST {self.address}: {type(e).__name__}: {e}") from None
        try:
            doc = json.loads(data)
        except json.JSONDecodeError:
            raise ClientError(f"REST {path}: HTTP {resp.status}, not JSON: {data[:200]!r}") \
                from None
        if resp.status != 200:
            raise ClientError(f"REST {path}: HTTP {resp.status}: {doc.get('error', doc)}")
        version = resp.getheader("X-Model-Version")
        return doc, int(version) if version else None

    # -- shared ----------------------------------------------------------------------------------
    def inputs(self, signature: str = "serving_default") -> dict[str, str]:
        """Input name -> dtype ("DT_INT64", ...) from the server's metadata."""
        return {k: v["dtype"] for k, v in self.signature(signature)["inputs"].items()}

    def outputs(self, signature: str = "serving_default") -> dict[str, str]:
        return {k: v["dtype"] for k, v in self.signature(signature)["outputs"].items()}

    def signature(self, signature: str) -> dict:
        """The SignatureDef (as a dict) from the server's metadata, fetched once."""
        if signature not in self._signatures:
            if self.protocol == "rest":
                doc, _ = self._rest("GET", self._path() + "/metadata")
                sigs = doc["metadata"]["signature_def"]["signature_def"]
            else:
                sigs = self._grpc_signatures()
            if signature not in sigs:
                raise ClientError(f"model {self.model!r} has no signature {signature!r}; it "
                                  f"has {sorted(sigs)}")
            self._signatures[signature] = sigs[signature]
        return self._signatures[signature]

    def _spec(self, req_spec, signature: str) -> None:
        req_spec.name = self.model
        req_spec.signature_name = signature
        if self.version is not None:
            req_spec.version.value = self.version
        elif self.label is not None:
            req_spec.version_label = self.label

    def _grpc_signatures(self) -> dict:
        from google.protobuf import json_format
        from tensorflow_serving.apis import get_model_metadata_pb2
        req = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
        self._spec(req.model_spec, "")
        resp = self._grpc_call(self._stub.GetModelMetadata, req)
        sigs = get_model_metadata_pb2.SignatureDefMap()
        resp.metadata["signature_def"].Unpack(sigs)
        return json_format.MessageToDict(sigs, preserving_proto_field_name=True)["signature_def"]

    def _grpc_call(self, method, req):
        import grpc
        try:
            return method(req, timeout=self.timeout)
        except grpc.RpcError as e:
            raise ClientError(f"gRPC {self.address}: {e.code().name}: {e.details()}") from None

    def predict(self, rows: Sequence[dict], signature: str = "serving_default") -> Result:
        typed = coerce(rows, self.inputs(signature))
        if self.protocol == "rest":
            body = json.dumps({"signature_name": signature, "instances": typed}).encode()
            doc, version = self._rest("POST", self._path() + ":predict", body)
            preds, names = doc["predictions"], list(self.outputs(signature))
            if len(names) > 1:
                return self._result({k: [p[k] for p in preds] for k in names}, signature,
                                    version)
            return self._result({names[0]: preds}, signature, version)
        import tensorflow as tf
        from tensorflow.core.framework import types_pb2
        from tensorflow_serving.apis import predict_pb2
        req = predict_pb2.PredictRequest()
        self._spec(req.model_spec, signature)
        for k, dtype in self.inputs(signature).items():
            tf_dtype = tf.dtypes.as_dtype(types_pb2.DataType.Value(dtype))
            values = [r[k] for r in typed]
            req.inputs[k].CopyFrom(tf.make_tensor_proto(
                np.array(values, dtype=object) if tf_dtype == tf.string else values, tf_dtype))
        resp = self._grpc_call(self._stub.Predict, req)
        return self._result({k: tf.make_ndarray(v).tolist() for k, v in resp.outputs.items()},
                            signature, resp.model_spec.version.value)

    def explain(self, rows: Sequence[dict], signature: str = EXPLAIN_SIGNATURE) -> Explanation:
        """Attributions per row through Predict with signature_name `explain`, which real TF
        Serving serves too (fairway serve's `:explain` verb answers the same values)."""
        result = self.predict(rows, signature)
        names = [k for k in result.outputs if k.startswith(ATTRIBUTION_PREFIX)]
        if "probability" not in result.outputs or not names:
            raise ClientError(f"signature {signature!r} of model {self.model!r} gives no "
                              "attributions (was the model pushed before explanations?)")
        out = []
        for i in range(len(rows)):
            attributions = {k[len(ATTRIBUTION_PREFIX):]: result.outputs[k][i] for k in names}
            out.append({**{k: result.outputs[k][i] for k in ("probability", "logit",
                                                             "baseline_logit")
                           if k in result.outputs},
                        "attributions": dict(sorted(attributions.items(),
                                                    key=lambda kv: -abs(kv[1])))})
        return Explanation(out, result.version)

    def _result(self, outputs: dict[str, list], signature: str, version) -> Result:
        """float32 outputs in their shortest form, so REST and gRPC print the same values."""
        types = self.outputs(signature)
        return Result({k: [float(str(np.float32(x))) for x in v]
                       if types.get(k) == "DT_FLOAT" and v and isinstance(v[0], float) else v
                       for k, v in outputs.items()}, version)

    def close(self) -> None:
        if self.protocol == "rest":
            self._http.close()
        else:
            self._channel.close()
