"""`fairway serve`: the model manager, REST (aiohttp) and gRPC (grpcio) in one process."""
from __future__ import annotations

import asyncio
import dataclasses
import signal
import threading
from concurrent import futures

import grpc
from aiohttp import web

from serving import grpc_api, validation, warmup
from serving.manager import ModelManager, ModelSource
from serving.rest import RestApi
from serving.service import Service
from serving.telemetry import Metrics, RequestLogger

INT32_MAX = 2**31 - 1  # TF Serving's gRPC message size limit


@dataclasses.dataclass(frozen=True)
class Options:
    host: str = "127.0.0.1"
    rest_port: int = 8501  # 0 turns REST off (as --rest_api_port=0)
    grpc_port: int = 8500  # 0 turns gRPC off
    poll_seconds: float = 1.0
    max_load_retries: int = 5
    load_retry_seconds: float = 60.0
    warmup: bool = True
    canary_fraction: float = 0.0
    shadow_label: str | None = None
    routing_file: str | None = None  # follow the registry's routing file (serving/routing.py)
    request_log_dir: str | None = None
    log_sampling_rate: float = 0.0
    log_rotate_seconds: int = 3600  # a new request-log file every this many seconds
    max_request_bytes: int = 64 << 20
    startup_timeout: float | None = None
    workers: int = 4  # threads for requests too large to answer on the event loop
    validate: str = "off"  # check requests against each version's schema: off | flag | reject


def log(message: str) -> None:
    print(f"fairway serve: {message}", flush=True)


def build_service(sources: list[ModelSource], opts: Options) -> Service:
    metrics = Metrics()
    manager = ModelManager(
        sources, poll_seconds=opts.poll_seconds, max_load_retries=opts.max_load_retries,
        retry_seconds=opts.load_retry_seconds, log=log,
        warmup=_replay if opts.warmup else None,
        canary_fraction=opts.canary_fraction, shadow_label=opts.shadow_label,
        validation=None if opts.validate == validation.OFF else
        validation.Policy(opts.validate, metrics.anomalies, log))
    logs = opts.request_log_dir
    return Service(
        manager, metrics,
        request_log=RequestLogger(logs, "requests", opts.log_sampling_rate, metrics,
                                  rotate_seconds=opts.log_rotate_seconds)
        if logs and opts.log_sampling_rate > 0 else None,
        shadow_log=RequestLogger(logs, "shadow", 1.0, metrics,
                                 rotate_seconds=opts.log_rotate_seconds)
        if logs and (opts.shadow_label or opts.routing_file) else None)


def _replay(servable) -> None:
    n = warmup.replay(servable)
    if n:
        log(f"[{servable.name}] version {servable.version}: {n} warmup requests replayed")


def serve(sources: list[ModelSource], opts: Options) -> None:
    """Blocks until SIGINT/SIGTERM; serves only once every model has an available version."""
    service = build_service(sources, opts)
    for s in sources:
        log(f"model {s.name!r}: base path {s.base_path}, policy {s.policy}"
            + (f", labels {dict(s.labels)}" if s.labels else ""))
    if opts.validate != validation.OFF:
        log(f"--validate {opts.validate}: requests are checked against each version's "
            f"{validation.SCHEMA_FILE}; versions without one are not checked (said as each loads)")
    if opts.routing_file:  # the registry's changes made while the server was down apply now
        service.manager.follow(opts.routing_file)
        log(f"following the routing file {opts.routing_file}")
    service.manager.wait_until_available(opts.startup_timeout)
    if opts.validate != validation.OFF:
        unchecked = [f"{n}/{v.number}" for n, m in service.manager.models.items()
                     for v in m.versions.values()
                     if v.servable is not None and v.servable.validator is None]
        if unchecked:
            log(f"NOT validated (no {validation.SCHEMA_FILE}): version(s) {', '.join(unchecked)}")
    service.manager.start()
    try:
        asyncio.run(_serve(service, opts))
    finally:
        service.manager.stop()
        service.close()
        log("stopped")


async def _serve(service: Service, opts: Options) -> None:
    """REST (aiohttp) and gRPC (grpc.aio) on one event loop: no thread hop per request."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
    pool = futures.ThreadPoolExecutor(opts.workers, thread_name_prefix="infer")
    grpc_server = runner = None
    try:
        if opts.grpc_port:
            grpc_server = grpc.aio.server(
                options=[("grpc.max_send_message_length", INT32_MAX),
                         ("grpc.max_receive_message_length", INT32_MAX)])
            grpc_api.add_to_server(grpc_server, service, pool)
            if not grpc_server.add_insecure_port(f"{opts.host}:{opts.grpc_port}"):
                raise OSError(f"cannot bind gRPC to {opts.host}:{opts.grpc_port}")
            await grpc_server.start()
            log(f"gRPC on {opts.host}:{opts.grpc_port}")
        if opts.rest_port:
            runner = web.AppRunner(RestApi(service, opts.max_request_bytes, pool).app(),
                                   access_log=None, handle_signals=False)
            await runner.setup()
            await web.TCPSite(runner, opts.host, opts.rest_port).start()
            log(f"REST on http://{opts.host}:{opts.rest_port}")
        log("ready")
        await stop.wait()
    finally:
        if grpc_server is not None:
            await grpc_server.stop(grace=2)
        if runner is not None:
            await runner.cleanup()
        pool.shutdown(wait=True)
