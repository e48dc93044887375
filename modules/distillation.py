"""Knowledge distillation for a binary classifier with sigmoid outputs (pure Keras, no TFX).

loss = alpha * CE(labels, student) + (1 - alpha) * T^2 * KL(teacher_T || student_T), where x_T is
the probability softened by temperature T: sigmoid(logit(x) / T).
"""
from __future__ import annotations

import tensorflow as tf

_EPS = 1e-7


def soften(p: tf.Tensor, temperature: float) -> tf.Tensor:
    p = tf.clip_by_value(p, _EPS, 1 - _EPS)
    return tf.sigmoid((tf.math.log(p) - tf.math.log1p(-p)) / temperature)


def bernoulli_kl(p: tf.Tensor, q: tf.Tensor) -> tf.Tensor:
    """Per-example KL(Bernoulli(p) || Bernoulli(q))."""
    p = tf.clip_by_value(p, _EPS, 1 - _EPS)
    q = tf.clip_by_value(q, _EPS, 1 - _EPS)
    return p * tf.math.log(p / q) + (1 - p) * tf.math.log((1 - p) / (1 - q))


def distillation_loss(labels, student_p, teacher_p, alpha: float, temperature: float):
    labels = tf.cast(tf.reshape(labels, [-1]), tf.float32)
    student_p, teacher_p = tf.reshape(student_p, [-1]), tf.reshape(teacher_p, [-1])
    hard = tf.keras.losses.binary_crossentropy(labels[:, None], student_p[:, None])
    soft = bernoulli_kl(soften(teacher_p, temperature), soften(student_p, temperature))
    return tf.reduce_mean(alpha * hard + (1 - alpha) * temperature ** 2 * soft)


class DistillationLoss(tf.keras.losses.Loss):
    """The distillation loss as a Keras loss: y_true is [label, teacher probability] per row.

    Being a plain loss, the student trains with model.fit and can be wrapped by MinDiff too.
    """

    def __init__(self, alpha: float, temperature: float, name: str = "distillation"):
        super().__init__(name=name)
        if not 0.0 <= alpha <= 1.0:
            raise ValueError(f"distillation alpha: expected a number in [0, 1], got {alpha}")
        if temperature <= 0:
            raise ValueError(f"distillation temperature: expected > 0, got {temperature}")
        self.alpha, self.temperature = alpha, temperature

    def call(self, y_true, y_pred):
        y_true = tf.reshape(tf.cast(y_true, tf.float32), [-1, 2])
        return distillation_loss(y_true[:, 0], y_pred, y_true[:, 1], self.alpha, self.temperature)


def with_teacher(dataset: tf.data.Dataset, teacher: tf.keras.Model) -> tf.data.Dataset:
    """(features, label) batches -> (features, [label, teacher probability]) batches."""
    teacher.trainable = False

    def add(x, y):
        p = tf.reshape(teacher({k: x[k] for k in teacher.input_names}, training=False), [-1])
        return x, tf.stack([tf.cast(tf.reshape(y, [-1]), tf.float32), p], axis=1)

    return dataset.map(add)
