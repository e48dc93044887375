"""`POST …:explain` on `fairway serve` (a real process) against a Fairway model: the answers are
the in-process `explain` signature's, bad requests get TF Serving-style 4xx errors, sampled
explained requests are logged as Predicts of the `explain` signature; the client and
`fairway predict --explain` read them."""
import json
import math
import time

import pytest
import tensorflow as tf

import explain_support
import serving_support as support
from modules import explain, signatures
from runners import cli
from serving import client as client_lib
from test_serving import http, ok
from test_serving_lifecycle import records


def _rows_json():
    rows = explain_support.serving_rows()
    out = []
    for i in range(len(rows["age"])):
        hours = float(rows["hours"][i])
        out.append({"age": int(rows["age"][i]), "hours": None if math.isnan(hours) else hours,
                    "color": rows["color"][i].decode(), "sex": rows["sex"][i].decode()})
    return out


def _json_instances():
    # JSON has no NaN literal in strict mode; TF Serving (and fairway serve) accept NaN.
    return [{**r, "hours": float("nan") if r["hours"] is None else r["hours"]}
            for r in _rows_json()]


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("explain_serving")
    base = tmp / "fair"
    base.mkdir()
    explain_support.export(explain_support.analyse(tmp / "t"), base / "1")
    return base


@pytest.fixture(scope="module")
def logs(tmp_path_factory):
    return tmp_path_factory.mktemp("requests")


@pytest.fixture(scope="module")
def server(base, logs, tmp_path_factory):
    with support.serve(tmp_path_factory.mktemp("serve_logs"), "--model-dir", str(base),
                       "--model-name", "fair", "--label", "stable=1",
                       "--request-log-dir", str(logs), "--log-sampling-rate", "1") as s:
        yield s


@pytest.fixture(scope="module")
def local(base):
    sig = tf.saved_model.load(str(base / "1")).signatures[signatures.EXPLAIN_SIGNATURE]
    rows = explain_support.serving_rows()
    return {k: v.numpy() for k, v in sig(**{k: tf.constant(v) for k, v in rows.items()}).items()}


def _check(explanations, local):
    assert len(explanations) == len(local["probability"])
    for i, e in enumerate(explanations):
        assert set(e) == {"probability", "logit", "baseline_logit", "attributions"}
        assert set(e["attributions"]) == set(explain_support.FEATURES.raw)
        for k in ("probability", "logit", "baseline_logit"):
            assert e[k] == pytest.approx(float(local[k][i]), rel=1e-6, abs=1e-7), k
        for k, v in e["attributions"].items():
            assert v == pytest.approx(float(local[explain.attribution_key(k)][i]),
                                      rel=1e-6, abs=1e-7), k
        total = sum(e["attributions"].values())
        assert total == pytest.approx(e["logit"] - e["baseline_logit"], rel=1e-3, abs=1e-4)


@pytest.mark.parametrize("path", ["/v1/models/fair:explain", "/v1/models/fair/versions/1:explain",
                                  "/v1/models/fair/labels/stable:explain"])
def test_explain_rows_equal_the_in_process_signature(server, local, path):
    doc, headers = ok(server, path, {"instances": _json_instances()})
    assert headers["X-Model-Version"] == "1"
    _check(doc["explanations"], local)


def test_explain_columnar_inputs_and_b64(server, local):
    rows = _json_instances()
    cols = {k: [r[k] for r in rows] for k in rows[0]}
    cols["sex"] = [{"b64": "Rg=="} if v == "F" else v for v in cols["sex"]]  # b"F"
    doc, _ = ok(server, "/v1/models/fair:explain", {"inputs": cols})
    _check(doc["explanations"], local)


@pytest.mark.parametrize("body, status, text", [
    ({}, 400, "Missing 'inputs' or 'instances' key"),
    ({"instances": []}, 400, "non-empty list"),
    ({"instances": [{"age": 30}]}, 400, "Missing keys"),
    ({"instances": [{"age": "x", "hours": 1.0, "color": "red", "sex": "F"}]}, 400,
     "is not of expected type: int64"),
    ({"instances": [{"age": 30, "hours": 1.0, "color": "red", "sex": "F"}],
      "signature_name": "serving_default"}, 400, "cannot explain"),
    ({"instances": [{"age": 30, "hours": 1.0, "color": "red", "sex": "F"}],
      "signature_name": "nope"}, 400, 'Serving signature name: "nope" not found'),
    (b"{not json", 400, "JSON Parse error"),
])
def test_bad_explain_requests_get_tf_serving_errors(server, body, status, text):
    code, headers, data = http(server, "POST", "/v1/models/fair:explain", body)
    assert code == status, data
    assert headers["Content-Type"].startswith("application/json")
    assert text in json.loads(data)["error"]


def test_unknown_model_version_and_get_are_refused(server):
    row = {"instances": _json_instances()[:1]}
    assert http(server, "POST", "/v1/models/nope:explain", row)[0] == 404
    assert http(server, "POST", "/v1/models/fair/versions/9:explain", row)[0] == 404
    code, _, data = http(server, "GET", "/v1/models/fair:explain")
    assert code == 400 and "Malformed request" in json.loads(data)["error"]


def test_explained_requests_are_logged_as_predicts_of_the_explain_signature(server, logs):
    ok(server, "/v1/models/fair:explain", {"instances": _json_instances()[:2]})
    deadline = time.monotonic() + 30
    while not [r for r in records(logs, "requests")
               if r.predict_log.request.model_spec.signature_name == "explain"]:
        assert time.monotonic() < deadline, "no explain record logged"
        time.sleep(0.2)
    rec = [r for r in records(logs, "requests")
           if r.predict_log.request.model_spec.signature_name == "explain"][-1]
    assert tf.make_ndarray(rec.predict_log.request.inputs["age"]).tolist() == [25, 70]
    outputs = rec.predict_log.response.outputs
    assert {explain.attribution_key(k) for k in explain_support.FEATURES.raw} <= set(outputs)
    assert tf.make_ndarray(outputs["probability"]).shape == (2,)
    assert rec.log_metadata.model_spec.version.value == 1 and rec.log_metadata.request_origin


@pytest.mark.parametrize("protocol", ["rest", "grpc"])
def test_client_explain_works_through_predict_with_signature_name(server, local, protocol):
    """What real TF Serving offers: Predict with signature_name "explain", REST or gRPC."""
    port = server.rest_port if protocol == "rest" else server.grpc_port
    c = client_lib.Client(port=port, model="fair", protocol=protocol)
    try:
        result = c.explain(_rows_json())
    finally:
        c.close()
    assert result.version == 1
    for i, row in enumerate(result.rows):
        assert row["probability"] == pytest.approx(float(local["probability"][i]), rel=1e-6)
        assert list(row["attributions"]) == sorted(
            row["attributions"], key=lambda k: -abs(row["attributions"][k]))
        for k, v in row["attributions"].items():
            assert v == pytest.approx(float(local[explain.attribution_key(k)][i]), rel=1e-5,
                                      abs=1e-6)


def test_fairway_predict_explain_prints_the_top_features(server, tmp_path, capsys):
    path = tmp_path / "rows.csv"
    path.write_text("age,hours,color,sex,label\n25,12.5,blue,F,0\n70,,green,M,1\n")
    assert cli.main(["predict", str(path), "--model", "fair", "--port", str(server.rest_port),
                     "--explain", "--top", "2"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["row"] for r in lines] == [1, 2]
    for r in lines:
        assert r["version"] == 1 and 0 < r["probability"] < 1
        assert len(r["top"]) == 2 and all(set(t) == {"feature", "attribution"} for t in r["top"])
        assert abs(r["top"][0]["attribution"]) >= abs(r["top"][1]["attribution"])
