"""The engine jobs a distributed run recorded, attached to the nodes of its run summary.

runners.spark writes `<cfg.beam_jobs_dir>/<run_id>.json` after a run on Spark:
`{"engine": "spark", "master": URL, "applications": [{"id", "name", "state", "starttime",
"duration", "cores"}, ...]}`. An application is named after its node's Beam job
(`cfg.beam_job_name(node)`) plus `_<uuid>`. The format belongs to the runners: the pipeline's
MLMD summary (pipeline.metadata.run_summary) knows nothing of it.
"""
from __future__ import annotations

import json
from typing import Any

from pipeline.config import PipelineConfig


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
