"""Serving signatures: raw named tensors (TF Serving REST rows) and serialized tf.Examples.

The Classify and Regress signatures make the model usable by TF Serving's Classify and Regress
APIs as well as by Predict.
"""
from __future__ import annotations

import logging

import tensorflow as tf
import tensorflow_transform as tft
from tensorflow.core.protobuf import saved_model_pb2

from modules import explain as explain_lib
from modules import features as F

try:
    from tensorflow.python.saved_model.signature_constants import (
        CLASSIFY_METHOD_NAME, REGRESS_METHOD_NAME)
except ImportError:  # private module; the values are fixed by TF Serving's API
    CLASSIFY_METHOD_NAME = "tensorflow/serving/classify"
    REGRESS_METHOD_NAME = "tensorflow/serving/regress"
try:
    from tensorflow.python.saved_model import fingerprinting_utils
except ImportError:
    fingerprinting_utils = None

RAW_SIGNATURE = "serving_default"
EXAMPLES_SIGNATURE = "from_examples"
# Attributions per raw feature (modules.explain): the same inputs as serving_default and
# from_examples; outputs `probability`, `logit`, `baseline_logit`, `attribution_<feature>`.
EXPLAIN_SIGNATURE = "explain"
EXPLAIN_EXAMPLES_SIGNATURE = "explain_from_examples"
OUTPUT_KEY = "probability"

# Names fixed by TF Serving's classifier.cc / regressor.cc.
CLASSIFY_SIGNATURE = "classification"
REGRESS_SIGNATURE = "regression"
CLASSIFY_INPUT_KEY = REGRESS_INPUT_KEY = "inputs"
CLASSES_KEY = "classes"
SCORES_KEY = "scores"
REGRESS_OUTPUT_KEY = "outputs"
CLASS_LABELS = (b"0", b"1")  # column order of `classes` and `scores`

_METHOD_NAMES = {CLASSIFY_SIGNATURE: CLASSIFY_METHOD_NAME, REGRESS_SIGNATURE: REGRESS_METHOD_NAME}


def _as_sparse(x: tf.Tensor, keep: tf.Tensor | None = None) -> tf.SparseTensor:
    """[batch] -> [batch, 1] SparseTensor (the form Transform saw for a VarLen column), with
    only the rows where `keep` is true."""
    n = tf.shape(x, out_type=tf.int64)[0]
    rows = tf.range(n) if keep is None else tf.boolean_mask(tf.range(n), keep)
    values = x if keep is None else tf.boolean_mask(x, keep)
    indices = tf.stack([rows, tf.zeros_like(rows)], axis=1)
    return tf.SparseTensor(indices, values, tf.stack([n, tf.constant(1, tf.int64)]))


def raw_input_dtype(spec, optional: bool) -> tf.DType:
    """The serving input's dtype: the column's, except that an optional integer column takes
    floats so that NaN can say "missing" (a string column uses '')."""
    return tf.float64 if optional and spec.dtype == tf.int64 else spec.dtype


def _is_present(x: tf.Tensor) -> tf.Tensor:
    return tf.not_equal(x, "") if x.dtype == tf.string else tf.logical_not(tf.math.is_nan(x))


def raw_to_parsed(x: tf.Tensor, spec, optional: bool):
    """A [batch] serving input in the form tf.io.parse_example gives for `spec`."""
    if optional and isinstance(spec, tf.io.VarLenFeature):
        return _as_sparse(tf.cast(x, spec.dtype) if x.dtype != spec.dtype else x, _is_present(x))
    if isinstance(spec, tf.io.VarLenFeature):
        return _as_sparse(x)
    return tf.reshape(x, [-1, *spec.shape])  # FixedLen: [] or [1] (a TFDV-inferred shape)


def set_method_names(export_dir: str) -> None:
    """Marks the `classification`/`regression` signatures of a SavedModel as classify/regress.

    TF2 saves every signature as predict, and TF Serving's Classify/Regress refuse those.
    """
    path = tf.io.gfile.join(export_dir, "saved_model.pb")
    saved_model = saved_model_pb2.SavedModel()
    with tf.io.gfile.GFile(path, "rb") as fh:
        saved_model.ParseFromString(fh.read())
    signature_defs = saved_model.meta_graphs[0].signature_def
    for name, method in _METHOD_NAMES.items():
        if name in signature_defs:  # indexing a proto map would add an empty signature
            signature_defs[name].method_name = method
    with tf.io.gfile.GFile(path, "wb") as fh:
        fh.write(saved_model.SerializeToString(deterministic=True))
    if fingerprinting_utils is not None:  # fingerprint.pb hashes saved_model.pb: keep it in step
        fingerprinting_utils.write_fingerprint(export_dir)


def export(model: tf.keras.Model, tft_output: tft.TFTransformOutput, f: F.Features,
           export_dir: str) -> None:
    # Tracked on the model so the saved object owns the Transform graph's resources.
    model.tft_layer = tft_output.transform_features_layer()
    raw_spec = {k: v for k, v in tft_output.raw_feature_spec().items() if k != f.label}

    def probability(transformed):
        inputs = {k: transformed[k] for k in model.input_names}
        return tf.reshape(model(inputs), [-1])

    def probability_from_examples(serialized):
        return probability(model.tft_layer(tf.io.parse_example(serialized, raw_spec)))

    raw_signature = [{
        k: tf.TensorSpec([None], raw_input_dtype(raw_spec[k], k in f.optional), name=k)
        for k in f.raw}]

    def parse_raw(raw):
        return {k: raw_to_parsed(v, raw_spec[k], k in f.optional) for k, v in raw.items()}

    @tf.function(input_signature=raw_signature)
    def serve_raw(raw):
        return {OUTPUT_KEY: probability(model.tft_layer(parse_raw(raw)))}

    try:
        explainer = explain_lib.Explainer(model, f)
    except (ValueError, AttributeError) as e:
        # A model of another shape (e.g. a user's own, or one wrapped in another) still
        # serves; it just has no attributions, and :explain on it says so.
        logging.warning("no explanation signature for this model: %s", e)
        explainer = None

    @tf.function(input_signature=raw_signature)
    def explain_raw(raw):
        return explainer.explain(model.tft_layer(parse_raw(raw)))

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="examples")])
    def explain_examples(serialized):
        return explainer.explain(model.tft_layer(tf.io.parse_example(serialized, raw_spec)))

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="examples")])
    def serve_examples(serialized):
        return {OUTPUT_KEY: probability_from_examples(serialized)}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name=CLASSIFY_INPUT_KEY)])
    def classify(inputs):
        p = probability_from_examples(inputs)
        classes = tf.tile(tf.constant([CLASS_LABELS]), [tf.shape(p)[0], 1])
        return {CLASSES_KEY: classes, SCORES_KEY: tf.stack([1.0 - p, p], axis=1)}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name=REGRESS_INPUT_KEY)])
    def regress(inputs):
        return {REGRESS_OUTPUT_KEY: probability_from_examples(inputs)}

    model.save(export_dir, save_format="tf", signatures={
        RAW_SIGNATURE: serve_raw.get_concrete_function(),
        EXAMPLES_SIGNATURE: serve_examples.get_concrete_function(),
        CLASSIFY_SIGNATURE: classify.get_concrete_function(),
        REGRESS_SIGNATURE: regress.get_concrete_function(),
        **({EXPLAIN_SIGNATURE: explain_raw.get_concrete_function(),
            EXPLAIN_EXAMPLES_SIGNATURE: explain_examples.get_concrete_function()}
           if explainer is not None else {}),
    })
    set_method_names(export_dir)
