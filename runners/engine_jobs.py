"""The engine jobs a distributed run recorded, written here and attached to the nodes of its run
summary.

After a run on Spark, runners.spark calls `record`, which writes
`<cfg.beam_jobs_dir>/<run_id>.json`:
`{"engine": "spark", "master": URL, "applications": [{"id", "name", "state", "starttime",
"duration", "cores"}, ...]}`. An application is named after its node's Beam job
(`cfg.beam_job_name(node)`) plus `_<uuid>`. The format belongs to the runners: the pipeline's
MLMD summary (pipeline.metadata.run_summary) knows nothing of it; `attach` reads it back.
"""
from __future__ import annotations

import json
from typing import Any

from pipeline.config import PipelineConfig


def record(cfg: PipelineConfig, run_id: str, engine: str, master: str,
           applications: list[dict[str, Any]]) -> None:
    """Write the engine jobs of run `run_id` where `attach` finds them."""
    cfg.beam_jobs_dir.mkdir(parents=True, exist_ok=True)
    (cfg.beam_jobs_dir / f"{run_id}.json").write_text(json.dumps(
        {"engine": engine, "master": master, "applications": applications}, indent=2))


def attach(cfg: PipelineConfig, summary: dict[str, Any]) -> dict[str, Any]:
    """Adds `engine` to the summary and `spark_applications` to each node that ran one, when
    the run has a record; returns the summary."""
    record = cfg.beam_jobs_dir / f"{summary['run_id']}.json"
    if not record.is_file():
        return summary
    jobs = json.loads(record.read_text())
    summary["engine"] = {"name": jobs["engine"], "master": jobs["master"]}
    for n in summary["nodes"]:
        name = cfg.beam_job_name(n["node"])
        apps = [a for a in jobs["applications"] if a["name"].rsplit("_", 1)[0] == name]
        if apps:
            n["spark_applications"] = apps
    return summary
