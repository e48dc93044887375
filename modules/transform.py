"""preprocessing_fn: z-scores for numeric columns, vocabularies for categorical ones.

Optional numeric columns (the schema lets them be missing) are imputed with the mean of the
present values and get a 0/1 missing-indicator; a missing categorical value gets its own
vocabulary entry (features.MISSING_TOKEN).
"""
from __future__ import annotations

import tensorflow as tf
import tensorflow_transform as tft

from modules import features as F


def to_dense(x: tf.Tensor | tf.SparseTensor, default=None) -> tf.Tensor:
    """A [batch] tensor from a single-valued column (dense [batch] or [batch, 1], or sparse
    with at most one value per row); missing -> `default` (0 or '' when None)."""
    if isinstance(x, tf.SparseTensor):
        if default is None:
            default = "" if x.dtype == tf.string else tf.zeros([], x.dtype)
        x = tf.sparse.to_dense(
            tf.SparseTensor(x.indices, x.values, tf.stack([x.dense_shape[0], 1])), default)
    return tf.reshape(x, [-1])


def present(x: tf.Tensor | tf.SparseTensor) -> tf.Tensor:
    """[batch] bool: whether each row has a value."""
    if not isinstance(x, tf.SparseTensor):
        return tf.ones(tf.shape(tf.reshape(x, [-1])), tf.bool)
    rows = tf.ones_like(x.indices[:, 0])
    counts = tf.math.unsorted_segment_sum(rows, x.indices[:, 0], x.dense_shape[0])
    return counts > 0


def _numeric(x, optional: bool) -> dict[str, tf.Tensor] | tf.Tensor:
    values = tf.cast(to_dense(x), tf.float32)
    if not optional:
        return tft.scale_to_z_score(values)
    observed = tf.cast(x.values if isinstance(x, tf.SparseTensor) else values, tf.float32)
    mean, std = tft.mean(observed), tf.sqrt(tft.var(observed))
    # Missing -> the mean, i.e. 0 after scaling; the indicator tells the model it was imputed.
    return tf.where(present(x), tf.math.divide_no_nan(values - mean, std), 0.0)


def preprocessing_fn(inputs, custom_config):
    f = F.Features.from_config(custom_config)
    out = {}
    for key in f.numeric:
        optional = key in f.optional
        out[F.xf(key)] = _numeric(inputs[key], optional)
        if optional:
            out[F.missing_xf(key)] = 1.0 - tf.cast(present(inputs[key]), tf.float32)
    for key in f.categorical:
        x = inputs[key]
        default = F.MISSING_TOKEN if x.dtype == tf.string else tf.constant(-1, x.dtype)
        out[F.xf(key)] = tft.compute_and_apply_vocabulary(
            to_dense(x, default), top_k=f.max_vocab, num_oov_buckets=1,
            vocab_filename=F.vocab_name(key))
    if f.label in inputs:  # absent when serving
        out[f.label_xf] = tf.cast(to_dense(inputs[f.label]), tf.int64)
    return out
