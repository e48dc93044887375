"""`fairway serve --validate off|flag|reject`: requests checked against the schema the pushed
version carries (assets.extra/schema.pbtxt), through real servers on 127.0.0.1 (REST and gRPC,
raw tensors and tf.Examples) with a toy SavedModel and a hand-written schema; and ServingCheck
writing that schema into the model it hands to the Pusher."""
import contextlib
import json
import math
import pathlib
import re
import urllib.error
import urllib.request

import grpc
import numpy as np
import pytest
import tensorflow as tf
from google.protobuf import text_format
from tensorflow_metadata.proto.v0 import schema_pb2
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc
from tfx.types import artifact_utils, standard_artifacts

import serving_support as support
from modules import signatures
from pipeline import artifacts, components
from serving import validation
from serving.servable import Servable

WORKCLASS = ["Federal-gov", "Local-gov", "Never-worked", "Private", "Self-emp-inc",
             "Self-emp-not-inc", "State-gov", "Without-pay"]
SCHEMA = """
feature { name: "age" type: INT int_domain { min: 16 max: 120 } presence { min_fraction: 1.0 } }
feature { name: "capital_gain" type: INT int_domain { min: 0 max: 99999 }
          presence { min_fraction: 0.5 } }
feature { name: "workclass" type: BYTES domain: "workclass" presence { min_fraction: 0.9 } }
feature { name: "hours_per_week" type: FLOAT float_domain { min: 1 max: 99 }
          presence { min_fraction: 1.0 } }
feature { name: "sex" type: BYTES string_domain { value: "Female" value: "Male" }
          presence { min_fraction: 1.0 } }
feature { name: "income" type: INT presence { min_fraction: 1.0 } not_in_environment: "SERVING" }
string_domain { name: "workclass" %s }
default_environment: "TRAINING"
default_environment: "SERVING"
""" % " ".join(f'value: "{v}"' for v in WORKCLASS)


class Toy(tf.Module):
    """Raw features in (an optional integer column as float64, NaN: missing, as Fairway's
    models take it), serialized tf.Examples in (Predict, Classify, Regress)."""

    SPEC = [tf.TensorSpec([None], tf.int64, name="age"),
            tf.TensorSpec([None], tf.float64, name="capital_gain"),
            tf.TensorSpec([None], tf.string, name="workclass"),
            tf.TensorSpec([None], tf.float32, name="hours_per_week"),
            tf.TensorSpec([None], tf.string, name="sex")]

    def _score(self, age, capital_gain, workclass, hours_per_week, sex):
        gain = tf.where(tf.math.is_nan(capital_gain), tf.zeros_like(capital_gain), capital_gain)
        return (tf.cast(age, tf.float32) * 0.01 + tf.cast(gain, tf.float32) * 1e-4
                + hours_per_week * 0.01 + tf.cast(tf.strings.length(workclass), tf.float32) * 0.1
                + tf.cast(tf.equal(sex, "Male"), tf.float32) * 0.5)

    def _parse(self, serialized):
        f = tf.io.parse_example(serialized, {
            "age": tf.io.FixedLenFeature([], tf.int64, 0),
            "capital_gain": tf.io.FixedLenFeature([], tf.float32, math.nan),
            "workclass": tf.io.FixedLenFeature([], tf.string, ""),
            "hours_per_week": tf.io.FixedLenFeature([], tf.float32, math.nan),
            "sex": tf.io.FixedLenFeature([], tf.string, "")})
        f["capital_gain"] = tf.cast(f["capital_gain"], tf.float64)
        return self._score(**f)

    @tf.function(input_signature=SPEC)
    def raw(self, age, capital_gain, workclass, hours_per_week, sex):
        return {"score": self._score(age, capital_gain, workclass, hours_per_week, sex)}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="examples")])
    def from_examples(self, examples):
        return {"score": self._parse(examples)}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="inputs")])
    def classify(self, inputs):
        p = tf.sigmoid(self._parse(inputs))
        return {"classes": tf.tile(tf.constant([[b"0", b"1"]]), [tf.shape(p)[0], 1]),
                "scores": tf.stack([1 - p, p], 1)}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="inputs")])
    def regress(self, inputs):
        return {"outputs": self._parse(inputs)}


def toy_model(path: pathlib.Path, schema: str | None = SCHEMA) -> pathlib.Path:
    m = Toy()
    tmp = path.with_name(f".{path.name}.tmp")
    tf.saved_model.save(m, str(tmp), signatures={
        "serving_default": m.raw, "from_examples": m.from_examples,
        signatures.CLASSIFY_SIGNATURE: m.classify, signatures.REGRESS_SIGNATURE: m.regress})
    signatures.set_method_names(str(tmp))
    if schema is not None:
        (tmp / "assets.extra").mkdir(exist_ok=True)
        (tmp / validation.SCHEMA_FILE).write_text(schema)
    support.publish(tmp, path)
    return path


GOOD = {"age": 39, "capital_gain": 2174.0, "workclass": "State-gov", "hours_per_week": 40.0,
        "sex": "Male"}
GOOD2 = {"age": 50, "capital_gain": float("nan"), "workclass": "", "hours_per_week": 13.0,
         "sex": "Female"}  # optional features missing: valid
# (row changes, the field, the kind of anomaly, the message the server gives under reject)
BAD = [
    ({"capital_gain": 1.5}, "capital_gain", "type",
     "feature 'capital_gain': expected an integer (INT), got 1.5"),
    ({"workclass": "Gig-economy"}, "workclass", "domain",
     "feature 'workclass': value 'Gig-economy' is not in the schema's domain (8 values: "
     "'Federal-gov', 'Local-gov', 'Never-worked', 'Private', 'Self-emp-inc', ...)"),
    ({"age": 250}, "age", "range", "feature 'age': 250 is above the schema's max 120"),
    ({"hours_per_week": float("nan")}, "hours_per_week", "missing",
     "feature 'hours_per_week' is required but missing"),
]


def http(server, path, body):
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    req = urllib.request.Request(server.url + path, data=data, method="POST" if data else "GET")
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def metrics(server) -> str:
    with urllib.request.urlopen(server.url + "/monitoring/prometheus/metrics", timeout=30) as r:
        return r.read().decode()


def anomaly_count(text: str, feature: str, kind: str) -> float:
    m = re.search(r':fairway:serving:request_anomaly_count_total\{feature="%s",kind="%s",'
                  r'model_name="toy",version="1"\} (\S+)' % (feature, kind), text)
    return float(m.group(1)) if m else 0.0


def example(row: dict) -> dict:  # a :classify/:regress example: NaN is an absent feature
    return {k: v for k, v in row.items() if not (isinstance(v, float) and math.isnan(v))}


@pytest.fixture(scope="module")
def servers(tmp_path_factory):
    """One server per mode, started together; the reject server also serves `old`, a version
    pushed without a schema."""
    models = tmp_path_factory.mktemp("models")
    (models / "toy").mkdir()
    (models / "old").mkdir()
    toy_model(models / "toy" / "1")
    toy_model(models / "old" / "1", schema=None)
    config = models / "models.config"
    config.write_text("model_config_list { %s }" % " ".join(
        f'config {{ name: "{n}" base_path: "{models / n}" model_platform: "tensorflow" }}'
        for n in ("toy", "old")))
    logs = tmp_path_factory.mktemp("logs")
    with contextlib.ExitStack() as stack:
        out = {mode: stack.enter_context(support.serve(
            logs, *(["--model-config-file", str(config)] if mode == "reject" else
                    ["--model-dir", str(models / "toy"), "--model-name", "toy"]),
            "--validate", mode, ready=False)) for mode in validation.MODES}
        for s in out.values():
            s.wait_for("fairway serve: ready")
        yield out


def _nan_body(rows) -> bytes:
    # JSON NaN literals (TF Serving accepts them); json.dumps writes NaN as such.
    return json.dumps({"instances": rows}).encode()


def test_valid_requests_are_served_unchanged_in_every_mode(servers):
    answers = {}
    for mode, s in servers.items():
        status, body = http(s, "/v1/models/toy:predict", _nan_body([GOOD, GOOD2]))
        assert status == 200, (mode, body)
        status, classes = http(s, "/v1/models/toy:classify",
                               {"signature_name": "classification",
                                "examples": [example(GOOD), example(GOOD2)]})
        assert status == 200, (mode, classes)
        answers[mode] = (json.loads(body), json.loads(classes))
    assert answers["flag"] == answers["off"] == answers["reject"]
    for s in servers.values():
        assert ":fairway:serving:request_anomaly_count_total{" not in metrics(s)


@pytest.mark.parametrize("change, field, kind, text", BAD, ids=[b[2] for b in BAD])
def test_reject_answers_400_naming_the_field(servers, change, field, kind, text):
    status, body = http(servers["reject"], "/v1/models/toy:predict",
                        _nan_body([GOOD, {**GOOD, **change}]))
    assert status == 400
    error = json.loads(body)["error"]
    assert error == f"request does not match the model's schema: {text} (row 2 of 2)"
    # A single row: no row number. tf.Examples (:regress) meet the same checks.
    status, body = http(servers["reject"], "/v1/models/toy:regress",
                        {"signature_name": "regression",
                         "examples": [example({**GOOD, **change})]})
    assert status == 400 and json.loads(body)["error"].endswith(text), body
    assert anomaly_count(metrics(servers["reject"]), field, kind) >= 2


def test_flag_serves_counts_and_logs_off_does_nothing(servers):
    want = {}
    for mode in ("off", "flag"):
        s = servers[mode]
        for change, *_ in BAD:
            status, body = http(s, "/v1/models/toy:predict", _nan_body([{**GOOD, **change}]))
            assert status == 200, (mode, body)
            want.setdefault(json.dumps(change), []).append(json.loads(body))
    for answers in want.values():  # served as they came: the same answers as without checks
        assert answers[0] == answers[1]
    flagged, off = metrics(servers["flag"]), metrics(servers["off"])
    for _, field, kind, text in BAD:
        assert anomaly_count(flagged, field, kind) == 1, (field, kind)
        assert text in servers["flag"].output()
    assert ":fairway:serving:request_anomaly_count_total{" not in off
    assert "flagged" not in servers["off"].output()
    # The flag log names the request (its id joins the request logs).
    status, _ = http(servers["flag"], "/v1/models/toy:classify",
                     {"signature_name": "classification",
                      "examples": [example({**GOOD, "sex": "X"})]})
    assert status == 200
    assert re.search(r"\[toy\] version 1: request [0-9a-f]{32} flagged \(served\): feature "
                     r"'sex': value 'X' is not in the schema's domain \(2 values: 'Female', "
                     r"'Male'\)", servers["flag"].output())


def test_types_and_missing_features_of_tf_examples(servers):
    """Only tf.Examples can carry a wrong kind of value or leave a feature out."""
    s = servers["reject"]
    for row, text in (({**GOOD, "age": "abc"}, "feature 'age': expected a number (INT), got "
                       '"abc"'),
                      ({k: v for k, v in GOOD.items() if k != "sex"},
                       "feature 'sex' is required but missing"),
                      ({**GOOD, "workclass": 7}, "feature 'workclass': expected a string "
                       "(BYTES), got 7")):
        status, body = http(s, "/v1/models/toy:classify", {"signature_name": "classification",
                                                       "examples": [example(row)]})
        assert status == 400 and json.loads(body)["error"].endswith(text), body
    # An optional feature may be absent; a feature the schema does not know is not checked.
    status, body = http(s, "/v1/models/toy:classify",
                        {"signature_name": "classification",
                         "examples": [{**example(GOOD2), "extra": "x"}]})
    assert status == 200, body


def test_grpc_predict_is_checked_too(servers):
    req = predict_pb2.PredictRequest()
    req.model_spec.name = "toy"
    for k, spec in zip(("age", "capital_gain", "workclass", "hours_per_week", "sex"), Toy.SPEC):
        req.inputs[k].CopyFrom(tf.make_tensor_proto([GOOD[k]], spec.dtype))
    req.inputs["workclass"].CopyFrom(tf.make_tensor_proto(["Gig-economy"], tf.string))
    with grpc.insecure_channel(servers["reject"].grpc_target) as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        with pytest.raises(grpc.RpcError) as e:
            stub.Predict(req, timeout=30)
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "feature 'workclass': value 'Gig-economy' is not in the schema's domain" \
        in e.value.details()
    with grpc.insecure_channel(servers["flag"].grpc_target) as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        assert stub.Predict(req, timeout=30).outputs["score"].float_val


def test_a_version_without_a_schema_is_served_unchecked_and_said_so(servers):
    s = servers["reject"]
    assert "[old] version 1 has no assets.extra/schema.pbtxt" in s.output()
    assert "NOT validated (no assets.extra/schema.pbtxt): version(s) old/1" in s.output()
    assert "[toy] version 1: requests validated against assets.extra/schema.pbtxt" \
        in s.output()
    status, body = http(s, "/v1/models/old:predict", _nan_body([{**GOOD, "age": 250}]))
    assert status == 200, body
    assert "Traceback" not in s.output()


# -- in-process: the checks themselves and their cost ---------------------------------------------


@pytest.fixture(scope="module")
def toy_servable(tmp_path_factory):
    path = toy_model(tmp_path_factory.mktemp("inproc") / "1")
    return Servable("toy", 1, str(path))


def test_the_label_is_not_checked_and_columns_report_their_row(toy_servable):
    v = validation.load(toy_servable.path)
    assert set(v.checks) == {"age", "capital_gain", "workclass", "hours_per_week", "sex"}
    sig = toy_servable.signature("serving_default")
    n = 64
    cols = {"age": np.full(n, 39), "capital_gain": np.full(n, np.nan),
            "workclass": np.array([b"Private"] * n, dtype=object),
            "hours_per_week": np.full(n, 40.0, np.float32),
            "sex": np.array([b"Male"] * n, dtype=object)}
    assert v.check(sig, cols) == []
    cols["age"] = cols["age"].copy()
    cols["age"][17] = 3
    [a] = v.check(sig, cols)
    assert a == ("age", "range", "feature 'age': 3 is below the schema's min 16 (row 18 of 64)")


def test_validation_costs_little_per_request(toy_servable):
    """The in-process cost of the checks (the serving bench measures it end to end)."""
    import time

    v = validation.load(toy_servable.path)
    sig = toy_servable.signature("serving_default")
    ex = toy_servable.signature("from_examples")
    for n in (1, 64):
        cols = {"age": np.full(n, 39), "capital_gain": np.full(n, 10.0),
                "workclass": np.array([b"Private"] * n, dtype=object),
                "hours_per_week": np.full(n, 40.0, np.float32),
                "sex": np.array([b"Male"] * n, dtype=object)}
        serialized = np.array([tf.train.Example(features=tf.train.Features(feature={
            "age": tf.train.Feature(int64_list=tf.train.Int64List(value=[39])),
            "workclass": tf.train.Feature(bytes_list=tf.train.BytesList(value=[b"Private"])),
            "hours_per_week": tf.train.Feature(float_list=tf.train.FloatList(value=[40.0])),
            "sex": tf.train.Feature(bytes_list=tf.train.BytesList(value=[b"Male"]))}))
            .SerializeToString()] * n, dtype=object)
        for name, s, inputs in (("tensors", sig, cols), ("examples", ex,
                                                         {"examples": serialized})):
            times = []
            for _ in range(100):
                t = time.perf_counter()
                assert v.check(s, inputs) == []
                times.append(time.perf_counter() - t)
            p50 = float(np.percentile(times, 50)) * 1e6
            print(f"validation {name} batch {n}: p50 {p50:.0f} µs")
            # Generous bounds (2 shared cores): tf.Examples are parsed row by row in Python.
            assert p50 < (1000 if name == "tensors" else 500 + 80 * n), (name, n, p50)


# -- ServingCheck writes the serving schema into the model it hands to the Pusher -----------------


def _at(artifact, uri):
    artifact.uri = str(uri)
    return artifact


def test_serving_check_puts_the_serving_schema_into_the_pushed_copy(tmp_path):
    model = _at(standard_artifacts.Model(), tmp_path / "model")
    (tmp_path / "model").mkdir()
    toy_model(tmp_path / "model" / "Format-Serving", schema=None)
    schema = _at(standard_artifacts.Schema(), tmp_path / "schema")
    (tmp_path / "schema").mkdir()
    pathlib.Path(artifacts.schema_path(schema.uri)).write_text(SCHEMA)
    examples = _at(standard_artifacts.Examples(), tmp_path / "examples")
    examples.split_names = artifact_utils.encode_split_names(["eval"])
    split = pathlib.Path(artifacts.split_dir(examples.uri, "eval"))
    split.mkdir(parents=True)
    with tf.io.TFRecordWriter(str(split / "data.gz"), options="GZIP") as w:
        for row in (GOOD, {**GOOD, "income": 1}):
            feats = {}
            for k, v in example(row).items():
                feats[k] = tf.train.Feature(
                    bytes_list=tf.train.BytesList(value=[v.encode()])) if isinstance(v, str) \
                    else tf.train.Feature(int64_list=tf.train.Int64List(value=[v])) \
                    if isinstance(v, int) else \
                    tf.train.Feature(float_list=tf.train.FloatList(value=[v]))
            w.write(tf.train.Example(features=tf.train.Features(feature=feats))
                    .SerializeToString())
    blessing = _at(standard_artifacts.InfraBlessing(), tmp_path / "blessing")
    components.ServingCheck.EXECUTOR_SPEC.executor_class().Do(
        {"model": [model], "examples": [examples], "schema": [schema]}, {"blessing": [blessing]},
        {"model_name": "toy", "split": "eval", "num_examples": 8})
    written = tmp_path / "blessing" / "stamped_model" / validation.SCHEMA_FILE
    pushed = text_format.Parse(written.read_text(), schema_pb2.Schema())
    assert [f.name for f in pushed.feature] == ["age", "capital_gain", "workclass",
                                                "hours_per_week", "sex"]  # no label
    assert [d.name for d in pushed.string_domain] == ["workclass"]
    assert blessing.get_int_custom_property("blessed") == 1
