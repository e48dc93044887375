"""TF Serving's gRPC PredictionService and ModelService on the servicer bases of
tensorflow-serving-api; each call goes through the same Service as REST."""
from __future__ import annotations

import grpc
from tensorflow_serving.apis import (model_service_pb2_grpc, prediction_log_pb2,
                                     prediction_service_pb2_grpc)

from serving import protos
from serving.errors import ServingError, invalid
from serving.rest import status_response
from serving.service import Service


def _target(spec):
    """(name, version, label) of a ModelSpec."""
    if not spec.name:
        raise invalid("Missing model name in request.")
    choice = spec.WhichOneof("version_choice")
    return (spec.name, spec.version.value if choice == "version" else None,
            spec.version_label if choice == "version_label" else None)


def _log(kind: str, log_cls, req, resp):
    return lambda: prediction_log_pb2.PredictionLog(**{kind: log_cls(request=req, response=resp)})


class PredictionService(prediction_service_pb2_grpc.PredictionServiceServicer):
    def __init__(self, service: Service):
        self.service = service

    def _call(self, api: str, req, context, run, kind: str, log_cls, spec=None):
        try:
            def fn(servable):
                resp = run(servable, req)
                return resp, _log(kind, log_cls, req, resp)
            target = _target(req.model_spec if spec is None else spec)
            _, resp = self.service.call(api, "GRPC", *target, fn)
            return resp
        except ServingError as e:
            context.abort(e.code, e.grpc_message)

    def Predict(self, request, context):
        return self._call("predict", request, context, protos.predict, "predict_log",
                          prediction_log_pb2.PredictLog)

    def Classify(self, request, context):
        return self._call("classify", request, context, protos.classify, "classify_log",
                          prediction_log_pb2.ClassifyLog)

    def Regress(self, request, context):
        return self._call("regress", request, context, protos.regress, "regress_log",
                          prediction_log_pb2.RegressLog)

    def MultiInference(self, request, context):
        if not request.tasks:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "Tasks are empty")
        return self._call("multi_inference", request, context, protos.multi_inference,
                          "multi_inference_log", prediction_log_pb2.MultiInferenceLog,
                          spec=request.tasks[0].model_spec)

    def GetModelMetadata(self, request, context):
        try:
            name, version, label = _target(request.model_spec)
            servable = self.service.manager.servable(name, version, label)
            return protos.metadata(servable, request.metadata_field)
        except ServingError as e:
            context.abort(e.code, e.grpc_message)


class ModelService(model_service_pb2_grpc.ModelServiceServicer):
    def __init__(self, service: Service):
        self.service = service

    def GetModelStatus(self, request, context):
        try:
            name, version, _ = _target(request.model_spec)  # a label is not resolved
            return status_response(self.service, name, version)
        except ServingError as e:
            context.abort(e.code, e.grpc_message)

    def HandleReloadConfigRequest(self, request, context):
        context.abort(grpc.StatusCode.UNIMPLEMENTED,
                      "HandleReloadConfigRequest: restart `fairway serve` with the new "
                      "--model-config-file instead")


def add_to_server(server: grpc.Server, service: Service) -> None:
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(
        PredictionService(service), server)
    model_service_pb2_grpc.add_ModelServiceServicer_to_server(ModelService(service), server)

