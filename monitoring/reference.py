"""The monitor's reference, read from the pipeline run that pushed the served model.

Its training split (a sample) is the distribution every window is compared with; its eval split,
scored by the pushed SavedModel (the same signature a client of the model uses), is the labelled
pool that thresholds are drawn from and that calibrates the label-free estimate.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
from tensorflow_metadata.proto.v0 import schema_pb2

from monitoring import requests
from monitoring.calculator import Reference
from pipeline import artifacts, metadata
from pipeline.config import PipelineConfig
from pipeline.errors import FairwayError

TRAIN_ROWS = 20_000  # training rows read: enough for every distribution, fast to load
POOL_ROWS = 20_000


def model_features(cfg: PipelineConfig) -> dict[str, bool]:
    """feature -> numeric, for the features the model takes (the config's numeric and
    categorical columns; a column the schema keeps but the model ignores is not monitored)."""
    ds = cfg.dataset
    return {**{f: True for f in ds.numeric}, **{f: False for f in ds.categorical}}


def frame(serialized: list[bytes], columns: list[str]) -> pd.DataFrame:
    """tf.Examples as rows; a feature an example lacks is missing (None/NaN)."""
    return pd.DataFrame(requests.example_rows(serialized)).reindex(columns=columns)


def to_examples(frame: pd.DataFrame, schema: schema_pb2.Schema) -> list[bytes]:
    """Rows as serialized tf.Examples typed by the schema; a missing cell (None, NaN, '') is
    left out, as ExampleGen leaves it out."""
    import tensorflow as tf

    kinds = {f.name: f.type for f in schema.feature}
    out = []
    for row in frame.to_dict("records"):
        feats = {}
        for k, v in row.items():
            if k not in kinds or v is None or v == "" or (isinstance(v, float) and v != v):
                continue
            if kinds[k] == schema_pb2.INT:
                feats[k] = tf.train.Feature(int64_list=tf.train.Int64List(value=[int(v)]))
            elif kinds[k] == schema_pb2.FLOAT:
                feats[k] = tf.train.Feature(float_list=tf.train.FloatList(value=[float(v)]))
            else:
                feats[k] = tf.train.Feature(bytes_list=tf.train.BytesList(
                    value=[str(v).encode()]))
        out.append(tf.train.Example(features=tf.train.Features(feature=feats))
                   .SerializeToString())
    return out


class Scorer:
    """The positive-class score of a pushed SavedModel on serialized tf.Examples, and its
    per-feature attributions when it exports an explanation signature."""

    EXPLAIN = "explain_from_examples"
    PREFIX = "attribution_"

    def __init__(self, model_dir: str):
        import tensorflow as tf

        from pipeline.metrics import score

        try:
            sigs = tf.saved_model.load(model_dir).signatures
            self._sig = sigs["from_examples"]
        except (OSError, KeyError) as e:
            raise FairwayError(f"{model_dir}: not a Fairway SavedModel with a 'from_examples' "
                               f"signature ({e})") from None
        self._explain = sigs[self.EXPLAIN] if self.EXPLAIN in sigs else None
        self._score = score

    @property
    def explains(self) -> bool:
        return self._explain is not None

    def __call__(self, serialized: list[bytes]) -> np.ndarray:
        return self._score(self._sig, np.array(serialized, dtype=object))

    def attributions(self, serialized: list[bytes], batch: int = 1024) -> pd.DataFrame | None:
        """`_attr:<feature>` columns (contributions to the logit), or None for a model without
        the explanation signature."""
        import tensorflow as tf

        if self._explain is None or not serialized:
            return None
        parts = []
        for i in range(0, len(serialized), batch):
            out = self._explain(examples=tf.constant(serialized[i:i + batch], tf.string))
            parts.append(pd.DataFrame({f"_attr:{k[len(self.PREFIX):]}": v.numpy()
                                       for k, v in out.items() if k.startswith(self.PREFIX)}))
        return pd.concat(parts, ignore_index=True)


def load(cfg: PipelineConfig, run: str | None, model_dir: str, log=print
         ) -> tuple[Reference, schema_pb2.Schema, str]:
    """(the reference, the run's schema, the run's id) of pipeline run `run` (None: the
    latest), scored by the SavedModel in `model_dir`."""
    summary = metadata.run_summary(cfg, run)
    examples = metadata.node_artifact(summary, "CsvExampleGen", "Examples")
    schema = artifacts.load_schema(metadata.node_artifact(summary, "ImportSchemaGen", "Schema"))
    ds = cfg.dataset
    numeric = model_features(cfg)
    columns = list(numeric) + [ds.label]
    score = Scorer(model_dir)
    log(f"reference: run {summary['run_id']}, model {model_dir}")
    train_x = artifacts.read_examples(examples, "train", TRAIN_ROWS)
    pool_x = artifacts.read_examples(examples, "eval", POOL_ROWS)
    train, pool = frame(train_x, columns), frame(pool_x, columns)
    pool["_prediction"], pool["_label"] = score(pool_x), pool.pop(ds.label).astype(float)
    train_scores = score(train_x)
    if score.explains:  # the pool's attributions: the reference of attribution drift
        log("reference: attributions of the pool (the explanation signature) ...")
        pool = pd.concat([pool, score.attributions(pool_x)], axis=1)
    ref = Reference(train=train[list(numeric)], pool=pool, numeric=numeric,
                    train_scores=train_scores,
                    train_labels=train[ds.label].to_numpy(float), sensitive=ds.sensitive,
                    groups=tuple(ds.groups), threshold=cfg.evaluation.decision_threshold)
    return ref, schema, summary["run_id"]
