"""Run the pipeline's Beam components on Spark through Beam's portable Spark job server.

LocalDagRunner still orchestrates; every Beam-powered component (ExampleGen, StatisticsGen,
Transform, Evaluator) submits its Beam job to the job server, which runs it as one Spark
application. The Python user code runs in a Beam worker pool (environment EXTERNAL), the layout of
real clusters, where each worker node runs a worker-pool sidecar.

This module chooses the Beam arguments and runs; runners.spark_cluster manages the cluster:
without a master URL it starts a standalone cluster (one master, one worker) on 127.0.0.1 from the
Spark distribution inside the pyspark wheel, and everything it started is stopped on exit,
failure, timeout or Ctrl-C.
"""
from __future__ import annotations

import contextlib
import dataclasses

from pipeline.config import NO_TFX_SDIST, FairwayError, PipelineConfig
from runners import engine_jobs
from runners.spark_cluster import (Cluster, SparkError, SparkOptions, beam_version,
                                   sigterm_as_interrupt)

__all__ = ["SparkError", "SparkOptions", "beam_args", "run"]


def beam_args(cluster: Cluster) -> tuple[str, ...]:
    """The Beam pipeline options that send every Beam job to the cluster's job server, with the
    user code in its worker pool."""
    return ("--runner=PortableRunner", f"--job_endpoint=127.0.0.1:{cluster.job_port}",
            f"--artifact_endpoint=127.0.0.1:{cluster.artifact_port}",
            "--environment_type=EXTERNAL", f"--environment_config={cluster.worker_pool}",
            # Keep SDK harnesses across a job's tasks: without it every Spark task starts a new
            # one, importing TensorFlow again (14 starts for a 500-row ExampleGen).
            "--environment_cache_millis=600000", NO_TFX_SDIST)


def run(cfg: PipelineConfig, options: SparkOptions, **partial) -> float:
    """Run the pipeline with its Beam components on Spark; returns the wall time in seconds.
    `partial`: local.run's start_from / resume."""
    from pipeline import metadata

    log_dir = cfg.log_path("spark")
    with sigterm_as_interrupt(), Cluster(options, log_dir) as cluster:
        from runners import local  # TFX: imported once the cluster checks have passed

        spark_cfg = dataclasses.replace(cfg, beam_args=beam_args(cluster))
        mismatch = cluster.job_server_beam != beam_version()
        try:
            with cluster.deadline(options.timeout):
                seconds = local.run(spark_cfg, **partial)
        except Exception as e:
            if cluster.aborted:
                raise SparkError(f"Spark run {cluster.aborted}; stopped the job server, worker "
                                 f"pool and cluster. Logs: {log_dir}") from e
            if mismatch and isinstance(e, FairwayError):
                raise SparkError(f"{e}\nNote: the job server is Beam {cluster.job_server_beam} "
                                 f"and the SDK Beam {beam_version()}; if the log shows an unknown "
                                 "URN or coder, pass --spark-job-server-jar with "
                                 f"beam-runners-spark-3-job-server-{beam_version()}.jar") from e
            raise
        finally:
            with contextlib.suppress(OSError, ValueError, LookupError, FairwayError):
                run = metadata.latest_run(metadata.store(cfg), cfg.pipeline_name)
                if run is not None and run.create_time_since_epoch >= cluster.started_ms:
                    engine_jobs.record(cfg, run.name, "spark", cluster.master,
                                       cluster.applications())
    return seconds
