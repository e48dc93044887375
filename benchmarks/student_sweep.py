"""What carries the MinDiff teacher's fairness into the distilled student: a sweep of student
settings over seeds, on the artifacts of real pipeline runs.

    make bench-student ARGS="--seeds 3 [--config FILE] [--set mindiff.kernel=rate_gap]"

Per seed, the pipeline runs once with the BaselineTrainer (`fairway compare`'s DAG) in the
benchmark's own folder; the upstream nodes are cached across seeds. Then every student variant
is trained in-process by the StudentTrainer's own `student_run_fn`, on that run's transformed
examples and teacher, and scored like `fairway compare` scores (AUC, FPR gap on the eval split).
The pipeline's student (the config's defaults) is one of the rows, as a check of the harness.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import pathlib
import sys
import tempfile
import time

import numpy as np

from pipeline import config as config_lib

VARIANTS = {  # name -> distillation overrides
    "a.2 T2": {"alpha": 0.2, "temperature": 2.0, "mindiff_weight": 0.0},
    "a0 T2": {"alpha": 0.0, "temperature": 2.0, "mindiff_weight": 0.0},
    "a0 T1": {"alpha": 0.0, "temperature": 1.0, "mindiff_weight": 0.0},
    "a.2 T2 md3": {"alpha": 0.2, "temperature": 2.0, "mindiff_weight": 3.0},
    "a0 T2 md1": {"alpha": 0.0, "temperature": 2.0, "mindiff_weight": 1.0},
    "a0 T2 md3": {"alpha": 0.0, "temperature": 2.0, "mindiff_weight": 3.0},
    "a0 T1 md3": {"alpha": 0.0, "temperature": 1.0, "mindiff_weight": 3.0},
    "a0 T2 md.5": {"alpha": 0.0, "temperature": 2.0, "mindiff_weight": 0.5},
    "a0 T4": {"alpha": 0.0, "temperature": 4.0, "mindiff_weight": 0.0},
    "a0 rg.5": {"alpha": 0.0, "temperature": 2.0, "mindiff_weight": 0.5,
                "mindiff_kernel": "rate_gap"},
    "a0 rg1": {"alpha": 0.0, "temperature": 2.0, "mindiff_weight": 1.0,
               "mindiff_kernel": "rate_gap"},
    "a.2 rg1": {"alpha": 0.2, "temperature": 2.0, "mindiff_weight": 1.0,
                "mindiff_kernel": "rate_gap"},
    "a0 rg.2": {"alpha": 0.0, "temperature": 2.0, "mindiff_weight": 0.2,
                "mindiff_kernel": "rate_gap"},
    "a.2 rg.3": {"alpha": 0.2, "temperature": 2.0, "mindiff_weight": 0.3,
                 "mindiff_kernel": "rate_gap"},
}


def _artifact(cls, uri: str, splits=None):
    from tfx.types import artifact_utils

    a = cls()
    a.uri = uri
    if splits:
        a.split_names = artifact_utils.encode_split_names(list(splits))
    return a


def fn_args(summary, cfg, distillation: dict, out_dir: str):
    """The StudentTrainer's FnArgs for `distillation` settings, built the way TFX's Trainer
    executor builds them from the run's artifacts."""
    from tfx.components.trainer import fn_args_utils
    from tfx.types import standard_artifacts as sa

    from pipeline import metadata
    from pipeline import pipeline as pipeline_lib

    node = lambda n, k: metadata.node_artifact(summary, n, k)  # noqa: E731
    inputs = {
        "examples": [_artifact(sa.Examples, node("Transform", "Examples"), ("train", "eval"))],
        "transform_graph": [_artifact(sa.TransformGraph, node("Transform", "TransformGraph"))],
        "schema": [_artifact(sa.Schema, node("ImportSchemaGen", "Schema"))],
        "base_model": [_artifact(sa.Model, node(pipeline_lib.TEACHER, "Model"))],
    }
    _, custom = pipeline_lib.trainer_configs(cfg)
    custom["distillation"] = {**custom["distillation"], **distillation}
    props = {"train_args": json.dumps({"num_steps": cfg.training.train_steps}),
             "eval_args": json.dumps({"num_steps": cfg.training.eval_steps}),
             "custom_config": json.dumps(custom)}
    args = fn_args_utils.get_common_fn_args(inputs, props)
    args.transform_output = args.transform_graph_path  # what the executor also sets
    args.serving_model_dir = out_dir
    args.model_run_dir = out_dir + "-run"
    return args


def score_dir(model_dir: str, data, cfg) -> dict:
    import tensorflow as tf

    from pipeline.metrics import score
    from runners.compare import quality

    sig = tf.saved_model.load(model_dir).signatures["from_examples"]
    return quality(data.labels, score(sig, data.serialized), data.groups, cfg)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--config", help="a config TOML (default: the census preset)")
    p.add_argument("--seeds", type=int, default=5, help="the last seed (default 5)")
    p.add_argument("--first-seed", type=int, default=1)
    p.add_argument("--variants", default=",".join(VARIANTS),
                   help=f"comma-separated, of: {', '.join(VARIANTS)}")
    p.add_argument("--output", default=None)
    p.add_argument("--sample", type=int, default=None)
    p.add_argument("--train-steps", type=int, default=None)
    p.add_argument("--set", action="append", default=[], metavar="TABLE.KEY=VALUE",
                   help="a config override, e.g. mindiff.kernel=rate_gap")
    a = p.parse_args(argv)
    unknown = set(a.variants.split(",")) - set(VARIANTS)
    if unknown:
        p.error(f"--variants: unknown {sorted(unknown)}; expected some of {list(VARIANTS)}")
    name = pathlib.Path(a.config).stem if a.config else "census"
    out = pathlib.Path(a.output or config_lib.outputs_dir("bench-student") / name)
    overrides = {"training": {"train_steps": a.train_steps}} if a.train_steps else {}
    for item in a.set:
        key, _, value = item.partition("=")
        table, _, field = key.partition(".")
        if not (value and field):
            p.error(f"--set {item!r}: expected TABLE.KEY=VALUE, e.g. mindiff.kernel=rate_gap")
        overrides.setdefault(table, {})[field] = json.loads(value) if value[:1].isdigit() \
            else value
    kw = {"output_dir": out, "sample": a.sample, "overrides": overrides}
    cfg = config_lib.load(a.config, **kw) if a.config else config_lib.preset("census", **kw)
    from modules import trainer
    from pipeline import artifacts, metadata
    from pipeline import pipeline as pipeline_lib
    from pipeline.metrics import EvalData
    from runners import local

    rows = []
    results_path = out / "sweep.jsonl"
    for seed in range(a.first_seed, a.seeds + 1):
        scfg = dataclasses.replace(cfg, training=dataclasses.replace(cfg.training, seed=seed))
        t = time.monotonic()
        local.run(scfg, with_baseline=True)
        summary = metadata.run_summary(scfg)
        data = EvalData(metadata.node_artifact(summary, "CsvExampleGen", "Examples"), scfg)
        base = {}
        for model, node in (("baseline", pipeline_lib.BASELINE), ("teacher", pipeline_lib.TEACHER),
                            ("pipeline-student", pipeline_lib.STUDENT)):
            base[model] = score_dir(artifacts.serving_model_dir(
                metadata.node_artifact(summary, node, "Model")), data, scfg)
        print(f"seed {seed}: pipeline {time.monotonic() - t:.0f}s blessed={summary['blessed']} "
              + " ".join(f"{k} {v['auc']:.4f}/{v['fpr_gap']:.4f}" for k, v in base.items()),
              flush=True)
        for vname in a.variants.split(","):
            t = time.monotonic()
            with tempfile.TemporaryDirectory() as tmp:
                args = fn_args(summary, scfg, VARIANTS[vname], tmp + "/serving")
                trainer.student_run_fn(args)
                m = score_dir(tmp + "/serving", data, scfg)
            row = {"dataset": name, "seed": seed, "variant": vname, "set": a.set, **{
                f"{k}_{x}": base[k][x] for k in ("baseline", "teacher") for x in ("auc", "fpr_gap")},
                "auc": m["auc"], "fpr_gap": m["fpr_gap"], "seconds": time.monotonic() - t}
            bcut = 1 - row["teacher_fpr_gap"] / row["baseline_fpr_gap"]
            row["cut"] = 1 - m["fpr_gap"] / row["baseline_fpr_gap"]
            row["kept"] = row["cut"] / bcut if bcut > 0 else float("nan")
            rows.append(row)
            with results_path.open("a") as f:
                f.write(json.dumps(row) + "\n")
            print(f"  {vname:>12}: AUC {m['auc']:.4f} gap {m['fpr_gap']:.4f} cut {row['cut']:.0%}"
                  f" kept {row['kept']:.0%} ({row['seconds']:.0f}s)", flush=True)
    print(f"\n| {name} variant | AUC mean | gap mean | cut mean | cut min | kept mean | "
          "AUC drop vs baseline |")
    print("|---|---|---|---|---|---|---|")
    for vname in a.variants.split(","):
        r = [x for x in rows if x["variant"] == vname]
        print(f"| {vname} | {np.mean([x['auc'] for x in r]):.4f} | "
              f"{np.mean([x['fpr_gap'] for x in r]):.4f} | {np.mean([x['cut'] for x in r]):.0%} | "
              f"{min(x['cut'] for x in r):.0%} | {np.mean([x['kept'] for x in r]):.0%} | "
              f"{np.mean([x['baseline_auc'] - x['auc'] for x in r]):.4f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
