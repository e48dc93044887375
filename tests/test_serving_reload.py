"""ModelService.HandleReloadConfigRequest (gRPC) and POST /v1/config:reload (REST) on a real
`fairway serve`: a new ModelServerConfig changes versions and labels without a restart, and a
bad one changes nothing."""
import json
import time
import urllib.error
import urllib.request

import grpc
import pytest
from google.protobuf import json_format
from tensorflow_serving.apis import model_management_pb2, model_service_pb2_grpc
from tensorflow_serving.config import model_server_config_pb2

import serving_support as support

ROW = {"x": [1.0, 2.0], "n": 0, "s": "a"}


def config(base, versions, labels=None, name="toy"):
    cfg = model_server_config_pb2.ModelServerConfig()
    m = cfg.model_config_list.config.add(name=name, base_path=str(base),
                                         model_platform="tensorflow")
    m.model_version_policy.specific.versions.extend(versions)
    for k, v in (labels or {}).items():
        m.version_labels[k] = v
    return cfg


def answer(server, path="/v1/models/toy:predict") -> int:
    req = urllib.request.Request(server.url + path, method="POST",
                                 data=json.dumps({"instances": [ROW]}).encode())
    with urllib.request.urlopen(req, timeout=30) as r:
        return int(r.headers["X-Model-Version"])


def wait(cond, timeout=60.0):
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


@pytest.fixture
def toy(tmp_path):
    base = tmp_path / "toy"
    base.mkdir()
    for n in (1, 2, 3):
        support.toy_model(base / str(n), float(n))
    cfg_file = tmp_path / "models.config"
    from google.protobuf import text_format
    cfg_file.write_text(text_format.MessageToString(config(base, [1], {"production": 1})))
    with support.serve(tmp_path, "--model-config-file", str(cfg_file),
                       "--poll-seconds", "0.2") as server:
        yield base, server


def test_grpc_reload_loads_new_versions_and_moves_labels_once_loaded(toy):
    base, server = toy
    assert answer(server) == 1
    with grpc.insecure_channel(server.grpc_target) as channel:
        stub = model_service_pb2_grpc.ModelServiceStub(channel)
        resp = stub.HandleReloadConfigRequest(model_management_pb2.ReloadConfigRequest(
            config=config(base, [1, 2], {"production": 2})), timeout=30)
        assert resp.status.error_code == 0
        wait(lambda: answer(server) == 2)  # the label moved once version 2 was AVAILABLE
        assert answer(server, "/v1/models/toy/labels/production:predict") == 2
        # A bad config is refused with the reason and changes nothing.
        with pytest.raises(grpc.RpcError) as e:
            bad = config(base, [3])
            bad.model_config_list.config[0].model_platform = "pytorch"
            stub.HandleReloadConfigRequest(model_management_pb2.ReloadConfigRequest(config=bad),
                                           timeout=30)
        assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "model_platform 'pytorch' is not supported" in e.value.details()
    assert answer(server) == 2


def test_rest_reload_is_the_same_call(toy):
    base, server = toy
    body = json_format.MessageToJson(config(base, [3], {"production": 3})).encode()
    req = urllib.request.Request(server.url + "/v1/config:reload", data=body, method="POST")
    with urllib.request.urlopen(req, timeout=30) as r:
        assert r.status == 200
    wait(lambda: answer(server) == 3)
    with urllib.request.urlopen(server.url + "/v1/routing", timeout=30) as r:
        state = json.loads(r.read())["toy"]
    assert state["labels"] == {"production": 3}
    wait(lambda: 1 not in json.loads(urllib.request.urlopen(
        server.url + "/v1/routing", timeout=30).read())["toy"]["available"])  # unloaded
    req = urllib.request.Request(server.url + "/v1/config:reload", data=b"{nope", method="POST")
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(req, timeout=30)
    assert e.value.code == 400 and "not a ModelServerConfig in JSON" in e.value.read().decode()
