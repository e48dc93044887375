"""Prometheus metrics under TF Serving's names, and sampled PredictionLog request logging."""
from __future__ import annotations

import os
import queue
import random
import threading
import time
from typing import Callable

import tensorflow as tf
from prometheus_client import (CollectorRegistry, Counter, Histogram, disable_created_metrics,
                               generate_latest)
from tensorflow_serving.apis import prediction_log_pb2

PROMETHEUS_PATH = "/monitoring/prometheus/metrics"
# Microseconds, as TF Serving's request_latency.
LATENCY_BUCKETS_US = (100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000,
                      250_000, 1_000_000, 5_000_000, float("inf"))


class Metrics:
    def __init__(self):
        disable_created_metrics()  # TF Serving exports no *_created series
        self.registry = CollectorRegistry()
        labels = ["model_name", "version", "API", "entrypoint"]
        self.requests = Counter(":tensorflow:serving:request_count",
                                "Requests by model, version, API, entrypoint and status.",
                                labels + ["status"], registry=self.registry)
        self.latency = Histogram(":tensorflow:serving:request_latency",
                                 "Request latency in microseconds.", labels,
                                 buckets=LATENCY_BUCKETS_US, registry=self.registry)
        self.shadow = Counter(":fairway:serving:shadow_request_count",
                              "Requests copied to the shadow version, by status.",
                              ["model_name", "version", "API", "status"], registry=self.registry)
        self.logged = Counter(":fairway:serving:logged_request_count",
                              "PredictionLog records written.", ["model_name", "kind"],
                              registry=self.registry)
        # --validate flag|reject: requests whose `feature` had an anomaly of `kind` (type,
        # domain, range, missing), once per request and (feature, kind).
        self.anomalies = Counter(":fairway:serving:request_anomaly_count",
                                 "Requests with a schema anomaly, by feature and kind.",
                                 ["model_name", "version", "feature", "kind"],
                                 registry=self.registry)

    def observe(self, model: str, version: str, api: str, entrypoint: str, status: str,
                seconds: float) -> None:
        self.requests.labels(model, version, api, entrypoint, status).inc()
        self.latency.labels(model, version, api, entrypoint).observe(seconds * 1e6)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


class RequestLogger:
    """Writes PredictionLogs to `<dir>/<prefix>-<UTC time>-<pid>.tfrecord` from one thread,
    starting a new file every `rotate_seconds` (at multiples of it in UTC, e.g. on the hour).

    Records are built lazily in the writer thread (a sampled request pays only a queue put) and
    flushed whenever the queue drains, so a reader sees them within a poll interval.
    """

    def __init__(self, directory: str, prefix: str, sampling_rate: float, metrics: Metrics,
                 rng: random.Random | None = None, capacity: int = 10_000,
                 rotate_seconds: int = 3600, clock: Callable[[], float] = time.time):
        tf.io.gfile.makedirs(directory)
        self.directory, self.rotate_seconds, self._clock = directory, rotate_seconds, clock
        self.path = ""  # the file being written
        self.prefix, self.sampling_rate, self.metrics = prefix, sampling_rate, metrics
        self.dropped = 0
        self._rng = rng or random.Random()
        self._queue: queue.Queue = queue.Queue(capacity)
        self._thread = threading.Thread(target=self._run, name=f"{prefix}-log", daemon=True)
        self._thread.start()

    def sampled(self) -> bool:
        return self.sampling_rate >= 1.0 or self._rng.random() < self.sampling_rate

    def log(self, model: str, build: Callable[[], prediction_log_pb2.PredictionLog]) -> None:
        try:
            self._queue.put_nowait((model, build))
        except queue.Full:
            self.dropped += 1  # never slow down serving for the log

    def _open(self, now: float):
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(now))
        self.path = os.path.join(self.directory, f"{self.prefix}-{stamp}-{os.getpid()}.tfrecord")
        return tf.io.TFRecordWriter(self.path)

    def _run(self) -> None:
        writer, period = None, None
        try:
            while True:
                item = self._queue.get()
                if item is None:
                    break
                now = self._clock()
                if int(now // self.rotate_seconds) != period:
                    if writer is not None:
                        writer.close()
                    writer, period = self._open(now), int(now // self.rotate_seconds)
                model, build = item
                try:
                    writer.write(build().SerializeToString())
                    self.metrics.logged.labels(model, self.prefix).inc()
                except Exception as e:  # a record that cannot be built is skipped, not fatal
                    print(f"request log: record skipped: {type(e).__name__}: {e}", flush=True)
                if self._queue.empty():
                    writer.flush()
        finally:
            if writer is not None:
                writer.close()

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join()
