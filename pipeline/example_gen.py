"""CsvExampleGen with Fairway's meaning of a CSV cell: an empty cell is a missing value.

TFX's CsvExampleGen writes an empty cell as a feature with no value, so TFDV counts it as
present (missing 0 %) and a schema that says "one value" reports "fewer values than expected".
This executor runs TFX's own CSV reader, then drops those empty features, and maps a two-valued
label (e.g. Yes/No) to 1/0 with the config's `label_map`, so every later component, TFMA
included, sees a 0/1 label. TFX infers a column's type per split, so a FLOAT column whose values
in one split all look like integers would arrive as INT there: the schema's FLOAT columns are
written as floats. The node keeps the id `CsvExampleGen`.
"""
from __future__ import annotations

import json
from typing import Any, Mapping, Sequence

import apache_beam as beam
import tensorflow as tf
from google.protobuf import json_format, struct_pb2
from tfx import v1 as tfx
from tfx.components.example_gen.csv_example_gen import executor as csv_executor
from tfx.dsl.components.base import executor_spec
from tfx.proto import example_gen_pb2

NODE_ID = "CsvExampleGen"
UNMAPPED_LABEL = -1  # a label cell outside label_map: the schema's 0..1 domain reports it


def clean_example(example: tf.train.Example, label: str | None = None,
                  label_map: Mapping[str, int] | None = None,
                  floats: Sequence[str] = ()) -> tf.train.Example:
    """The example without its empty features, the `floats` columns as floats, and the label
    mapped through label_map."""
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
        raw = raw.decode("utf-8") if isinstance(raw, bytes) else str(raw)
        features[label].CopyFrom(tf.train.Feature(int64_list=tf.train.Int64List(
            value=[int(label_map.get(raw, UNMAPPED_LABEL))])))
    return example


def _options(exec_properties: Mapping[str, Any]) -> dict:
    text = exec_properties.get("custom_config")
    if not text:
        return {}
    custom = json_format.Parse(text, example_gen_pb2.CustomConfig())
    options = struct_pb2.Struct()
    custom.custom_config.Unpack(options)
    return json_format.MessageToDict(options)


class _CsvToCleanExample(beam.PTransform):
    def __init__(self, exec_properties: Mapping[str, Any], split_pattern: str):
        super().__init__()
        read = csv_executor.Executor().GetInputSourceToExamplePTransform()
        self._read = read(exec_properties, split_pattern)
        options = _options(exec_properties)
        self._label, self._label_map = options.get("label"), options.get("label_map")
        self._floats = options.get("floats", [])

    def expand(self, pipeline):
        return (pipeline | "ReadCsv" >> self._read
                | "Clean" >> beam.Map(clean_example, self._label, self._label_map, self._floats))


class Executor(csv_executor.Executor):
    def GetInputSourceToExamplePTransform(self) -> beam.PTransform:
        return _CsvToCleanExample


def component(input_base: str, presplit: bool, label: str,
              label_map: Mapping[str, int] | None,
              floats: Sequence[str] = (),
              code_hash: Mapping[str, str] | None = None) -> tfx.components.CsvExampleGen:
    """The ExampleGen node: `train/*` + `eval/*` when presplit, else a 2:1 hash split.
    `code_hash`: the digests of this executor's code (pipeline.code_hash), kept in the
    custom_config (unread) so that TFX's cache key changes with the code."""
    from tfx.components import FileBasedExampleGen

    if presplit:
        split = {"input_config": tfx.proto.Input(splits=[
            tfx.proto.Input.Split(name="train", pattern="train/*"),
            tfx.proto.Input.Split(name="eval", pattern="eval/*")])}
    else:
        split = {"output_config": tfx.proto.Output(split_config=tfx.proto.SplitConfig(splits=[
            tfx.proto.SplitConfig.Split(name="train", hash_buckets=2),
            tfx.proto.SplitConfig.Split(name="eval", hash_buckets=1)]))}
    options = struct_pb2.Struct()
    options.update(json.loads(json.dumps({"label": label, "label_map": dict(label_map or {}),
                                          "floats": list(floats),
                                          **({"code_hash": dict(code_hash)} if code_hash
                                             else {})})))
    custom = example_gen_pb2.CustomConfig()
    custom.custom_config.Pack(options)
    return FileBasedExampleGen(
        input_base=input_base, custom_config=custom,
        custom_executor_spec=executor_spec.BeamExecutorSpec(Executor), **split).with_id(NODE_ID)
