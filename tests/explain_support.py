"""A small exported Fairway model for the explanation tests: Transform analysed with tft_beam on
generated rows (an optional numeric column, a categorical one with missing values), an MLP
with random weights, exported by modules.signatures as the Trainer does."""
from __future__ import annotations

import pathlib

import numpy as np
import tensorflow as tf
import tensorflow_transform as tft
import tensorflow_transform.beam as tft_beam
from tensorflow_transform.tf_metadata import dataset_metadata, metadata_io, schema_utils

from modules import features as F
from modules import model as model_lib
from modules import signatures
from modules import trainer
from modules import transform

FEATURES = F.Features(numeric=("age", "hours"), categorical=("color", "sex"), label="label",
                      sensitive="sex", optional=("hours", "color"))
SPEC = {"age": tf.io.VarLenFeature(tf.int64), "hours": tf.io.VarLenFeature(tf.float32),
        "color": tf.io.VarLenFeature(tf.string), "sex": tf.io.VarLenFeature(tf.string),
        "label": tf.io.VarLenFeature(tf.int64)}


def rows(n: int = 60, seed: int = 0) -> list[dict]:
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        hours = [] if i % 7 == 0 else [float(rng.uniform(10, 60))]
        color = [] if i % 5 == 0 else [rng.choice([b"red", b"green", b"blue"])]
        out.append({"age": [int(rng.integers(18, 80))], "hours": hours, "color": color,
                    "sex": [rng.choice([b"F", b"M"])], "label": [int(rng.integers(0, 2))]})
    return out


def serving_rows() -> dict[str, np.ndarray]:
    """Raw serving inputs of 5 rows, with a missing number (NaN) and a missing category ('')."""
    return {"age": np.array([25, 70, 40, 33, 58], np.int64),
            "hours": np.array([12.5, np.nan, 40.0, 59.0, 20.0], np.float32),
            "color": np.array([b"blue", b"green", b"", b"red", b"purple"], object),
            "sex": np.array([b"F", b"M", b"M", b"F", b"M"], object)}


def analyse(tmp: pathlib.Path) -> str:
    """The Transform output folder (tft_beam on `rows()`), as TFX's Transform writes it."""
    tmp = str(tmp)
    config = {"features": FEATURES.to_config()}
    with tft_beam.Context(temp_dir=tmp + "/beam"):
        meta = dataset_metadata.DatasetMetadata(schema_utils.schema_from_feature_spec(SPEC))
        fn = (rows(), meta) | tft_beam.AnalyzeDataset(
            lambda x: transform.preprocessing_fn(x, config))
        _ = fn | tft_beam.WriteTransformFn(tmp + "/tft")
    metadata_io.write_metadata(meta, f"{tmp}/tft/{tft.TFTransformOutput.RAW_METADATA_DIR}")
    return tmp + "/tft"


def export(tft_dir: str, out: pathlib.Path, only: str | None = None, hidden=(16, 8),
           seed: int = 0) -> str:
    """The SavedModel folder. `only`: zero the first layer's weights of every other feature's
    columns, so that the model depends on that feature alone."""
    tft_output = tft.TFTransformOutput(tft_dir)
    tf.keras.utils.set_random_seed(seed)
    model = model_lib.build_mlp(FEATURES.numeric, trainer.vocab_sizes(tft_output, FEATURES),
                                hidden, embedding_dim=3, indicators=FEATURES.indicators)
    # Random weights large enough that the logit varies by several units across rows.
    for layer in model.layers:
        if isinstance(layer, (tf.keras.layers.Embedding, tf.keras.layers.Dense)):
            layer.set_weights([w * 3 for w in layer.get_weights()])
    if only is not None:
        dense = model.get_layer("dense_0")
        widths = [int(np.prod(t.shape[1:])) for t in model.get_layer("features").input]
        names = [t._keras_history.layer.name for t in model.get_layer("features").input]
        kernel, bias = dense.get_weights()
        start = 0
        for name, width in zip(names, widths):
            if not name.startswith(f"{only}_"):
                kernel[start:start + width] = 0.0
            start += width
        dense.set_weights([kernel, bias])
    signatures.export(model, tft_output, FEATURES, str(out))
    return str(out)
