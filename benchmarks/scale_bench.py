"""Scale on one machine: the default pipeline at several sizes, in one session.

    make bench-scale                                   # 48,842 (the dataset), 1M and 5M rows
    make bench-scale ARGS="--rows 48842,1000000"       # sizes: total rows, train + eval
    make bench-scale ARGS="--rows 1000000 --dataset taxi"

Each size is one `fairway run --no-cache` in a new process (as a user runs it; a cached run is
never timed), all in one output folder, so from the second size on the Evaluator also scores
the last blessed model (its AUC change threshold), as a user's next run does. The dataset's own rows are used at their size; a larger size is a new span drawn
from them (`fairway data --new-span`), half train, half eval. Per component: seconds, rows/s
and the peak RSS of the run's process tree while the component ran (sampled every 0.2 s). Then
a reference computation on the same eval rows: batch scoring through the model's exported
`from_examples` signature, and the same per-slice metrics in numpy (rows, AUC; FPR, FNR,
precision and recall at every fairness threshold; the FPR gap). Results:
<output>/scale.json and scale.md.
"""
from __future__ import annotations

import argparse
import json
import os
import pathlib
import subprocess
import sys
import threading
import time

import numpy as np

from pipeline import artifacts, config, eval_config, metadata
from pipeline.metrics import EvalData, auc, score

# Rows a component reads: ExampleGen and StatisticsGen all of them; the trainers the train split
# (each step reads a batch, so their rows/s is informative only next to the step count).
_ROWS = {"CsvExampleGen": "all", "StatisticsGen": "all", "ExampleValidator": "all",
         "DataGate": "all", "Transform": "all", "TeacherTrainer": "train",
         "StudentTrainer": "train", "Evaluator": "eval"}


class RssSampler(threading.Thread):
    """The summed RSS of a process and its children, sampled every `every` seconds."""

    def __init__(self, pid: int, every: float = 0.2):
        super().__init__(daemon=True)
        self.pid, self.every, self.samples = pid, every, []
        self._done = threading.Event()

    def run(self) -> None:
        import psutil

        try:
            root = psutil.Process(self.pid)
        except psutil.NoSuchProcess:
            return
        while not self._done.is_set():
            try:
                procs = [root, *root.children(recursive=True)]
                rss = sum(p.memory_info().rss for p in procs if p.is_running())
            except psutil.Error:
                rss = None
            if rss:
                self.samples.append((time.time(), rss))
            self._done.wait(self.every)

    def stop(self) -> None:
        self._done.set()
        self.join()

    def peak(self, start: float | None = None, end: float | None = None) -> int | None:
        values = [r for t, r in self.samples
                  if (start is None or t >= start) and (end is None or t <= end)]
        return max(values) if values else None


def make_data(dataset: str, rows: int, out: pathlib.Path) -> pathlib.Path | None:
    """None: the dataset's own rows. Else a new span of rows // 2 per split."""
    from data import acquire, spans

    cfg = config.preset(dataset, output_dir=out / "input")
    own = acquire.prepare(cfg, log=lambda *_: None).base
    if rows <= 0 or rows == _count(own):
        return None
    dest = out / f"data-{rows}"
    if not (dest / "eval" / "data.csv").exists():
        spans.write(own, dest, rows // 2, seed=rows, inject_drift=None)
    return dest


def _count(folder: pathlib.Path) -> int:
    total = 0
    for path in folder.rglob("*.csv"):
        with path.open("rb") as f:
            total += sum(1 for _ in f) - 1
    return total


def run_pipeline(dataset: str, data: pathlib.Path | None, out: pathlib.Path) -> dict:
    """`fairway run --no-cache` in a new process, with its RSS sampled."""
    out.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "runners.cli", "run", "--dataset", dataset, "--output",
           str(out), "--no-cache", *(["--data", str(data)] if data else [])]
    log = out / "bench-run.log"
    start = time.time()
    with log.open("w") as f:
        proc = subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT,
                                env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
        sampler = RssSampler(proc.pid)
        sampler.start()
        rc = proc.wait()
        sampler.stop()
    wall = time.time() - start
    if rc != 0:
        raise RuntimeError(f"`fairway run` exited {rc}; see {log}")
    return {"wall_s": round(wall, 1), "peak_rss_mb": _mb(sampler.peak()), "sampler": sampler}


def _mb(n: int | None) -> float | None:
    return round(n / 2**20, 1) if n else None


def split_rows(examples_uri: str) -> dict[str, int]:
    return {split: sum(1 for _ in artifacts.read_examples(examples_uri, split))
            for split in ("train", "eval")}


def reference(cfg: config.PipelineConfig, summary: dict) -> dict:
    """Score the eval split through `from_examples` and compute the per-slice metrics in numpy."""
    import tensorflow as tf
    from tfx_bsl.coders import example_coder

    examples = metadata.node_artifact(summary, "CsvExampleGen", "Examples")
    model_dir = artifacts.serving_model_dir(
        metadata.node_artifact(summary, "StudentTrainer", "Model"))
    t0 = time.monotonic()
    data = EvalData(examples, cfg)
    model = tf.saved_model.load(model_dir)
    t1 = time.monotonic()
    p = score(model.signatures["from_examples"], data.serialized)
    t2 = time.monotonic()
    columns = sorted({c for spec in cfg.dataset.slices for c in spec})
    batch = example_coder.ExamplesToRecordBatchDecoder().DecodeBatch(data.serialized.tolist())
    values = {}
    for c in columns:  # one value per row, or None when missing: TFMA skips the row's slice
        column = batch.column(batch.schema.get_field_index(c)).to_pylist()
        values[c] = np.array([v[0].decode() if v and isinstance(v[0], bytes) else
                              (v[0] if v else None) for v in column], dtype=object)
    n = len(p)
    y = data.labels
    thresholds = sorted(set(eval_config.fairness_thresholds(cfg)))
    slices = {"Overall": np.ones(n, bool)}
    for spec in cfg.dataset.slices:
        keys = list(zip(*(values[c].tolist() for c in spec)))
        for key in set(keys) - {k for k in set(keys) if None in k}:
            slices[", ".join(f"{c}={v}" for c, v in zip(spec, key))] = \
                np.array([k == key for k in keys])
    metrics = {}
    for name, mask in slices.items():
        ys, ps = y[mask], p[mask]
        row = {"rows": int(mask.sum()), "auc": auc(ys, ps)}
        for t in thresholds:
            pos = ps >= t
            tp, fp = int((pos & (ys == 1)).sum()), int((pos & (ys == 0)).sum())
            fn, tn = int((~pos & (ys == 1)).sum()), int((~pos & (ys == 0)).sum())
            row[f"fpr@{t:g}"] = fp / (fp + tn) if fp + tn else None
            row[f"fnr@{t:g}"] = fn / (fn + tp) if fn + tp else None
            row[f"precision@{t:g}"] = tp / (tp + fp) if tp + fp else None
            row[f"recall@{t:g}"] = tp / (tp + fn) if tp + fn else None
        metrics[name] = row
    t3 = time.monotonic()
    return {"rows": n, "load_s": round(t1 - t0, 2), "score_s": round(t2 - t1, 2),
            "metrics_s": round(t3 - t2, 2), "total_s": round(t3 - t0, 2),
            "slices": len(metrics)}


def bench_size(dataset: str, rows: int, out: pathlib.Path) -> dict:
    data = make_data(dataset, rows, out)
    run_out = out / "run"  # one store: a size's Evaluator compares with the last blessed model
    print(f"[bench-scale] {rows or 'the dataset'} rows: running the pipeline in {run_out}",
          flush=True)
    ran = run_pipeline(dataset, data, run_out)
    cfg = config.preset(dataset, output_dir=run_out)
    summary = metadata.run_summary(cfg)
    counts = split_rows(metadata.node_artifact(summary, "CsvExampleGen", "Examples"))
    counts["all"] = counts["train"] + counts["eval"]
    sampler = ran.pop("sampler")
    nodes = {}
    for node in summary["nodes"]:
        name, secs = node["node"], node["seconds"]
        kind = _ROWS.get(name)
        nodes[name] = {"seconds": secs,
                       "rows_per_s": round(counts[kind] / secs) if kind and secs else None,
                       "peak_rss_mb": _mb(sampler.peak(node.get("started"),
                                                       node.get("ended")))}
    ref = reference(cfg, summary)
    evaluator = nodes.get("Evaluator", {}).get("seconds")
    return {"rows": counts, **ran, "nodes": nodes, "reference": ref,
            "evaluator_vs_reference": round(evaluator / ref["total_s"], 1)
            if evaluator else None, "blessed": summary["blessed"]}


def markdown(results: dict) -> str:
    sizes = results["sizes"]
    names = list(dict.fromkeys(n for s in sizes for n in s["nodes"]))
    head = "| component | " + " | ".join(f"{s['rows']['all']:,} rows" for s in sizes) + " |"
    lines = [head, "|---|" + "---|" * len(sizes)]
    for name in names:
        cells = []
        for s in sizes:
            n = s["nodes"].get(name)
            cells.append("–" if not n else f"{n['seconds']} s" + (
                f", {n['rows_per_s']:,}/s" if n["rows_per_s"] else "") + (
                f", {n['peak_rss_mb']:,.0f} MB" if n["peak_rss_mb"] else ""))
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines.append("| **whole run** | " + " | ".join(
        f"{s['wall_s']} s, peak {s['peak_rss_mb']:,.0f} MB" for s in sizes) + " |")
    lines.append("| reference (score + numpy metrics) | " + " | ".join(
        f"{s['reference']['total_s']} s (Evaluator {s['evaluator_vs_reference']}×)"
        for s in sizes) + " |")
    base = sizes[0]
    for s in sizes[1:]:
        lines.append(f"\n{s['rows']['all']:,} vs {base['rows']['all']:,} rows: whole run "
                     f"{s['wall_s'] / base['wall_s']:.1f}×, peak RSS "
                     f"{s['peak_rss_mb'] / base['peak_rss_mb']:.2f}×")
    return "\n".join(lines) + "\n"


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--output", default=str(config.outputs_dir("bench-scale")))
    ap.add_argument("--dataset", default="census")
    ap.add_argument("--rows", default="0,1000000,5000000",
                    help="comma-separated total rows per size; 0: the dataset's own rows")
    args = ap.parse_args(argv)
    try:
        sizes = [int(r) for r in args.rows.split(",")]
    except ValueError:
        ap.error(f"--rows: expected comma-separated integers, got {args.rows!r}")
    out = pathlib.Path(args.output)
    import shutil

    shutil.rmtree(out / "run", ignore_errors=True)
    out.mkdir(parents=True, exist_ok=True)
    results = {"machine": {"cpus": os.cpu_count()}, "dataset": args.dataset, "sizes": []}
    for rows in sizes:
        results["sizes"].append(bench_size(args.dataset, rows, out))
        (out / "scale.json").write_text(json.dumps(results, indent=2))
        (out / "scale.md").write_text(markdown(results))
        print(markdown(results), flush=True)


if __name__ == "__main__":
    main()
