"""What every request goes through, REST or gRPC: routing (canary/shadow), the call, metrics,
sampled PredictionLog logging, and the shadow copy (answered in the background, only logged)."""
from __future__ import annotations

import re
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable

from tensorflow_serving.apis import model_pb2, prediction_log_pb2

from serving import validation
from serving.errors import ServingError, invalid
from serving.manager import ModelManager
from serving.servable import Servable
from serving.telemetry import Metrics, RequestLogger

REQUEST_ID_HEADER = "X-Request-Id"  # REST header; gRPC metadata key "x-request-id"
_ID = re.compile(r"[A-Za-z0-9._/-]{1,128}")  # no ':', which joins a request id to its row

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
             label: str | None, fn: Call, request_id: str = "") -> tuple[Servable, Any]:
        """Serve `fn`; `request_id` (from request_id()) and the arrival time go into its log."""
        arrived = time.time()
        started = time.perf_counter()
        served = ""
        try:
            primary, shadow = self.manager.route(name, version, label, request_id)
            served = str(primary.version)
            with validation.request(request_id):
                result, build_log = fn(primary)
        except ServingError as e:
            self.metrics.observe(name, served, api, entrypoint, e.status_name,
                                 time.perf_counter() - started)
            raise
        self.metrics.observe(name, served, api, entrypoint, "OK", time.perf_counter() - started)
        if self.request_log is not None and self.request_log.sampled():
            self.request_log.log(name, _with_metadata(build_log, primary, arrived, request_id))
        if shadow is not None and self.shadow_log is not None \
                and self._shadow_slots.acquire(blocking=False):
            self._shadow_pool.submit(self._shadow, api, shadow, fn, arrived, request_id)
        return primary, result

    def _shadow(self, api: str, shadow: Servable, fn: Call, arrived: float,
                request_id: str) -> None:
        status = "OK"
        try:
            with validation.request(request_id, checked=False):  # only logged: not checked
                _, build_log = fn(shadow)
            self.shadow_log.log(shadow.name, _with_metadata(build_log, shadow, arrived,
                                                            request_id))
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


def request_id(supplied: str | None) -> str:
    """The client's request id (so that labels arriving later can be joined to the logged
    request), or a new one; a malformed one is refused."""
    if not supplied:
        return uuid.uuid4().hex
    if not _ID.fullmatch(supplied):
        raise invalid(f"{REQUEST_ID_HEADER} {supplied[:40]!r}: expected 1-128 letters, digits "
                      "or . _ / -")
    return supplied


def _with_metadata(build_log, servable: Servable, arrived: float, rid: str):
    """TF Serving's LogMetadata: model spec, tags and arrival time (timestamp_secs, as TF
    Serving fills it); the request id goes into request_origin, which TF Serving leaves to
    the caller."""
    def build() -> prediction_log_pb2.PredictionLog:
        log = build_log()
        spec = model_pb2.ModelSpec(name=servable.name)
        spec.version.value = servable.version
        meta = log.log_metadata
        meta.model_spec.CopyFrom(spec)
        meta.saved_model_tags.append("serve")
        meta.timestamp_secs = int(arrived)
        meta.request_origin = rid
        return log
    return build
