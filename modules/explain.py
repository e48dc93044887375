"""Per-prediction attributions: integrated gradients of the logit, per raw feature.

The path runs in the model's input space after the Transform layer and the embeddings (the
concatenated feature vector), from a baseline row to the explained row:

- a numeric column is z-scored by Transform, an affine map, so the straight path in the
  transformed value is the straight path in the raw value and the attributions are the same
  as integrated gradients on the raw number; its missing-indicator belongs to it;
- a categorical column moves along the straight line between the baseline's and the row's
  embedding vectors, and its attribution is the sum over the embedding dimensions: the column
  is attributed as a whole.

The baseline is a row of the training statistics that Transform computed: every numeric
column at its training mean (z = 0, present) and every categorical column at its most
frequent training value (vocabulary id 0; TFT orders vocabularies by frequency).

Attributions are in logit units. A ReLU network is piecewise linear along the path; the
integral is exact on every grid interval (of `STEPS`) that holds at most one kink, so the
attributions add up to logit(row) - logit(baseline) to float32 rounding (tested at rtol 1e-3);
an interval with several kinks still adds up, and splits its part between the gradients at
its ends.
"""
from __future__ import annotations

from typing import Mapping

import tensorflow as tf

from modules import features as F

STEPS = 64  # grid intervals on the path
ATTRIBUTION_PREFIX = "attribution_"
LOGIT_KEY = "logit"
BASELINE_LOGIT_KEY = "baseline_logit"


def attribution_key(feature: str) -> str:
    return ATTRIBUTION_PREFIX + feature


class Explainer:
    """Splits a `model.build_mlp` model into encoder (inputs -> per-column vectors) and head
    (concatenated vector -> logit), and integrates the head's gradient along the path."""

    def __init__(self, model: tf.keras.Model, f: F.Features, steps: int = STEPS):
        self.f, self.steps = f, steps
        dense = [layer for layer in model.layers if isinstance(layer, tf.keras.layers.Dense)]
        if not dense or dense[-1].activation is not tf.keras.activations.sigmoid:
            raise ValueError(f"model {model.name}: explanations need a sigmoid Dense output "
                             "layer (modules.model.build_mlp)")
        self.hidden, self.output = dense[:-1], dense[-1]
        joined = dense[0].input
        layer = joined._keras_history.layer
        parts = layer.input if isinstance(layer, tf.keras.layers.Concatenate) else joined
        parts = parts if isinstance(parts, list) else [parts]
        self.encoder = tf.keras.Model(model.input, parts)
        # Which raw column owns each part: the model input it was computed from.
        owner = {F.xf(k): k for k in f.raw} | {F.missing_xf(k): k for k in f.numeric}
        self.owners = []
        for part in parts:
            source = part._keras_history.layer.input._keras_history.layer.name
            if source not in owner:
                raise ValueError(f"model {model.name}: input {source!r} is not a raw feature's "
                                 "transformed column")
            self.owners.append(owner[source])
        self.input_dtypes = {k: v.dtype for k, v in model.input.items()}
        self.features = tuple(k for k in f.raw if k in self.owners)

    def logit(self, z: tf.Tensor) -> tf.Tensor:
        """The pre-sigmoid output of the head for concatenated vectors [n, D]."""
        for layer in self.hidden:
            z = layer(z)
        return tf.reshape(tf.matmul(z, self.output.kernel) + self.output.bias, [-1])

    def _encode(self, transformed: Mapping[str, tf.Tensor]) -> tuple[tf.Tensor, tf.Tensor]:
        """(concatenated vectors [n, D], the column-to-feature matrix [D, features])."""
        parts = self.encoder({k: transformed[k] for k in self.input_dtypes})
        parts = parts if isinstance(parts, list) else [parts]
        parts = [tf.reshape(p, [tf.shape(p)[0], -1]) for p in parts]
        owner_index = [self.features.index(o) for o in self.owners]
        onehot = [tf.tile(tf.one_hot([i], len(self.features)), [tf.shape(p)[1], 1])
                  for p, i in zip(parts, owner_index)]
        return tf.concat(parts, 1), tf.concat(onehot, 0)

    def baseline(self) -> dict[str, tf.Tensor]:
        """The baseline row in transformed form: means (z = 0, present) and vocabulary id 0."""
        return {k: tf.zeros([1], dtype) for k, dtype in self.input_dtypes.items()}

    def explain(self, transformed: Mapping[str, tf.Tensor]) -> dict[str, tf.Tensor]:
        z_row, owners = self._encode(transformed)
        z_base, _ = self._encode(self.baseline())
        delta = z_row - z_base  # [n, D]
        alphas = tf.linspace(0.0, 1.0, self.steps + 1)
        path = z_base[None] + alphas[:, None, None] * delta[None]  # [steps + 1, n, D]
        flat = tf.reshape(path, [-1, tf.shape(delta)[1]])
        with tf.GradientTape() as tape:
            tape.watch(flat)
            y = self.logit(flat)
        grads = tf.reshape(tape.gradient(y, flat), tf.shape(path))
        y = tf.reshape(y, tf.shape(path)[:2])  # [steps + 1, n]
        # Along a straight line a ReLU network is piecewise linear: on a grid interval with one
        # kink, the integral of the gradient is t * g(left) + (1 - t) * g(right), where t is
        # where the kink lies, found from the change of the logit over the interval.
        h = 1.0 / self.steps
        slope = tf.reduce_sum(grads * delta[None], -1)  # directional derivative [steps + 1, n]
        left, right = slope[:-1], slope[1:]
        change = (y[1:] - y[:-1]) / h
        denom = left - right
        kinked = tf.abs(denom) > 1e-4 * (tf.abs(left) + tf.abs(right)) + 1e-6
        t = tf.where(kinked, (change - right) / tf.where(kinked, denom, 1.0), 0.5)
        t = tf.clip_by_value(t, 0.0, 1.0)[..., None]
        integral = h * tf.reduce_sum(t * grads[:-1] + (1.0 - t) * grads[1:], 0)  # [n, D]
        per_feature = tf.matmul(delta * integral, owners)  # [n, features]
        logit, baseline_logit = y[-1], y[0]
        out = {LOGIT_KEY: logit, "probability": tf.sigmoid(logit),
               BASELINE_LOGIT_KEY: baseline_logit}
        for i, k in enumerate(self.features):
            out[attribution_key(k)] = per_feature[:, i]
        return out
