"""ExampleGen's meaning of a CSV cell: empty = missing; a two-valued label mapped to 1/0."""
import apache_beam as beam
import tensorflow as tf
from apache_beam.testing import util as beam_util

from pipeline import example_gen


def _check(csv_dir, expected, label="y", label_map=None, floats=(), kinds=False):
    """Run the executor's CSV reading (real Beam) and compare the examples as dicts."""
    node = example_gen.component(str(csv_dir), presplit=False, label=label, label_map=label_map,
                                 floats=floats)
    props = {"input_base": str(csv_dir), "custom_config": node.exec_properties["custom_config"]}
    with beam.Pipeline() as p:
        out = (p | example_gen._CsvToCleanExample(props, "*.csv")
               | beam.Map(lambda e: {k: ((f.WhichOneof("kind"),) if kinds else ())
                                     + tuple(getattr(f, f.WhichOneof("kind")).value)
                                     for k, f in e.features.feature.items()}))
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


def test_clean_example_drops_only_empty_features():
    ex = tf.train.Example()
    ex.features.feature["a"].bytes_list.value.append(b"")  # an empty string value is a value
    ex.features.feature["b"].int64_list.SetInParent()
    ex.features.feature["c"].CopyFrom(tf.train.Feature())
    out = example_gen.clean_example(ex)
    assert sorted(out.features.feature) == ["a"]


def test_a_float_column_that_looks_integer_in_one_split_is_read_as_floats(tmp_path):
    (tmp_path / "a.csv").write_text("x,n,y\n1,2,0\n3,4,1\n")  # TFX alone infers INT for x
    _check(tmp_path, [{"x": ("float_list", 1.0), "n": ("int64_list", 2), "y": ("int64_list", 0)},
                      {"x": ("float_list", 3.0), "n": ("int64_list", 4), "y": ("int64_list", 1)}],
           floats=("x",), kinds=True)
