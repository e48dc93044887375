"""TF Serving's gRPC messages ↔ Servable calls; used by the gRPC service and by warmup replay."""
from __future__ import annotations

import numpy as np
import tensorflow as tf
from tensorflow_serving.apis import (classification_pb2, get_model_metadata_pb2, inference_pb2,
                                     model_pb2, predict_pb2, regression_pb2)

from serving.errors import invalid
from serving.servable import CLASSIFY, REGRESS, Servable


def model_spec(servable: Servable, signature: str = "") -> model_pb2.ModelSpec:
    spec = model_pb2.ModelSpec(name=servable.name, signature_name=signature)
    spec.version.value = servable.version
    return spec


def _ndarray(proto, key: str) -> np.ndarray:
    try:
        return tf.make_ndarray(proto)
    except Exception as e:  # malformed TensorProto: wrong content size, unknown dtype
        raise invalid(f"input '{key}': cannot read TensorProto: {e}") from None


def predict(servable: Servable, req: predict_pb2.PredictRequest) -> predict_pb2.PredictResponse:
    sig = servable.signature(req.model_spec.signature_name)
    inputs = {k: _ndarray(v, k) for k, v in req.inputs.items()}
    outputs = servable.run(sig, inputs, list(req.output_filter))
    resp = predict_pb2.PredictResponse(model_spec=model_spec(servable, sig.name))
    for k, v in outputs.items():
        resp.outputs[k].CopyFrom(tf.make_tensor_proto(v))
    return resp


def serialized_examples(inp) -> list[bytes]:
    """An Input's example_list, or example_list_with_context with the context merged in."""
    kind = inp.WhichOneof("kind")
    if kind == "example_list":
        return [e.SerializeToString() for e in inp.example_list.examples]
    if kind == "example_list_with_context":
        ctx = inp.example_list_with_context.context
        out = []
        for e in inp.example_list_with_context.examples:
            merged = tf.train.Example()
            merged.CopyFrom(ctx)
            merged.MergeFrom(e)
            out.append(merged.SerializeToString())
        return out
    raise invalid("Input is empty")


def classification_result(classes, scores) -> classification_pb2.ClassificationResult:
    result = classification_pb2.ClassificationResult()
    ref = classes if classes is not None else scores
    for i in range(ref.shape[0]):
        row = result.classifications.add()
        for j in range(ref.shape[1]):
            c = row.classes.add()
            if classes is not None:
                c.label = classes[i, j].decode("utf-8", "replace")
            if scores is not None:
                c.score = float(scores[i, j])
    return result


def regression_result(values) -> regression_pb2.RegressionResult:
    return regression_pb2.RegressionResult(
        regressions=[regression_pb2.Regression(value=float(v)) for v in values])


def classify(servable: Servable, req) -> classification_pb2.ClassificationResponse:
    name = req.model_spec.signature_name
    classes, scores = servable.classify(name, serialized_examples(req.input))
    return classification_pb2.ClassificationResponse(
        model_spec=model_spec(servable, servable.signature(name).name),
        result=classification_result(classes, scores))


def regress(servable: Servable, req) -> regression_pb2.RegressionResponse:
    name = req.model_spec.signature_name
    values = servable.regress(name, serialized_examples(req.input))
    return regression_pb2.RegressionResponse(
        model_spec=model_spec(servable, servable.signature(name).name),
        result=regression_result(values))


def multi_inference(servable: Servable, req) -> inference_pb2.MultiInferenceResponse:
    """Classify/Regress tasks on one model sharing one input (servables/.../multi_inference.cc)."""
    if not req.tasks:
        raise invalid("Tasks are empty")
    examples = serialized_examples(req.input)
    resp = inference_pb2.MultiInferenceResponse()
    for task in req.tasks:
        if task.model_spec.name != servable.name:
            raise invalid("All ModelSpecs in a MultiInferenceRequest must access the same model "
                          "name")
        name = task.model_spec.signature_name
        result = resp.results.add(model_spec=model_spec(servable, servable.signature(name).name))
        if task.method_name == CLASSIFY:
            result.classification_result.CopyFrom(
                classification_result(*servable.classify(name, examples)))
        elif task.method_name == REGRESS:
            result.regression_result.CopyFrom(regression_result(servable.regress(name, examples)))
        else:
            raise invalid(f"Unsupported signature method_name: {task.method_name}")
    return resp


def metadata(servable: Servable, fields) -> get_model_metadata_pb2.GetModelMetadataResponse:
    if list(fields) != ["signature_def"]:
        raise invalid("Metadata field(s) not supported: only 'signature_def' is; got "
                      f"{list(fields)}")
    sigs = get_model_metadata_pb2.SignatureDefMap()
    for k, v in servable.signature_defs.items():
        sigs.signature_def[k].CopyFrom(v)
    resp = get_model_metadata_pb2.GetModelMetadataResponse(model_spec=model_spec(servable))
    resp.metadata["signature_def"].Pack(sigs)
    return resp
