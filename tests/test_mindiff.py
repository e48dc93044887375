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


def test_the_original_model_is_what_remains_to_export(tmp_path):
    """wrap trains the model it was given (not a copy), and that model saves and loads back
    as plain Keras with the same predictions: what the Trainer exports."""
    tf.keras.utils.set_random_seed(3)
    x, _ = _examples(8)
    untrained = model_lib.build_mlp(["age"], {"sex": 2}, hidden_units=[8])
    before = untrained(x).numpy()
    _, base = _train(1.0, steps=20)  # the same seed builds the same initial weights
    after = base(x).numpy()
    assert after.shape == (8, 1) and np.abs(after - before).max() > 1e-3  # it was trained
    base.save(tmp_path / "model")
    loaded = tf.keras.models.load_model(tmp_path / "model")
    assert not any("min_diff" in w.name for w in loaded.weights)
    np.testing.assert_allclose(loaded(x).numpy(), after, rtol=1e-5, atol=1e-6)


def _leaky(n: int, seed: int):
    """x carries the signal; group 1 has more positives, so a model scores its negatives
    higher through `sex` alone: FPR(1) - FPR(0) is about 0.2 at 0.5 without MinDiff."""
    rng = np.random.default_rng(seed)
    sex = rng.integers(0, 2, size=n).astype("int64")
    x = rng.normal(size=n).astype("float32")
    y = (rng.random(n) < 1 / (1 + np.exp(-(2.0 * x + 2.0 * sex - 1.0)))).astype("int64")
    return {F.xf("x"): x, SEX: sex}, y


def _fpr_gap(weight: float, seed: int = 1, steps: int = 200, kernel: str = "gaussian") -> float:
    tf.keras.utils.set_random_seed(seed)
    x, y = _leaky(2048, seed)
    ds = tf.data.Dataset.from_tensor_slices((x, y))
    packed = mindiff.pack(ds.shuffle(2048, seed=seed).repeat().batch(64),
                          mindiff.group_dataset(ds, SEX, 1, 0, 32),
                          mindiff.group_dataset(ds, SEX, 0, 0, 32))
    base = model_lib.build_mlp(["x"], {"sex": 2}, hidden_units=[8])
    model = mindiff.wrap(base, weight, kernel)
    model.compile(optimizer=tf.keras.optimizers.Adam(0.01), loss="binary_crossentropy")
    model.fit(packed, steps_per_epoch=steps, epochs=1, verbose=0)
    x, y = _leaky(8000, 12345)  # held out
    p = base.predict(x, batch_size=1024, verbose=0)[:, 0]
    fpr = [np.mean(p[(y == 0) & (x[SEX] == g)] >= 0.5) for g in (0, 1)]
    return fpr[1] - fpr[0]


def test_mindiff_cuts_the_fpr_gap_on_a_fixed_dataset():
    """Measured on seeds 0-5 (weight 5, 200 steps): gap 0.18-0.27 without MinDiff, cut by
    80-120 % with it (seed 1: 0.210 -> 0.018). The bound leaves margin for other CPUs."""
    off, on = _fpr_gap(0.0), _fpr_gap(5.0)
    assert off > 0.15, f"the data no longer has an FPR gap to remove: {off:.3f}"
    assert abs(on) <= 0.5 * off, f"MinDiff cut the FPR gap from {off:.3f} to {on:.3f} only"


@pytest.mark.parametrize("weight, kernel, field", [(-1.0, "gaussian", "weight"),
                                                   (1.0, "cosine", "kernel")])
def test_bad_settings_name_the_field(weight, kernel, field):
    with pytest.raises(ValueError, match=f"mindiff {field}"):
        mindiff.wrap(model_lib.build_mlp(["age"], {}, [2]), weight, kernel)


def test_the_rate_gap_loss_is_the_gap_between_smoothed_decision_rates():
    loss = mindiff.RateGapLoss(threshold=0.5, smoothness=0.01)
    membership = tf.constant([[1.0], [1.0], [0.0], [0.0]])
    # group 1 decides positive for one of two, group 0 for none: a rate gap of 1/2
    predictions = tf.constant([[0.9], [0.1], [0.2], [0.3]])
    assert float(loss(membership, predictions)) == pytest.approx(0.5, abs=1e-3)
    assert float(loss(membership, tf.constant([[0.9], [0.1], [0.8], [0.2]]))) == \
        pytest.approx(0.0, abs=1e-3)
    # the decision threshold is where it counts: at 0.95 neither group decides positive
    assert float(mindiff.RateGapLoss(0.95, 0.01)(membership, predictions)) < 0.01


def test_the_rate_gap_loss_cuts_the_fpr_gap_at_the_threshold():
    off, on = _fpr_gap(0.0), _fpr_gap(1.0, kernel="rate_gap")
    assert abs(on) <= 0.5 * off, f"the rate-gap loss cut the FPR gap from {off:.3f} to {on:.3f}"
