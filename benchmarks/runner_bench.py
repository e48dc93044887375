"""The same pipeline and data on the default in-process Beam runner and on a local Spark cluster.

    make bench-runners                          # full census data (48,842 rows), ~30 min
    make bench-runners ARGS="--sample 2000"     # quicker

Both runs start without cache. Per Beam component, the Spark side splits the component's time
into its Spark application (from the master) and the rest (Beam job submission, artifact
staging, waiting for the application to register). Results: outputs/bench/runners.{json,md}.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import pathlib
import shutil
import time

from pipeline import config
from pipeline import metadata
from runners import engine_jobs, local, spark


def timed_run(cfg: config.PipelineConfig, runner: str) -> dict:
    shutil.rmtree(cfg.output_dir, ignore_errors=True)
    start = time.monotonic()
    if runner == "spark":
        spark.run(cfg, spark.SparkOptions())
    else:
        local.run(cfg)
    wall = time.monotonic() - start
    summary = engine_jobs.attach(cfg, metadata.run_summary(cfg))
    nodes = {n["node"]: {"seconds": n["seconds"],
                         "spark_app_seconds": sum(a["duration"] for a in n.get(
                             "spark_applications", [])) / 1000 or None}
             for n in summary["nodes"]}
    return {"wall_s": round(wall, 1), "nodes": nodes,
            "auc": summary["metrics"].get("Overall", {}).get("auc")}


def markdown(results: dict) -> str:
    d, s = results["direct"], results["spark"]
    lines = [f"| node | {results['direct_runner']} s | Spark s | of which Spark app s |",
             "|---|---:|---:|---:|"]
    for node, v in d["nodes"].items():
        sv = s["nodes"].get(node, {})
        app = sv.get("spark_app_seconds")
        lines.append(f"| {node} | {v['seconds']:.1f} | {sv.get('seconds', 0):.1f} | "
                     f"{'' if app is None else f'{app:.1f}'} |")
    lines.append(f"| **whole run (wall)** | {d['wall_s']:.1f} | {s['wall_s']:.1f} | |")
    lines.append("")
    lines.append(f"Spark / {results['direct_runner']}: {s['wall_s'] / d['wall_s']:.2f}x; "
                 f"AUC {d['auc']:.4f} vs {s['auc']:.4f}")
    return "\n".join(lines)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--output", default=str(config.outputs_dir("bench")))
    ap.add_argument("--dataset", default="census")
    ap.add_argument("--sample", type=int, help="rows per split (default: all)")
    args = ap.parse_args(argv)
    out = pathlib.Path(args.output)
    base = config.preset(args.dataset, sample=args.sample)
    base = dataclasses.replace(base, enable_cache=False)
    results = {"dataset": args.dataset, "sample": args.sample, "cpus": os.cpu_count(),
               "direct_runner": " ".join(base.beam_args)}
    for runner in ("direct", "spark"):
        cfg = dataclasses.replace(base, output_dir=out / f"runners-{runner}")
        print(f"\n== {runner} ==", flush=True)
        results[runner] = timed_run(cfg, runner)
    out.mkdir(parents=True, exist_ok=True)
    (out / "runners.json").write_text(json.dumps(results, indent=2))
    (out / "runners.md").write_text(markdown(results) + "\n")
    print(markdown(results))


if __name__ == "__main__":
    main()
