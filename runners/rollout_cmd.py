"""`fairway rollout VERSION`: a deployment strategy on a running `fairway serve --registry`,
with automated canary analysis (release/rollout.py, release/analysis.py)."""
from __future__ import annotations

import argparse
import sys

from pipeline.config import PipelineConfig

EXIT_OK, EXIT_ROLLED_BACK, EXIT_USAGE = 0, 1, 2
# As release.rollout.STRATEGIES, not imported from there: building the parser stays light
# (release.rollout loads pandas and TensorFlow).
STRATEGIES = ("canary", "blue-green", "recreate", "shadow", "ab")


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seconds, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a positive number of seconds, got {text}")
    return value


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected at least 1, got {value}")
    return value


def add_rollout_parser(sub, add_config_args) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "rollout", help="roll a version out on a running `fairway serve --registry`: canary "
                        "steps with automated analysis (errors, latency, prediction shift "
                        "overall and per group, fairness gap, AUC/FPR gap once labelled), "
                        "blue-green, recreate, shadow or A/B")
    add_config_args(p)
    p.add_argument("version", type=int, metavar="VERSION", help="the version to roll out")
    p.add_argument("--strategy", choices=STRATEGIES, default="canary",
                   help="canary (default): progressive steps, rolled back on a failing check; "
                        "blue-green: load next to production, then switch; recreate: switch "
                        "directly; shadow: copies of production's traffic, compared, no "
                        "promotion; ab: half the request ids (sticky), compared once labelled")
    p.add_argument("--steps", metavar="PCTS",
                   help="canary traffic shares in percent, ending at 100 (default: the "
                        "config's [release] canary_steps, 5,25,50,100)")
    p.add_argument("--step-seconds", type=_seconds, metavar="S",
                   help="each step lasts at least S seconds (shadow/ab: the comparison's "
                        "length); default: [release] step_seconds, 60")
    p.add_argument("--step-timeout", type=_seconds, metavar="S",
                   help="a step without enough traffic after S seconds is rolled back "
                        "(default: [release] step_timeout, 300)")
    p.add_argument("--min-requests", type=_count, metavar="N",
                   help="requests (and logged rows) per arm before a step is judged; half "
                        "as many per group of the sensitive feature (default: [release] "
                        "min_requests, 200)")
    p.add_argument("--labels", metavar="CSV",
                   help="labels that arrived: request_id,label (0/1); adds AUC and the FPR "
                        "gap per arm (ab: accuracy and AUC)")
    p.add_argument("--server", default="http://127.0.0.1:8501", metavar="URL",
                   help="the REST address of `fairway serve --registry` (default "
                        "http://127.0.0.1:8501)")
    p.add_argument("--logs", metavar="DIR",
                   help="the server's --request-log-dir (prediction checks need it)")
    p.add_argument("--to", metavar="DIR",
                   help="where to write rollout-<version>-<UTC time>.{json,html} (default "
                        "<output>/rollout)")
    p.add_argument("--force", action="store_true",
                   help="roll out a version no run blessed (the registry records it)")
    p.add_argument("--promote-winner", action="store_true",
                   help="ab: promote the challenger when it wins significantly")
    p.add_argument("--by", metavar="NAME", help="who, for the registry's audit trail")
    return p


def rollout(cfg: PipelineConfig, args) -> int:
    from pipeline.errors import FairwayError
    from release import rollout as rollout_lib

    rel = cfg.release  # the config's defaults for what the flags leave out
    # Mistakes in what was asked (steps, folders, an unknown version) change nothing: exit 2.
    try:
        opts = rollout_lib.Options(
            version=args.version, strategy=args.strategy, steps=rollout_lib.parse_steps(
                args.steps or ",".join(map(str, rel.canary_steps))),
            step_seconds=args.step_seconds or float(rel.step_seconds),
            step_timeout=args.step_timeout or float(rel.step_timeout),
            min_requests=args.min_requests or rel.min_requests, labels=args.labels, server=args.server,
            logs=args.logs, to=args.to, force=args.force, promote_winner=args.promote_winner,
            by=args.by)
        runner = rollout_lib.Rollout(cfg, opts)
        runner.registry.version(args.version)
    except FairwayError as e:
        print(f"fairway: {e}", file=sys.stderr, flush=True)
        return EXIT_USAGE
    result = runner.run()
    print(f"rollout of version {result.version} ({result.strategy}): {result.decision}",
          flush=True)
    for reason in result.reasons:
        print(f"  {reason}", flush=True)
    for path in result.report:
        print(f"  report: {path}", flush=True)
    return EXIT_ROLLED_BACK if result.exit_code else EXIT_OK
