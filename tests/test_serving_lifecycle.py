"""Model lifecycle, canary/shadow and request logs of `fairway serve`, as real processes."""
import json
import pathlib
import threading
import time
import urllib.error
import urllib.request

import pytest
import tensorflow as tf
from tensorflow_serving.apis import predict_pb2, prediction_log_pb2

import serving_support as support
from serving import warmup

ROW = {"x": [1.0, 2.0], "n": 0, "s": "a"}  # y = 3 * weight


def predict(server, path="/v1/models/toy:predict"):
    req = urllib.request.Request(server.url + path, data=json.dumps({"instances": [ROW]}).encode(),
                                 method="POST")
    with urllib.request.urlopen(req, timeout=30) as r:
        return int(r.headers["X-Model-Version"]), json.loads(r.read())["predictions"][0]["y"]


def status(server):
    with urllib.request.urlopen(server.url + "/v1/models/toy", timeout=30) as r:
        return {int(v["version"]): (v["state"], v["status"]["error_message"])
                for v in json.loads(r.read())["model_version_status"]}


def wait(cond, timeout=60.0):
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def records(directory: pathlib.Path, prefix: str) -> list:
    out = []
    for path in sorted(directory.glob(f"{prefix}-*.tfrecord")):
        for raw in tf.data.TFRecordDataset(str(path)).as_numpy_iterator():
            out.append(prediction_log_pb2.PredictionLog.FromString(raw))
    return out


def test_hot_swap_half_written_and_broken_versions_never_fail_a_request(tmp_path):
    base = tmp_path / "toy"
    base.mkdir()
    support.toy_model(base / "1", weight=1.0)
    with support.serve(tmp_path, "--model-dir", str(base), "--model-name", "toy",
                       "--poll-seconds", "0.2", "--load-retries", "1",
                       "--load-retry-seconds", "0.5") as server:
        seen, failures, stop = [], [], threading.Event()

        def client():
            while not stop.is_set():
                try:
                    seen.append(predict(server))
                except (urllib.error.URLError, OSError) as e:
                    failures.append(repr(e))

        thread = threading.Thread(target=client)
        thread.start()
        try:
            wait(lambda: len(seen) > 20)
            # Version 2 with warmup requests built from a real example, pushed mid-traffic.
            v2 = support.toy_model(tmp_path / "staging" / "2", weight=2.0)
            example = tf.train.Example(features=tf.train.Features(feature={
                "x": tf.train.Feature(float_list=tf.train.FloatList(value=[1.0, 2.0])),
                "n": tf.train.Feature(int64_list=tf.train.Int64List(value=[0])),
                "s": tf.train.Feature(bytes_list=tf.train.BytesList(value=[b"a"]))}))
            warmup.write(str(v2), warmup.requests(str(v2), "toy", [example]))
            support.publish(v2, base / "2")
            wait(lambda: seen[-1][0] == 2)
            n_switch = len(seen)
            wait(lambda: len(seen) > n_switch + 20)
            # A version still being written, and one whose saved_model.pb is garbage.
            (base / "3" / "variables").mkdir(parents=True)
            server.wait_for("/3: no saved_model.pb yet; waiting")
            (base / "4").mkdir()
            (base / "4" / "saved_model.pb").write_bytes(b"not a model")
            wait(lambda: status(server).get(4, ("",))[0] == "END", timeout=30)
            n_broken = len(seen)
            wait(lambda: len(seen) > n_broken + 20)
        finally:
            stop.set()
            thread.join()
        assert failures == []
        versions = [v for v, _ in seen]
        first_v2 = versions.index(2)
        assert set(versions[:first_v2]) == {1} and set(versions[first_v2:]) == {2}
        assert {y for v, y in seen if v == 1} == {3.0} and {y for v, y in seen if v == 2} == {6.0}
        out = server.output()
        assert "version 2: 3 warmup requests replayed"  # not `single`: no v in out
        # The new version was warm before the old one was unloaded.
        assert out.index("version 2 AVAILABLE") < out.index("version 1 unloaded")
        states = status(server)
        assert states[1][0] == "END" and states[2][0] == "AVAILABLE" and 3 not in states
        assert states[4][0] == "END" and states[4][1]  # with the load error
        assert "version 4 failed to load (attempt 2 of 2)" in out


def test_a_version_whose_warmup_fails_never_takes_traffic(tmp_path):
    base = tmp_path / "toy"
    base.mkdir()
    support.toy_model(base / "1", weight=1.0)
    v2 = support.toy_model(tmp_path / "staging" / "2", weight=2.0)
    bad = predict_pb2.PredictRequest(model_spec={"name": "toy"})
    bad.inputs["x"].CopyFrom(tf.make_tensor_proto([1.0], tf.float32))  # wrong inputs
    warmup.write(str(v2), [prediction_log_pb2.PredictionLog(
        predict_log=prediction_log_pb2.PredictLog(request=bad))])
    support.publish(v2, base / "2")
    with support.serve(tmp_path, "--model-dir", str(base), "--model-name", "toy",
                       "--version-policy", "latest:2", "--load-retries", "0") as server:
        wait(lambda: status(server).get(2, ("",))[0] == "END")
        assert "input size does not match signature" in status(server)[2][1]
        assert predict(server) == (1, 3.0)


def test_canary_fraction_and_shadow_copy_with_prediction_logs(tmp_path):
    base = tmp_path / "toy"
    base.mkdir()
    for v in (1, 2, 3):
        support.toy_model(base / str(v), weight=float(v))
    logs = tmp_path / "logs"
    with support.serve(tmp_path, "--model-dir", str(base), "--model-name", "toy",
                       "--label", "stable=1", "--label", "canary=2", "--label", "shadow=3",
                       "--canary-fraction", "0.25", "--shadow-label", "shadow",
                       "--request-log-dir", str(logs), "--log-sampling-rate", "1") as server:
        answers = [predict(server) for _ in range(400)]
        pinned = [predict(server, "/v1/models/toy/labels/canary:predict") for _ in range(5)]
        wait(lambda: len(records(logs, "shadow")) >= 400)
        wait(lambda: len(records(logs, "requests")) >= 405)
    share = sum(v == 2 for v, _ in answers) / len(answers)
    assert 0.17 < share < 0.33, share  # 0.25 ± 4 standard deviations
    assert {v for v, _ in answers} == {1, 2}  # the shadow never answers
    assert set(pinned) == {(2, 6.0)}
    shadow = records(logs, "shadow")
    assert {r.log_metadata.model_spec.version.value for r in shadow} == {3}
    assert {tf.make_ndarray(r.predict_log.response.outputs["y"])[0] for r in shadow} == {9.0}
    requests = records(logs, "requests")
    by_version = {r.log_metadata.model_spec.version.value for r in requests}
    assert by_version == {1, 2}
    first = requests[0].predict_log
    assert tf.make_ndarray(first.request.inputs["x"]).tolist() == [[1.0, 2.0]]
    assert first.request.model_spec.signature_name == "serving_default"


def test_config_file_with_logging_config_is_refused_like_tf_serving(tmp_path):
    config = tmp_path / "models.config"
    config.write_text('model_config_list { config { name: "toy" base_path: "%s" '
                      'model_platform: "tensorflow" logging_config { sampling_config { '
                      'sampling_rate: 1 } } } }' % tmp_path)
    with support.serve(tmp_path, "--model-config-file", str(config), ready=False) as server:
        assert server.proc.wait(120) == 2
    assert "No request-logger-creator provided." in server.output()


def test_request_logs_carry_time_and_request_ids_and_rotate_by_time(tmp_path):
    """Ids a client sends (REST header, gRPC metadata) or the server makes come back in the
    answer and reach the monitor's rows with the arrival time; files rotate every second."""
    import grpc
    import numpy as np
    from tensorflow_serving.apis import prediction_service_pb2_grpc

    from monitoring import requests as request_logs

    base = tmp_path / "toy"
    support.toy_model(base / "1")
    logs = tmp_path / "logs"
    started = int(time.time())
    with support.serve(tmp_path, "--model-dir", str(base), "--model-name", "toy",
                       "--request-log-dir", str(logs), "--log-sampling-rate", "1",
                       "--log-rotate-seconds", "1") as server:
        sent = {}
        for i in range(4):
            req = urllib.request.Request(
                server.url + "/v1/models/toy:predict", method="POST",
                data=json.dumps({"instances": [ROW]}).encode(),
                headers={} if i == 3 else {"X-Request-Id": f"order-{i}"})
            with urllib.request.urlopen(req, timeout=30) as r:
                sent[r.headers["X-Request-Id"]] = "rest"
            time.sleep(0.6)  # spreads the requests over at least two one-second files
        bad = urllib.request.Request(server.url + "/v1/models/toy:predict", method="POST",
                                     data=json.dumps({"instances": [ROW]}).encode(),
                                     headers={"X-Request-Id": "no spaces allowed"})
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(bad, timeout=30)
        assert refused.value.code == 400 and "X-Request-Id" in refused.value.read().decode()
        with grpc.insecure_channel(server.grpc_target) as channel:
            req = predict_pb2.PredictRequest()
            req.model_spec.name = "toy"
            req.inputs["x"].CopyFrom(tf.make_tensor_proto([[1.0, 2.0]] * 2, tf.float32))
            req.inputs["n"].CopyFrom(tf.make_tensor_proto([0, 1], tf.int64))
            req.inputs["s"].CopyFrom(tf.make_tensor_proto([b"a", b"b"]))
            _, call = prediction_service_pb2_grpc.PredictionServiceStub(channel).Predict \
                .with_call(req, metadata=(("x-request-id", "batch-7"),), timeout=30)
            assert dict(call.trailing_metadata())["x-request-id"] == "batch-7"
        wait(lambda: len(records(logs, "requests")) >= 5)
    ended = int(time.time())
    assert len(list(logs.glob("requests-*.tfrecord"))) >= 2  # rotated
    generated = next(k for k in sent if not k.startswith("order-"))
    assert len(generated) == 32  # a new id when the client sends none
    rows = request_logs.read(str(logs))
    assert rows["_request_id"].tolist() == ["order-0", "order-1", "order-2", generated,
                                            "batch-7:0", "batch-7:1"]
    assert rows["_time"].between(started, ended).all()
    assert np.all(np.diff(rows["_time"]) >= 0) and rows["_time"].iloc[3] > rows["_time"].iloc[0]
