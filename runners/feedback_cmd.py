"""The feedback loop's commands: `fairway data --from-logs LOGS --labels CSV --new-span DIR`
(labelled serving traffic as a new span for `fairway run --data DIR`) and `fairway label-queue`
(the requests most worth labelling). runners/cli.py adds the flags and calls these."""
from __future__ import annotations

import argparse
from typing import Callable

from pipeline.config import PipelineConfig
from pipeline.errors import FairwayError


def _number(cast, ok, expected: str):
    """An argparse type: `cast(text)` that satisfies `ok`, else an error saying `expected`."""
    def parse(text: str):
        try:
            value = cast(text)
        except ValueError:
            value = None
        if value is None or not ok(value):
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}")
        return value
    return parse


_POSITIVE = _number(int, lambda v: v > 0, "a positive whole number")
_COUNT = _number(int, lambda v: v >= 0, "a whole number >= 0")
_FRACTION = _number(float, lambda v: 0 < v < 1, "a number in (0, 1)")


def add_data_flags(data_parser: argparse.ArgumentParser) -> None:
    """`--from-logs`, `--labels`, `--eval-fraction` on the existing `fairway data` parser
    (with its --new-span DIR)."""
    g = data_parser.add_argument_group("--from-logs (a span from labelled serving traffic)")
    g.add_argument("--from-logs", metavar="LOGS",
                   help="request logs of `fairway serve` (a folder of requests-*/shadow-* "
                        "files, or one file): write the labelled requests that fit the schema "
                        "to --new-span DIR")
    g.add_argument("--labels", metavar="CSV", help="request_id,label (0/1) for --from-logs")
    g.add_argument("--eval-fraction", type=_FRACTION, default=0.2, metavar="F",
                   help="share of requests in the eval split, by a hash of the request id "
                        "(0.2)")


def add_label_queue_parser(sub, add_config_args: Callable[[argparse.ArgumentParser], None]
                           ) -> argparse.ArgumentParser:
    p = sub.add_parser("label-queue", help="the served requests most worth labelling: closest "
                                           "to the decision threshold, with a quota per group "
                                           "of the sensitive feature")
    add_config_args(p)
    p.add_argument("--logs", required=True, metavar="LOGS",
                   help="request logs of `fairway serve` (folder or file)")
    p.add_argument("--labels", metavar="CSV", help="requests already labelled (left out)")
    p.add_argument("-n", type=_POSITIVE, default=200, metavar="N",
                   help="requests to pick (200)")
    p.add_argument("--min-per-group", type=_COUNT, default=20, metavar="K",
                   help="rows kept for each group of the sensitive feature (20), or all of a "
                        "smaller group's; 0: no quota")
    p.add_argument("--out", metavar="FILE",
                   help="the CSV to write (default: <output>/label-queue/queue-<time>.csv)")
    return p


def _quiet(cfg: PipelineConfig, kind: str):
    """TensorFlow's start-up lines go to a log; the console keeps the command's own lines."""
    from runners.progress import Progress

    return Progress(cfg.log_path(kind, ".log"))


def data_from_logs(cfg: PipelineConfig, args) -> int:
    if not args.new_span:
        raise FairwayError("--from-logs: expected --new-span DIR, the folder to write the span to")
    if not args.labels:
        raise FairwayError("--from-logs: expected --labels CSV (request_id,label): only "
                           "labelled requests become training data")
    if getattr(args, "inject_drift", False):
        raise FairwayError("--inject-drift applies to a span drawn from the dataset, not to "
                           "--from-logs")
    with _quiet(cfg, "feedback") as progress:
        from release import feedback

        feedback.write_span(cfg, args.from_logs, args.labels, args.new_span,
                            eval_fraction=args.eval_fraction, log=progress.echo)
    src = f"--config {args.config}" if getattr(args, "config", None) else \
        f"--dataset {cfg.dataset.name}"
    print(f"run it with `fairway run {src} --data {args.new_span}`")
    return 0


def label_queue(cfg: PipelineConfig, args) -> int:
    with _quiet(cfg, "label-queue") as progress:
        from release import feedback

        feedback.label_queue(cfg, args.logs, args.labels, n=args.n,
                             min_per_group=args.min_per_group, out=args.out, log=progress.echo)
    return 0
