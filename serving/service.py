"""What every request goes through, REST or gRPC: routing (canary/shadow), the call, metrics,
sampled PredictionLog logging, and the shadow copy (answered in the background, only logged)."""
from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable

from tensorflow_serving.apis import model_pb2, prediction_log_pb2

from serving.errors import ServingError
from serving.manager import ModelManager
from serving.servable import Servable
from serving.telemetry import Metrics, RequestLogger

# fn(servable) -> (result, build_log): build_log() makes the PredictionLog, only when logged.
Call = Callable[[Servable], "tuple[Any, Callable[[], prediction_log_pb2.PredictionLog]]"]


class Service:
    def __init__(self, manager: ModelManager, metrics: Metrics,
                 request_log: RequestLogger | None = None,
                 shadow_log: RequestLogger | None = None):
        self.manager, self.metrics = manager, metrics
        self.request_log, self.shadow_log = request_log, shadow_log
        self._shadow_pool = ThreadPoolExecutor(1, thread_name_prefix="shadow")
        self._shadow_slots = threading.BoundedSemaphore(100)  # beyond: skip the copy

    def call(self, api: str, entrypoint: str, name: str, version: int | None,
             label: str | None, fn: Call) -> tuple[Servable, Any]:
        started = time.perf_counter()
        served = ""
        try:
            primary, shadow = self.manager.route(name, version, label)
            served = str(primary.version)
            result, build_log = fn(primary)
        except ServingError as e:
            self.metrics.observe(name, served, api, entrypoint, e.status_name,
                                 time.perf_counter() - started)
            raise
        self.metrics.observe(name, served, api, entrypoint, "OK", time.perf_counter() - started)
        if self.request_log is not None and self.request_log.sampled():
            self.request_log.log(name, _with_metadata(build_log, primary))
        if shadow is not None and self.shadow_log is not None \
                and self._shadow_slots.acquire(blocking=False):
            self._shadow_pool.submit(self._shadow, api, shadow, fn)
        return primary, result

    def _shadow(self, api: str, shadow: Servable, fn: Call) -> None:
        status = "OK"
        try:
            _, build_log = fn(shadow)
            self.shadow_log.log(shadow.name, _with_metadata(build_log, shadow))
        except ServingError as e:
            status = e.status_name
        except Exception as e:  # the shadow must never affect serving
            status = "INTERNAL"
            print(f"shadow {shadow.name}/{shadow.version}: {type(e).__name__}: {e}", flush=True)
        finally:
            self._shadow_slots.release()
            self.metrics.shadow.labels(shadow.name, str(shadow.version), api, status).inc()

    def close(self) -> None:
        self._shadow_pool.shutdown(wait=True)
        for log in (self.request_log, self.shadow_log):
            if log is not None:
                log.close()


def _with_metadata(build_log, servable: Servable):
    def build() -> prediction_log_pb2.PredictionLog:
        log = build_log()
        spec = model_pb2.ModelSpec(name=servable.name)
        spec.version.value = servable.version
        log.log_metadata.model_spec.CopyFrom(spec)
        log.log_metadata.saved_model_tags.append("serve")
        return log
    return build
