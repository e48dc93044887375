"""ExampleGen for CSV files, on Arrow's CSV reader, with Fairway's meaning of a CSV cell.

Written the way TFX custom ExampleGens are: an executor whose input PTransform turns one split's
files into serialized tf.Examples; TFX's base executor splits and writes them, so it runs
unchanged on every Beam runner. Each file is read twice, in blocks (bounded memory): once to
infer each column's type over the whole split, once to encode. Encoding is columnar (Arrow +
tfx_bsl's C++ encoder); TFX's own CSV reader builds every example in Python and reads about a
tenth as many rows per second.

The examples are those TFX's CsvExampleGen writes, with Fairway's changes:
- an empty cell is a missing feature (TFX writes a feature with no value, so TFDV counted it as
  present and a "one value" schema reported "fewer values than expected");
- a two-valued label (e.g. Yes/No) is mapped to 1/0 by the config's `label_map`, so every later
  component, TFMA included, sees a 0/1 label; a value outside the map becomes -1;
- the schema's FLOAT columns are written as floats (TFX infers types per split, so a FLOAT
  column whose values all look like integers in one split would arrive as INT there).
Types are inferred as TFX does: INT if every cell is an integer that fits int64, else FLOAT if
every cell is a number, else STRING; numbers may have spaces around them. Each example is
serialized deterministically (features sorted by name), the bytes TFX hashes for its 2:1 split,
so a hash-split CSV keeps the rows of its train and eval splits. The node keeps the id
`CsvExampleGen`.
"""
from __future__ import annotations

import json
import os
from typing import Any, Iterator, Mapping, Sequence

import apache_beam as beam
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv
from google.protobuf import json_format, struct_pb2
from tfx import v1 as tfx
from tfx.components.example_gen import base_example_gen_executor
from tfx.dsl.components.base import executor_spec
from tfx.dsl.io import fileio
from tfx.proto import example_gen_pb2
from tfx.utils import io_utils
from tfx_bsl.coders import example_coder

NODE_ID = "CsvExampleGen"
UNMAPPED_LABEL = -1  # a label cell outside label_map: the schema's 0..1 domain reports it
UNKNOWN, INT, FLOAT, STRING = range(4)  # a column's type; merging two takes the larger
BLOCK_BYTES = 8 << 20  # CSV bytes per Arrow block: memory per worker is a few blocks
_INTEGER = r"^[+-]?[0-9]+$"
_VARINT = [bytes([n]) if n < 128 else bytes([n & 0x7F | 0x80, n >> 7]) for n in range(1 << 14)]


def _options(exec_properties: Mapping[str, Any]) -> dict:
    text = exec_properties.get("custom_config")
    if not text:
        return {}
    custom = json_format.Parse(text, example_gen_pb2.CustomConfig())
    options = struct_pb2.Struct()
    custom.custom_config.Unpack(options)
    return json_format.MessageToDict(options)


def _blocks(path: str, names: Sequence[str]) -> Iterator[pa.RecordBatch]:
    """The file's rows as blocks of text columns; an empty cell is null."""
    with beam.io.filesystems.FileSystems.open(path) as f:
        try:
            yield from pcsv.open_csv(
                f, read_options=pcsv.ReadOptions(block_size=BLOCK_BYTES),
                parse_options=pcsv.ParseOptions(newlines_in_values=True),
                convert_options=pcsv.ConvertOptions(
                    column_types={n: pa.string() for n in names}, null_values=[""],
                    strings_can_be_null=True, quoted_strings_can_be_null=True))
        except pa.ArrowInvalid as e:  # e.g. "Expected 8 columns, got 9: <the row>"
            raise ValueError(f"{path}: {e}") from None


def _number_text(column: pa.Array) -> pa.Array:
    return pc.replace_substring_regex(pc.utf8_trim_whitespace(column), r"^\+", "")


def _kind(column: pa.Array) -> int:
    """The type of one block's column, by TFX's rule."""
    if column.null_count == len(column):
        return UNKNOWN
    text = _number_text(column.drop_null())
    try:
        if pc.all(pc.match_substring_regex(text, _INTEGER)).as_py():
            pc.cast(text, pa.int64())
            return INT
        pc.cast(text, pa.float64())
        return FLOAT
    except pa.ArrowInvalid:  # an integer beyond int64 (TFX: STRING), or not a number
        return STRING


def _file_kinds(path: str, names: Sequence[str]) -> list[int]:
    kinds = [UNKNOWN] * len(names)
    for block in _blocks(path, names):
        kinds = [k if k == STRING else max(k, _kind(block.column(i)))
                 for i, k in enumerate(kinds)]
    return kinds


class _MergeKinds(beam.CombineFn):
    def create_accumulator(self):
        return None

    def add_input(self, acc, kinds):
        return list(kinds) if acc is None else [max(a, b) for a, b in zip(acc, kinds)]

    def merge_accumulators(self, accs):
        out = None
        for acc in accs:
            if acc is not None:
                out = self.add_input(out, acc)
        return out

    def extract_output(self, acc):
        return acc


class _Encoder:
    """A block of text columns -> one deterministically serialized tf.Example per row."""

    def __init__(self, names: Sequence[str], kinds: Sequence[int], label: str | None,
                 label_map: Mapping[str, int] | None, floats: Sequence[str]):
        self._coder = example_coder.RecordBatchToExamplesEncoder()
        self._columns = sorted((n, i, k) for i, (n, k) in enumerate(zip(names, kinds))
                               if k != UNKNOWN)  # an all-empty column has no features
        self._label, self._floats = label, set(floats)
        self._keys = pa.array(list(label_map or {}), pa.string())
        self._codes = pa.array([int(v) for v in (label_map or {}).values()], pa.int64())

    def _values(self, name: str, kind: int, column: pa.Array) -> pa.Array:
        if name == self._label and len(self._keys):
            text = (pc.cast(pc.cast(_number_text(column), pa.int64()), pa.string())
                    if kind == INT else column)
            return pc.if_else(column.is_null(), pa.scalar(None, pa.int64()), pc.fill_null(
                pc.take(self._codes, pc.index_in(text, value_set=self._keys)), UNMAPPED_LABEL))
        if kind == INT:
            values = pc.cast(_number_text(column), pa.int64())
            return pc.cast(values, pa.float32(), safe=False) if name in self._floats else values
        if kind == FLOAT:  # TFX parses a double, then the proto stores a float
            return pc.cast(pc.cast(_number_text(column), pa.float64()), pa.float32(),
                           safe=False)
        return pc.cast(column, pa.binary())

    def encode(self, block: pa.RecordBatch) -> list[bytes]:
        offsets = pa.array(np.arange(block.num_rows + 1, dtype=np.int32))
        parts = []
        for name, i, kind in self._columns:
            values = self._values(name, kind, block.column(i))
            one = self._coder.encode(pa.RecordBatch.from_arrays(
                [pa.ListArray.from_arrays(offsets, values)], [name]))
            # Each `one` is an Example holding this feature alone: tag, length, then the map
            # entry, which is what the whole example's bytes repeat per feature, by name.
            if values.null_count:
                missing = np.asarray(values.is_null())
                parts.append([b"" if m else _entry(e) for e, m in zip(one, missing)])
            else:
                parts.append([_entry(e) for e in one])
        out = []
        for row in zip(*parts):
            body = b"".join(row)
            out.append(b"\n" + _varint(len(body)) + body)
        return out


def _entry(example: bytes) -> bytes:
    return example[2:] if example[1] < 128 else example[3:] if example[2] < 128 else \
        example[4:]


def _varint(n: int) -> bytes:
    if n < len(_VARINT):
        return _VARINT[n]
    out = bytearray()
    while n >= 128:
        out.append(n & 0x7F | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _file_examples(path: str, names: Sequence[str], kinds: Sequence[int],
                   options: Mapping[str, Any]) -> Iterator[bytes]:
    encoder = _Encoder(names, kinds, options.get("label"), options.get("label_map"),
                       options.get("floats", []))
    for block in _blocks(path, names):
        yield from encoder.encode(block)


class _CsvToExamples(beam.PTransform):
    """One split's CSV files -> serialized tf.Examples."""

    def __init__(self, exec_properties: Mapping[str, Any], split_pattern: str):
        super().__init__()
        self._pattern = os.path.join(exec_properties["input_base"], split_pattern)
        self._options = _options(exec_properties)

    def expand(self, pipeline):
        files = sorted(fileio.glob(self._pattern))
        if not files:
            raise RuntimeError(f"Split pattern {self._pattern} does not match any files.")
        names = io_utils.load_csv_column_names(files[0])
        for path in files[1:]:
            if io_utils.load_csv_column_names(path) != names:
                raise RuntimeError(f"{path}: its header differs from {files[0]}'s; the files "
                                   f"of one split must have the same columns.")
        paths = pipeline | "CsvFiles" >> beam.Create(files)
        kinds = (paths | "ColumnTypes" >> beam.Map(_file_kinds, names)
                 | "MergeTypes" >> beam.CombineGlobally(_MergeKinds()))
        return paths | "Encode" >> beam.FlatMap(
            _file_examples, names, beam.pvalue.AsSingleton(kinds), self._options)


class Executor(base_example_gen_executor.BaseExampleGenExecutor):
    def GetInputSourceToExamplePTransform(self) -> beam.PTransform:
        return _CsvToExamples


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
