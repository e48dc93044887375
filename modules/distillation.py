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


class Distiller(tf.keras.Model):
    """Trains `student` against labels and a frozen `teacher`; export `student`, not this."""

    def __init__(self, student: tf.keras.Model, teacher: tf.keras.Model, alpha: float,
                 temperature: float, **kwargs):
        super().__init__(**kwargs)
        if not 0.0 <= alpha <= 1.0:
            raise ValueError(f"distillation alpha: expected a number in [0, 1], got {alpha}")
        if temperature <= 0:
            raise ValueError(f"distillation temperature: expected > 0, got {temperature}")
        self.student, self.teacher = student, teacher
        self.teacher.trainable = False
        self.alpha, self.temperature = alpha, temperature
        self.loss_tracker = tf.keras.metrics.Mean(name="loss")

    def call(self, inputs, training=False):
        return self.student(inputs, training=training)

    @property
    def metrics(self):
        return [self.loss_tracker] + self.compiled_metrics.metrics

    def train_step(self, data):
        x, y = data[0], data[1]
        teacher_p = self.teacher(x, training=False)
        with tf.GradientTape() as tape:
            student_p = self.student(x, training=True)
            loss = distillation_loss(y, student_p, teacher_p, self.alpha, self.temperature)
        grads = tape.gradient(loss, self.student.trainable_variables)
        self.optimizer.apply_gradients(zip(grads, self.student.trainable_variables))
        self.loss_tracker.update_state(loss)
        self.compiled_metrics.update_state(y, student_p)
        return {m.name: m.result() for m in self.metrics}

    def test_step(self, data):
        x, y = data[0], data[1]
        student_p = self.student(x, training=False)
        loss = distillation_loss(y, student_p, self.teacher(x, training=False), self.alpha,
                                 self.temperature)
        self.loss_tracker.update_state(loss)
        self.compiled_metrics.update_state(y, student_p)
        return {m.name: m.result() for m in self.metrics}
