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
    from runners.progress import Progress

    out = pathlib.Path(args.to) if args.to else cfg.command_dir("monitor")
    # TensorFlow's start-up lines and warnings go to the monitor's log; the console keeps
    # the monitor's own lines.
    with Progress(cfg.log_path("monitor", ".log")) as progress:
        from monitoring import monitor

        say = progress.echo
        report = monitor.run(cfg, args.requests, out, args.labels, window=args.window,
                             since=args.since, until=args.until, k=args.k,
                             grace=args.grace, log=say)
        for w in report["waiting"]:
            say(f"window {w['window']} is still open ({w['rows']} requests so far; scored "
                f"when it closes: {w['closes']})")
        for w in report["unscorable"]:
            say(f"window {w['window']} not scored: {w['reason']}")
        for r in report["rows"]:
            if r["kind"] == "performance" and r["name"] in ("auc", "accuracy"):
                value = "n/a (one class)" if r["value"] is None else f"{r['value']:.4f}"
                say(f"[{r['window']}] served model on {r['labelled']} labelled requests: "
                    f"realized {r['name']} {value}")
        if not report["scored"]:
            say("no new window to score")
        else:
            for line in monitor.alert_lines(report) or [
                    f"no new alert in {len(report['scored'])} window(s) scored"]:
                say(line)
        say(f"report: {out / 'monitor.html'}, {out / 'monitor.json'} and "
            f"{out / 'metrics.prom'}")
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
