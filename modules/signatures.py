"""Serving signatures: raw named tensors (TF Serving REST rows) and serialized tf.Examples."""
from __future__ import annotations

import tensorflow as tf
import tensorflow_transform as tft

from modules import features as F

RAW_SIGNATURE = "serving_default"
EXAMPLES_SIGNATURE = "from_examples"
OUTPUT_KEY = "probability"


def _as_sparse(x: tf.Tensor) -> tf.SparseTensor:
    """[batch] -> [batch, 1] SparseTensor, the form Transform saw for optional columns."""
    n = tf.shape(x, out_type=tf.int64)[0]
    indices = tf.stack([tf.range(n), tf.zeros([n], tf.int64)], axis=1)
    return tf.SparseTensor(indices, x, tf.stack([n, tf.constant(1, tf.int64)]))


def export(model: tf.keras.Model, tft_output: tft.TFTransformOutput, f: F.Features,
           export_dir: str) -> None:
    # Tracked on the model so the saved object owns the Transform graph's resources.
    model.tft_layer = tft_output.transform_features_layer()
    raw_spec = {k: v for k, v in tft_output.raw_feature_spec().items() if k != f.label}

    def predict(transformed):
        inputs = {k: transformed[k] for k in model.input_names}
        return {OUTPUT_KEY: tf.reshape(model(inputs), [-1])}

    @tf.function(input_signature=[{k: tf.TensorSpec([None], raw_spec[k].dtype, name=k)
                                   for k in f.raw}])
    def serve_raw(raw):
        features = {k: (_as_sparse(v) if isinstance(raw_spec[k], tf.io.VarLenFeature) else v)
                    for k, v in raw.items()}
        return predict(model.tft_layer(features))

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="examples")])
    def serve_examples(serialized):
        return predict(model.tft_layer(tf.io.parse_example(serialized, raw_spec)))

    model.save(export_dir, save_format="tf", signatures={
        RAW_SIGNATURE: serve_raw.get_concrete_function(),
        EXAMPLES_SIGNATURE: serve_examples.get_concrete_function(),
    })
