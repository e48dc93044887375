"""The feedback loop: labelled serving traffic becomes a new span of training data
(`fairway data --from-logs`), and the requests most worth labelling are queued for people to
label (`fairway label-queue`).

Both read the request logs `fairway serve` writes (production `requests-*` and shadow
`shadow-*` files) with monitoring.requests, and the labels with monitoring.monitor."""
from __future__ import annotations

import glob
import hashlib
import os
import pathlib
import shutil
import tempfile
import time
from typing import Callable

import numpy as np
import pandas as pd
import tensorflow_data_validation as tfdv
from tensorflow_metadata.proto.v0 import schema_pb2

from monitoring import anomalies, monitor, requests
from pipeline.config import PipelineConfig
from pipeline.errors import FairwayError

SHADOW_PATTERN = "shadow-*.tfrecord"  # what `fairway serve --shadow-label` logs
MISSING_GROUP = "(missing)"  # the group of a row without a value of the sensitive feature

Log = Callable[[str], None]


class FeedbackError(FairwayError):
    """A feedback-loop input (logs, labels, destination) that cannot be used as given."""


# ---------------------------------------------------------------------------------------------
# Reading: logs, de-duplicated, and labels


def log_files(location: str) -> list[str]:
    """A log file, or every requests-*/shadow-* TFRecord under a folder."""
    if not os.path.isdir(location):
        return requests.log_files(location)  # one file, or an error naming a missing one
    files = sorted(f for pattern in (requests.PATTERN, SHADOW_PATTERN)
                   for f in glob.glob(os.path.join(location, "**", pattern), recursive=True))
    if not files:
        raise FeedbackError(f"{location}: no {requests.PATTERN} or {SHADOW_PATTERN} files "
                            "(written by `fairway serve --request-log-dir DIR`)")
    return files


def read_traffic(location: str, log: Log = print) -> pd.DataFrame:
    """One row per served example and request id (monitoring.requests.read's columns plus
    `_source`: requests or shadow). A request copied to the shadow is kept once, as production
    answered it (that answer was served); likewise an id a client sent twice keeps its first."""
    frames = []
    files = log_files(location)
    for path in files:
        if os.path.getsize(path) == 0:  # a file the server opened and never wrote to
            continue
        frame = requests.read(path)
        frame["_source"] = "shadow" if os.path.basename(path).startswith("shadow-") \
            else "requests"
        frames.append(frame)
    if not frames:
        raise FeedbackError(f"{location}: the request logs hold no requests "
                            f"({len(files)} empty file(s))")
    frame = pd.concat(frames, ignore_index=True)
    read = len(frame)
    frame = (frame.sort_values(["_source", "_time"], kind="stable")  # "requests" < "shadow"
             .drop_duplicates("_request_id", keep="first")
             .sort_values("_time", kind="stable").reset_index(drop=True))
    frame.attrs["read"] = read
    shadow_files = sum(os.path.basename(f).startswith("shadow-") for f in files)
    log(f"read {read:,} rows from {len(files)} log file(s) ({len(files) - shadow_files} "
        f"requests-*, {shadow_files} shadow-*)")
    log(f"deduplicated: {len(frame):,} requests ({read - len(frame):,} duplicate rows removed: "
        f"shadow copies of requests production answered, or ids sent twice)")
    return frame


# ---------------------------------------------------------------------------------------------
# The training schema, row by row


def load_schema(cfg: PipelineConfig) -> schema_pb2.Schema:
    return tfdv.load_schema_text(str(cfg.dataset.schema_file))


def columns(cfg: PipelineConfig, schema: schema_pb2.Schema) -> list[str]:
    """The span's columns: the model's features and the label, in the schema's order (the raw
    data's order for the presets and for `fairway init`, whose schema follows the CSV)."""
    wanted = set(cfg.dataset.features) | {cfg.dataset.label}
    return [f.name for f in schema.feature if f.name in wanted]


def _present(col: pd.Series) -> pd.Series:
    """Missing as the pipeline sees it: None, NaN or an empty string."""
    return col.notna() & (col.astype(str) != "")


def problems(frame: pd.DataFrame, cfg: PipelineConfig, schema: schema_pb2.Schema) -> pd.Series:
    """Why each row breaks the training schema (None: it does not), naming the feature: a
    required feature missing, a value of the wrong type, a category outside the domain, a number
    outside the range. A row is counted under its first problem, in the schema's feature order,
    so the counts add up to the rows dropped."""
    why = pd.Series(None, index=frame.index, dtype=object)
    features = {f.name: f for f in schema.feature}
    for name in columns(cfg, schema):
        if name == cfg.dataset.label:
            continue  # the labels file's 0/1, checked by read_labels
        feature = features[name]
        col = frame[name] if name in frame else pd.Series(np.nan, index=frame.index)
        present = _present(col)
        checks = []
        if name not in cfg.dataset.optional:  # the config read presence from the schema
            checks.append((~present, f"{name} missing"))
        kind = feature.WhichOneof("domain_info")
        domain = tfdv.get_domain(schema, name) if kind else None
        if feature.type in (schema_pb2.INT, schema_pb2.FLOAT):
            num = pd.to_numeric(col.where(present), errors="coerce")
            checks.append((present & num.isna(), f"{name} not a number"))
            if feature.type == schema_pb2.INT:
                checks.append((num.notna() & (num % 1 != 0),
                               f"{name} not a whole number (INT in the schema)"))
            if isinstance(domain, (schema_pb2.IntDomain, schema_pb2.FloatDomain)):
                lo = domain.min if domain.HasField("min") else -np.inf
                hi = domain.max if domain.HasField("max") else np.inf
                checks.append((num.notna() & ((num < lo) | (num > hi)),
                               f"{name} outside the schema's range [{lo:g}, {hi:g}]"))
        elif isinstance(domain, schema_pb2.StringDomain):
            text = col.astype(str)
            outside = present & ~text.isin(set(domain.value))
            # One reason per unknown value: a new category is what the user wants to see.
            for value in text[outside & why.isna()].unique():
                checks.append((outside & (text == value),
                               f"{name} value {value!r} not in the schema's domain"))
        for failed, reason in checks:
            why[failed & why.isna()] = reason
    return why


def summary(reasons: pd.Series, most: int = 10) -> str:
    """`12 rows: workclass value 'Robot' not in the schema's domain (8), age missing (4)`."""
    counts = reasons.dropna().value_counts()
    parts = [f"{reason} ({n:,})" for reason, n in counts.head(most).items()]
    if len(counts) > most:
        parts.append(f"{len(counts) - most} more reasons ({counts.iloc[most:].sum():,} rows)")
    return f"{int(counts.sum()):,} rows: {', '.join(parts)}"


def raw_values(frame: pd.DataFrame, cfg: PipelineConfig, schema: schema_pb2.Schema
               ) -> pd.DataFrame:
    """The rows in the dataset's raw CSV form, as CsvExampleGen reads them: INT columns as whole
    numbers (never `39.0`, which it would read as FLOAT), missing values as empty cells, and
    the label (`_label`, 0/1) as its raw value where the config has a label_map."""
    types = {f.name: f.type for f in schema.feature}
    out = pd.DataFrame(index=frame.index)
    for name in columns(cfg, schema):
        if name == cfg.dataset.label:
            labels = frame["_label"].round().astype(int)
            raw = {v: k for k, v in cfg.dataset.label_map}
            out[name] = labels.map(raw) if raw else labels
            continue
        col = frame[name] if name in frame else pd.Series(np.nan, index=frame.index)
        col = col.where(_present(col))
        if types[name] == schema_pb2.INT:
            out[name] = pd.to_numeric(col).round().astype("Int64")
        elif types[name] == schema_pb2.FLOAT:
            out[name] = pd.to_numeric(col).astype(float)
        else:
            out[name] = col.astype(object)
    return out


def _dataset_anomalies(rows: pd.DataFrame, schema: schema_pb2.Schema) -> dict[str, str]:
    """Anomalies TFDV finds in the span as a whole (e.g. a presence fraction below the
    schema's): rows that each fit can still fail together at the pipeline's data gate."""
    stats = anomalies.serving_statistics(rows, schema)
    env = "TRAINING" if "TRAINING" in schema.default_environment else None
    found = tfdv.validate_statistics(stats, schema, environment=env)
    return {k: v.description for k, v in sorted(found.anomaly_info.items())}


# ---------------------------------------------------------------------------------------------
# `fairway data --from-logs LOGS --labels CSV --new-span DIR`


def split_of(request_ids: pd.Series, eval_fraction: float) -> pd.Series:
    """'eval' or 'train' per request id, from a hash of the id: the same id always lands in the
    same split, whatever else is in the logs."""
    buckets = np.array([int.from_bytes(hashlib.sha256(str(r).encode()).digest()[:8], "big")
                        for r in request_ids], dtype=np.float64) / 2.0 ** 64
    return pd.Series(np.where(buckets < eval_fraction, "eval", "train"), index=request_ids.index)


def _check_destination(dest: pathlib.Path) -> None:
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise FeedbackError(f"{dest}: already exists and is not empty; choose a new folder for "
                            "the new span")


def write_span(cfg: PipelineConfig, logs: str, labels_path: str, dest: str | os.PathLike,
               eval_fraction: float = 0.2, log: Log = print) -> dict:
    """dest/{train,eval}/data.csv from the labelled requests in `logs` that fit the training
    schema; returns the counts it printed."""
    dest = pathlib.Path(dest)
    if not 0 < eval_fraction < 1:
        raise FeedbackError(f"--eval-fraction: expected a number in (0, 1), got {eval_fraction}")
    _check_destination(dest)  # before the (slow) reading
    schema = load_schema(cfg)
    frame = read_traffic(logs, log)
    read = frame.attrs["read"]
    labels = monitor.read_labels(labels_path)  # an empty label: not labelled yet
    frame = monitor.join_labels(frame, labels, labels_path)
    labelled = frame[frame["_label"].notna()]
    log(f"labelled: {len(labelled):,} of {len(frame):,} requests ({labels_path}: "
        f"{len(labels):,} labels)")
    why = problems(labelled, cfg, schema)
    kept = labelled[why.isna()]
    if why.notna().any():
        log(f"dropped {summary(why)}")
    if kept.empty:
        raise FeedbackError(f"{labels_path}: none of the {len(labelled):,} labelled requests "
                            f"fits the schema {cfg.dataset.schema_file} ({summary(why)}); "
                            "nothing written")
    split = split_of(kept["_request_id"], eval_fraction)
    counts = split.value_counts().reindex(["train", "eval"], fill_value=0)
    empty = [s for s, n in counts.items() if n == 0]
    if empty:
        raise FeedbackError(f"{dest}: the {empty[0]} split would be empty ({len(kept):,} "
                            f"labelled rows fit the schema, --eval-fraction {eval_fraction}): "
                            "label more requests or change --eval-fraction; nothing written")
    raw = raw_values(kept, cfg, schema)
    # Written beside dest and moved into place whole: a failure leaves no half-written span.
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = pathlib.Path(tempfile.mkdtemp(prefix=f".{dest.name}-", dir=dest.parent))
    try:
        for name in ("train", "eval"):
            (tmp / name).mkdir()
            raw[split == name].to_csv(tmp / name / "data.csv", index=False, na_rep="",
                                      lineterminator="\n")
        if dest.exists():
            dest.rmdir()  # empty (checked above)
        tmp.rename(dest)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    log(f"wrote {counts['train']:,} train rows to {dest / 'train' / 'data.csv'} and "
        f"{counts['eval']:,} eval rows to {dest / 'eval' / 'data.csv'}")
    for feature, what in _dataset_anomalies(raw, schema).items():
        log(f"warning: the span as a whole breaks the schema at feature '{feature}': {what} "
            "(`fairway run --data` will stop at the data gate)")
    return {"read": read, "requests": len(frame),
            "labelled": len(labelled), "dropped": why.dropna().value_counts().to_dict(),
            "train": int(counts["train"]), "eval": int(counts["eval"])}


# ---------------------------------------------------------------------------------------------
# `fairway label-queue`


def quotas(available: dict[str, int], k: int, n: int) -> dict[str, int]:
    """Rows reserved per group: k each (all of a group's rows when it has fewer); when the n
    picks cannot cover that, an equal share of n, a small group's unused share going to the
    others."""
    want = {g: min(k, a) for g, a in available.items()}
    if sum(want.values()) <= n:
        return want
    out, left = {}, n
    for i, g in enumerate(sorted(want, key=lambda g: (want[g], g))):
        out[g] = min(want[g], left // (len(want) - i))
        left -= out[g]
    return out


def pick(candidates: pd.DataFrame, threshold: float, n: int, k: int,
         group: pd.Series | None) -> tuple[pd.DataFrame, dict[str, int]]:
    """The n rows whose predictions are closest to the decision threshold (uncertainty
    sampling), with each group's quota taken first from its own most uncertain rows."""
    order = (candidates.assign(_uncertainty=(candidates["_prediction"] - threshold).abs(),
                               _group=group if group is not None else "")
             .sort_values(["_uncertainty", "_request_id"], kind="stable"))
    n = min(n, len(order))
    quota = quotas(order["_group"].value_counts().to_dict(), k, n) if group is not None else {}
    reserved = pd.concat([order[order["_group"] == g].head(q) for g, q in quota.items()]
                         + [order.head(0)])
    rest = order.drop(reserved.index).head(n - len(reserved))
    picked = order.loc[order.index.isin(reserved.index.union(rest.index))]
    return picked, quota


def label_queue(cfg: PipelineConfig, logs: str, labels_path: str | None, n: int = 200,
                min_per_group: int = 20, out: str | os.PathLike | None = None,
                log: Log = print) -> pathlib.Path:
    """A CSV `request_id,label,<features...>,prediction` of the requests most worth labelling,
    with an empty label column to fill in with 0/1 and pass back with --labels."""
    ds = cfg.dataset
    out = pathlib.Path(out) if out else \
        cfg.command_dir("label-queue") / f"queue-{time.strftime('%Y%m%d-%H%M%S')}.csv"
    if out.exists():
        raise FeedbackError(f"{out}: already exists (it may hold labels being filled in); "
                            "choose another --out")
    clash = sorted({"request_id", "label", "prediction"} & set(ds.features))
    if clash:
        raise FeedbackError(f"{ds.schema_file}: feature(s) {clash} clash with the queue's own "
                            "columns request_id, label, prediction")
    schema = load_schema(cfg)
    frame = read_traffic(logs, log)
    if labels_path:
        frame = monitor.join_labels(frame, monitor.read_labels(labels_path), labels_path)
        done = frame["_label"].notna()
        log(f"already labelled: {int(done.sum()):,} (left out)")
        frame = frame[~done]
    unscored = frame["_prediction"].isna()
    if unscored.any():
        log(f"without a usable prediction: {int(unscored.sum()):,} (left out)")
    frame = frame[~unscored]
    why = problems(frame, cfg, schema)
    if why.notna().any():  # `data --from-logs` would drop them: labelling them is wasted
        log(f"left out {summary(why)}")
    frame = frame[why.isna()]
    if frame.empty:
        raise FeedbackError(f"{logs}: no unlabelled request with a prediction that fits the "
                            f"schema {ds.schema_file}; nothing to queue")
    threshold = cfg.evaluation.decision_threshold
    group = None
    if ds.sensitive:
        col = frame[ds.sensitive] if ds.sensitive in frame else pd.Series(np.nan, frame.index)
        group = col.where(_present(col)).astype(str).where(_present(col), MISSING_GROUP)
    picked, quota = pick(frame, threshold, n, min_per_group, group)
    queue = raw_values(picked.assign(_label=0), cfg, schema).drop(columns=[ds.label])
    queue.insert(0, "request_id", picked["_request_id"])
    queue.insert(1, "label", "")
    queue["prediction"] = picked["_prediction"].round(6)
    out.parent.mkdir(parents=True, exist_ok=True)
    queue.to_csv(out, index=False, na_rep="", lineterminator="\n")
    far = picked["_uncertainty"].max()
    log(f"picked {len(picked):,} of {len(frame):,} candidates, predictions within {far:.3f} "
        f"of the decision threshold {threshold:g}")
    if group is not None:
        sizes = picked["_group"].value_counts()
        avail = frame.assign(_g=group)["_g"].value_counts()
        log(f"per {ds.sensitive} (at least {min_per_group} each, or a fair share): " + ", ".join(
            f"{g} {int(sizes.get(g, 0)):,} (quota {quota.get(g, 0):,} of {int(a):,})"
            for g, a in avail.items()))
    else:
        log("no sensitive feature in the config: picked by uncertainty alone")
    log(f"wrote {out}: fill in the label column (0 or 1), then pass it with --labels")
    return out
