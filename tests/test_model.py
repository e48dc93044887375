import numpy as np
import tensorflow as tf

from modules import features as F
from modules import model as model_lib


def tiny_batch(n=64, seed=0):
    rng = np.random.default_rng(seed)
    age = rng.normal(size=n).astype("float32")
    sex = rng.integers(0, 3, size=n).astype("int64")
    label = (age > 0).astype("int64")
    return {F.xf("age"): age, F.xf("sex"): sex}, label


def test_mlp_outputs_probabilities_for_a_batch():
    m = model_lib.build_mlp(["age"], {"sex": 3}, hidden_units=[8, 4])
    x, _ = tiny_batch()
    p = m(x).numpy()
    assert p.shape == (64, 1)
    assert ((p >= 0) & (p <= 1)).all()
    assert {l.name for l in m.layers} >= {"sex_emb", "dense_0", "dense_1", "probability"}


def test_mlp_learns_a_separable_signal():
    tf.keras.utils.set_random_seed(0)
    m = model_lib.build_mlp(["age"], {"sex": 3}, hidden_units=[8], learning_rate=0.05)
    x, y = tiny_batch(256)
    before = m.evaluate(x, y, verbose=0, return_dict=True)
    m.fit(x, y, epochs=20, verbose=0)
    after = m.evaluate(x, y, verbose=0, return_dict=True)
    assert after["loss"] < before["loss"] * 0.6
    assert after["auc"] > 0.95


def test_embedding_width_is_capped_by_vocabulary():
    m = model_lib.build_mlp([], {"sex": 3, "country": 50}, hidden_units=[4], embedding_dim=8)
    assert m.get_layer("sex_emb").output_dim == 3
    assert m.get_layer("country_emb").output_dim == 8
