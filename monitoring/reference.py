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


def numeric_features(schema: schema_pb2.Schema, label: str) -> dict[str, bool]:
    """feature -> numeric, in schema order, without the label."""
    return {f.name: f.type in (schema_pb2.INT, schema_pb2.FLOAT) for f in schema.feature
            if f.name != label}


def frame(serialized: list[bytes], columns: list[str]) -> pd.DataFrame:
    """tf.Examples as rows; a feature an example lacks is missing (None/NaN)."""
    return pd.DataFrame(requests.example_rows(serialized)).reindex(columns=columns)


class Scorer:
    """The positive-class score of a pushed SavedModel on serialized tf.Examples."""

    def __init__(self, model_dir: str):
        import tensorflow as tf

        from pipeline.metrics import score

        try:
            self._sig = tf.saved_model.load(model_dir).signatures["from_examples"]
        except (OSError, KeyError) as e:
            raise FairwayError(f"{model_dir}: not a Fairway SavedModel with a 'from_examples' "
                               f"signature ({e})") from None
        self._score = score

    def __call__(self, serialized: list[bytes]) -> np.ndarray:
        return self._score(self._sig, np.array(serialized, dtype=object))


def load(cfg: PipelineConfig, run: str | None, model_dir: str, log=print
         ) -> tuple[Reference, schema_pb2.Schema, str]:
    """(the reference, the run's schema, the run's id) of pipeline run `run` (None: the
    latest), scored by the SavedModel in `model_dir`."""
    summary = metadata.run_summary(cfg, run)
    examples = metadata.node_artifact(summary, "CsvExampleGen", "Examples")
    schema = artifacts.load_schema(metadata.node_artifact(summary, "ImportSchemaGen", "Schema"))
    ds = cfg.dataset
    numeric = numeric_features(schema, ds.label)
    columns = list(numeric) + [ds.label]
    score = Scorer(model_dir)
    log(f"reference: run {summary['run_id']}, model {model_dir}")
    train_x = artifacts.read_examples(examples, "train", TRAIN_ROWS)
    pool_x = artifacts.read_examples(examples, "eval", POOL_ROWS)
    train, pool = frame(train_x, columns), frame(pool_x, columns)
    pool["_prediction"], pool["_label"] = score(pool_x), pool.pop(ds.label).astype(float)
    train_scores = score(train_x)
    ref = Reference(train=train[list(numeric)], pool=pool, numeric=numeric,
                    train_scores=train_scores,
                    train_labels=train[ds.label].to_numpy(float), sensitive=ds.sensitive,
                    groups=tuple(ds.groups), threshold=cfg.evaluation.decision_threshold)
    return ref, schema, summary["run_id"]
