"""Rollback latency under load: from the registry change (`fairway rollback`) to the first
answer of the restored version, and the requests that failed meanwhile.

    make bench-release                               # the pushed model of `make run`
    make bench-release ARGS="--cycles 20 --threads 4"

The latest pushed version is copied as two versions (1 and 2) into a private output folder with
its own registry, so your registry is untouched. `fairway serve --registry` runs as its own
process on 127.0.0.1; client threads send real eval rows over REST at full speed (bounded by the
thread count and the run time) while the benchmark alternates promote(2) and rollback() on the
production alias. Target: every rollback reaches traffic within 2 s, with 0 failed requests.
Results: outputs/<dataset>/bench/release.{json,md}.
"""
from __future__ import annotations

import argparse
import csv
import http.client
import json
import pathlib
import shutil
import sys
import tempfile
import threading
import time

import numpy as np
import tensorflow as tf

from pipeline import config
from release import registry
from runners.serve_process import serve
from serving import client as client_lib
from serving.servable import Servable

TARGET_SECONDS = 2.0


class Load:
    """Client threads on loopback; each answer is recorded as (time, version or None)."""

    def __init__(self, port: int, model: str, bodies: list[bytes], threads: int):
        self.port, self.path, self.bodies = port, f"/v1/models/{model}:predict", bodies
        self.answers: list[tuple[float, int | None]] = []
        self.failures: list[str] = []
        self._stop, self._lock = threading.Event(), threading.Lock()
        self._threads = [threading.Thread(target=self._run, args=(i,), daemon=True)
                         for i in range(threads)]

    def _run(self, i: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        n = i
        while not self._stop.is_set():
            n += 1
            try:
                conn.request("POST", self.path, self.bodies[n % len(self.bodies)],
                             {"X-Request-Id": f"bench-{i}-{n}"})
                r = conn.getresponse()
                r.read()
                version = int(r.getheader("X-Model-Version")) if r.status == 200 else None
                if r.status != 200:
                    self.failures.append(f"HTTP {r.status}")
            except (OSError, http.client.HTTPException) as e:
                version = None
                self.failures.append(f"{type(e).__name__}: {e}")
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
            with self._lock:
                self.answers.append((time.monotonic(), version))

    def __enter__(self):
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        for t in self._threads:
            t.join()

    def first_answer_from(self, version: int, since: float, timeout: float = 30.0) -> float:
        """Seconds from `since` until answers come only from `version` (the last answer from
        any other version, sent after `since`, ends the switch)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                after = [(t, v) for t, v in self.answers if t >= since]
            if any(v == version for _, v in after):
                time.sleep(0.3)  # requests in flight at the switch finish on the old version
                with self._lock:
                    after = [(t, v) for t, v in self.answers if t >= since]
                last_other = max((t for t, v in after if v != version), default=since)
                first = min(t for t, v in after if v == version)
                return max(first, last_other) - since
            time.sleep(0.01)
        raise TimeoutError(f"version {version} never answered within {timeout} s")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dataset", default="census")
    ap.add_argument("--output", metavar="DIR", help="the run whose pushed model is copied "
                                                   "(default: outputs/<dataset>)")
    ap.add_argument("--cycles", type=int, default=10, help="promote + rollback pairs")
    ap.add_argument("--threads", type=int, default=4, help="client threads")
    args = ap.parse_args(argv)

    src = config.preset(args.dataset, output_dir=args.output)
    versions = sorted(p for p in src.model_base_dir.iterdir() if p.name.isdigit()) \
        if src.model_base_dir.is_dir() else []
    if not versions:
        sys.exit(f"{src.model_base_dir}: no pushed model; run `make run` first")
    work = pathlib.Path(tempfile.mkdtemp(prefix="bench-release-"))
    cfg = config.preset(args.dataset, output_dir=work)
    for n in (1, 2):
        shutil.copytree(versions[-1], cfg.model_base_dir / str(n))
    cfg.metadata_path.parent.mkdir(parents=True, exist_ok=True)
    from ml_metadata.metadata_store import metadata_store

    from pipeline import metadata
    metadata_store.MetadataStore(metadata.connection_config(cfg))  # creates the SQLite store
    reg = registry.Registry(cfg)
    why = {"force": True, "reason": "benchmark: a copy of the pushed model"}
    reg.promote(1, "production", **why)

    servable = Servable(cfg.model_name, 1, str(cfg.model_base_dir / "1"))
    sig = servable.signature("serving_default")
    eval_csv = next((config.data_home() / args.dataset / "eval").glob("*.csv"))
    with eval_csv.open() as f:
        raw = [r for _, r in zip(range(64), csv.DictReader(f))]
    rows = client_lib.coerce(raw, {k: "DT_STRING" if v.dtype == tf.string else "DT_INT64"
                                   if v.dtype.is_integer else "DT_FLOAT"
                                   for k, v in sig.inputs.items()})
    bodies = [json.dumps({"instances": [r]}).encode() for r in rows]

    latencies = []
    with serve(work, "--dataset", args.dataset, "--output", str(work), "--registry") as server:
        with Load(server.rest_port, cfg.model_name, bodies, args.threads) as load:
            time.sleep(2)
            for cycle in range(args.cycles):
                reg.promote(2, "production", **why)
                load.first_answer_from(2, time.monotonic())
                started = time.monotonic()
                reg.rollback(reason=f"benchmark cycle {cycle}")
                latencies.append(load.first_answer_from(1, started))
                print(f"cycle {cycle + 1}/{args.cycles}: rollback reached traffic in "
                      f"{latencies[-1]:.3f} s", flush=True)
        answers, failures = len(load.answers), load.failures
    seconds = np.array(latencies)
    result = {"cycles": args.cycles, "threads": args.threads, "requests": answers,
              "failed_requests": len(failures), "failures": failures[:10],
              "rollback_p50_s": round(float(np.percentile(seconds, 50)), 3),
              "rollback_max_s": round(float(seconds.max()), 3),
              "target_s": TARGET_SECONDS,
              "passed": bool(seconds.max() <= TARGET_SECONDS and not failures)}
    out = src.command_dir("bench")
    out.mkdir(parents=True, exist_ok=True)
    (out / "release.json").write_text(json.dumps(result, indent=2))
    (out / "release.md").write_text(
        f"# Rollback latency under load\n\n{args.threads} client threads, {answers} requests, "
        f"{len(failures)} failed; {args.cycles} rollbacks: p50 {result['rollback_p50_s']} s, "
        f"max {result['rollback_max_s']} s (target ≤ {TARGET_SECONDS} s): "
        f"{'PASS' if result['passed'] else 'FAIL'}\n")
    print(json.dumps(result, indent=2))
    shutil.rmtree(work, ignore_errors=True)
    return 0 if result["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
