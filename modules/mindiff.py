"""MinDiff remediation (tensorflow-model-remediation) on transformed features (pure Keras).

The MinDiff data are examples of the two groups of the sensitive feature restricted to one label
(negatives by default, so the penalty targets the false-positive-rate gap). Export the original
model afterwards: a saved MinDiffModel does not load back as a plain Keras model.
"""
from __future__ import annotations

import tensorflow as tf
from tensorflow_model_remediation import min_diff

KERNELS = ("gaussian", "laplacian")
# "rate_gap": instead of MMD's whole-distribution match, only the two groups' rates of positive
# decisions at the decision threshold are pulled together (on negatives: the FPR gap the gate
# measures), which leaves the ranking elsewhere, and so the AUC, alone.
LOSSES = (*KERNELS, "rate_gap")


class RateGapLoss(min_diff.losses.MinDiffLoss):
    """|rate(sensitive) - rate(nonsensitive)| of smoothed decisions sigmoid((p - t) / s)."""

    def __init__(self, threshold: float = 0.5, smoothness: float = 0.05, name: str = None):
        super().__init__(name=name or "rate_gap_loss", enable_summary_histogram=False)
        self.threshold, self.smoothness = threshold, smoothness

    def call(self, membership, predictions, sample_weight=None):
        m = tf.reshape(tf.cast(membership, tf.float32), [-1])
        decided = tf.sigmoid((tf.reshape(tf.cast(predictions, tf.float32), [-1])
                              - self.threshold) / self.smoothness)
        w = (tf.ones_like(m) if sample_weight is None
             else tf.reshape(tf.cast(sample_weight, tf.float32), [-1]))
        rate = [tf.math.divide_no_nan(tf.reduce_sum(w * g * decided), tf.reduce_sum(w * g))
                for g in (m, 1.0 - m)]
        return tf.abs(rate[0] - rate[1])


def group_examples(examples: tf.data.Dataset, sensitive_xf: str, group_id: int,
                   label: int) -> tf.data.Dataset:
    """The unbatched (features, label) pairs of one group with one label.

    `group_id` is the vocabulary id of the group's value of the sensitive feature.
    """
    def keep(x, y):
        return tf.logical_and(tf.equal(tf.cast(x[sensitive_xf], tf.int64), group_id),
                              tf.equal(tf.cast(y, tf.int64), label))

    return examples.filter(keep)


def group_dataset(examples: tf.data.Dataset, sensitive_xf: str, group_id: int, label: int,
                  batch_size: int) -> tf.data.Dataset:
    """Repeating batches of group_examples (MinDiff needs (features, label) pairs)."""
    return (group_examples(examples, sensitive_xf, group_id, label)
            .repeat().batch(batch_size, drop_remainder=True))


def pack(train: tf.data.Dataset, sensitive: tf.data.Dataset,
         nonsensitive: tf.data.Dataset) -> tf.data.Dataset:
    return min_diff.keras.utils.input_utils.pack_min_diff_data(
        train, sensitive_group_dataset=sensitive, nonsensitive_group_dataset=nonsensitive)


def wrap(model: tf.keras.Model, weight: float, kernel: str = "gaussian",
         threshold: float = 0.5) -> tf.keras.Model:
    """A MinDiffModel around `model` with an MMD loss (or the rate-gap loss at `threshold`);
    compile it like `model`."""
    if weight < 0:
        raise ValueError(f"mindiff weight: expected >= 0, got {weight}")
    if kernel not in LOSSES:
        raise ValueError(f"mindiff kernel: expected one of {list(LOSSES)}, got {kernel!r}")
    loss = (RateGapLoss(threshold) if kernel == "rate_gap"
            else min_diff.losses.MMDLoss(kernel=kernel))
    return min_diff.keras.MinDiffModel(model, loss, loss_weight=weight)
