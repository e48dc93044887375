import numpy as np
import pytest
import tensorflow as tf

from modules import features as F
from modules import mindiff
from modules import model as model_lib

SEX = F.xf("sex")


def _examples(n=512, seed=0):
    """Group 1 gets a higher score on the same label: a built-in FPR gap."""
    rng = np.random.default_rng(seed)
    sex = rng.integers(0, 2, size=n).astype("int64")
    age = (rng.normal(size=n) + sex * 1.5).astype("float32")
    y = (rng.random(n) < 1 / (1 + np.exp(-age))).astype("int64")
    return {F.xf("age"): age, SEX: sex}, y


def test_group_dataset_keeps_one_group_and_label():
    x, y = _examples()
    ds = tf.data.Dataset.from_tensor_slices((x, y))
    batch_x, batch_y = next(iter(mindiff.group_dataset(ds, SEX, 1, 0, batch_size=16)))
    assert set(batch_x[SEX].numpy()) == {1} and set(batch_y.numpy()) == {0}
    assert batch_y.shape == (16,)


def _train(weight: float, steps: int = 40) -> tuple[dict, tf.keras.Model]:
    tf.keras.utils.set_random_seed(3)
    x, y = _examples()
    ds = tf.data.Dataset.from_tensor_slices((x, y))
    train = ds.repeat().batch(64)
    packed = mindiff.pack(train, mindiff.group_dataset(ds, SEX, 1, 0, 32),
                          mindiff.group_dataset(ds, SEX, 0, 0, 32))
    base = model_lib.build_mlp(["age"], {"sex": 2}, hidden_units=[8], learning_rate=0.01)
    model = mindiff.wrap(base, weight)
    model.compile(optimizer=tf.keras.optimizers.Adam(0.01), loss="binary_crossentropy")
    history = model.fit(packed, steps_per_epoch=steps, epochs=1, verbose=0)
    return {k: v[-1] for k, v in history.history.items()}, base


def test_the_mindiff_penalty_is_added_to_the_loss():
    off, _ = _train(0.0)
    on, _ = _train(5.0)
    assert on["min_diff_loss"] > 1e-3 and off["min_diff_loss"] == pytest.approx(0.0, abs=1e-6)
    assert on["loss"] > off["loss"] + 1e-3


def test_the_original_model_is_what_remains_to_export():
    _, base = _train(1.0, steps=5)
    x, _ = _examples(8)
    assert type(base).__name__ == "Functional"
    assert base(x).shape == (8, 1)


@pytest.mark.parametrize("weight, kernel, field", [(-1.0, "gaussian", "weight"),
                                                   (1.0, "cosine", "kernel")])
def test_bad_settings_name_the_field(weight, kernel, field):
    with pytest.raises(ValueError, match=f"mindiff {field}"):
        mindiff.wrap(model_lib.build_mlp(["age"], {}, [2]), weight, kernel)
