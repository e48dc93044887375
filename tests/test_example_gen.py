"""ExampleGen's meaning of a CSV cell (empty = missing; a two-valued label mapped to 1/0), and
its Arrow reader against TFX's own CSV reader: the same examples, byte for byte."""
import collections

import apache_beam as beam
import pytest
import tensorflow as tf
from apache_beam.testing import util as beam_util
from tfx.components.example_gen.csv_example_gen import executor as tfx_csv

from pipeline import example_gen


def _props(csv_dir, label="y", label_map=None, floats=()):
    node = example_gen.component(str(csv_dir), presplit=False, label=label, label_map=label_map,
                                 floats=floats)
    return {"input_base": str(csv_dir), "custom_config": node.exec_properties["custom_config"]}


def _as_dict(record: bytes, kinds: bool = False) -> dict:
    e = tf.train.Example.FromString(record)
    return {k: ((f.WhichOneof("kind"),) if kinds else ()) + tuple(getattr(f, f.WhichOneof("kind")).value)
            for k, f in e.features.feature.items()}


def _check(csv_dir, expected, label="y", label_map=None, floats=(), kinds=False):
    """Run the executor's CSV reading (real Beam) and compare the examples as dicts."""
    with beam.Pipeline() as p:
        out = (p | example_gen._CsvToExamples(_props(csv_dir, label, label_map, floats), "*.csv")
               | beam.Map(_as_dict, kinds))
        beam_util.assert_that(out, beam_util.equal_to(expected))


def test_empty_cells_are_missing_features_and_the_label_is_mapped(tmp_path):
    (tmp_path / "a.csv").write_text(
        'n,x,s,y\n1,2.5,"a, b",Yes\n,,,No\n3,,ü,Maybe\n')
    expected = [{"n": (1,), "x": (2.5,), "s": ("a, b".encode(),), "y": (1,)},
                {"y": (0,)},
                {"n": (3,), "s": ("ü".encode(),), "y": (example_gen.UNMAPPED_LABEL,)}]
    _check(tmp_path, expected, label_map={"Yes": 1, "No": 0})


def test_a_numeric_label_is_left_alone_without_a_map(tmp_path):
    (tmp_path / "a.csv").write_text("n,y\n1,0\n2,1\n")
    _check(tmp_path, [{"n": (1,), "y": (0,)}, {"n": (2,), "y": (1,)}])


def test_a_float_column_that_looks_integer_in_one_split_is_read_as_floats(tmp_path):
    (tmp_path / "a.csv").write_text("x,n,y\n1,2,0\n3,4,1\n")  # TFX alone infers INT for x
    _check(tmp_path, [{"x": ("float_list", 1.0), "n": ("int64_list", 2), "y": ("int64_list", 0)},
                      {"x": ("float_list", 3.0), "n": ("int64_list", 4), "y": ("int64_list", 1)}],
           floats=("x",), kinds=True)


def _reference(example: tf.train.Example, label, label_map, floats) -> bytes:
    """What the pipeline wrote before the Arrow reader: TFX's example, without its empty
    features, `floats` as floats, the label mapped; serialized as TFX hashes it for the split."""
    features = example.features.feature
    for key in [k for k, f in features.items()
                if not getattr(f, f.WhichOneof("kind") or "bytes_list").value]:
        del features[key]
    for key in floats:
        if key in features and features[key].WhichOneof("kind") == "int64_list":
            values = list(features[key].int64_list.value)
            features[key].CopyFrom(tf.train.Feature(float_list=tf.train.FloatList(value=values)))
    if label_map and label in features:
        f = features[label]
        raw = getattr(f, f.WhichOneof("kind")).value[0]
        raw = raw.decode() if isinstance(raw, bytes) else str(raw)
        features[label].CopyFrom(tf.train.Feature(int64_list=tf.train.Int64List(
            value=[label_map.get(raw, example_gen.UNMAPPED_LABEL)])))
    return example.SerializeToString(deterministic=True)


# Cells TFX's reader has opinions on: quotes, a quoted comma and line break, spaces and a plus
# sign around numbers, an integer beyond int64 (text), ints in one file and floats in another
# (floats in both), exponents, an all-empty column, empty quoted cells, non-ASCII text.
TORTURE = {
    "a.csv": ('id,i,f,big,s,blank,q,y\n'
              '1, 7 ,1,5,plain,,"with ""quotes""",Yes\n'
              '2,+8,2,99999999999999999999,"a, b",,"",No\n'
              '3,,3,,"two\nlines",,x,\n'
              '4,-9,,7,ü,,y,Maybe\n'),
    "b.csv": ('id,i,f,big,s,blank,q,y\n'
              '5,10,2.5e3,8,,,z,No\n'
              '6,11,-0.1,9, padded ,,w,Yes\n'),
}


def _records(pattern) -> collections.Counter:
    import glob
    return collections.Counter(r.numpy() for f in glob.glob(pattern)
                               for r in tf.data.TFRecordDataset(f))


@pytest.mark.parametrize("label_map,floats", [({"Yes": 1, "No": 0}, ("i",)), (None, ())])
def test_the_examples_are_tfx_readers_examples_byte_for_byte(tmp_path, monkeypatch,
                                                             label_map, floats):
    """Byte-equal deterministic serializations: the same rows land in the same hash split."""
    data = tmp_path / "csv"
    data.mkdir()
    for name, text in TORTURE.items():
        (data / name).write_text(text)
    monkeypatch.setattr(example_gen, "BLOCK_BYTES", 64)  # several blocks per file
    props = _props(data, "y", label_map, floats)
    with beam.Pipeline() as p:
        _ = (p | "Ours" >> example_gen._CsvToExamples(props, "*.csv")
             | "WriteOurs" >> beam.io.WriteToTFRecord(str(tmp_path / "ours")))
        _ = (p | "Tfx" >> tfx_csv._CsvToExample(props, "*.csv")
             | beam.Map(_reference, "y", label_map or {}, floats)
             | "WriteTfx" >> beam.io.WriteToTFRecord(str(tmp_path / "tfx")))
    ours, theirs = _records(str(tmp_path / "ours*")), _records(str(tmp_path / "tfx*"))
    assert sum(ours.values()) == 6
    assert ours == theirs


def test_a_ragged_row_names_the_file(tmp_path):
    (tmp_path / "a.csv").write_text("n,y\n1,0\n2,1,3\n")
    with pytest.raises(Exception, match=r"a\.csv.*Expected 2 columns"):
        _check(tmp_path, [])
