"""The local TF Serving-compatible server, as a real process on 127.0.0.1, against a real
SavedModel: REST and gRPC (official stubs) answers, TF Serving's errors, metrics."""
import base64
import json
import urllib.error
import urllib.request

import grpc
import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import (classification_pb2, get_model_metadata_pb2,
                                     get_model_status_pb2, inference_pb2, input_pb2,
                                     model_service_pb2_grpc, predict_pb2,
                                     prediction_service_pb2_grpc, regression_pb2)

import serving_support as support


def http(server, method: str, path: str, body=None):
    data = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
    req = urllib.request.Request(server.url + path, data=data, method=method)
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


def ok(server, path, body=None, method="POST"):
    status, headers, data = http(server, method, path, body)
    assert status == 200, data
    assert headers["Content-Type"].startswith("application/json")
    return json.loads(data), headers


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    base = tmp_path_factory.mktemp("models") / "toy"
    base.mkdir()
    support.toy_model(base / "1", weight=1.0)
    return base


@pytest.fixture(scope="module")
def server(base, tmp_path_factory):
    with support.serve(tmp_path_factory.mktemp("logs"), "--model-dir", str(base),
                       "--model-name", "toy", "--max-request-bytes", "1000000") as s:
        yield s


@pytest.fixture(scope="module")
def local(base):
    return tf.saved_model.load(str(base / "1")).signatures


@pytest.fixture(scope="module")
def stub(server):
    with grpc.insecure_channel(server.grpc_target) as channel:
        yield prediction_service_pb2_grpc.PredictionServiceStub(channel), \
            model_service_pb2_grpc.ModelServiceStub(channel)


ROWS = [{"x": [1.0, 2.5], "n": 3, "s": "héllo"}, {"x": [-1, 0.125], "n": -2, "s": "ok"}]


def test_status_is_tf_servings_json(server):
    status, headers, data = http(server, "GET", "/v1/models/toy")
    assert status == 200 and headers["Content-Type"].startswith("application/json")
    assert json.loads(data) == {"model_version_status": [{
        "version": "1", "state": "AVAILABLE",
        "status": {"error_code": "OK", "error_message": ""}}]}


def test_metadata_lists_every_signature_with_method_names(server):
    doc, _ = ok(server, "/v1/models/toy/versions/1/metadata", method="GET")
    assert doc["model_spec"] == {"name": "toy", "signature_name": "", "version": "1"}
    sigs = doc["metadata"]["signature_def"]["signature_def"]
    assert {k: v["method_name"] for k, v in sigs.items()} == {
        "serving_default": "tensorflow/serving/predict", "single": "tensorflow/serving/predict",
        "classification": "tensorflow/serving/classify",
        "regression": "tensorflow/serving/regress"}
    assert sigs["serving_default"]["inputs"]["x"]["dtype"] == "DT_FLOAT"
    assert sigs["serving_default"]["inputs"]["x"]["tensor_shape"]["dim"][1]["size"] == "2"


def test_row_format_equals_the_in_process_call(server, local):
    doc, headers = ok(server, "/v1/models/toy:predict", {"instances": ROWS})
    want = local["serving_default"](x=tf.constant([r["x"] for r in ROWS], tf.float32),
                                    n=tf.constant([r["n"] for r in ROWS], tf.int64),
                                    s=tf.constant([r["s"] for r in ROWS]))
    assert headers["X-Model-Version"] == "1"
    preds = doc["predictions"]
    np.testing.assert_array_equal([p["y"] for p in preds], want["y"].numpy())
    assert [p["length"] for p in preds] == want["length"].numpy().tolist() == [6, 2]
    # An output alias ending in _bytes comes back base64-encoded.
    assert [base64.b64decode(p["s_bytes"]["b64"]).decode() for p in preds] == ["héllo", "ok"]


def test_columnar_format_and_b64_inputs(server):
    doc, _ = ok(server, "/v1/models/toy:predict", {"inputs": {
        "x": [[1, 2]], "n": [5], "s": [{"b64": base64.b64encode(b"\x00\xff").decode()}],
        "ignored": 1}})
    assert doc["outputs"]["y"] == [8.0] and doc["outputs"]["length"] == [2]
    assert doc["outputs"]["s_bytes"] == [{"b64": "AP8="}]


def test_single_input_signature_takes_bare_values(server):
    rows, _ = ok(server, "/v1/models/toy:predict",
                 {"signature_name": "single", "instances": [[1, 2, 3], [0.5, 0.25, 0.125]]})
    assert rows == {"predictions": [6.0, 0.875]}
    cols, _ = ok(server, "/v1/models/toy:predict",
                 {"signature_name": "single", "inputs": [[1, 1, 1]]})
    assert cols == {"outputs": [3.0]}


def test_classify_and_regress(server):
    body = {"signature_name": "classification", "context": {"x": [0.0, 0.0]},
            "examples": [{"x": [0.0, 2.0]}, {}]}
    doc, _ = ok(server, "/v1/models/toy:classify", body)
    [[(a, pa), (b, pb)], [(_, qa), (_, qb)]] = doc["results"]
    assert (a, b) == ("a", "b") and pb > 0.88 and pa < 0.12 and qa == qb == 0.5
    doc, _ = ok(server, "/v1/models/toy/labels/x:regress".replace("/labels/x", ""),
                dict(body, signature_name="regression"))
    assert doc == {"results": [2.0, 0.0]}


BAD = [
    # (method, path, body, HTTP status, part of the error message)
    ("POST", "/v1/models/toy:predict", b"{bad", 400, "JSON Parse error"),
    ("POST", "/v1/models/toy:predict", b"", 400, "The document is empty"),
    ("POST", "/v1/models/toy:predict", b"[1]", 400, "must be a JSON object"),
    ("POST", "/v1/models/toy:predict", {"instances": [{"x": ["a", 1], "n": 1, "s": "s"}]}, 400,
     'JSON Value: "a" is not of expected type: float'),
    ("POST", "/v1/models/toy:predict", {"instances": [{"x": [1, 2], "n": 1.5, "s": "s"}]}, 400,
     "JSON Value: 1.5 is not of expected type: int64"),
    ("POST", "/v1/models/toy:predict", {"instances": [{"x": [1, 2], "n": True, "s": "s"}]}, 400,
     "is not of expected type: int64"),
    ("POST", "/v1/models/toy:predict", {"instances": [{"x": [1, 2], "n": 1, "s": 7}]}, 400,
     "JSON Value: 7 is not of expected type: string"),
    ("POST", "/v1/models/toy:predict", {"instances": [{"x": [1, 2], "n": 1, "s": {"b64": "%"}}]},
     400, "base64"),
    ("POST", "/v1/models/toy:predict",
     {"instances": [{"x": [1, 2], "n": 1, "s": "a"}, {"x": [1], "n": 1, "s": "b"}]}, 400,
     "Encountered list at unexpected size"),
    ("POST", "/v1/models/toy:predict", {"instances": [{"x": [1, 2], "n": 1}]}, 400,
     "Missing keys: ['s']"),
    ("POST", "/v1/models/toy:predict", {"instances": [{"x": [1, 2, 3], "n": 1, "s": "a"}]}, 400,
     "input 'x' has shape [1, 3]"),
    ("POST", "/v1/models/toy:predict", {"instances": []}, 400, "non-empty"),
    ("POST", "/v1/models/toy:predict", {"instances": [1], "inputs": [1]}, 400, "Not both"),
    ("POST", "/v1/models/toy:predict", {"rows": []}, 400, "Missing 'inputs' or 'instances' key"),
    ("POST", "/v1/models/toy:predict", {"signature_name": 3, "instances": [1]}, 400,
     "'signature_name' key must be a string"),
    ("POST", "/v1/models/toy:predict", {"signature_name": "nope", "instances": [1]}, 400,
     'Serving signature name: "nope" not found'),
    ("POST", "/v1/models/nope:predict", {"instances": [1]}, 404,
     "Servable not found for request: Latest(nope)"),
    ("POST", "/v1/models/toy/versions/7:predict", {"instances": [1]}, 404, "Specific(toy, 7)"),
    ("POST", "/v1/models/toy/labels/blue:predict", {"instances": [1]}, 400,
     "Unrecognized servable version label: blue"),
    ("POST", "/v1/models/..%2F..%2Fetc%2Fpasswd:predict", {"instances": [1]}, 404,
     "Latest(../../etc/passwd)"),
    ("GET", "/v1/models/..%2F..%2Fetc/metadata", None, 404, "Latest(../../etc)"),
    ("POST", "/v1/models/toy/versions/x:predict", {"instances": [1]}, 400, "Malformed request"),
    ("POST", "/v1/models/toy/metadata", {}, 400, "Malformed request: POST"),
    ("PUT", "/v1/models/toy:predict", {}, 400, "Malformed request: PUT"),
    ("GET", "/v1/models", None, 400, "Missing model name in request."),
    ("GET", "/v1/models/toy/versions/9", None, 404, "Could not find version 9 of model toy"),
    ("GET", "/v1/models/ghost", None, 404, "Could not find any versions of model ghost"),
    ("POST", "/v1/models/toy:classify", {"examples": [{"x": [1.0, 2.0]}]}, 400,
     "Expected classification signature method_name to be tensorflow/serving/classify"),
    ("POST", "/v1/models/toy:regress", {"signature_name": "regression", "examples": []}, 400,
     "'examples' must be a non-empty list"),
    ("POST", "/v1/models/toy:regress", {"signature_name": "regression",
                                        "examples": [{"x": None}]}, 400, "null"),
    ("POST", "/v1/models/toy:regress", {"signature_name": "regression",
                                        "examples": [{"x": [[1.0], [2.0]]}]}, 400,
     "nested lists"),
    ("POST", "/v1/models/toy:regress", {"signature_name": "regression",
                                        "examples": [{"x": [1.0, "a"]}]}, 400, "mixed"),
    ("POST", "/v1/models/toy:regress", {"signature_name": "regression",
                                        "examples": [{"x": [1.0]}]}, 400, "x"),
    ("POST", "/v1/models/toy:predict", b'{"instances": [' + b"1," * 600_000 + b"1]}", 400,
     "exceeds 1000000 bytes"),
    ("POST", "/v1/models/toy:predict", b"[" * 100_000, 400, "JSON Parse error"),
]


@pytest.mark.parametrize("method,path,body,status,message", BAD,
                         ids=[f"{i}-{b[1].split('/')[-1][:20]}" for i, b in enumerate(BAD)])
def test_malformed_requests_get_tf_servings_json_errors(server, method, path, body, status,
                                                        message):
    got, headers, data = http(server, method, path, body)
    assert got == status, data
    assert headers["Content-Type"].startswith("application/json")
    assert message in json.loads(data)["error"]


def test_the_server_survives_bad_requests_and_other_paths_are_plain_404(server):
    assert http(server, "GET", "/healthz")[0] == 404
    assert ok(server, "/v1/models/toy", method="GET")[0]["model_version_status"]
    assert server.proc.poll() is None


def test_grpc_predict_matches_rest(server, stub):
    predict, _ = stub
    req = predict_pb2.PredictRequest()
    req.model_spec.name = "toy"
    req.inputs["x"].CopyFrom(tf.make_tensor_proto([r["x"] for r in ROWS], tf.float32))
    req.inputs["n"].CopyFrom(tf.make_tensor_proto([r["n"] for r in ROWS], tf.int64))
    req.inputs["s"].CopyFrom(tf.make_tensor_proto([r["s"].encode() for r in ROWS]))
    req.output_filter.append("y")
    resp = predict.Predict(req, timeout=30)
    assert set(resp.outputs) == {"y"}
    assert resp.model_spec.version.value == 1
    assert resp.model_spec.signature_name == "serving_default"
    rest, _ = ok(server, "/v1/models/toy:predict", {"instances": ROWS})
    np.testing.assert_array_equal(tf.make_ndarray(resp.outputs["y"]),
                                  [p["y"] for p in rest["predictions"]])


def _examples(*xs):
    return input_pb2.Input(example_list=input_pb2.ExampleList(examples=[
        tf.train.Example(features=tf.train.Features(feature={
            "x": tf.train.Feature(float_list=tf.train.FloatList(value=x))})) for x in xs]))


def test_grpc_classify_regress_multi_inference_metadata_status(stub):
    predict, models = stub
    inp = _examples([0.0, 2.0], [1.0, 1.0])
    c = predict.Classify(classification_pb2.ClassificationRequest(
        model_spec={"name": "toy", "signature_name": "classification"}, input=inp), timeout=30)
    assert [[x.label for x in row.classes] for row in c.result.classifications] == \
        [["a", "b"], ["a", "b"]]
    assert c.result.classifications[1].classes[0].score == pytest.approx(0.5)
    r = predict.Regress(regression_pb2.RegressionRequest(
        model_spec={"name": "toy", "signature_name": "regression"}, input=inp), timeout=30)
    assert [x.value for x in r.result.regressions] == [2.0, 2.0]
    m = predict.MultiInference(inference_pb2.MultiInferenceRequest(tasks=[
        {"model_spec": {"name": "toy", "signature_name": "classification"},
         "method_name": "tensorflow/serving/classify"},
        {"model_spec": {"name": "toy", "signature_name": "regression"},
         "method_name": "tensorflow/serving/regress"}], input=inp), timeout=30)
    assert [x.value for x in m.results[1].regression_result.regressions] == [2.0, 2.0]
    meta = predict.GetModelMetadata(get_model_metadata_pb2.GetModelMetadataRequest(
        model_spec={"name": "toy"}, metadata_field=["signature_def"]), timeout=30)
    sigs = get_model_metadata_pb2.SignatureDefMap()
    meta.metadata["signature_def"].Unpack(sigs)
    assert set(sigs.signature_def) == {"serving_default", "single", "classification",
                                       "regression"}
    status = models.GetModelStatus(get_model_status_pb2.GetModelStatusRequest(
        model_spec={"name": "toy"}), timeout=30)
    assert [(s.version, s.state) for s in status.model_version_status] == [(1, 30)]  # AVAILABLE


@pytest.mark.parametrize("edit,code,message", [
    (lambda r: setattr(r.model_spec, "name", "nope"), grpc.StatusCode.NOT_FOUND, "Latest(nope)"),
    (lambda r: r.model_spec.version.__setattr__("value", 9), grpc.StatusCode.NOT_FOUND,
     "Specific(toy, 9)"),
    (lambda r: setattr(r.model_spec, "signature_name", "x"), grpc.StatusCode.FAILED_PRECONDITION,
     'Serving signature name: "x" not found'),
    (lambda r: r.inputs.pop("s"), grpc.StatusCode.INVALID_ARGUMENT,
     "input size does not match signature"),
    (lambda r: r.inputs["n"].CopyFrom(tf.make_tensor_proto([1.0], tf.float32)),
     grpc.StatusCode.INVALID_ARGUMENT, "to be int64 but float is provided"),
    (lambda r: r.output_filter.append("zzz"), grpc.StatusCode.INVALID_ARGUMENT,
     "output tensor alias not found in signature: zzz"),
])
def test_grpc_errors_carry_tf_servings_codes(stub, edit, code, message):
    predict, _ = stub
    req = predict_pb2.PredictRequest(model_spec={"name": "toy"})
    req.inputs["x"].CopyFrom(tf.make_tensor_proto([[1.0, 2.0]], tf.float32))
    req.inputs["n"].CopyFrom(tf.make_tensor_proto([1], tf.int64))
    req.inputs["s"].CopyFrom(tf.make_tensor_proto([b"a"]))
    edit(req)
    with pytest.raises(grpc.RpcError) as e:
        predict.Predict(req, timeout=30)
    assert e.value.code() == code and message in e.value.details()


@pytest.mark.parametrize("method", [
    "/tensorflow.serving.PredictionService/Predict",
    "/tensorflow.serving.PredictionService/Classify",
    "/tensorflow.serving.ModelService/GetModelStatus",
])
def test_grpc_bytes_that_are_not_a_protobuf_are_an_invalid_argument(server, stub, method):
    """Raw bytes through a generic channel: not UNKNOWN ("Unexpected DecodeError")."""
    with grpc.insecure_channel(server.grpc_target) as channel:
        call = channel.unary_unary(method, request_serializer=None, response_deserializer=None)
        with pytest.raises(grpc.RpcError) as e:
            call(b"\xff\xff\xff\xff not a protobuf", timeout=30)
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT, e.value.details()
    assert "is not a valid tensorflow.serving." in e.value.details()
    # the server still answers well-formed requests afterwards
    _, models = stub
    status = models.GetModelStatus(get_model_status_pb2.GetModelStatusRequest(
        model_spec={"name": "toy"}), timeout=30)
    assert status.model_version_status[0].version == 1


def test_prometheus_metrics_count_requests_by_model_version_api(server, stub):
    ok(server, "/v1/models/toy:predict", {"instances": ROWS})
    status, headers, data = http(server, "GET", "/monitoring/prometheus/metrics")
    assert status == 200
    text = data.decode()
    rest_ok = [line for line in text.splitlines() if line.startswith(
        ":tensorflow:serving:request_count_total{") and 'entrypoint="REST"' in line
        and 'status="OK"' in line and 'API="predict"' in line and 'version="1"' in line]
    assert rest_ok and float(rest_ok[0].rsplit(" ", 1)[1]) >= 1
    assert 'status="NOT_FOUND"' in text and 'entrypoint="GRPC"' in text
    assert ":tensorflow:serving:request_latency_bucket{" in text
