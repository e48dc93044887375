"""The exported SavedModel answers TF Serving's Predict, Classify and Regress APIs alike."""
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_transform as tft
import tensorflow_transform.beam as tft_beam
from tensorflow.core.protobuf import saved_model_pb2
from tensorflow_transform.tf_metadata import dataset_metadata, metadata_io, schema_utils

from modules import features as F
from modules import model as model_lib
from modules import signatures
from modules import transform
from test_transform import CONFIG, FEATURES, ROWS, SPEC


def _example(row):
    feats = {}
    for k, values in row.items():
        if k == FEATURES.label or not values:
            continue
        feats[k] = (tf.train.Feature(bytes_list=tf.train.BytesList(value=values))
                    if isinstance(values[0], bytes)
                    else tf.train.Feature(int64_list=tf.train.Int64List(value=values)))
    return tf.train.Example(features=tf.train.Features(feature=feats)).SerializeToString()


@pytest.fixture(scope="module")
def export_dir(tmp_path_factory):
    tmp = str(tmp_path_factory.mktemp("signatures"))
    with tft_beam.Context(temp_dir=tmp + "/beam"):
        meta = dataset_metadata.DatasetMetadata(schema_utils.schema_from_feature_spec(SPEC))
        fn = (ROWS, meta) | tft_beam.AnalyzeDataset(lambda x: transform.preprocessing_fn(x, CONFIG))
        _ = fn | tft_beam.WriteTransformFn(tmp + "/tft")
    # The raw schema, which TFX's Transform component writes and raw_feature_spec() reads.
    metadata_io.write_metadata(meta, f"{tmp}/tft/{tft.TFTransformOutput.RAW_METADATA_DIR}")
    tft_output = tft.TFTransformOutput(tmp + "/tft")
    tf.keras.utils.set_random_seed(0)
    vocab = tft_output.vocabulary_size_by_name(F.vocab_name("sex"))
    model = model_lib.build_mlp(["age"], {"sex": vocab + 1}, hidden_units=[4])
    signatures.export(model, tft_output, FEATURES, tmp + "/model")
    return tmp + "/model"


@pytest.fixture(scope="module")
def serialized():
    return tf.constant([_example(r) for r in ROWS])


def test_classify_and_regress_signatures_carry_tf_serving_method_names(export_dir):
    saved_model = saved_model_pb2.SavedModel()
    with tf.io.gfile.GFile(export_dir + "/saved_model.pb", "rb") as fh:
        saved_model.ParseFromString(fh.read())
    defs = saved_model.meta_graphs[0].signature_def
    methods = {name: defs[name].method_name for name in (
        signatures.RAW_SIGNATURE, signatures.EXAMPLES_SIGNATURE,
        signatures.CLASSIFY_SIGNATURE, signatures.REGRESS_SIGNATURE)}
    assert methods == {signatures.RAW_SIGNATURE: "tensorflow/serving/predict",
                       signatures.EXAMPLES_SIGNATURE: "tensorflow/serving/predict",
                       signatures.CLASSIFY_SIGNATURE: "tensorflow/serving/classify",
                       signatures.REGRESS_SIGNATURE: "tensorflow/serving/regress"}
    # What classifier.cc / regressor.cc look up: one string input, typed outputs.
    classify, regress = defs[signatures.CLASSIFY_SIGNATURE], defs[signatures.REGRESS_SIGNATURE]
    assert list(classify.inputs) == ["inputs"] and list(regress.inputs) == ["inputs"]
    assert classify.inputs["inputs"].dtype == regress.inputs["inputs"].dtype == tf.string
    assert classify.outputs["classes"].dtype == tf.string
    assert classify.outputs["scores"].dtype == tf.float32
    assert regress.outputs["outputs"].dtype == tf.float32


def test_classify_and_regress_agree_with_from_examples(export_dir, serialized):
    sigs = tf.saved_model.load(export_dir).signatures
    p = sigs[signatures.EXAMPLES_SIGNATURE](examples=serialized)[signatures.OUTPUT_KEY].numpy()
    assert p.shape == (len(ROWS),) and p.std() > 0  # rows really differ

    out = sigs[signatures.CLASSIFY_SIGNATURE](inputs=serialized)
    scores, classes = out[signatures.SCORES_KEY].numpy(), out[signatures.CLASSES_KEY].numpy()
    assert scores.shape == classes.shape == (len(ROWS), 2)
    np.testing.assert_allclose(scores[:, 1], p, rtol=1e-6)
    np.testing.assert_allclose(scores[:, 0], 1 - p, rtol=1e-6)
    assert classes.tolist() == [[b"0", b"1"]] * len(ROWS)

    outputs = sigs[signatures.REGRESS_SIGNATURE](inputs=serialized)[signatures.REGRESS_OUTPUT_KEY]
    assert outputs.dtype == tf.float32
    np.testing.assert_allclose(outputs.numpy(), p, rtol=1e-6)


def test_raw_rows_still_match_examples(export_dir, serialized):
    sigs = tf.saved_model.load(export_dir).signatures
    full = [r for r in ROWS if r["age"]]  # the raw signature takes dense columns
    raw = sigs[signatures.RAW_SIGNATURE](
        age=tf.constant([r["age"][0] for r in full], tf.int64),
        sex=tf.constant([r["sex"][0] for r in full]))[signatures.OUTPUT_KEY].numpy()
    by_example = sigs[signatures.EXAMPLES_SIGNATURE](
        examples=tf.constant([_example(r) for r in full]))[signatures.OUTPUT_KEY].numpy()
    np.testing.assert_allclose(raw, by_example, rtol=1e-6)


def test_keras_still_loads_the_rewritten_model(export_dir, serialized):
    model = tf.keras.models.load_model(export_dir, compile=False)
    assert type(model).__name__ == "Functional"
    assert set(model.signatures) >= {signatures.RAW_SIGNATURE, signatures.EXAMPLES_SIGNATURE,
                                     signatures.CLASSIFY_SIGNATURE, signatures.REGRESS_SIGNATURE}


def test_fingerprint_matches_the_rewritten_saved_model(export_dir):
    from tensorflow.python.saved_model import fingerprinting_utils
    fp = tf.saved_model.experimental.read_fingerprint(export_dir)
    assert fp.singleprint() == fingerprinting_utils.singleprint_from_saved_model_proto(export_dir)


def test_set_method_names_leaves_absent_signatures_absent(tmp_path):
    m = tf.Module()
    m.f = tf.function(lambda inputs: {"outputs": tf.cast(tf.strings.length(inputs), tf.float32)},
                      input_signature=[tf.TensorSpec([None], tf.string, name="inputs")])
    tf.saved_model.save(m, str(tmp_path), signatures={signatures.REGRESS_SIGNATURE: m.f})
    signatures.set_method_names(str(tmp_path))
    saved_model = saved_model_pb2.SavedModel()
    with tf.io.gfile.GFile(str(tmp_path / "saved_model.pb"), "rb") as fh:
        saved_model.ParseFromString(fh.read())
    defs = saved_model.meta_graphs[0].signature_def
    assert signatures.CLASSIFY_SIGNATURE not in defs
    assert defs[signatures.REGRESS_SIGNATURE].method_name == "tensorflow/serving/regress"


def test_a_tfdv_inferred_fixed_shape_and_optional_inputs_are_served(tmp_path):
    """A schema from tfdv.infer_schema gives shape [1] to always-present columns
    (FixedLenFeature([1])): serving_default still takes [batch] tensors. Optional columns take
    '' / NaN (an optional int column takes floats) and score like examples without them."""
    spec = {"age": tf.io.FixedLenFeature([1], tf.int64), "hours": tf.io.VarLenFeature(tf.int64),
            "sex": tf.io.VarLenFeature(tf.string), "income": tf.io.FixedLenFeature([1], tf.int64)}
    rows = [{"age": [20], "hours": [10], "sex": [b"Male"], "income": [0]},
            {"age": [40], "hours": [], "sex": [b"Female"], "income": [1]},
            {"age": [60], "hours": [50], "sex": [], "income": [1]}]
    f = F.Features(("age", "hours"), ("sex",), "income", optional=("hours", "sex"))
    tmp = str(tmp_path)
    with tft_beam.Context(temp_dir=tmp + "/beam"):
        meta = dataset_metadata.DatasetMetadata(schema_utils.schema_from_feature_spec(spec))
        fn = (rows, meta) | tft_beam.AnalyzeDataset(
            lambda x: transform.preprocessing_fn(x, {"features": f.to_config()}))
        _ = fn | tft_beam.WriteTransformFn(tmp + "/tft")
    metadata_io.write_metadata(meta, f"{tmp}/tft/{tft.TFTransformOutput.RAW_METADATA_DIR}")
    tft_output = tft.TFTransformOutput(tmp + "/tft")
    tf.keras.utils.set_random_seed(0)
    model = model_lib.build_mlp(f.numeric, {"sex": tft_output.vocabulary_size_by_name(
        F.vocab_name("sex")) + 1}, hidden_units=[4], indicators=f.indicators)
    signatures.export(model, tft_output, f, tmp + "/model")
    sigs = tf.saved_model.load(tmp + "/model").signatures
    raw = sigs[signatures.RAW_SIGNATURE]
    assert raw.structured_input_signature[1]["hours"].dtype == tf.float64  # NaN = missing
    by_raw = raw(age=tf.constant([20, 40, 60], tf.int64),
                 hours=tf.constant([10.0, float("nan"), 50.0], tf.float64),
                 sex=tf.constant(["Male", "Female", ""]))[signatures.OUTPUT_KEY].numpy()

    def example(r):
        feats = {k: (tf.train.Feature(bytes_list=tf.train.BytesList(value=v))
                     if isinstance(v[0], bytes) else
                     tf.train.Feature(int64_list=tf.train.Int64List(value=v)))
                 for k, v in r.items() if v and k != "income"}
        return tf.train.Example(features=tf.train.Features(feature=feats)).SerializeToString()

    by_examples = sigs[signatures.EXAMPLES_SIGNATURE](examples=tf.constant(
        [example(r) for r in rows]))[signatures.OUTPUT_KEY].numpy()
    np.testing.assert_allclose(by_raw, by_examples, rtol=1e-6)
