"""The exported `explain` signatures: integrated gradients of the logit per raw feature."""
import numpy as np
import pytest
import tensorflow as tf

import explain_support as support
from modules import explain, signatures

KEYS = [explain.attribution_key(k) for k in support.FEATURES.raw]


def _call(sig, inputs):
    return {k: v.numpy() for k, v in sig(**{k: tf.constant(v) for k, v in inputs.items()}).items()}


@pytest.fixture(scope="module")
def tft_dir(tmp_path_factory):
    return support.analyse(tmp_path_factory.mktemp("transform"))


@pytest.fixture(scope="module")
def model_dir(tft_dir, tmp_path_factory):
    return support.export(tft_dir, tmp_path_factory.mktemp("explain") / "model")


@pytest.fixture(scope="module")
def sigs(model_dir):
    return tf.saved_model.load(model_dir).signatures


def test_attributions_add_up_to_the_logit_difference(sigs):
    out = _call(sigs[signatures.EXPLAIN_SIGNATURE], support.serving_rows())
    assert set(KEYS) <= set(out)
    total = np.sum([out[k] for k in KEYS], axis=0)
    diff = out[explain.LOGIT_KEY] - out[explain.BASELINE_LOGIT_KEY]
    assert np.abs(diff).max() > 1  # rows really differ from the baseline
    np.testing.assert_allclose(total, diff, rtol=1e-3, atol=1e-4)


def test_explained_score_is_the_served_score(sigs):
    rows = support.serving_rows()
    served = _call(sigs[signatures.RAW_SIGNATURE], rows)[signatures.OUTPUT_KEY]
    out = _call(sigs[signatures.EXPLAIN_SIGNATURE], rows)
    np.testing.assert_allclose(out[signatures.OUTPUT_KEY], served, rtol=1e-5)
    np.testing.assert_allclose(1 / (1 + np.exp(-out[explain.LOGIT_KEY])), served, rtol=1e-5)


def test_explain_from_examples_matches_raw_rows(sigs):
    rows = support.serving_rows()
    examples = []
    for i in range(len(rows["age"])):
        feats = {"age": tf.train.Feature(int64_list=tf.train.Int64List(value=[rows["age"][i]])),
                 "sex": tf.train.Feature(bytes_list=tf.train.BytesList(value=[rows["sex"][i]]))}
        if not np.isnan(rows["hours"][i]):  # missing: the feature is absent, as in CSV data
            feats["hours"] = tf.train.Feature(float_list=tf.train.FloatList(
                value=[rows["hours"][i]]))
        if rows["color"][i]:
            feats["color"] = tf.train.Feature(bytes_list=tf.train.BytesList(
                value=[rows["color"][i]]))
        examples.append(tf.train.Example(
            features=tf.train.Features(feature=feats)).SerializeToString())
    a = _call(sigs[signatures.EXPLAIN_SIGNATURE], rows)
    b = _call(sigs[signatures.EXPLAIN_EXAMPLES_SIGNATURE], {"examples": np.array(examples)})
    for k in a:
        np.testing.assert_allclose(a[k], b[k], rtol=1e-5, atol=1e-6, err_msg=k)


@pytest.mark.parametrize("feature", ["age", "hours", "color"])
def test_a_model_of_one_feature_attributes_everything_to_it(tft_dir, tmp_path, feature):
    """`hours` is missing in one row: value and missing-indicator are one feature."""
    sig = tf.saved_model.load(support.export(tft_dir, tmp_path / "m", only=feature)).signatures[
        signatures.EXPLAIN_SIGNATURE]
    out = _call(sig, support.serving_rows())
    mine = np.abs(out[explain.attribution_key(feature)])
    total = np.sum([np.abs(out[k]) for k in KEYS], axis=0)
    assert mine.sum() > 0
    assert (mine >= 0.999 * total).all(), {k: out[k] for k in KEYS}


def test_the_baseline_row_has_zero_attributions(sigs):
    """The baseline: numeric columns at their training mean, categorical ones at their most
    frequent training value."""
    data = support.rows()
    hours = [r["hours"][0] for r in data if r["hours"]]
    colors = [r["color"][0] for r in data if r["color"]]
    sexes = [r["sex"][0] for r in data]
    # Only a column whose mean is an integer can hold the exact mean in an int64 input.
    out = _call(sigs[signatures.EXPLAIN_SIGNATURE], {
        "age": np.array([0], np.int64), "hours": np.array([np.mean(hours)], np.float32),
        "color": np.array([max(set(colors), key=colors.count)], object),
        "sex": np.array([max(set(sexes), key=sexes.count)], object)})
    for k in KEYS:
        if k != explain.attribution_key("age"):
            assert abs(out[k][0]) < 1e-4, (k, out[k])


def test_a_model_of_another_shape_still_exports_without_explanations(tft_dir, tmp_path):
    import tensorflow_transform as tft

    from modules import model as model_lib, trainer

    tft_output = tft.TFTransformOutput(tft_dir)
    inner = model_lib.build_mlp(support.FEATURES.numeric,
                                trainer.vocab_sizes(tft_output, support.FEATURES), (8,),
                                embedding_dim=3, indicators=support.FEATURES.indicators)
    # The MLP wrapped in another model: not a shape the explainer can split.
    inputs = {n: tf.keras.Input(shape=(), name=n, dtype=t.dtype)
              for n, t in zip(inner.input_names, inner.inputs)}
    wrapped = tf.keras.Model(inputs, inner(inputs))
    signatures.export(wrapped, tft_output, support.FEATURES, str(tmp_path / "m"))
    sigs = tf.saved_model.load(str(tmp_path / "m")).signatures
    assert signatures.RAW_SIGNATURE in sigs and signatures.EXPLAIN_SIGNATURE not in sigs
