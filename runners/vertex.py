"""`fairway compile --target vertex`: the pipeline as a Vertex AI Pipelines (KFP v2) spec.

Every node runs TFX's v2 container entrypoint in one image, built from the repository's
Dockerfile (Fairway and its pinned stack, the curated schemas under /fairway/schemas). Beam
components run inside their container with the config's beam_args (in-process by default; set
[pipeline] beam_args to runners.dataflow.beam_args(...) to send them to Dataflow).
"""
from __future__ import annotations

import pathlib

from pipeline.config import REPO_ROOT, ConfigError, PipelineConfig
from runners.dataflow import check_gcs_uri, gcs_input

IMAGE_REPO_DIR = "/fairway"  # where the Dockerfile copies the repository


def schema_in_image(cfg: PipelineConfig) -> str:
    schema = cfg.dataset.schema_file.resolve()
    if not schema.is_relative_to(REPO_ROOT):
        raise ConfigError(f"dataset.schema: {schema} is outside the repository, so the image "
                          "does not contain it; put it under schemas/ and rebuild the image")
    return f"{IMAGE_REPO_DIR}/{schema.relative_to(REPO_ROOT)}"


def compile(cfg: PipelineConfig, image: str, pipeline_root: str, input_uri: str,
            output_file: pathlib.Path) -> pathlib.Path:
    """Write the pipeline spec JSON for Vertex AI; returns its path."""
    from tfx import v1 as tfx

    from pipeline import pipeline as pipeline_lib

    if not image or any(c.isspace() for c in image):
        raise ConfigError(f"--image: expected a container image name, got {image!r}")
    data = gcs_input(input_uri, schema_in_image(cfg))
    p = pipeline_lib.create_pipeline(
        cfg, data, pipeline_root=check_gcs_uri("--pipeline-root", pipeline_root),
        kubeflow_v2=True)
    output_file.parent.mkdir(parents=True, exist_ok=True)
    runner = tfx.orchestration.experimental.KubeflowV2DagRunner(
        config=tfx.orchestration.experimental.KubeflowV2DagRunnerConfig(default_image=image),
        output_dir=str(output_file.parent), output_filename=output_file.name)
    runner.run(p, write_out=True)
    return output_file
