"""Beam arguments for running the pipeline's Beam components on Google Cloud Dataflow.

Workers get Fairway's code and its pinned dependencies from a custom SDK container image built
from the repository's Dockerfile (the hashed lock, fairness-indicators without dependencies,
Fairway itself): the same image Vertex AI runs. Requirements files would let pip re-resolve the
stack on every worker, which the lock exists to prevent.
"""
from __future__ import annotations

import re
from typing import Callable, Sequence

from pipeline.config import ConfigError
from pipeline.inputs import Input

_PROJECT = re.compile(r"^[a-z][a-z0-9-]{4,28}[a-z0-9]$")
_REGION = re.compile(r"^[a-z]+-[a-z]+[0-9]$")
_BUCKET_URI = re.compile(r"^gs://[a-z0-9][a-z0-9._-]{1,220}[a-z0-9](/.*)?$")


def check_gcs_uri(flag: str, uri: str | None) -> str:
    if not uri or not _BUCKET_URI.match(uri):
        raise ConfigError(f"{flag}: expected gs://BUCKET/path, got {uri!r}")
    return uri.rstrip("/")


def gcs_input(uri: str | None, schema) -> Input:
    """The pipeline's input for cloud runs: a gs:// folder with train/ and eval/ CSVs."""
    return Input(check_gcs_uri("--input-uri", uri), presplit=True, schema=schema)


def beam_args(project: str | None, region: str | None, temp_location: str | None,
              image: str | None, extra: Sequence[str] = ()) -> list[str]:
    """DataflowRunner arguments; the job name is added per component (runners.local)."""
    if not project or not _PROJECT.match(project):
        raise ConfigError(f"--project: expected a Google Cloud project id (6-30 lower-case "
                          f"letters, digits or '-'), got {project!r}")
    if not region or not _REGION.match(region):
        raise ConfigError(f"--region: expected a Dataflow region such as us-central1, "
                          f"got {region!r}")
    temp = check_gcs_uri("--temp-location", temp_location)
    if not image or any(c.isspace() for c in image):
        raise ConfigError("--image: Dataflow workers need Fairway's pinned stack: build the "
                          "Dockerfile, push it, and pass its name (docs/scale-out.md)")
    return ["--runner=DataflowRunner", f"--project={project}", f"--region={region}",
            f"--temp_location={temp}", f"--staging_location={temp}/staging",
            f"--sdk_container_image={image}",
            "--sdk_location=container",  # the Beam SDK inside the image, not a staged tarball
            *extra]


def translate(args: Sequence[str], build: Callable) -> dict:
    """Translate a Beam pipeline into the Dataflow job it would submit, offline: Beam's dry run
    (no credentials, no staging) plus the job environment Dataflow would be sent. `build(p)`
    adds the transforms to the pipeline `p`."""
    import apache_beam as beam
    from apache_beam.internal.gcp.json_value import from_json_value
    from apache_beam.options.pipeline_options import PipelineOptions
    from apache_beam.runners.dataflow.internal import apiclient

    options = PipelineOptions([*args, "--dry_run=True", "--no_auth"])
    p = beam.Pipeline(options=options)
    build(p)
    job = p.run().job
    staged = f"{options.get_all_options()['staging_location']}/pipeline.pb"
    env = apiclient.Environment([], options, "8", staged, job.proto_pipeline).proto
    props = {p.key: p.value for p in env.sdkPipelineOptions.additionalProperties}
    return {
        "name": job.proto.name,
        "type": str(job.proto.type),
        "images": [i.containerImage for wp in env.workerPools
                   for i in wp.sdkHarnessContainerImages],
        "options": from_json_value(props["options"]),
        "environments": [e.urn for e in job.proto_pipeline.components.environments.values()],
        "transforms": sorted(t.unique_name for t in
                             job.proto_pipeline.components.transforms.values()),
    }
