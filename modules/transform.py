"""preprocessing_fn: z-scores for numeric columns, vocabularies for categorical ones."""
from __future__ import annotations

import tensorflow as tf
import tensorflow_transform as tft

from modules import features as F


def to_dense(x: tf.Tensor | tf.SparseTensor) -> tf.Tensor:
    """A [batch] tensor from an optional single-valued column; missing -> 0 or ''."""
    if isinstance(x, tf.SparseTensor):
        default = "" if x.dtype == tf.string else tf.zeros([], x.dtype)
        x = tf.sparse.to_dense(
            tf.SparseTensor(x.indices, x.values, tf.stack([x.dense_shape[0], 1])), default)
    return tf.reshape(x, [-1])


def preprocessing_fn(inputs, custom_config):
    f = F.Features.from_config(custom_config)
    out = {}
    for key in f.numeric:
        out[F.xf(key)] = tft.scale_to_z_score(tf.cast(to_dense(inputs[key]), tf.float32))
    for key in f.categorical:
        out[F.xf(key)] = tft.compute_and_apply_vocabulary(
            to_dense(inputs[key]), num_oov_buckets=1, vocab_filename=F.vocab_name(key))
    if f.label in inputs:  # absent when serving
        out[f.label_xf] = tf.cast(to_dense(inputs[f.label]), tf.int64)
    return out
