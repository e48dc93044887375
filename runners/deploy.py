"""`fairway deploy`: deployment files for the real TensorFlow Serving, pointing at the Pusher's
output (a command: it reads the config, so it lives with the runners, not in serving/).

`fairway deploy` writes models.config (versions and stable/canary labels), batching parameters,
a Prometheus monitoring config, a docker-compose file and Kubernetes manifests.
"""
from __future__ import annotations

import dataclasses
import pathlib

import yaml

from pipeline.config import PipelineConfig
from pipeline.errors import FairwayError
from serving import routing

IMAGE = "tensorflow/serving:2.16.1"  # matches tensorflow-serving-api in the lock
MODEL_ROOT = "/models"  # where the container sees the Pusher's output
CONFIG_ROOT = "/config"
PROMETHEUS_PATH = "/monitoring/prometheus/metrics"
GRPC_PORT, REST_PORT = 8500, 8501


@dataclasses.dataclass(frozen=True)
class Versions:
    stable: int
    canary: int | None = None


def pushed_versions(model_dir: pathlib.Path) -> list[int]:
    """Complete versions under the Pusher's output (a SavedModel in a numeric folder)."""
    if not model_dir.is_dir():
        raise FairwayError(f"{model_dir}: no pushed model; run `fairway run` first")
    return sorted(int(p.name) for p in model_dir.iterdir()
                  if p.name.isdigit() and (p / "saved_model.pb").is_file())


def choose(versions: list[int]) -> Versions:
    """The newest version is the canary when an older one can stay stable."""
    if not versions:
        raise FairwayError("no complete model version to deploy")
    return Versions(stable=versions[-2], canary=versions[-1]) if len(versions) > 1 \
        else Versions(stable=versions[-1])


def models_config(name: str, v: Versions) -> str:
    labels = {"stable": v.stable, **({"canary": v.canary} if v.canary else {})}
    return routing.models_config(routing.Routing(name, tuple(labels.values()), labels, {}),
                                 f"{MODEL_ROOT}/{name}")


# BatchingParameters (session_bundle_config.proto; no Python proto in tensorflow-serving-api).
BATCHING = {"max_batch_size": 256, "batch_timeout_micros": 2000, "max_enqueued_batches": 100,
            "num_batch_threads": 2}


def batching_parameters() -> str:
    return "".join(f"{k} {{ value: {v} }}\n" for k, v in BATCHING.items())


def monitoring_config() -> str:
    # MonitoringConfig (monitoring_config.proto; no Python proto either).
    return f'prometheus_config {{\n  enable: true\n  path: "{PROMETHEUS_PATH}"\n}}\n'


def server_args(name: str) -> list[str]:
    return [f"--port={GRPC_PORT}", f"--rest_api_port={REST_PORT}",
            f"--model_config_file={CONFIG_ROOT}/models.config",
            "--model_config_file_poll_wait_seconds=60",
            # A label may name a version that is still loading (the canary).
            "--allow_version_labels_for_unavailable_models=true",
            "--enable_batching=true",
            f"--batching_parameters_file={CONFIG_ROOT}/batching_parameters.txt",
            f"--monitoring_config_file={CONFIG_ROOT}/monitoring.config"]


def docker_compose(name: str, model_dir: pathlib.Path, config_dir: pathlib.Path) -> str:
    return yaml.safe_dump({"services": {"tf-serving": {
        "image": IMAGE,
        "command": server_args(name),
        "ports": [f"{GRPC_PORT}:{GRPC_PORT}", f"{REST_PORT}:{REST_PORT}"],
        "volumes": [f"{model_dir}:{MODEL_ROOT}/{name}:ro", f"{config_dir}:{CONFIG_ROOT}:ro"],
        "restart": "unless-stopped"}}}, sort_keys=False)


def kubernetes(name: str, files: dict[str, str]) -> str:
    """ConfigMap + Deployment + Service; models come from the PVC `fairway-models`, which
    holds the Pusher's output (base_directory) under <model name>/."""
    labels = {"app": f"tf-serving-{name}"}
    config_map = {"apiVersion": "v1", "kind": "ConfigMap",
                  "metadata": {"name": f"tf-serving-{name}-config"}, "data": files}
    probe = {"httpGet": {"path": f"/v1/models/{name}", "port": REST_PORT},
             "initialDelaySeconds": 10, "periodSeconds": 10}
    deployment = {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": f"tf-serving-{name}", "labels": labels},
        "spec": {"replicas": 2, "selector": {"matchLabels": labels}, "template": {
            "metadata": {"labels": labels, "annotations": {
                "prometheus.io/scrape": "true", "prometheus.io/port": str(REST_PORT),
                "prometheus.io/path": PROMETHEUS_PATH}},
            "spec": {
                "containers": [{
                    "name": "tf-serving", "image": IMAGE, "args": server_args(name),
                    "ports": [{"name": "grpc", "containerPort": GRPC_PORT},
                              {"name": "rest", "containerPort": REST_PORT}],
                    "readinessProbe": probe, "livenessProbe": probe,
                    "resources": {"requests": {"cpu": "1", "memory": "1Gi"}},
                    "volumeMounts": [
                        {"name": "models", "mountPath": f"{MODEL_ROOT}/{name}",
                         "subPath": name, "readOnly": True},
                        {"name": "config", "mountPath": CONFIG_ROOT, "readOnly": True}]}],
                "volumes": [
                    {"name": "models",
                     "persistentVolumeClaim": {"claimName": "fairway-models"}},
                    {"name": "config",
                     "configMap": {"name": f"tf-serving-{name}-config"}}]}}}}
    service = {"apiVersion": "v1", "kind": "Service",
               "metadata": {"name": f"tf-serving-{name}"},
               "spec": {"selector": labels, "ports": [
                   {"name": "grpc", "port": GRPC_PORT, "targetPort": GRPC_PORT},
                   {"name": "rest", "port": REST_PORT, "targetPort": REST_PORT}]}}
    return yaml.safe_dump_all([config_map, deployment, service], sort_keys=False)


def _registry(cfg: PipelineConfig) -> routing.Routing | None:
    """The registry's mapping (aliases as version labels) once any alias is set; before that,
    the newest version is the canary of the one before."""
    from release import registry

    try:
        r = registry.Registry(cfg).routing()
    except FileNotFoundError:  # no run has written a metadata store here
        return None
    return r if r.labels else None


def write(cfg: PipelineConfig, out_dir: pathlib.Path | None = None) -> dict[str, pathlib.Path]:
    """Render every file for the model the Pusher wrote; returns name -> path."""
    name = cfg.model_name
    model_dir = cfg.serving_dir / name
    versions = choose(pushed_versions(model_dir))
    out_dir = out_dir or cfg.command_dir("deploy")
    aliases = _registry(cfg)
    configs = {"models.config": routing.models_config(aliases, f"{MODEL_ROOT}/{name}")
               if aliases else models_config(name, versions),
               "batching_parameters.txt": batching_parameters(),
               "monitoring.config": monitoring_config()}
    files = {**configs,
             "docker-compose.yml": docker_compose(name, model_dir, out_dir),
             "kubernetes.yaml": kubernetes(name, configs)}
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {}
    for file_name, text in files.items():
        paths[file_name] = out_dir / file_name
        paths[file_name].write_text(text)
    return paths
