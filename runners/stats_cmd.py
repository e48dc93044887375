"""`fairway stats A [--compare B ...]`: the statistics view (views.stats) of any statistics.

A source is one of:
- a split of the latest run: `train`, `eval` (the default is `train --compare eval`);
- a split of another run: `SPLIT@RUN_ID` (RUN_ID as `fairway status` prints it), or `RUN_ID`
  alone for its train split;
- a CSV file or a folder of CSVs (a span: every CSV under it, train/ and eval/ included), read
  as CsvExampleGen reads it, with the config's schema (an empty cell is missing) and its
  label_map; statistics by TFDV, in memory, on the monitor's path
  (monitoring.anomalies.serving_statistics);
- `logs:DIR`: served requests (PredictionLog files of `fairway serve --request-log-dir`),
  the last `--window N` of them if given;
- a `FeatureStats.pb` file (a DatasetFeatureStatisticsList, as StatisticsGen writes).
Every number on the page comes from these statistics, the schema and the anomalies.
"""
from __future__ import annotations

import os
import pathlib
import re
from typing import Any

from pipeline.config import PipelineConfig
from pipeline.errors import FairwayError

RUN_NODES = ("StatisticsGen", "ExampleStatistics")
# pipeline.example_gen.UNMAPPED_LABEL: a label cell outside label_map (the schema's 0..1 domain
# reports it). Importing that module loads TFX (measured: ~20 s without cached bytecode).
UNMAPPED_LABEL = -1


class StatsError(FairwayError):
    """A source of `fairway stats` cannot be read; the message names it and what was expected."""


class Source:
    """One dataset of the view: its label, statistics and (for a run's split) anomalies."""

    def __init__(self, label: str, stats, schema=None, anomalies=None):
        self.label, self.stats, self.schema, self.anomalies = label, stats, schema, anomalies


def _splits(uri: str) -> list[str]:
    import tensorflow as tf

    return sorted(p.rstrip("/").split("Split-", 1)[1] for p in tf.io.gfile.listdir(uri)
                  if p.startswith("Split-"))


def _run_source(cfg: PipelineConfig, spec: str, split: str, run: str | None,
                summaries: dict) -> Source:
    from pipeline import artifacts, metadata

    if run not in summaries:
        try:
            summaries[run] = metadata.run_summary(cfg, run)
        except LookupError as err:
            raise StatsError(f"{spec!r}: {err} (a run id as `fairway status` prints it, e.g. "
                             f"'train@<run id>')") from None
    summary = summaries[run]
    try:
        uri = metadata.node_artifact(summary, *RUN_NODES)
    except LookupError as err:
        raise StatsError(f"{spec!r}: {err}") from None
    splits = _splits(uri)
    if split not in splits:
        raise StatsError(f"{spec!r}: run {summary['run_id']} has no split {split!r} "
                         f"(its statistics have: {', '.join(splits) or 'none'}; {uri})")
    schema = anomalies = None
    try:
        schema = artifacts.load_schema(metadata.node_artifact(summary, "ImportSchemaGen",
                                                              "Schema"))
    except LookupError:
        pass
    try:
        anomalies = artifacts.load_anomalies(metadata.node_artifact(
            summary, "ExampleValidator", "ExampleAnomalies"), split)
    except (LookupError, FairwayError):
        pass
    label = split if run is None else f"{split}@{summary['run_id']}"
    return Source(label, artifacts.load_stats(uri, split), schema, anomalies)


def _schema(cfg: PipelineConfig):
    import tensorflow_data_validation as tfdv

    return tfdv.load_schema_text(str(cfg.dataset.schema_file))


def _frame(cfg: PipelineConfig, spec: str, path: pathlib.Path, schema):
    """The CSV rows as a DataFrame, read as CsvExampleGen reads them: empty cells missing,
    numeric columns (by the schema) as numbers, the label through label_map."""
    import pandas as pd
    from tensorflow_metadata.proto.v0 import schema_pb2

    from data import csvfile
    from data.acquire import DataError

    try:
        scan = csvfile.scan(path)
        headers = set(scan.headers.values())
        if len(headers) > 1:
            raise StatsError(f"{spec!r}: its CSV files have different headers: "
                             + "; ".join(f"{s or '(top)'}: {','.join(h)}"
                                         for s, h in scan.headers.items()))
        [header] = headers
        _, rows = csvfile.read_rows(scan.files)
        frame = pd.DataFrame([r for _, _, r in rows], columns=list(header))
    except DataError as err:
        raise StatsError(f"{spec!r}: {err}") from None
    frame = frame.where(frame != "", None)
    types = {f.name: f.type for f in schema.feature}
    ds = cfg.dataset
    label_map = dict(ds.label_map)  # a loaded config holds it as (value, 0/1) pairs
    for c in frame.columns:
        if c == ds.label and label_map:
            frame[c] = frame[c].map(lambda v: None if v is None else
                                    label_map.get(v, UNMAPPED_LABEL))
        elif types.get(c) in (schema_pb2.INT, schema_pb2.FLOAT):
            numbers = pd.to_numeric(frame[c], errors="coerce")
            bad = frame[c].notna() & numbers.isna()
            if bad.any():
                raise StatsError(f"{spec!r}: column {c!r} is {schema_pb2.FeatureType.Name(types[c])}"
                                 f" in the schema ({ds.schema_file}), but row "
                                 f"{int(bad.to_numpy().argmax()) + 1} holds "
                                 f"{frame[c][bad].iloc[0]!r}")
            frame[c] = numbers
    return frame


def _csv_source(cfg: PipelineConfig, spec: str, path: pathlib.Path) -> Source:
    from monitoring.anomalies import serving_statistics

    schema = _schema(cfg)
    frame = _frame(cfg, spec, path, schema)
    return Source(path.name or str(path), serving_statistics(frame, schema), schema)


def _logs_source(cfg: PipelineConfig, spec: str, location: str, window: int | None) -> Source:
    from monitoring import requests
    from monitoring.anomalies import serving_statistics

    if not os.path.exists(location):
        raise StatsError(f"{spec!r}: {location} does not exist (expected a folder of request "
                         f"logs from `fairway serve --request-log-dir`)")
    frame = requests.read(location)
    if window:
        frame = frame.iloc[-window:]
    schema = _schema(cfg)
    label = f"requests (last {len(frame)})" if window else f"requests ({len(frame)})"
    return Source(label, serving_statistics(frame, schema), schema)


def _pb_source(spec: str, path: pathlib.Path) -> Source:
    import tensorflow_data_validation as tfdv

    expected = "a DatasetFeatureStatisticsList of one dataset (as StatisticsGen writes " \
        "FeatureStats.pb)"
    try:
        stats = tfdv.load_stats_binary(str(path))
    except Exception as err:  # a DecodeError
        raise StatsError(f"{spec!r}: expected {expected}: {type(err).__name__}") from None
    if len(stats.datasets) != 1:
        raise StatsError(f"{spec!r}: expected {expected}, found {len(stats.datasets)} datasets")
    name = path.parent.name if path.name == "FeatureStats.pb" else path.name
    return Source(name, stats)


def source(cfg: PipelineConfig, spec: str, window: int | None = None,
           summaries: dict | None = None) -> Source:
    """The dataset `spec` names (see the module's docstring)."""
    summaries = {} if summaries is None else summaries
    if spec.startswith("logs:"):
        return _logs_source(cfg, spec, spec[5:], window)
    path = pathlib.Path(spec)
    if path.suffix == ".pb":
        if not path.is_file():
            raise StatsError(f"{spec!r}: no such statistics file")
        return _pb_source(spec, path)
    if path.suffix.lower() == ".csv" or os.sep in spec or spec in (".", ".."):
        if not path.exists():
            raise StatsError(f"{spec!r}: no such CSV file or folder")
        return _csv_source(cfg, spec, path)
    if "@" in spec:
        split, run = spec.split("@", 1)
        if not split or not run:
            raise StatsError(f"{spec!r}: expected SPLIT@RUN_ID, e.g. 'eval@<run id>'")
        return _run_source(cfg, spec, split, run, summaries)
    if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", spec):  # a split of the latest run
        return _run_source(cfg, spec, spec, None, summaries)
    if path.is_dir():
        return _csv_source(cfg, spec, path)
    return _run_source(cfg, spec, "train", spec, summaries)


def _unique(labels: list[str]) -> list[str]:
    out: list[str] = []
    for label in labels:
        new, i = label, 2
        while new in out:
            new, i = f"{label} ({i})", i + 1
        out.append(new)
    return out


def _slug(labels: list[str]) -> str:
    text = "-vs-".join(labels)
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text)[:120].strip("_") or "stats"


def specs(first: str | None, compare: list[str] | None) -> list[str]:
    """The sources to show: `first` (default train) then `compare` (default: eval when `first`
    is not given either, else none)."""
    return [first or "train"] + (list(compare) if compare else ([] if first else ["eval"]))


def page(cfg: PipelineConfig, specs: list[str], window: int | None = None,
         sort: str | None = None) -> tuple[str, list[str]]:
    """(the page of the sources `specs`, the first being the base, their labels on it)."""
    from views import stats as view

    summaries: dict[Any, Any] = {}
    sources = [source(cfg, s, window, summaries) for s in specs]
    labels = _unique([s.label for s in sources])
    schema = next((s.schema for s in sources if s.schema is not None), None)
    anomalies = {label: s.anomalies for label, s in zip(labels, sources)
                 if s.anomalies is not None}
    html = view.page([(label, s.stats) for label, s in zip(labels, sources)], schema,
                     anomalies if anomalies else None,
                     title=f"Statistics: {' vs '.join(labels)}",
                     meta={"datasets": ", ".join(f"{label} ({spec})" for label, spec
                                                 in zip(labels, specs)),
                           "pipeline": cfg.pipeline_name},
                     sort=sort)
    return html, labels


def run(cfg: PipelineConfig, first: str | None, compare: list[str] | None,
        to: str | None = None, window: int | None = None, sort: str | None = None
        ) -> pathlib.Path:
    """Writes the page and returns its path."""
    from runners.progress import Progress

    chosen = specs(first, compare)
    if window is not None and not any(s.startswith("logs:") for s in chosen):
        raise StatsError("--window N: only for a `logs:DIR` source")
    named = bool(to and to.endswith(".html"))
    folder = pathlib.Path(to).parent if named else pathlib.Path(to) if to else \
        cfg.command_dir("stats")
    # TensorFlow's, TFDV's and TFMA's log lines go to a log beside the page, not the console.
    log = folder / "logs" / cfg.log_path("stats", ".log").name
    log.parent.mkdir(parents=True, exist_ok=True)
    with Progress(log):
        html, labels = page(cfg, chosen, window, sort)
    target = pathlib.Path(to) if named else folder / f"{_slug(labels)}.html"
    target.write_text(html, encoding="utf-8")
    return target
