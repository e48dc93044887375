"""The `fairway` command line."""
from __future__ import annotations

import argparse
import sys

from pipeline import config as config_lib

EXIT_USAGE, EXIT_FAILED = 2, 1


def _add_config_args(p: argparse.ArgumentParser) -> None:
    src = p.add_mutually_exclusive_group()
    src.add_argument("--dataset", help="a preset: census (default) or taxi")
    src.add_argument("--config", metavar="FILE", help="a TOML config for your own dataset")
    p.add_argument("--output", metavar="DIR", help="output folder (default: outputs/<dataset>)")
    p.add_argument("--data", metavar="DIR", help="CSV files of the same shape as the dataset")


def _config(args, **extra) -> config_lib.PipelineConfig:
    kwargs = dict(output_dir=args.output, data_dir=args.data, **extra)
    if args.config:
        return config_lib.load(args.config, **kwargs)
    return config_lib.preset(args.dataset or "census", **kwargs)


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {value}")
    return value


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="fairway", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser("run", help="run the whole pipeline with LocalDagRunner")
    _add_config_args(run)
    run.add_argument("--sample", type=_positive, metavar="N",
                     help="use a fixed random sample of N rows per split")
    run.add_argument("--train-steps", type=_positive, metavar="N", help="override training steps")
    run.add_argument("--no-cache", action="store_true", help="re-run every component")

    compare = sub.add_parser(
        "compare", help="train baseline / MinDiff teacher / student and compare them (fairness, "
                        "AUC, size, latency): Markdown, JSON and PNG")
    _add_config_args(compare)
    compare.add_argument("--sample", type=_positive, metavar="N",
                         help="use a fixed random sample of N rows per split")
    compare.add_argument("--train-steps", type=_positive, metavar="N",
                         help="override training steps")

    deploy = sub.add_parser(
        "deploy", help="write TF Serving deployment files (models.config with stable/canary "
                       "labels, batching, monitoring, docker-compose, Kubernetes) for the pushed "
                       "model")
    _add_config_args(deploy)
    deploy.add_argument("--to", metavar="DIR", help="where to write (default: <output>/deploy)")

    status = sub.add_parser("status", help="the latest run as recorded in ML Metadata")
    _add_config_args(status)
    status.add_argument("--json", action="store_true", help="machine-readable output")

    data = sub.add_parser("data", help="obtain and verify a dataset without running")
    _add_config_args(data)
    return p


def _run_config(args) -> config_lib.PipelineConfig:
    overrides = {}
    if args.train_steps:
        overrides["training"] = {"train_steps": args.train_steps}
    if getattr(args, "no_cache", False):
        overrides["pipeline"] = {"enable_cache": False}
    return _config(args, sample=args.sample, overrides=overrides)


def cmd_run(args) -> int:
    from runners import local

    cfg = _run_config(args)
    seconds = local.run(cfg)
    print(f"\nPipeline finished in {seconds:.1f}s\n")
    return _print_status(cfg, as_json=False)


def _print_status(cfg, as_json: bool) -> int:
    from pipeline import metadata
    from runners import report

    summary = metadata.run_summary(cfg)
    print(metadata.to_json(summary) if as_json else report.text(summary))
    return 0


def cmd_compare(args) -> int:
    from pipeline import metadata
    from runners import compare, local

    cfg = _run_config(args)
    if not cfg.dataset.groups or not cfg.distillation.enabled:
        raise config_lib.ConfigError("compare needs dataset.groups and distillation.enabled")
    seconds = local.run(cfg, with_baseline=True)
    print(f"\nPipeline (with BaselineTrainer) finished in {seconds:.1f}s; comparing ...",
          flush=True)
    result = compare.measure(cfg, metadata.run_summary(cfg))
    paths = compare.write(result, cfg.output_dir / "compare")
    print("\n" + compare.markdown(result))
    for kind, path in paths.items():
        print(f"{kind}: {path}")
    return 0


def cmd_deploy(args) -> int:
    import pathlib

    from serving import deployment

    paths = deployment.write(_config(args), pathlib.Path(args.to).resolve() if args.to else None)
    for path in paths.values():
        print(path)
    return 0


def cmd_status(args) -> int:
    return _print_status(_config(args), args.json)


def cmd_data(args) -> int:
    from data import acquire

    data = acquire.prepare(_config(args))
    print(data.base)
    return 0


def main(argv=None) -> int:
    args = parser().parse_args(argv)
    try:
        commands = {"run": cmd_run, "compare": cmd_compare, "deploy": cmd_deploy,
                    "status": cmd_status, "data": cmd_data}
        return commands[args.command](args)
    except config_lib.ConfigError as e:
        print(f"fairway: config error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except (config_lib.FairwayError, FileNotFoundError, LookupError) as e:
        print(f"fairway: {e}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        print("fairway: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
