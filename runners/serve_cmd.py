"""`fairway serve`: the model sources from the flags (a ModelServerConfig file, or a base path
with its labels and version policy, by default the config's Pusher output), the option checks,
then serving.server.

It lives with the runners, not in serving/: the default base path comes from the pipeline's
config, which serving does not import.
"""
from __future__ import annotations

from typing import Callable

from pipeline.config import ConfigError, PipelineConfig


def _fraction(value: float, flag: str) -> float:
    if not 0.0 <= value <= 1.0:
        raise ConfigError(f"{flag} must be between 0 and 1, got {value}")
    return value


def _labels(items: list[str]) -> dict[str, int]:
    labels = {}
    for item in items:
        label, sep, version = item.partition("=")
        if not sep or not label or not version.isdigit():
            raise ValueError(f"--label {item!r}: expected NAME=VERSION, e.g. canary=2")
        labels[label] = int(version)
    return labels


def model_sources(args, config: Callable[[], PipelineConfig]) -> list:
    """The serving.manager.ModelSources the flags ask for; `config` is called only when the
    config's model name or Pusher output is needed. Bad flags raise ConfigError."""
    from serving import manager

    try:
        if args.model_config_file:
            if args.label or args.version_policy or args.model_name:
                raise ValueError("--label, --version-policy and --model-name apply to "
                                 "--model-dir; put them in the config file instead")
            return manager.sources_from_config(args.model_config_file)
        cfg = None if args.model_dir and args.model_name else config()
        labels = _labels(args.label)
        policy = manager.parse_policy(args.version_policy) if args.version_policy else \
            ("specific", frozenset(labels.values())) if labels else ("latest", 1)
        return [manager.ModelSource(
            args.model_name or cfg.model_name,
            str(args.model_dir or cfg.model_base_dir), policy,
            tuple(sorted(labels.items())))]
    except ValueError as e:
        raise ConfigError(str(e)) from None


def run(args, config: Callable[[], PipelineConfig]) -> int:
    """Serve until interrupted (the parsed `fairway serve` arguments)."""
    from serving import server

    routing_file = None
    if args.registry:
        if args.label or args.version_policy or args.model_name or args.canary_fraction \
                or args.shadow_label:
            raise ConfigError("--registry routes by the registry's aliases: drop --label, "
                              "--version-policy, --model-name, --canary-fraction and "
                              "--shadow-label (use `fairway promote` instead)")
        from release import registry

        # Written from ML Metadata now: changes made while no server ran apply on start.
        routing_file = str(registry.Registry(config()).write_routing())
    sources = model_sources(args, config)
    if args.shadow_label and not args.request_log_dir:
        raise ConfigError("--shadow-label needs --request-log-dir: shadow answers are only "
                          "logged")
    server.serve(sources, server.Options(
        host=args.host, rest_port=args.rest_port, grpc_port=args.grpc_port,
        poll_seconds=args.poll_seconds, max_load_retries=args.load_retries,
        load_retry_seconds=args.load_retry_seconds, warmup=not args.no_warmup,
        canary_fraction=_fraction(args.canary_fraction, "--canary-fraction"),
        shadow_label=args.shadow_label, routing_file=routing_file,
        request_log_dir=args.request_log_dir,
        log_sampling_rate=_fraction(args.log_sampling_rate, "--log-sampling-rate"),
        log_rotate_seconds=args.log_rotate_seconds,
        max_request_bytes=args.max_request_bytes, validate=args.validate))
    return 0
