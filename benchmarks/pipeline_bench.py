"""Wall-time benchmark: the full default pipeline, its cached re-run (in-process, and as the
`fairway run` command a user types), and TFX's taxi example.

    make bench                      # all three, results in outputs/bench/results.json
    make bench ARGS="--no-reference"
"""
from __future__ import annotations

import argparse
import json
import os
import pathlib
import platform
import shutil
import subprocess
import sys
import time

from pipeline import config
from pipeline import metadata
from runners import local


def time_fairway(out: pathlib.Path, dataset: str) -> dict:
    shutil.rmtree(out, ignore_errors=True)
    cfg = config.preset(dataset, output_dir=out)
    first = local.run(cfg)
    summary = metadata.run_summary(cfg)
    # The first re-run re-evaluates: the baseline it resolves is now the model just blessed.
    cached = local.run(cfg)
    rerun = metadata.run_summary(cfg)
    fully_cached = local.run(cfg)
    command = time_command_rerun(cfg, ["--dataset", dataset])
    return {
        "dataset": dataset, "full_run_s": round(first, 1), "cached_rerun_s": round(cached, 1),
        "second_cached_rerun_s": round(fully_cached, 1),
        **command, "command_rerun_vs_full_run": round(command["command_rerun_s"] / first, 3),
        "node_seconds": {n["node"]: n["seconds"] for n in summary["nodes"]},
        "rerun_states": {n["node"]: n["state"] for n in rerun["nodes"]},
        "auc": {k: v.get("auc") for k, v in summary["metrics"].items()
                if k == "Overall" or k.startswith("sex=")},
        "blessed": summary["blessed"], "pushed_version": summary["pushed_version"],
    }


def time_command_rerun(cfg: config.PipelineConfig, args: list[str]) -> dict:
    """`fairway run` with nothing changed, in a new process as a user runs it: unlike the
    in-process re-runs it pays the TensorFlow/TFX imports, the post-run status, card and push
    policy, and the interpreter's exit. Also timed: a process that only imports what a run
    imports (the share of the imports)."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    start = time.monotonic()
    subprocess.run([sys.executable, "-c", "from runners import local, report, card_cmd, "
                    "release_cmd; from pipeline import pipeline"],
                   env=env, check=True, capture_output=True)
    imports = time.monotonic() - start
    out = cfg.output_dir
    log = out / "logs" / "bench-command-rerun.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    start = time.monotonic()
    with log.open("w") as f:
        rc = subprocess.run([sys.executable, "-m", "runners.cli", "run", "--output", str(out),
                             *args], env=env, stdout=f, stderr=subprocess.STDOUT).returncode
    wall = time.monotonic() - start
    if rc != 0:
        raise RuntimeError(f"`fairway run` exited {rc}; see {log}")
    states = {n["node"]: n["state"] for n in metadata.run_summary(cfg)["nodes"]}
    return {"command_rerun_s": round(wall, 1), "command_imports_only_s": round(imports, 1),
            "command_rerun_states": states}


def time_tfx_taxi_example(out: pathlib.Path) -> dict:
    """TFX's own chicago_taxi_pipeline/taxi_pipeline_native_keras.py, as shipped in the wheel."""
    from tfx import v1 as tfx
    from tfx.examples.chicago_taxi_pipeline import taxi_pipeline_native_keras as example

    shutil.rmtree(out, ignore_errors=True)
    root = pathlib.Path(example.__file__).parent
    p = example._create_pipeline(  # the example's own factory, with its own Beam args
        pipeline_name="chicago_taxi_native_keras", pipeline_root=str(out / "root"),
        data_root=str(root / "data" / "simple"),
        module_file=str(root / "taxi_utils_native_keras.py"),
        serving_model_dir=str(out / "serving"), metadata_path=str(out / "metadata.db"),
        beam_pipeline_args=example._beam_pipeline_args)
    start = time.monotonic()
    tfx.orchestration.LocalDagRunner().run(p)
    return {"components": len(p.components), "full_run_s": round(time.monotonic() - start, 1)}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--output", default=str(config.outputs_dir("bench")))
    ap.add_argument("--dataset", default="census")
    ap.add_argument("--no-reference", action="store_true", help="skip TFX's taxi example")
    args = ap.parse_args(argv)
    out = pathlib.Path(args.output)
    results = {"machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
               "fairway": time_fairway(out / args.dataset, args.dataset)}
    if not args.no_reference:
        results["tfx_taxi_example"] = time_tfx_taxi_example(out / "tfx_taxi_example")
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(results, indent=2))
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
