"""Run the pipeline with TFX's LocalDagRunner (the default runner)."""
from __future__ import annotations

import time
import traceback

from tfx import v1 as tfx
from tfx.dsl.components.base.base_beam_component import BaseBeamComponent

from data import acquire
from pipeline import pipeline as pipeline_lib
from pipeline.config import FairwayError, PipelineConfig
from pipeline.components import DataAnomaliesError
from runners.progress import Progress


class RunFailed(FairwayError):
    """A component failed; the message names it and points at the full log."""


def run(cfg: PipelineConfig, with_baseline: bool = False, data: pipeline_lib.Input | None = None,
        pipeline_root: str | None = None) -> float:
    """Obtain the data (unless given: e.g. in Cloud Storage for Dataflow), run every component,
    and return the wall time in seconds."""
    data = data or acquire.prepare(cfg)
    p = pipeline_lib.create_pipeline(cfg, data, with_baseline=with_baseline,
                                     pipeline_root=pipeline_root)
    for c in p.components:  # a Spark application or Dataflow job named after its node
        if isinstance(c, BaseBeamComponent):
            c.with_beam_pipeline_args([f"--job_name={cfg.beam_job_name(c.id)}"])
    ids = [c.id for c in p.components]
    print(f"Running {cfg.pipeline_name}: {len(ids)} components, output in {cfg.output_dir}",
          flush=True)
    start = time.monotonic()
    log_file = cfg.output_dir / "logs" / f"run-{time.strftime('%Y%m%d-%H%M%S')}.log"
    with Progress(ids, log_file) as progress:
        try:
            tfx.orchestration.LocalDagRunner().run(p)
        except DataAnomaliesError:
            raise
        except Exception as e:
            with log_file.open("a") as f:  # the traceback goes to the log, not the console
                traceback.print_exc(file=f)
            raise RunFailed(f"component {progress.current} failed: {type(e).__name__}: {e}\n"
                            f"Full log: {log_file}") from e
    return time.monotonic() - start
