import tempfile

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_transform as tft
import tensorflow_transform.beam as tft_beam
from tensorflow_transform.tf_metadata import dataset_metadata, schema_utils

from modules import features as F
from modules import transform

FEATURES = F.Features(numeric=("age",), categorical=("sex",), label="income")
CONFIG = {"features": FEATURES.to_config()}
SPEC = {"age": tf.io.VarLenFeature(tf.int64), "sex": tf.io.VarLenFeature(tf.string),
        "income": tf.io.VarLenFeature(tf.int64)}
ROWS = [
    {"age": [20], "sex": [b"Male"], "income": [0]},
    {"age": [40], "sex": [b"Female"], "income": [1]},
    {"age": [60], "sex": [b"Male"], "income": [1]},
    {"age": [], "sex": [], "income": [0]},  # missing values
]


@pytest.fixture(scope="module")
def transformed():
    with tempfile.TemporaryDirectory() as tmp, tft_beam.Context(temp_dir=tmp):
        meta = dataset_metadata.DatasetMetadata(schema_utils.schema_from_feature_spec(SPEC))
        (rows, _), fn = (ROWS, meta) | tft_beam.AnalyzeAndTransformDataset(
            lambda x: transform.preprocessing_fn(x, CONFIG))
        out = tmp + "/tft"
        _ = fn | tft_beam.WriteTransformFn(out)
        vocab = tft.TFTransformOutput(out).vocabulary_by_name(F.vocab_name("sex"))
        return rows, vocab


def test_numeric_is_z_scored_with_missing_as_zero(transformed):
    rows, _ = transformed
    ages = np.array([r[F.xf("age")] for r in rows])
    raw = np.array([20, 40, 60, 0], dtype=float)
    np.testing.assert_allclose(ages, (raw - raw.mean()) / raw.std(), rtol=1e-5)


def test_categorical_ids_follow_frequency_vocabulary(transformed):
    rows, vocab = transformed
    assert vocab[0] == b"Male"  # most frequent first
    ids = [int(r[F.xf("sex")]) for r in rows]
    assert ids[0] == ids[2] == 0 and ids[1] != ids[0]
    assert len(set(ids)) == 3  # Male, Female, and '' for the missing value


def test_label_passes_through(transformed):
    rows, _ = transformed
    assert [int(r[FEATURES.label_xf]) for r in rows] == [0, 1, 1, 0]


def test_dense_conversion_of_sparse_input():
    sparse = tf.SparseTensor([[0, 0], [2, 0]], tf.constant(["a", "b"]), [3, 1])
    assert transform.to_dense(sparse).numpy().tolist() == [b"a", b"", b"b"]


OPTIONAL = F.Features(numeric=("age",), categorical=("sex",), label="income",
                      optional=("age", "sex"))


def test_optional_numeric_is_imputed_with_the_mean_and_flagged():
    with tempfile.TemporaryDirectory() as tmp, tft_beam.Context(temp_dir=tmp):
        meta = dataset_metadata.DatasetMetadata(schema_utils.schema_from_feature_spec(SPEC))
        (rows, _), fn = (ROWS, meta) | tft_beam.AnalyzeAndTransformDataset(
            lambda x: transform.preprocessing_fn(x, {"features": OPTIONAL.to_config()}))
        _ = fn | tft_beam.WriteTransformFn(tmp + "/tft")
        vocab = tft.TFTransformOutput(tmp + "/tft").vocabulary_by_name(F.vocab_name("sex"))
    present = np.array([20, 40, 60], dtype=float)
    ages = np.array([r[F.xf("age")] for r in rows])
    # Scaled with the present values' mean and std; the missing one is the mean (0).
    np.testing.assert_allclose(ages, list((present - 40) / present.std()) + [0.0], atol=1e-5)
    assert [r[F.missing_xf("age")] for r in rows] == [0.0, 0.0, 0.0, 1.0]
    assert OPTIONAL.indicators == (F.missing_xf("age"),)
    # A missing category has its own vocabulary entry, not the OOV bucket of unseen values.
    assert int(rows[3][F.xf("sex")]) == list(vocab).index(F.MISSING_TOKEN.encode())
