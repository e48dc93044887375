"""Run the pipeline with TFX's LocalDagRunner (the default runner)."""
from __future__ import annotations

import pathlib
import re
import time
from typing import TYPE_CHECKING

from data import acquire
from pipeline.config import PipelineConfig
from pipeline.errors import FairwayError
from runners.progress import Progress

if TYPE_CHECKING:
    from pipeline import pipeline as pipeline_lib

# The last "SomeError: message" line of a traceback quoted inside a message (Beam's portable
# runners pass a worker's exception on as text).
_QUOTED_ERROR = re.compile(r"^(?:[\w.]+\.)?(\w+(?:Error|Exception|Exit|Interrupt)): (.*)$", re.M)


class RunFailed(FairwayError):
    """A component failed; the message names it and points at the full log."""


def root_cause(exc: BaseException, limit: int = 300) -> str:
    """`Type: message` of the innermost exception chained with `raise ... from`: wrappers say
    "X failed", the inner one says why. Implicit context ("during handling of") is not followed:
    it is often a detail the library handled (protobuf tries int() before an enum name)."""
    while exc.__cause__ is not None:
        exc = exc.__cause__
    name, msg = type(exc).__name__, str(exc).strip()
    if isinstance(exc, FairwayError):  # Fairway's own messages are written for the console
        return f"{name}: {msg}"
    if "Traceback (most recent call last)" in msg and (quoted := _QUOTED_ERROR.findall(msg)):
        name, msg = quoted[-1]
    msg = " ".join(msg.split())
    msg = msg[:limit] + " ..." if len(msg) > limit else msg
    return f"{name}: {msg}" if msg else name


def failure_message(component: str | None, exc: BaseException, log_file: pathlib.Path) -> str:
    where = f"component {component}" if component else "the pipeline"
    return f"{where} failed: {root_cause(exc)}\nFull log: {log_file}"


def run(cfg: PipelineConfig, with_baseline: bool = False,
        data: pipeline_lib.Input | None = None, pipeline_root: str | None = None,
        start_from: str | None = None, resume: bool = False) -> float:
    """Obtain the data (unless given: e.g. in Cloud Storage for Dataflow), run every component
    (or, with `start_from` or `resume`, part of them: pipeline.partial_run), and return the
    wall time in seconds."""
    log_file = cfg.log_path("run", ".log")
    with Progress(log_file) as progress:
        # TFX is first imported in here (also by acquire.prepare): TensorFlow's C++ import-time
        # lines (cuDNN/cuFFT/cuBLAS factories, oneDNN) go to the log file, not the console.
        data = data or acquire.prepare(cfg, log=progress.echo)
        # Not `from tfx import v1`: its extensions import the Vertex AI client (~9 s of a
        # ~30 s cached re-run), which a local run never uses (pipeline/ still imports it).
        from tfx.dsl.components.base.base_beam_component import BaseBeamComponent
        from tfx.orchestration.local.local_dag_runner import LocalDagRunner

        from pipeline import pipeline as pipeline_lib
        from pipeline.components import DataAnomaliesError

        p = pipeline_lib.create_pipeline(cfg, data, with_baseline=with_baseline,
                                         pipeline_root=pipeline_root)
        for c in p.components:  # a Spark application or Dataflow job named after its node
            if isinstance(c, BaseBeamComponent):
                c.with_beam_pipeline_args([f"--job_name={cfg.beam_job_name(c.id)}"])
        options = None
        if start_from or resume:
            from tfx.dsl.compiler import compiler
            from tfx.orchestration import pipeline as tfx_pipeline

            from pipeline import partial_run

            ir = compiler.Compiler().compile(p)
            part = (partial_run.start_from(cfg, ir, start_from) if start_from
                    else partial_run.resume(cfg, ir))
            options = tfx_pipeline.RunOptions(from_nodes=part.from_nodes,
                                              base_pipeline_run_id=part.base_run)
            progress.echo(part.why)
        progress.begin([c.id for c in p.components])
        progress.echo(f"Running {cfg.pipeline_name}: {len(progress.node_ids)} components, "
                      f"output in {cfg.output_dir}")
        start = time.monotonic()
        try:
            LocalDagRunner().run(p, run_options=options)
        except DataAnomaliesError:
            raise
        except Exception as e:  # Progress writes the whole traceback to the log
            raise RunFailed(failure_message(progress.current, e, log_file)) from e
    return time.monotonic() - start
