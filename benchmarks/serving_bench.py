"""Serving latency and throughput: REST and gRPC of `fairway serve` vs the same SavedModel
called in-process, at batch 1 and batch 64, on real eval rows.

    make bench-serving                                  # the pushed census model
    make bench-serving ARGS="--model-dir DIR --calls 3000"

The server runs as its own process on 127.0.0.1 (as in production, it shares the 2 cores with
the client). Request bodies/protos are built once, so the numbers are server + transport. In-process, REST
and gRPC calls are interleaved so they see the same machine load.
Results: outputs/<dataset>/bench/serving.{json,md}.

`--explain` measures instead what explanations cost: the model's `explain` signature against
`serving_default`, in-process, over REST (`:explain` vs `:predict`) and gRPC (Predict with
signature_name explain), at batch 1 and 64: outputs/<dataset>/bench/serving-explain.{json,md}.

`--validate` measures the latency `fairway serve --validate reject` adds to valid requests
against `--validate off` (REST :predict, REST :classify with tf.Examples, gRPC Predict; batch 1
and 64) and the checks alone in-process: outputs/<dataset>/bench/serving-validate.{json,md}.
"""
from __future__ import annotations

import argparse
import contextlib
import csv
import http.client
import json
import os
import pathlib
import platform
import sys
import threading
import time

import grpc
import numpy as np
import tensorflow as tf

from pipeline import config
from runners.serve_process import serve
from serving import client as client_lib
from serving.servable import Servable

TARGET_P99_RATIO, TARGET_ROWS_PER_S = 3.0, 5000


def percentiles(times_s: list[float]) -> dict:
    ms = np.array(times_s) * 1e3
    return {"p50_ms": round(float(np.percentile(ms, 50)), 3),
            "p99_ms": round(float(np.percentile(ms, 99)), 3), "calls": len(ms)}


def timed(calls: dict, n: int, warm: int = 50) -> dict[str, list[float]]:
    """Seconds per call of each callable, called round-robin n times."""
    for _ in range(warm):
        for call in calls.values():
            call()
    out = {k: [] for k in calls}
    for _ in range(n):
        for k, call in calls.items():
            t = time.perf_counter()
            call()
            out[k].append(time.perf_counter() - t)
    return out


def throughput(make_call, threads: int, seconds: float, rows: int) -> float:
    """Rows/s with `threads` clients each sending back-to-back requests."""
    counts = [0] * threads
    stop = time.monotonic() + seconds

    def worker(i):
        call = make_call()
        while time.monotonic() < stop:
            call()
            counts[i] += 1
    ts = [threading.Thread(target=worker, args=(i,)) for i in range(threads)]
    start = time.monotonic()
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return sum(counts) * rows / (time.monotonic() - start)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dataset", default="census")
    ap.add_argument("--model-dir", help="base path of versions (default: the pushed model)")
    ap.add_argument("--calls", type=int, default=2000, help="timed calls at batch 1")
    ap.add_argument("--seconds", type=float, default=10.0, help="per throughput run")
    ap.add_argument("--explain", action="store_true",
                    help="latency of :explain against :predict instead")
    ap.add_argument("--validate", action="store_true",
                    help="latency added by `fairway serve --validate reject` against off "
                         "instead")
    ap.add_argument("--eval-csv", help="rows to send (default: the dataset's eval CSV)")
    args = ap.parse_args(argv)

    cfg = config.preset(args.dataset)
    base = pathlib.Path(args.model_dir or cfg.serving_dir / cfg.model_name)
    versions = sorted(p for p in base.iterdir() if p.name.isdigit()) if base.is_dir() else []
    if not versions:
        sys.exit(f"{base}: no pushed model; run `make run` first")
    servable = Servable(cfg.model_name, int(versions[-1].name), str(versions[-1]))
    sig = servable.signature("serving_default")
    eval_csv = pathlib.Path(args.eval_csv) if args.eval_csv else next(
        (config.data_home() / args.dataset / "eval").glob("*.csv"))
    with eval_csv.open() as f:
        raw = [r for _, r in zip(range(64), csv.DictReader(f))]
    rows = client_lib.coerce(raw, {k: "DT_STRING" if v.dtype == tf.string else "DT_INT64"
                                   if v.dtype.is_integer else "DT_FLOAT"
                                   for k, v in sig.inputs.items()})
    if args.explain:
        return explain_bench(args, cfg, base, servable, rows)
    if args.validate:
        return validate_bench(args, cfg, versions[-1], servable, rows)
    result = {"model": str(versions[-1]), "python": platform.python_version(),
              "cpus": os.cpu_count(), "in_process": {}, "rest": {}, "grpc": {}}
    calls = {1: args.calls, 64: max(200, args.calls // 4)}

    with serve(pathlib.Path("/tmp"), "--model-dir", str(base), "--model-name",
                       cfg.model_name) as server:
        from tensorflow_serving.apis import (get_model_status_pb2, model_service_pb2_grpc,
                                             predict_pb2, prediction_service_pb2_grpc)
        conn = http.client.HTTPConnection("127.0.0.1", server.rest_port)
        channel = grpc.insecure_channel(server.grpc_target)
        predict_stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        status_stub = model_service_pb2_grpc.ModelServiceStub(channel)

        def rest_status():
            conn.request("GET", f"/v1/models/{cfg.model_name}")
            conn.getresponse().read()
        status_req = get_model_status_pb2.GetModelStatusRequest()
        status_req.model_spec.name = cfg.model_name
        print("status round trips (transport alone, no TensorFlow) ...", flush=True)
        result["transport_only"] = {k: percentiles(v) for k, v in timed({
            "rest_status": rest_status,
            "grpc_status": lambda: status_stub.GetModelStatus(status_req)},
            args.calls).items()}

        for batch, n in calls.items():
            print(f"in-process, REST and gRPC interleaved, batch {batch} ...", flush=True)
            tensors = {k: tf.constant([r[k] for r in rows[:batch]], v.dtype)
                       for k, v in sig.inputs.items()}
            arrays = {k: t.numpy() for k, t in tensors.items()}
            body = json.dumps({"instances": rows[:batch]}).encode()
            path = f"/v1/models/{cfg.model_name}:predict"
            req = predict_pb2.PredictRequest()
            req.model_spec.name = cfg.model_name
            for k, v in sig.inputs.items():
                vals = [r[k] for r in rows[:batch]]
                req.inputs[k].CopyFrom(tf.make_tensor_proto(
                    np.array(vals, dtype=object) if v.dtype == tf.string else vals, v.dtype))

            def rest_call(conn=None):
                conn = conn or http.client.HTTPConnection("127.0.0.1", server.rest_port)

                def call():
                    conn.request("POST", path, body, {"Content-Type": "application/json"})
                    r = conn.getresponse()
                    r.read()
                    assert r.status == 200
                return call

            def grpc_call():
                return lambda: predict_stub.Predict(req, timeout=30)

            # Interleaved, so all four see the same machine (2 cores shared with the server).
            times = timed({"signature_call": lambda: sig.fn(**tensors),
                           "servable_run": lambda: servable.run(sig, arrays),
                           "rest": rest_call(conn), "grpc": grpc_call()}, n)
            key = f"batch_{batch}"
            result["in_process"][key] = {k: percentiles(times[k])
                                         for k in ("signature_call", "servable_run")}
            for name, make in (("rest", rest_call), ("grpc", grpc_call)):
                entry = percentiles(times[name])
                if batch == 64:
                    entry["rows_per_s_1_client"] = round(throughput(make, 1, args.seconds, 64))
                    entry["rows_per_s_4_clients"] = round(throughput(make, 4, args.seconds, 64))
                result[name][key] = entry
        channel.close()

    floor = result["in_process"]["batch_1"]["signature_call"]["p99_ms"]
    result["targets"] = {
        f"{api}_p99_batch1_vs_in_process": {
            "ratio": round(result[api]["batch_1"]["p99_ms"] / floor, 2),
            "target": TARGET_P99_RATIO,
            "met": result[api]["batch_1"]["p99_ms"] <= TARGET_P99_RATIO * floor}
        for api in ("rest", "grpc")}
    for api in ("rest", "grpc"):
        best = max(result[api]["batch_64"]["rows_per_s_1_client"],
                   result[api]["batch_64"]["rows_per_s_4_clients"])
        result["targets"][f"{api}_rows_per_s_batch64"] = {
            "value": best, "target": TARGET_ROWS_PER_S, "met": best >= TARGET_ROWS_PER_S}
    out = cfg.command_dir("bench")
    out.mkdir(parents=True, exist_ok=True)
    (out / "serving.json").write_text(json.dumps(result, indent=2))
    (out / "serving.md").write_text(markdown(result))
    print(markdown(result))
    print(f"written: {out / 'serving.json'}, {out / 'serving.md'}")
    return 0


def explain_bench(args, cfg, base: pathlib.Path, servable: Servable, rows: list[dict]) -> int:
    """p50/p99 of predict vs explain: in-process, REST, gRPC; interleaved at each batch."""
    from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

    if "explain" not in servable.signatures:
        sys.exit(f"{servable.path}: no 'explain' signature (pushed before explanations)")
    name = servable.name
    result = {"model": servable.path, "cpus": os.cpu_count(), "batches": {}}
    with serve(pathlib.Path("/tmp"), "--model-dir", str(base), "--model-name", name) as server:
        conn = http.client.HTTPConnection("127.0.0.1", server.rest_port)
        channel = grpc.insecure_channel(server.grpc_target)
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        for batch in (1, 64):
            print(f"predict vs explain, batch {batch} ...", flush=True)
            calls = {}
            for verb, sig_name in (("predict", "serving_default"), ("explain", "explain")):
                sig = servable.signature(sig_name)
                tensors = {k: tf.constant([r[k] for r in rows[:batch]], v.dtype)
                           for k, v in sig.inputs.items()}
                body = json.dumps({"instances": rows[:batch]}).encode()
                req = predict_pb2.PredictRequest()
                req.model_spec.name, req.model_spec.signature_name = name, sig_name
                for k, v in sig.inputs.items():
                    vals = [r[k] for r in rows[:batch]]
                    req.inputs[k].CopyFrom(tf.make_tensor_proto(
                        np.array(vals, dtype=object) if v.dtype == tf.string else vals, v.dtype))

                def rest(path=f"/v1/models/{name}:{verb}", body=body):
                    conn.request("POST", path, body, {"Content-Type": "application/json"})
                    r = conn.getresponse()
                    r.read()
                    assert r.status == 200
                calls[f"in_process_{verb}"] = lambda fn=sig.fn, t=tensors: fn(**t)
                calls[f"rest_{verb}"] = rest
                calls[f"grpc_{verb}"] = lambda req=req: stub.Predict(req, timeout=60)
            n = args.calls if batch == 1 else max(50, args.calls // 8)
            result["batches"][batch] = {k: percentiles(v) for k, v in
                                        timed(calls, n, warm=10).items()}
        channel.close()
    out = cfg.command_dir("bench")
    out.mkdir(parents=True, exist_ok=True)
    lines = ["| path | batch | predict p50 ms | predict p99 ms | explain p50 ms | "
             "explain p99 ms | explain/predict p50 |", "|---|---|---|---|---|---|---|"]
    for batch, r in result["batches"].items():
        for path in ("in_process", "rest", "grpc"):
            p, x = r[f"{path}_predict"], r[f"{path}_explain"]
            lines.append(f"| {path} | {batch} | {p['p50_ms']} | {p['p99_ms']} | {x['p50_ms']} | "
                         f"{x['p99_ms']} | {x['p50_ms'] / p['p50_ms']:.1f}x |")
    text = "\n".join(lines) + "\n"
    (out / "serving-explain.json").write_text(json.dumps(result, indent=2))
    (out / "serving-explain.md").write_text(text)
    print(text)
    print(f"written: {out / 'serving-explain.json'}, {out / 'serving-explain.md'}")
    return 0


def validate_bench(args, cfg, version: pathlib.Path, servable: Servable,
                   rows: list[dict]) -> int:
    """p50/p99 of the same valid requests to a server with --validate off and one with
    --validate reject (a copy of the version carrying the serving schema, as ServingCheck
    writes it now), interleaved: REST :predict (instances), REST :classify (tf.Examples) and
    gRPC Predict, at batch 1 and 64; plus the checks alone, in-process."""
    import shutil
    import tempfile

    from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

    from pipeline import serving_check
    from serving import validation

    name = servable.name
    tmp = pathlib.Path(tempfile.mkdtemp(prefix="fairway-bench-validate-"))
    try:
        copy = tmp / name / version.name
        shutil.copytree(version, copy)
        if not (copy / validation.SCHEMA_FILE).exists():  # pushed before the serving schema
            serving_check.write_serving_schema(str(cfg.dataset.schema_file.parent), str(copy))
        validator = validation.load(str(copy))
        sig = servable.signature("serving_default")
        arrays = {k: np.array([r[k] for r in rows], dtype=object if v.dtype == tf.string
                              else v.np_dtype) for k, v in sig.inputs.items()}
        arrays = {k: (np.array([x.encode() for x in a], dtype=object) if a.dtype == object
                      else a) for k, a in arrays.items()}
        valid = [i for i in range(len(rows))
                 if not validator.check(sig, {k: a[i:i + 1] for k, a in arrays.items()})]
        rows = [rows[i] for i in valid]  # only valid requests: served in both modes
        print(f"{len(valid)} of 64 eval rows pass the schema; sending those", flush=True)
        result = {"model": str(version), "cpus": os.cpu_count(), "rows": len(rows),
                  "batches": {}}
        with contextlib.ExitStack() as stack:
            servers = {mode: stack.enter_context(serve(
                tmp, "--model-dir", str(tmp / name), "--model-name", name, "--validate", mode,
                "--no-warmup")) for mode in ("off", "reject")}
            assert "requests validated against" in servers["reject"].output()
            channels = {m: stack.enter_context(grpc.insecure_channel(s.grpc_target))
                        for m, s in servers.items()}
            conns = {m: http.client.HTTPConnection("127.0.0.1", s.rest_port)
                     for m, s in servers.items()}
            for batch in (1, 64):
                batch_rows = (rows * 64)[:batch]
                print(f"--validate off vs reject, batch {batch} ...", flush=True)
                predict_body = json.dumps({"instances": batch_rows}).encode()
                # tf.Examples as the training data has them: integers for INT features, a
                # missing value (NaN, "") left out.
                ex_rows = [{k: int(v) if isinstance(v, float) and v.is_integer() and
                            k in validator.checks and validator.checks[k].type ==
                            validation.schema_pb2.INT else v for k, v in r.items()
                            if v != "" and not (isinstance(v, float) and v != v)}
                           for r in batch_rows]
                classify_body = json.dumps({"signature_name": "classification",
                                            "examples": ex_rows}).encode()
                req = predict_pb2.PredictRequest()
                req.model_spec.name = name
                for k, v in sig.inputs.items():
                    vals = [r[k] for r in batch_rows]
                    req.inputs[k].CopyFrom(tf.make_tensor_proto(
                        np.array(vals, dtype=object) if v.dtype == tf.string else vals, v.dtype))
                calls = {}
                for mode in servers:
                    stub = prediction_service_pb2_grpc.PredictionServiceStub(channels[mode])

                    def rest(verb, body, conn=conns[mode]):
                        def call():
                            conn.request("POST", f"/v1/models/{name}:{verb}", body,
                                         {"Content-Type": "application/json"})
                            r = conn.getresponse()
                            r.read()
                            assert r.status == 200
                        return call
                    calls[f"rest_predict_{mode}"] = rest("predict", predict_body)
                    calls[f"rest_classify_{mode}"] = rest("classify", classify_body)
                    calls[f"grpc_predict_{mode}"] = lambda stub=stub: stub.Predict(req,
                                                                                   timeout=30)
                batch_arrays = {k: np.concatenate([a[valid]] * 64)[:batch]
                                for k, a in arrays.items()}
                examples = np.array([tf.train.Example(features=tf.train.Features(feature={
                    k: tf.train.Feature(bytes_list=tf.train.BytesList(value=[v.encode()]))
                    if isinstance(v, str) else
                    tf.train.Feature(int64_list=tf.train.Int64List(value=[v]))
                    if isinstance(v, int) else
                    tf.train.Feature(float_list=tf.train.FloatList(value=[v]))
                    for k, v in r.items()})).SerializeToString() for r in ex_rows],
                    dtype=object)
                ex_sig = servable.signature("classification")
                calls["check_tensors_in_process"] = lambda a=batch_arrays: validator.check(sig, a)
                calls["check_examples_in_process"] = lambda e=examples: validator.check(
                    ex_sig, {"inputs": e})
                n = args.calls if batch == 1 else max(50, args.calls // 4)
                times = timed(calls, n, warm=20)
                entry = {k: percentiles(v) for k, v in times.items()}
                for path in ("rest_predict", "rest_classify", "grpc_predict"):
                    off, rej = entry[f"{path}_off"], entry[f"{path}_reject"]
                    entry[f"{path}_added"] = {q: round(rej[q] - off[q], 3)
                                              for q in ("p50_ms", "p99_ms")}
                result["batches"][batch] = entry
            for conn in conns.values():
                conn.close()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    lines = ["| path | batch | off p50 ms | reject p50 ms | added p50 ms | off p99 ms | "
             "reject p99 ms | added p99 ms |", "|---|---|---|---|---|---|---|---|"]
    for batch, r in result["batches"].items():
        for path in ("rest_predict", "rest_classify", "grpc_predict"):
            off, rej, add = r[f"{path}_off"], r[f"{path}_reject"], r[f"{path}_added"]
            lines.append(f"| {path} | {batch} | {off['p50_ms']} | {rej['p50_ms']} | "
                         f"{add['p50_ms']} | {off['p99_ms']} | {rej['p99_ms']} | "
                         f"{add['p99_ms']} |")
        for path in ("check_tensors_in_process", "check_examples_in_process"):
            c = r[path]
            lines.append(f"| {path} (the checks alone) | {batch} | | | {c['p50_ms']} | | | "
                         f"{c['p99_ms']} |")
    text = "\n".join(lines) + "\n"
    out = cfg.command_dir("bench")
    out.mkdir(parents=True, exist_ok=True)
    (out / "serving-validate.json").write_text(json.dumps(result, indent=2))
    (out / "serving-validate.md").write_text(text)
    print(text)
    print(f"written: {out / 'serving-validate.json'}, {out / 'serving-validate.md'}")
    return 0


def markdown(r: dict) -> str:
    lines = ["| path | batch | p50 ms | p99 ms | rows/s (1 client) | rows/s (4 clients) |",
             "|---|---|---|---|---|---|"]
    for batch in (1, 64):
        key = f"batch_{batch}"
        for label, entry in (("in-process signature call", r["in_process"][key]["signature_call"]),
                             ("in-process Servable.run (server's call)",
                              r["in_process"][key]["servable_run"]),
                             ("REST", r["rest"][key]), ("gRPC", r["grpc"][key])):
            lines.append(f"| {label} | {batch} | {entry['p50_ms']} | {entry['p99_ms']} | "
                         f"{entry.get('rows_per_s_1_client', '')} | "
                         f"{entry.get('rows_per_s_4_clients', '')} |")
    for label, entry in (("REST status (no TensorFlow)", r["transport_only"]["rest_status"]),
                         ("gRPC status (no TensorFlow)", r["transport_only"]["grpc_status"])):
        lines.append(f"| {label} | - | {entry['p50_ms']} | {entry['p99_ms']} | | |")
    lines.append("")
    for name, t in r["targets"].items():
        value = t.get("ratio", t.get("value"))
        lines.append(f"- {name}: {value} (target {t['target']}) "
                     f"{'met' if t['met'] else 'NOT met'}")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
