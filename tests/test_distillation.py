import numpy as np
import pytest
import tensorflow as tf

from modules import distillation as D
from modules import features as F
from modules import model as model_lib


def test_alpha_one_is_plain_cross_entropy():
    y = tf.constant([0, 1, 1, 0])
    s = tf.constant([0.2, 0.7, 0.9, 0.4])
    t = tf.constant([0.9, 0.1, 0.5, 0.5])
    bce = tf.keras.losses.BinaryCrossentropy()(tf.cast(y, tf.float32)[:, None], s[:, None])
    np.testing.assert_allclose(D.distillation_loss(y, s, t, 1.0, 3.0), bce, rtol=1e-5)


def test_soft_term_vanishes_when_student_matches_teacher_and_grows_otherwise():
    y = tf.constant([0, 1])
    p = tf.constant([0.3, 0.8])
    assert float(D.distillation_loss(y, p, p, 0.0, 2.0)) == pytest.approx(0.0, abs=1e-6)
    assert float(D.distillation_loss(y, p, tf.constant([0.9, 0.1]), 0.0, 2.0)) > 0.1


def test_temperature_softens_towards_one_half():
    p = tf.constant([0.01, 0.99])
    soft = D.soften(p, 5.0).numpy()
    assert 0.01 < soft[0] < 0.5 < soft[1] < 0.99


def _data(n=256, seed=0):
    rng = np.random.default_rng(seed)
    age = rng.normal(size=n).astype("float32")
    return {F.xf("age"): age}, (age > 0).astype("int64")


def _student(seed, learning_rate=1e-3):
    tf.keras.utils.set_random_seed(seed)
    return model_lib.build_mlp(["age"], {}, hidden_units=[2], learning_rate=learning_rate)


@pytest.mark.parametrize("bad", [dict(alpha=1.5, temperature=2.0),
                                 dict(alpha=0.5, temperature=0.0)])
def test_out_of_range_settings_are_rejected(bad):
    with pytest.raises(ValueError, match="distillation"):
        D.DistillationLoss(**bad)


def test_the_loss_reads_labels_and_teacher_from_y_true():
    y, s, t = tf.constant([0.0, 1.0]), tf.constant([0.3, 0.6]), tf.constant([0.8, 0.2])
    loss = D.DistillationLoss(alpha=0.4, temperature=3.0)
    np.testing.assert_allclose(loss(tf.stack([y, t], axis=1), s[:, None]),
                               D.distillation_loss(y, s, t, 0.4, 3.0), rtol=1e-6)


def test_the_student_follows_its_teacher():
    """Same student init and data, different teachers: different students (alpha=0)."""
    x, y = _data()
    teachers = []
    for flip in (False, True):
        t = _student(5, learning_rate=0.05)
        t.fit(x, (1 - y) if flip else y, epochs=30, verbose=0)
        teachers.append(t)
    assert np.corrcoef(teachers[0](x).numpy().ravel(), teachers[1](x).numpy().ravel())[0, 1] < 0
    preds = []
    for teacher in teachers:
        student = _student(7)
        student.compile(optimizer=tf.keras.optimizers.Adam(0.05),
                        loss=D.DistillationLoss(alpha=0.0, temperature=2.0))
        data = D.with_teacher(tf.data.Dataset.from_tensor_slices((x, y)).batch(32), teacher)
        student.fit(data, epochs=30, verbose=0)
        preds.append(student(x).numpy().ravel())
    agree = [np.corrcoef(p, t(x).numpy().ravel())[0, 1] for p, t in zip(preds, teachers)]
    assert min(agree) > 0.8  # each student tracks its own teacher
    assert np.corrcoef(preds[0], preds[1])[0, 1] < 0  # the teachers disagree, so do they
