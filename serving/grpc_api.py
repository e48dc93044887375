"""TF Serving's gRPC PredictionService and ModelService on the servicer bases of
tensorflow-serving-api, served by grpc.aio on the same event loop as REST; each call goes
through the same Service as REST."""
from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

import grpc
from google.protobuf.message import DecodeError
from tensorflow_serving.apis import (model_management_pb2, model_service_pb2_grpc,
                                     prediction_log_pb2, prediction_service_pb2_grpc)

from serving import protos
from serving.errors import ServingError, invalid
from serving.rest import INLINE_BYTES, reload_config, status_response
from serving.service import REQUEST_ID_HEADER, Service, request_id

REQUEST_ID_KEY = REQUEST_ID_HEADER.lower()  # gRPC metadata keys are lower case


def _target(spec):
    """(name, version, label) of a ModelSpec."""
    if not spec.name:
        raise invalid("Missing model name in request.")
    choice = spec.WhichOneof("version_choice")
    return (spec.name, spec.version.value if choice == "version" else None,
            spec.version_label if choice == "version_label" else None)


def _log(kind: str, log_cls, req, resp):
    return lambda: prediction_log_pb2.PredictionLog(**{kind: log_cls(request=req, response=resp)})


class _Base:
    def __init__(self, service: Service, pool: ThreadPoolExecutor):
        self.service, self._pool = service, pool

    async def _answer(self, context, request, work):
        """work() on the loop for small requests (a thread hop costs ~1 ms), else in a thread;
        a ServingError becomes the same status code as TF Serving's."""
        try:
            if request.ByteSize() <= INLINE_BYTES:
                return work()
            return await asyncio.get_running_loop().run_in_executor(self._pool, work)
        except ServingError as e:
            await context.abort(e.code, e.grpc_message)


class PredictionService(_Base, prediction_service_pb2_grpc.PredictionServiceServicer):
    async def _call(self, api: str, req, context, run, kind: str, log_cls, spec=None):
        # On the event loop, not in work(): the context belongs to this coroutine.
        try:
            rid = request_id(dict(context.invocation_metadata() or ()).get(REQUEST_ID_KEY))
        except ServingError as e:
            await context.abort(e.code, e.grpc_message)
        context.set_trailing_metadata(((REQUEST_ID_KEY, rid),))

        def work():
            def fn(servable):
                resp = run(servable, req)
                return resp, _log(kind, log_cls, req, resp)
            target = _target(req.model_spec if spec is None else spec)
            return self.service.call(api, "GRPC", *target, fn, rid)[1]
        return await self._answer(context, req, work)

    async def Predict(self, request, context):
        return await self._call("predict", request, context, protos.predict, "predict_log",
                                prediction_log_pb2.PredictLog)

    async def Classify(self, request, context):
        return await self._call("classify", request, context, protos.classify, "classify_log",
                                prediction_log_pb2.ClassifyLog)

    async def Regress(self, request, context):
        return await self._call("regress", request, context, protos.regress, "regress_log",
                                prediction_log_pb2.RegressLog)

    async def MultiInference(self, request, context):
        if not request.tasks:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "Tasks are empty")
        return await self._call("multi_inference", request, context, protos.multi_inference,
                                "multi_inference_log", prediction_log_pb2.MultiInferenceLog,
                                spec=request.tasks[0].model_spec)

    async def GetModelMetadata(self, request, context):
        def work():
            servable = self.service.manager.servable(*_target(request.model_spec))
            return protos.metadata(servable, request.metadata_field)
        return await self._answer(context, request, work)


class ModelService(_Base, model_service_pb2_grpc.ModelServiceServicer):
    async def GetModelStatus(self, request, context):
        def work():
            name, version, _ = _target(request.model_spec)  # a label is not resolved
            return status_response(self.service, name, version)
        return await self._answer(context, request, work)

    async def HandleReloadConfigRequest(self, request, context):
        def work():
            reload_config(self.service, request.config)
            return model_management_pb2.ReloadConfigResponse()  # status OK
        return await self._answer(context, request, work)


class _Handlers:
    """Collects the generic handlers a generated add_*_to_server registers."""

    def __init__(self):
        self.handlers = []

    def add_generic_rpc_handlers(self, handlers):
        self.handlers.extend(handlers)


class _ParseOwnRequests(grpc.GenericRpcHandler):
    """Parses each request itself: gRPC's own deserializer turns bytes that are not the
    method's protobuf into UNKNOWN ("Unexpected DecodeError"); here they are INVALID_ARGUMENT
    with the message type named."""

    def __init__(self, inner: grpc.GenericRpcHandler):
        self._inner = inner

    def service(self, handler_call_details):
        handler = self._inner.service(handler_call_details)
        if handler is None or handler.request_deserializer is None or not handler.unary_unary:
            return handler
        parse, behavior = handler.request_deserializer, handler.unary_unary
        message_type = getattr(parse, "__self__", None)
        type_name = message_type.DESCRIPTOR.full_name if message_type else "request"

        async def unary_unary(raw: bytes, context):
            try:
                request = parse(raw)
            except DecodeError as e:
                await context.abort(
                    grpc.StatusCode.INVALID_ARGUMENT,
                    f"{handler_call_details.method}: the request ({len(raw)} bytes) is not a "
                    f"valid {type_name} protobuf: {e}")
            return await behavior(request, context)

        return handler._replace(request_deserializer=None, unary_unary=unary_unary)


def add_to_server(server, service: Service, pool: ThreadPoolExecutor) -> None:
    handlers = _Handlers()
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(
        PredictionService(service, pool), handlers)
    model_service_pb2_grpc.add_ModelServiceServicer_to_server(ModelService(service, pool),
                                                              handlers)
    server.add_generic_rpc_handlers(tuple(_ParseOwnRequests(h) for h in handlers.handlers))
