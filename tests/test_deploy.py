"""TF Serving deployment files: parsed with TF Serving's own protos where Python has them."""
import re

import pytest
import yaml
from google.protobuf import text_format
from tensorflow_serving.config import model_server_config_pb2

from pipeline import config
from runners import cli
from runners import deploy


def pushed(cfg, *versions, partial=()):
    for v in versions:
        d = cfg.serving_dir / cfg.model_name / str(v)
        d.mkdir(parents=True)
        (d / "saved_model.pb").write_bytes(b"x")
    for v in partial:  # a half-written version (no saved_model.pb yet)
        (cfg.serving_dir / cfg.model_name / str(v)).mkdir(parents=True)


@pytest.fixture
def cfg(tmp_path):
    return config.preset("census", output_dir=tmp_path / "out")


def test_models_config_parses_with_canary_and_stable_labels(cfg):
    pushed(cfg, 100, 200, 300, partial=[400])
    paths = deploy.write(cfg)
    msg = text_format.Parse(paths["models.config"].read_text(),
                            model_server_config_pb2.ModelServerConfig())
    [model] = msg.model_config_list.config
    assert model.name == "census" and model.base_path == "/models/census"
    assert list(model.model_version_policy.specific.versions) == [200, 300]
    assert dict(model.version_labels) == {"stable": 200, "canary": 300}


def test_fairway_serve_reads_the_same_models_config(cfg):
    from serving import manager

    pushed(cfg, 100, 200)
    [source] = manager.sources_from_config(str(deploy.write(cfg)["models.config"]))
    assert source.name == "census" and source.base_path == "/models/census"
    assert source.policy == ("specific", frozenset({100, 200}))
    assert dict(source.labels) == {"stable": 100, "canary": 200}
    assert source.wanted([100, 200, 300]) == {100, 200}


def test_a_single_version_is_stable_only(cfg):
    pushed(cfg, 7)
    text = deploy.write(cfg)["models.config"].read_text()
    msg = text_format.Parse(text, model_server_config_pb2.ModelServerConfig())
    assert dict(msg.model_config_list.config[0].version_labels) == {"stable": 7}


def test_batching_and_monitoring_by_hand(cfg):
    """No Python protos for BatchingParameters and MonitoringConfig: check the field names and
    the text-proto shape against session_bundle_config.proto / monitoring_config.proto."""
    pushed(cfg, 1)
    paths = deploy.write(cfg)
    known = {"max_batch_size", "batch_timeout_micros", "max_enqueued_batches",
             "num_batch_threads", "thread_pool_name", "allowed_batch_sizes",
             "pad_variable_length_inputs"}
    lines = paths["batching_parameters.txt"].read_text().splitlines()
    fields = [re.fullmatch(r"(\w+) \{ value: (\d+) \}", line) for line in lines]
    assert all(fields) and {m.group(1) for m in fields} <= known
    assert dict((m.group(1), int(m.group(2))) for m in fields)["max_batch_size"] > 0
    mon = paths["monitoring.config"].read_text()
    assert re.fullmatch(r'prometheus_config \{\n  enable: true\n  path: "(/[\w/]+)"\n\}\n', mon)


def test_compose_and_kubernetes_point_at_the_pushers_output(cfg):
    pushed(cfg, 5, 6)
    paths = deploy.write(cfg)
    service = yaml.safe_load(paths["docker-compose.yml"].read_text())["services"]["tf-serving"]
    assert f"{cfg.serving_dir / 'census'}:/models/census:ro" in service["volumes"]
    assert "--model_config_file=/config/models.config" in service["command"]
    assert {"8500:8500", "8501:8501"} == set(service["ports"])
    docs = list(yaml.safe_load_all(paths["kubernetes.yaml"].read_text()))
    assert [d["kind"] for d in docs] == ["ConfigMap", "Deployment", "Service"]
    assert docs[0]["data"]["models.config"] == paths["models.config"].read_text()
    container = docs[1]["spec"]["template"]["spec"]["containers"][0]
    assert container["readinessProbe"]["httpGet"]["path"] == "/v1/models/census"
    assert {m["mountPath"] for m in container["volumeMounts"]} == {"/models/census", "/config"}


def test_no_pushed_model_is_a_clear_error(cfg, capsys):
    assert cli.main(["deploy", "--output", str(cfg.output_dir)]) == 1
    assert "no pushed model; run `fairway run` first" in capsys.readouterr().err
