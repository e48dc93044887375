"""A model's quality on labelled rows: AUC, error rates per group of the sensitive feature, the
gap between two groups; and the eval split they are measured on, scored through the model's
exported signature (what a client of the pushed model sees).

Shared by `fairway compare` (runners.compare), `fairway monitor` (labelled serving traffic) and
`fairway report` (error analysis). The arithmetic is numpy and scikit-learn; TensorFlow is
imported only to read and score examples.
"""
from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from pipeline import artifacts
from pipeline.config import PipelineConfig
from pipeline.errors import FairwayError

RATE_NAMES = {"fpr": "false-positive rate", "fnr": "false-negative rate"}
_NEEDS = {"fpr": "negative examples (label 0)", "fnr": "positive examples (label 1)"}


class MetricError(FairwayError):
    """A metric the user asked for is undefined on this data (e.g. a group without negatives)."""


def auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """ROC AUC (ties count half, as in the Mann-Whitney U statistic); NaN when the labels
    have a single class."""
    from sklearn.metrics import roc_auc_score

    labels = np.asarray(labels)
    if len(np.unique(labels)) < 2:
        return float("nan")
    return float(roc_auc_score(labels == 1, scores))


def group_rates(labels, scores, groups, threshold: float) -> dict[str, dict[str, Any]]:
    """Per value of `groups`: rows, FPR and FNR at `threshold`, AUC. A rate without the rows it
    is defined on (FPR: negatives, FNR: positives) is None."""
    labels, scores, groups = np.asarray(labels), np.asarray(scores), np.asarray(groups)
    out = {}
    for g in sorted(set(groups.tolist())):
        y, p = labels[groups == g], scores[groups == g]
        out[g] = {"rows": int(len(y)),
                  "fpr": float((p[y == 0] >= threshold).mean()) if (y == 0).any() else None,
                  "fnr": float((p[y == 1] < threshold).mean()) if (y == 1).any() else None,
                  "auc": auc(y, p)}
    return out


def rate_gap(rates: Mapping[str, Mapping[str, Any]], protected: str, reference: str,
             rate: str = "fpr", where: str = "the eval split") -> float:
    """|rate(protected) - rate(reference)| from `group_rates`; a MetricError naming the group
    when either rate is undefined."""
    for g in (protected, reference):
        if g not in rates:
            raise MetricError(f"group {g!r} has no rows in {where}: its {RATE_NAMES[rate]}, and "
                              f"the {rate.upper()} gap, are undefined (groups present: "
                              f"{sorted(rates)})")
        if rates[g][rate] is None:
            raise MetricError(f"group {g!r} has no {_NEEDS[rate]} in {where}: its "
                              f"{RATE_NAMES[rate]}, and the {rate.upper()} gap, are undefined")
    return abs(rates[protected][rate] - rates[reference][rate])


class EvalData:
    """The raw eval split of an Examples artifact (serialized tf.Examples) with its labels and
    sensitive-feature groups."""

    def __init__(self, examples_uri: str, cfg: PipelineConfig):
        import tensorflow as tf

        # dtype=object: a fixed-width bytes array would strip trailing NUL bytes of records.
        self.serialized = np.array(artifacts.read_examples(examples_uri, "eval"), dtype=object)
        ds = cfg.dataset
        spec = {ds.label: tf.io.VarLenFeature(tf.int64)}
        if ds.sensitive:
            spec[ds.sensitive] = tf.io.VarLenFeature(tf.string)
        raw = tf.io.parse_example(self.serialized, spec)
        n = len(self.serialized)
        self.labels = dense(raw[ds.label], n).numpy()
        self.groups = (np.array([v.decode() for v in dense(raw[ds.sensitive], n).numpy()])
                       if ds.sensitive else np.full(n, "", dtype=object))


def score(signature, serialized: np.ndarray, batch: int = 2048) -> np.ndarray:
    """The `probability` output of a signature that takes serialized tf.Examples
    (`from_examples`), in batches."""
    import tensorflow as tf

    return np.concatenate([
        signature(examples=tf.constant(serialized[i:i + batch]))["probability"].numpy()
        for i in range(0, len(serialized), batch)])


def dense(x, n: int):
    """A [n] tensor from a VarLen column of at most one value per row; missing -> 0 or ''."""
    import tensorflow as tf

    default = "" if x.dtype == tf.string else tf.zeros([], x.dtype)
    return tf.sparse.to_dense(tf.SparseTensor(x.indices, x.values, [n, 1]), default)[:, 0]
