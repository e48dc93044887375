"""TF Serving's REST API on aiohttp (model_servers/http_rest_api_handler.cc semantics)."""
from __future__ import annotations

import asyncio
import re
import urllib.parse
from concurrent.futures import ThreadPoolExecutor

import tensorflow as tf
from aiohttp import web
from google.protobuf import json_format
from tensorflow_serving.apis import (classification_pb2, get_model_metadata_pb2,
                                     get_model_status_pb2, input_pb2, predict_pb2,
                                     prediction_log_pb2, regression_pb2)
from tensorflow_serving.config import model_server_config_pb2

from serving import json_codec, protos
from serving.errors import ServingError, invalid
from serving.manager import sources_from_proto
from serving.service import REQUEST_ID_HEADER, Service, request_id
from serving.telemetry import PROMETHEUS_PATH

_MODEL = re.compile(
    r"/v1/models/(?P<name>[^/:]+)(?:/versions/(?P<version>\d+)|/labels/(?P<label>[^/:]+))?"
    r"(?P<tail>/metadata|:(?P<verb>predict|classify|regress|explain))?", re.IGNORECASE)
JSON = "application/json"
VERSION_HEADER = "X-Model-Version"  # which version answered (canary/stable routing)
INLINE_BYTES = 64 << 10  # bodies up to this size are answered on the event loop


def _error(e: ServingError) -> web.Response:
    return web.Response(status=e.http_status, body=json_codec.dumps({"error": e.message}),
                        content_type=JSON)


def _version_status(v) -> get_model_status_pb2.ModelVersionStatus:
    s = get_model_status_pb2.ModelVersionStatus(
        version=v.number, state=get_model_status_pb2.ModelVersionStatus.State.Value(v.state))
    s.status.error_code = {"OK": 0, "UNKNOWN": 2}.get(v.error_code, 2)
    s.status.error_message = v.error_message
    return s


def status_response(service: Service, name: str, version: int | None):
    return get_model_status_pb2.GetModelStatusResponse(
        model_version_status=[_version_status(v)
                              for v in service.manager.status(name, version)])


def reload_config(service: Service, config) -> None:
    """HandleReloadConfigRequest (gRPC) and POST /v1/config:reload (REST): a ModelServerConfig
    replaces the served models' sources; a bad one changes nothing."""
    try:
        sources = sources_from_proto(config, "the reload request's config")
    except ValueError as e:
        raise invalid(str(e)) from None
    service.manager.reload(sources)


def predict_log(inputs, outputs, sig_name):
    def build():
        req = predict_pb2.PredictRequest()
        req.model_spec.signature_name = sig_name
        for k, v in inputs.items():
            req.inputs[k].CopyFrom(tf.make_tensor_proto(v))
        resp = predict_pb2.PredictResponse()
        for k, v in outputs.items():
            resp.outputs[k].CopyFrom(tf.make_tensor_proto(v))
        return prediction_log_pb2.PredictionLog(
            predict_log=prediction_log_pb2.PredictLog(request=req, response=resp))
    return build


def _examples_input(serialized):
    return input_pb2.Input(example_list=input_pb2.ExampleList(
        examples=[tf.train.Example.FromString(s) for s in serialized]))


class RestApi:
    def __init__(self, service: Service, max_request_bytes: int, pool: ThreadPoolExecutor):
        self.service = service
        self.max_request_bytes = max_request_bytes
        self._pool = pool

    def app(self) -> web.Application:
        app = web.Application(client_max_size=self.max_request_bytes)
        app.router.add_route("*", "/{tail:.*}", self.handle)
        return app

    async def handle(self, request: web.Request) -> web.StreamResponse:
        path = request.rel_url.raw_path
        if request.method == "GET" and path == PROMETHEUS_PATH:
            return web.Response(body=self.service.metrics.exposition(),
                                content_type="text/plain", charset="utf-8")
        if not path.lower().startswith("/v1/"):
            return web.Response(status=404, text="Not Found")  # TF Serving: not JSON either
        try:
            return await self._v1(request, path)
        except ServingError as e:
            return _error(e)
        except web.HTTPRequestEntityTooLarge:
            return _error(invalid(f"Request body exceeds {self.max_request_bytes} bytes "
                                  "(fairway serve --max-request-bytes)"))

    async def _v1(self, request: web.Request, path: str) -> web.Response:
        if path.lower() == "/v1/config:reload" and request.method == "POST":
            config = model_server_config_pb2.ModelServerConfig()
            try:
                json_format.Parse(await request.read(), config)
            except json_format.ParseError as e:
                raise invalid(f"POST /v1/config:reload: the body is not a ModelServerConfig "
                              f"in JSON: {e}") from None
            reload_config(self.service, config)
            return self._json({})
        if path.lower() == "/v1/routing" and request.method == "GET":
            return self._json(self.service.manager.routing_state())
        if path.rstrip("/").lower() == "/v1/models":
            raise invalid("Missing model name in request.")
        m = _MODEL.fullmatch(path)
        verb = m and m["verb"]
        if m is None or (request.method == "POST") != bool(verb) \
                or request.method not in ("GET", "POST"):
            raise invalid(f"Malformed request: {request.method} {path}")
        name = urllib.parse.unquote(m["name"])
        version = int(m["version"]) if m["version"] else None
        label = urllib.parse.unquote(m["label"]) if m["label"] else None
        if request.method == "GET":
            if m["tail"]:  # /metadata
                servable = self.service.manager.servable(name, version, label)
                resp = protos.metadata(servable, ["signature_def"])
                return self._json(_metadata_json(resp, servable))
            # A label is not resolved here: all versions are listed (get_model_status_impl.cc).
            resp = status_response(self.service, name, version)
            return web.Response(body=json_format.MessageToJson(
                resp, including_default_value_fields=True).encode(), content_type=JSON)
        body = await request.read()
        rid = request_id(request.headers.get(REQUEST_ID_HEADER))
        if len(body) <= INLINE_BYTES:  # a thread hop costs ~1 ms on 2 cores: small ones inline
            servable, doc = self._infer(verb.lower(), body, name, version, label, rid)
        else:
            servable, doc = await asyncio.get_running_loop().run_in_executor(
                self._pool, self._infer, verb.lower(), body, name, version, label, rid)
        return web.Response(body=json_codec.dumps(doc), content_type=JSON,
                            headers={VERSION_HEADER: str(servable.version),
                                     REQUEST_ID_HEADER: rid})

    def _infer(self, verb: str, body: bytes, name, version, label, rid: str):
        doc = json_codec.parse_body(body)
        sig_name = json_codec.signature_name(doc)
        if verb == "predict":
            def fn(servable):
                sig = servable.signature(sig_name)
                inputs, rows = json_codec.predict_inputs(doc, sig)
                outputs = servable.run(sig, inputs)
                return (json_codec.predict_response(outputs, rows),
                        predict_log(inputs, outputs, sig.name))
        elif verb == "explain":
            # KServe's verb over the model's own `explain` signature (a Predict signature, so
            # real TF Serving serves it through :predict); logged as a Predict of it.
            def fn(servable):
                sig = servable.signature(sig_name or json_codec.EXPLAIN_SIGNATURE)
                json_codec.check_explain_signature(sig)
                inputs, _ = json_codec.predict_inputs(doc, sig)
                outputs = servable.run(sig, inputs)
                return (json_codec.explain_response(outputs),
                        predict_log(inputs, outputs, sig.name))
        elif verb == "classify":
            serialized = json_codec.examples(doc)

            def fn(servable):
                classes, scores = servable.classify(sig_name, serialized)
                return json_codec.classify_response(classes, scores), \
                    lambda: prediction_log_pb2.PredictionLog(
                        classify_log=prediction_log_pb2.ClassifyLog(
                            request=classification_pb2.ClassificationRequest(
                                input=_examples_input(serialized)),
                            response=classification_pb2.ClassificationResponse(
                                result=protos.classification_result(classes, scores))))
        else:
            serialized = json_codec.examples(doc)

            def fn(servable):
                values = servable.regress(sig_name, serialized)
                return json_codec.regress_response(values), \
                    lambda: prediction_log_pb2.PredictionLog(
                        regress_log=prediction_log_pb2.RegressLog(
                            request=regression_pb2.RegressionRequest(
                                input=_examples_input(serialized)),
                            response=regression_pb2.RegressionResponse(
                                result=protos.regression_result(values))))
        return self.service.call(verb, "REST", name, version, label, fn, rid)

    @staticmethod
    def _json(doc) -> web.Response:
        return web.Response(body=json_codec.dumps(doc), content_type=JSON)


def _metadata_json(resp, servable) -> dict:
    """model_spec + the SignatureDefMap with proto field names, unwrapped from its Any."""
    sigs = get_model_metadata_pb2.SignatureDefMap()
    resp.metadata["signature_def"].Unpack(sigs)
    return {"model_spec": json_format.MessageToDict(resp.model_spec,
                                                    preserving_proto_field_name=True,
                                                    including_default_value_fields=True),
            "metadata": {"signature_def": json_format.MessageToDict(
                sigs, preserving_proto_field_name=True)}}

