"""Pure Keras model builders (no TFX imports): transformed features in, probability out."""
from __future__ import annotations

from typing import Mapping, Sequence

import tensorflow as tf

from modules import features as F


def build_mlp(numeric: Sequence[str], vocab_sizes: Mapping[str, int],
              hidden_units: Sequence[int], embedding_dim: int = 8,
              learning_rate: float = 1e-3, name: str = "mlp",
              indicators: Sequence[str] = ()) -> tf.keras.Model:
    """An MLP over z-scored numeric features, 0/1 `indicators` (transformed names) and
    embedded categorical ids.

    `vocab_sizes` maps each categorical column to its vocabulary size including OOV buckets.
    """
    inputs, parts = {}, []
    for name_xf in indicators:
        inputs[name_xf] = tf.keras.Input(shape=(), name=name_xf, dtype=tf.float32)
        parts.append(tf.keras.layers.Reshape((1,), name=f"{name_xf}_col")(inputs[name_xf]))
    for key in numeric:
        inputs[F.xf(key)] = tf.keras.Input(shape=(), name=F.xf(key), dtype=tf.float32)
        parts.append(tf.keras.layers.Reshape((1,), name=f"{key}_col")(inputs[F.xf(key)]))
    for key, size in vocab_sizes.items():
        inputs[F.xf(key)] = tf.keras.Input(shape=(), name=F.xf(key), dtype=tf.int64)
        dim = max(1, min(embedding_dim, size))
        emb = tf.keras.layers.Embedding(size, dim, name=f"{key}_emb")(inputs[F.xf(key)])
        parts.append(emb)
    x = tf.keras.layers.Concatenate(name="features")(parts) if len(parts) > 1 else parts[0]
    for i, units in enumerate(hidden_units):
        x = tf.keras.layers.Dense(units, activation="relu", name=f"dense_{i}")(x)
    out = tf.keras.layers.Dense(1, activation="sigmoid", name="probability")(x)
    model = tf.keras.Model(inputs=inputs, outputs=out, name=name)
    model.compile(optimizer=tf.keras.optimizers.Adam(learning_rate),
                  loss=tf.keras.losses.BinaryCrossentropy(),
                  metrics=[tf.keras.metrics.AUC(name="auc"),
                           tf.keras.metrics.BinaryAccuracy(name="accuracy")])
    return model
