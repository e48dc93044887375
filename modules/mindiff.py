"""MinDiff remediation (tensorflow-model-remediation) on transformed features (pure Keras).

The MinDiff data are examples of the two groups of the sensitive feature restricted to one label
(negatives by default, so the penalty targets the false-positive-rate gap). Export the original
model afterwards: a saved MinDiffModel does not load back as a plain Keras model.
"""
from __future__ import annotations

import tensorflow as tf
from tensorflow_model_remediation import min_diff

KERNELS = ("gaussian", "laplacian")


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


def wrap(model: tf.keras.Model, weight: float, kernel: str = "gaussian") -> tf.keras.Model:
    """A MinDiffModel around `model` with an MMD loss; compile it like `model`."""
    if weight < 0:
        raise ValueError(f"mindiff weight: expected >= 0, got {weight}")
    if kernel not in KERNELS:
        raise ValueError(f"mindiff kernel: expected one of {list(KERNELS)}, got {kernel!r}")
    return min_diff.keras.MinDiffModel(model, min_diff.losses.MMDLoss(kernel=kernel),
                                       loss_weight=weight)
