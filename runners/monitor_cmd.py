"""`fairway monitor`: the drift report of a window of serving request logs, its alert lines, and
with --on-alert the retraining run (the whole pipeline, with its data and drift gates, on the
newest span) when an alert fires."""
from __future__ import annotations

import pathlib
from typing import Callable

from pipeline.config import PipelineConfig


def run(args, cfg: PipelineConfig, retrain_config: Callable[[], PipelineConfig]) -> bool:
    """Monitor (the parsed `fairway monitor` arguments); True when an alert fired.
    `retrain_config` gives the config of the retraining run (--on-alert)."""
    from monitoring import monitor

    out = pathlib.Path(args.to) if args.to else cfg.command_dir("monitor")
    report = monitor.run(cfg, args.requests, out, args.labels)
    if "performance" in report:
        perf = report["performance"]
        print(f"served model on {perf['labelled']} labelled requests: AUC {perf['auc']:.4f}, "
              f"accuracy {perf['accuracy']:.4f}")
    for line in monitor.alert_lines(report) or ["no drift alert"]:
        print(line)
    print(f"report: {out / 'monitor.html'} and {out / 'monitor.json'}")
    if report["alerts"] and args.on_alert:
        retrain(retrain_config(), args.data)
    return bool(report["alerts"])


def retrain(cfg: PipelineConfig, data: str | None) -> None:
    """The pipeline run an alert triggers, then its status."""
    from runners import local, report

    print(f"\n--on-alert: retraining on {data or 'the configured data'} ...", flush=True)
    seconds = local.run(cfg)
    print(f"\nRetraining pipeline finished in {seconds:.1f}s\n")
    print(report.status(cfg))
