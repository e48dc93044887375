"""`fairway init`: a config (TOML) and a curated starting schema from a user's CSV files.

Everything is decided from the data with the pipeline's meaning of a CSV: column types as
CsvExampleGen infers them (tfx_bsl's rules, per split), an empty cell is a missing value (a
present feature has exactly one value), and a two-valued label is mapped to 1/0 by `label_map`.
Statistics and the starting schema come from TFDV; `_curate` adjusts the schema (rules in
SCHEMA_RULES, written at the top of the schema file).
"""
from __future__ import annotations

import dataclasses
import datetime
import json
import math
import os
import pathlib
import random
import re
import shlex
from collections import Counter
from typing import Callable, Sequence

import numpy as np
import pandas as pd
import tensorflow_data_validation as tfdv
from google.protobuf import text_format
from tensorflow_metadata.proto.v0 import schema_pb2
from tfx_bsl.coders import csv_decoder

from data import csvfile
from data.acquire import DataError
from modules import model as model_lib
from pipeline.config import (_NAME_RE, ConfigError, DatasetSpec, FairwayError,
                             feature_name_problem, load)

# CsvExampleGen's column types: UNKNOWN (only empty cells) < INT < FLOAT < STRING.
ColumnType = csv_decoder.ColumnType

MIN_ROWS, MIN_SPLIT_ROWS, MIN_CLASS_ROWS = 50, 20, 10
HIGH_CARDINALITY = 100  # more distinct values than this (or > half unique): no string domain
PRESENCE_MARGIN = 0.1
THRESHOLD_FLOOR, THRESHOLD_FACTOR, THRESHOLD_CAP = 0.1, 3, 1.0
SEED = 0  # the random halves that calibrate the drift thresholds
TAILS, TAIL_FACTOR = (0.0025, 0.005, 0.01), 1.25  # rarest end values (SCHEMA_RULES)
# A teacher ladder for the student's size budget (distillation.max_param_ratio): the first one
# at least 1/ratio times the student's size is written to [training].
TEACHER_LADDER = ((64, 32), (256, 128), (512, 256, 128))
STUDENT = dict(hidden_units=(16,), embedding_dim=2)  # DistillationConfig's defaults
TEACHER_EMBEDDING, MAX_PARAM_RATIO = 8, 0.1
# The default [inject_drift] (`fairway data --new-span DIR --inject-drift`).
DRIFT_SHIFT_SD, DRIFT_CATEGORY, DRIFT_FRACTION = 2, "fairway-drift", 0.3

SCHEMA_RULES = f"""\
# Rules (fairway init):
# - An empty CSV cell is a missing value: a present feature has exactly one value (value_count).
# - presence.min_fraction: 1.0 for a column without missing values, otherwise the present
#   fraction seen (the lowest of the splits) minus {PRESENCE_MARGIN}, rounded down to 2 decimals.
# - Categorical (BYTES) columns keep the values seen as their domain (a new value is an
#   anomaly), except high-cardinality ones (more than {HIGH_CARDINALITY} distinct values, or
#   more than half of the values unique): no domain, new values are not anomalies, the model
#   serves them through its OOV bucket.
# - Numeric (INT/FLOAT) columns have no value range: new extremes are legitimate.
# - The label is INT 0/1, in the TRAINING environment only (not in SERVING).
# - drift_comparator (this run's training data vs the last accepted one) and skew_comparator
#   (serving traffic vs training): L-infinity for categorical, Jensen-Shannon divergence for
#   numeric columns; threshold = max({THRESHOLD_FLOOR}, {THRESHOLD_FACTOR} x the distance between
#   two random halves of this data, {TAIL_FACTOR} x the largest distance between this data and
#   itself without a numeric column's rarest end values), rounded up to 2 decimals, at most
#   {THRESHOLD_CAP}. Rarest end values: the lowest and the highest values while they hold at most
#   {" / ".join(f"{t * 100:g}%" for t in TAILS)} of the column's values. A batch of a few
#   hundred rows often lacks them, and TFDV's histogram buckets span min to max: their absence
#   alone moves the distance.
# - Ignored columns (--ignore) stay in the schema (they are in the examples): presence 0, no
#   domain, no comparators, so they never raise an anomaly.
"""


@dataclasses.dataclass
class Column:
    name: str
    cells: list  # raw text per row, None for an empty cell
    types: dict  # split -> tfx_bsl ColumnType inferred from that split's cells
    first: dict  # (split, ColumnType) -> (file, line, cell) first cell of that type

    @property
    def type(self):
        return max(self.types.values())

    def present(self, rows: range | None = None) -> int:
        cells = self.cells if rows is None else self.cells[rows.start:rows.stop]
        return sum(c is not None for c in cells)


@dataclasses.dataclass
class Data:
    source: pathlib.Path
    columns: dict[str, Column]
    splits: dict[str, range]  # rows of each split ("" when unsplit)

    @property
    def rows(self) -> int:
        return sum(len(r) for r in self.splits.values())

    def where(self, col: Column, typ) -> str:
        """'file line N' of the first cell of that type, for error messages."""
        for split in self.splits:
            if (split, typ) in col.first:
                f, line, cell = col.first[split, typ]
                return f"{cell!r} at {f} line {line}"
        return ""


def _read(scan: csvfile.Scan, source: pathlib.Path) -> Data:
    # The function CsvExampleGen's ColumnTypeInferrer applies to each cell (bytes): the very
    # rule the pipeline uses, not a copy of it.
    infer = csv_decoder._InferValueType  # pylint: disable=protected-access
    header = next(iter(scan.headers.values()))
    columns = {n: Column(n, [], {}, {}) for n in header}
    splits, start = {}, 0
    for split, files in scan.splits.items():
        this, rows = csvfile.read_rows(files)
        order = [columns[n] for n in this]  # eval/ may order the columns differently
        for col in order:
            col.types[split] = ColumnType.UNKNOWN
        for f, line, fields in rows:
            for col, cell in zip(order, fields):
                if not cell:
                    col.cells.append(None)
                    continue
                col.cells.append(cell)
                typ = infer(cell.encode())
                if typ > col.types[split]:
                    col.types[split] = typ
                    col.first[split, typ] = (f, line, cell)
        end = len(order[0].cells)
        splits[split], start = range(start, end), end
    return Data(source, columns, splits)


def _typed(col: Column, typ) -> list:
    """The values CsvExampleGen writes for the column's cells (None: missing)."""
    conv = {ColumnType.INT: int, ColumnType.FLOAT: float}.get(typ, str)
    return [None if c is None else conv(c) for c in col.cells]


def _key(value) -> str:
    """The label value as pipeline.example_gen looks it up in label_map: str() of the value
    TFX wrote (an INT, a float32 or the text)."""
    if isinstance(value, float):
        return str(float(np.float32(value)))
    return str(value)


def _counts(counter: Counter, limit: int = 10) -> str:
    items = [f"{v!r} ({n:,} rows)" for v, n in counter.most_common(limit)]
    more = len(counter) - limit
    return ", ".join(items) + (f" and {more:,} more" if more > 0 else "")


def _label_map(data: Data, label: str, positive: str | None) -> dict[str, int] | None:
    """None for a 0/1 INT label; else {positive: 1, other: 0}. Refuses other labels."""
    src, col = data.source, data.columns[label]
    missing = len(col.cells) - col.present()
    if missing:
        raise DataError(f"{src}: label column '{label}': {missing:,} rows have no value: "
                        f"expected a label (0/1, or one of two values) on every row")
    counts = Counter(_key(v) for v in _typed(col, col.type))
    if len(counts) != 2:
        raise DataError(f"{src}: label column '{label}': {len(counts)} distinct value(s) "
                        f"{_counts(counts)}: expected exactly two classes")
    numeric01 = col.type != ColumnType.STRING and {float(k) for k in counts} == {0, 1}
    if numeric01:  # 0/1 (or 0.0/1.0): the positive class is 1
        one = next(k for k in counts if float(k) == 1)
        if positive is not None and positive not in (one, "1"):
            raise ConfigError(f"--positive {positive!r}: label column '{label}' holds 0 and 1; "
                              f"the positive class is 1 (leave --positive out)")
        positive = one
    elif positive is None or positive not in counts:
        got = "is required" if positive is None else f"{positive!r} is not one of them"
        raise ConfigError(f"--positive {got}: label column '{label}' holds {_counts(counts)}; "
                          f"say which one is the positive class (1), e.g. --positive "
                          f"{min(counts, key=counts.get)}")
    small = [k for k, n in counts.items() if n < MIN_CLASS_ROWS]
    if small:
        raise DataError(f"{src}: label column '{label}': only {counts[small[0]]} rows of class "
                        f"{small[0]!r}: expected at least {MIN_CLASS_ROWS} rows of each class")
    if col.type == ColumnType.INT and numeric01:
        return None
    return {positive: 1, **{k: 0 for k in counts if k != positive}}


def _suggest(name: str) -> str:
    """A valid feature name close to `name`."""
    fixed = re.sub(r"[^A-Za-z0-9_]+", "_", name).strip("_") or "col"
    return fixed if not feature_name_problem(fixed) else f"col_{fixed}"


def _check_columns(data: Data, label: str, ignore: Sequence[str]) -> None:
    src = data.source
    for name in ignore:
        if name not in data.columns:
            raise ConfigError(f"--ignore {name}: no such column in {src} "
                              f"(columns: {list(data.columns)})")
    if label not in data.columns:
        raise DataError(f"{src}: no label column '{label}': expected one of the columns "
                        f"{list(data.columns)}")
    if label in ignore:
        raise ConfigError(f"--ignore {label}: that is the label column")
    for name, col in data.columns.items():
        if name in ignore:
            continue
        if feature_name_problem(name):
            raise DataError(f"{src}: column '{name}': {feature_name_problem(name)}: rename it "
                            f"in the header, e.g. "
                            f"'{_suggest(name)}', "
                            f"or leave it out with --ignore '{name}'")
        split_types = {s: t for s, t in col.types.items() if t != ColumnType.UNKNOWN}
        if len(set(split_types.values())) > 1:
            (lo_split, lo), (hi_split, hi) = sorted(split_types.items(), key=lambda kv: kv[1])
            raise DataError(f"{src}: column '{name}': {lo.name} in {lo_split}/ but {hi.name} in "
                            f"{hi_split}/ (e.g. {col.first[hi_split, hi][2]!r} at "
                            f"{col.first[hi_split, hi][0]} line {col.first[hi_split, hi][1]}): "
                            f"the pipeline infers each split's types separately; expected the "
                            f"same type in both (write e.g. 3.0 rather than 3)")
        if name == label:
            continue
        present = col.present()
        distinct = len(set(col.cells) - {None})
        hint = f"; leave it out with --ignore {name}"
        if present == 0:
            raise DataError(f"{src}: column '{name}' is empty on every row{hint}")
        if distinct == 1:
            value = next(c for c in col.cells if c is not None)
            raise DataError(f"{src}: column '{name}' has one value ({value!r}) on every row "
                            f"that has one: a constant teaches the model nothing{hint}")
        if col.type == ColumnType.STRING and distinct == present:
            raise DataError(f"{src}: column '{name}': all {present:,} values are different "
                            f"strings (an id or a name?): expected a categorical column{hint}")


def _check_rows(data: Data) -> None:
    src = data.source
    if data.rows < MIN_ROWS:
        raise DataError(f"{src}: {data.rows} data rows: expected at least {MIN_ROWS} to train "
                        f"and evaluate a model")
    for split, rows in data.splits.items():
        if split and len(rows) < MIN_SPLIT_ROWS:
            raise DataError(f"{src / split}: {len(rows)} data rows: expected at least "
                            f"{MIN_SPLIT_ROWS} in each of train/ and eval/")


def _groups(data: Data, sensitive: str, groups: Sequence[str] | None, label: str,
            label_map: dict | None, ignore: Sequence[str], log,
            rerun: Callable[[Sequence[str]], str]) -> tuple[str, str] | None:
    """The (protected, reference) groups, or None after printing the choice (no --groups) and
    `rerun(groups)`, the command line that makes it."""
    src = data.source
    if sensitive not in data.columns:
        raise DataError(f"{src}: no sensitive column '{sensitive}': expected one of the columns "
                        f"{list(data.columns)}")
    col = data.columns[sensitive]
    if sensitive == label or sensitive in ignore:
        raise ConfigError(f"--sensitive {sensitive}: expected a feature column (not the label "
                          f"nor an --ignore'd column)")
    if col.type != ColumnType.STRING:
        raise DataError(f"{src}: sensitive column '{sensitive}' is {col.type.name} (e.g. "
                        f"{data.where(col, col.type)}): expected a categorical (text) column "
                        f"whose values name the groups")
    counts = Counter(c for c in col.cells if c is not None)
    if groups is None:
        log(f"[init] sensitive column '{sensitive}': {len(counts)} groups")
        width = max(len(g) for g in counts)
        for value, n in counts.most_common():
            log(f"  {value:<{width}}  {n:>9,} rows  {n / data.rows:6.1%}")
        reference, protected = [g for g, _ in counts.most_common(2)]
        log(f"[init] choose the two groups MinDiff and the fairness gate compare, protected "
            f"first; e.g. the two largest, the smaller one protected:\n"
            f"  {rerun([protected, reference])}")
        odd = [g for g in counts if "," in g or g != g.strip()]
        if odd:  # runners.cli splits --groups at commas and strips each value
            log(f"[init] note: --groups cannot name {odd[0]!r} (a comma, or spaces around "
                f"it): rename that value in the CSV to compare that group")
        return None
    if len(groups) != 2 or groups[0] == groups[1]:
        raise ConfigError(f"--groups {','.join(groups)}: expected two different values of "
                          f"'{sensitive}': PROTECTED,REFERENCE")
    unknown = [g for g in groups if g not in counts]
    if unknown:
        raise ConfigError(f"--groups: {unknown[0]!r} is not a value of '{sensitive}' in {src} "
                          f"(values: {_counts(counts, 20)})")
    # MinDiff needs negatives of both groups, the FPR/FNR gaps both classes.
    per_group = Counter(zip(col.cells, _labels(data, label, label_map)))
    for g in groups:
        for y in (0, 1):
            if per_group[g, y] < MIN_CLASS_ROWS:
                raise DataError(f"{src}: group {g!r} of '{sensitive}' has {per_group[g, y]} rows "
                                f"of label {y}: expected at least {MIN_CLASS_ROWS} of each class "
                                f"in each group (MinDiff and the fairness gate compare them)")
    return groups[0], groups[1]


def _labels(data: Data, label: str, label_map: dict | None) -> list[int]:
    """The 0/1 label of every row, as ExampleGen writes it."""
    values = _typed(data.columns[label], data.columns[label].type)
    return [label_map[_key(v)] for v in values] if label_map else [int(v) for v in values]


def _frame(data: Data, label: str, label_map: dict | None):
    frame = {}
    for name, col in data.columns.items():
        if name == label:
            frame[name] = pd.array(_labels(data, label, label_map), dtype="Int64")
            continue
        values = _typed(col, col.type)
        if col.type == ColumnType.INT:
            frame[name] = pd.array(values, dtype="Int64")  # keeps missing cells missing
        elif col.type == ColumnType.FLOAT:
            frame[name] = pd.array(values, dtype="float64")  # NaN -> missing
        else:
            frame[name] = pd.Series(values, dtype=object)  # None -> missing
    return pd.DataFrame(frame)


def _comparator(feature):
    return "infinity_norm" if feature.type == schema_pb2.BYTES else "jensen_shannon_divergence"


def _set_comparators(schema, thresholds: dict[str, float]) -> None:
    for feature in schema.feature:
        if feature.name in thresholds:
            for comp in (feature.drift_comparator, feature.skew_comparator):
                getattr(comp, _comparator(feature)).threshold = thresholds[feature.name]


def _round_up(x: float) -> float:
    return math.ceil(round(x * 100, 6)) / 100


def _floor(x: float) -> float:
    return math.floor(round(x * 100, 6)) / 100


def _without_tails(frame, numeric: Sequence[str], tail: float):
    """The frame without each numeric column's rarest values at either end (missing instead):
    the values at the low, then at the high end, while they hold at most `tail` of its
    values."""
    out = frame.copy()
    for name in numeric:
        counts = out[name].value_counts().sort_index()
        rare = []
        for values in (counts.index, counts.index[::-1]):
            cumulative = counts[values].cumsum()
            rare += list(cumulative.index[cumulative <= tail * counts.sum()])
        out.loc[out[name].isin(rare), name] = None
    return out


def _thresholds(frame, stats, schema, names: Sequence[str],
                numeric: Sequence[str]) -> dict[str, tuple[float, float, float]]:
    """(halves, tails, threshold) per feature: the distance between two random halves of the
    data, and the largest between the data (`stats`) and the data without its rarest numeric
    values (TAILS)."""
    probe = type(schema)()
    probe.CopyFrom(schema)
    _set_comparators(probe, {n: 0.0 for n in names})

    def distances(a, b) -> dict[str, float]:
        found = {n: 0.0 for n in names}
        for info in tfdv.validate_statistics(a, probe, previous_statistics=b).drift_skew_info:
            name = ".".join(info.path.step)
            found[name] = max([m.value for m in info.drift_measurements] + [0.0])
        return found

    rows = list(range(len(frame)))
    random.Random(SEED).shuffle(rows)
    half = len(rows) // 2
    halves = distances(*(tfdv.generate_statistics_from_dataframe(frame.iloc[sorted(r)])
                         for r in (rows[:half], rows[half:])))
    trimmed = [distances(tfdv.generate_statistics_from_dataframe(
        _without_tails(frame, numeric, tail)), stats) for tail in TAILS]
    tails = {n: max(t[n] for t in trimmed) for n in names}
    return {n: (halves[n], tails[n], min(THRESHOLD_CAP, max(
        THRESHOLD_FLOOR, _round_up(THRESHOLD_FACTOR * halves[n]),
        _round_up(TAIL_FACTOR * tails[n])))) for n in names}


def _curate(data: Data, stats, frame, label: str, label_map, ignore, log):
    """TFDV's inferred schema, adjusted to Fairway's rules (SCHEMA_RULES); returns the schema
    and a comment per feature."""
    schema = tfdv.infer_schema(stats, infer_feature_shape=False)
    comments: dict[str, list[str]] = {}
    keep_domains = set()
    for feature in schema.feature:
        name, col = feature.name, data.columns[feature.name]
        notes = comments.setdefault(name, [])
        feature.ClearField("shape")
        feature.value_count.min, feature.value_count.max = 1, 1
        feature.presence.Clear()
        if name in ignore:
            feature.ClearField("domain_info")
            feature.presence.min_fraction = 0.0
            notes.append("ignored (--ignore): not a model feature; never an anomaly")
            continue
        feature.presence.min_count = 1
        present = min(col.present(rows) / len(rows) for rows in data.splits.values())
        feature.presence.min_fraction = 1.0 if present == 1 else \
            _floor(max(0.0, present - PRESENCE_MARGIN))
        if present < 1:
            where = " (the split with the most)" if len(data.splits) > 1 else ""
            notes.append(f"{1 - present:.1%} missing{where}: presence min_fraction "
                         f"{feature.presence.min_fraction}")
        if name == label:
            feature.ClearField("domain_info")
            feature.type = schema_pb2.INT
            feature.int_domain.min, feature.int_domain.max = 0, 1
            feature.int_domain.is_categorical = True
            feature.not_in_environment.append("SERVING")
            notes.append("the label: TRAINING only" + (
                "; mapped " + ", ".join(f"{k!r} -> {v}" for k, v in label_map.items())
                + " by the config's label_map" if label_map else ""))
            continue
        if feature.type != schema_pb2.BYTES:
            feature.ClearField("domain_info")  # no range, no bool domain: new values are fine
            continue
        values = [c for c in col.cells if c is not None]
        distinct = len(set(values))
        if distinct > HIGH_CARDINALITY or distinct > len(values) / 2:
            feature.ClearField("domain_info")
            why = (f"{distinct:,} distinct values in {len(values):,} rows: high cardinality, no "
                   f"domain (new values are not anomalies; the model serves them through its "
                   f"OOV bucket)")
            notes.append(why)
            log(f"[init] column '{name}': {why}")
        elif feature.HasField("domain"):
            keep_domains.add(feature.domain)
    kept = [d for d in schema.string_domain if d.name in keep_domains]
    del schema.string_domain[:]
    schema.string_domain.extend(kept)
    del schema.default_environment[:]
    schema.default_environment.extend(["TRAINING", "SERVING"])
    features = [f.name for f in schema.feature if f.name not in ignore and f.name != label]
    numeric = [f.name for f in schema.feature
               if f.name in features and f.type in (schema_pb2.INT, schema_pb2.FLOAT)]
    thresholds = _thresholds(frame, stats, schema, features, numeric)
    _set_comparators(schema, {n: t for n, (_, _, t) in thresholds.items()})
    for name, (halves, tails, t) in thresholds.items():
        comments[name].append(f"random halves of the data differ by {halves:.3f}" + (
            f", without its rarest end values by {tails:.3f}" if name in numeric else "")
            + f": threshold {t}")
    return schema, comments


def schema_text(schema, comments: dict[str, list[str]], header: str) -> str:
    """The schema as text proto: the header and the rules, then each feature after its
    comments, then the string domains and environments."""
    parts = [header + "# Curate it by hand as you learn the data.\n#\n" + SCHEMA_RULES + "\n"]
    for feature in schema.feature:
        body = text_format.MessageToString(feature, as_utf8=True).rstrip("\n")
        body = body.replace("\n", "\n  ")
        parts.append("".join(f"# {feature.name}: {c}\n" for c in comments.get(feature.name, []))
                     + "feature {\n  " + body + "\n}\n")
    rest = type(schema)()
    rest.CopyFrom(schema)
    del rest.feature[:]
    parts.append(text_format.MessageToString(rest, as_utf8=True))
    return "".join(parts)


def _teacher(data: Data, numeric: list[str], categorical: list[str],
             optional: set[str]) -> tuple[tuple[int, ...], float]:
    """The smallest teacher of TEACHER_LADDER the default student fits under MAX_PARAM_RATIO
    (the Trainer stops otherwise), and the student/teacher parameter ratio. Vocabulary sizes
    are estimated from the data: the distinct values (at most dataset.max_vocab, the config's
    default) + the OOV bucket + the missing token."""
    vocab = {k: min(len(set(data.columns[k].cells) - {None}), DatasetSpec.max_vocab) + 2
             for k in categorical}
    indicators = [f"{k}_missing" for k in numeric if k in optional]

    def params(hidden_units, embedding_dim) -> int:
        return model_lib.build_mlp(numeric, vocab, hidden_units, embedding_dim,
                                   indicators=indicators).count_params()

    student = params(STUDENT["hidden_units"], STUDENT["embedding_dim"])
    for units in TEACHER_LADDER:
        ratio = student / params(units, TEACHER_EMBEDDING)
        if ratio <= 0.9 * MAX_PARAM_RATIO:  # margin: vocabularies are estimates
            break
    return units, ratio


def _readable(x: float, integer: bool) -> int | float:
    """x to two significant digits; a whole number (at least 1) for an integer column."""
    digits = 1 - math.floor(math.log10(abs(x))) if x else 0
    if integer:
        return max(1, int(round(x, min(digits, 0))))
    return round(x, digits)


def _drift(data: Data, numeric: Sequence[str], categorical: Sequence[str], schema,
           sensitive: str | None) -> tuple[tuple[str, int | float] | None, str | None]:
    """The default [inject_drift]: the first numeric feature shifted by DRIFT_SHIFT_SD standard
    deviations of its values, and the first categorical feature with a domain (not the
    sensitive one) for DRIFT_CATEGORY; None where there is no such feature."""
    shift = None
    if numeric:
        col = data.columns[numeric[0]]
        values = [v for v in _typed(col, col.type) if v is not None]
        shift = numeric[0], _readable(DRIFT_SHIFT_SD * float(np.std(values)),
                                      col.type == ColumnType.INT)
    with_domain = {f.name for f in schema.feature if f.WhichOneof("domain_info") == "domain"}
    category = next((n for n in categorical if n in with_domain and n != sensitive), None)
    return shift, category


def _toml_str(value: str) -> str:
    return json.dumps(value, ensure_ascii=False)  # a JSON string is a TOML basic string


def _toml_list(values: Sequence[str], key: str) -> str:
    """`key = [...]`, wrapped at 100 characters."""
    lines, line = [], f"{key} = ["
    for i, v in enumerate(values):
        item = _toml_str(v) + (", " if i < len(values) - 1 else "]")
        if len(line) + len(item) > 100 and not line.endswith("["):
            lines.append(line.rstrip())
            line = " " * (len(key) + 4)
        line += item
    return "\n".join(lines + [line if values else f"{key} = []"])


@dataclasses.dataclass(frozen=True)
class Choices:
    """Everything the TOML says, decided from the data and the options."""

    name: str
    csv_dir: str
    numeric: list[str]
    categorical: list[str]
    label: str
    label_map: dict[str, int] | None
    sensitive: str | None
    groups: tuple[str, str] | None
    ignore: list[str]
    teacher: tuple[int, ...]
    param_ratio: float
    presplit: bool = True  # train/ + eval/; else split 2:1 by label ("stratified")
    drift_shift: tuple[str, int | float] | None = None  # [inject_drift] shift = {col = amount}
    drift_category: str | None = None  # [inject_drift] new_category = {col = DRIFT_CATEGORY}


def toml_text(c: Choices, header: str) -> str:
    fairness = c.sensitive is not None
    lines = [header.rstrip("\n")]
    if not fairness:
        lines += ["# MinDiff and the fairness gate are off: no sensitive attribute was given "
                  "(rerun `fairway init`", "# with --sensitive COL --groups PROTECTED,REFERENCE "
                  "to turn them on)."]
    lines += ["", "[dataset]", f"name = {_toml_str(c.name)}", 'source = "csv"',
              f"csv_dir = {_toml_str(c.csv_dir)}"
              + ("" if os.path.isabs(c.csv_dir) else "  # relative to this file"),
              'schema = "schema.pbtxt"  # curated by `fairway init`; edit it as the data evolves',
              _toml_list(c.numeric, "numeric"), _toml_list(c.categorical, "categorical"),
              f"label = {_toml_str(c.label)}"]
    if not c.presplit:
        lines.append('split = "stratified"  # 2:1 within each label value: both splits keep '
                     "the label's balance")
    if c.label_map:
        pairs = ", ".join(f"{_toml_str(k)} = {v}" for k, v in c.label_map.items())
        lines.append(f"label_map = {{{pairs}}}  # raw label -> 1 (positive) / 0, applied by "
                     f"ExampleGen")
    if fairness:
        lines += [f"sensitive = {_toml_str(c.sensitive)}",
                  f"groups = [{_toml_str(c.groups[0])}, {_toml_str(c.groups[1])}]  "
                  f"# [protected, reference]",
                  f"slices = [[{_toml_str(c.sensitive)}]]"]
    if c.ignore:
        lines.append(f"# left out (--ignore): {', '.join(c.ignore)} (in the CSV and the schema, "
                     f"not model features)")
    lines += ["", "[training]  # the teacher",
              "train_steps = 2000  # a starting point: more for large data, fewer for a quick try",
              f"hidden_units = [{', '.join(map(str, c.teacher))}]",
              "", "[mindiff]",
              f"weight = {1.0 if fairness else 0.0}"
              + ("  # MMD penalty on the FPR gap between the two groups" if fairness
                 else "  # off: no sensitive attribute"),
              "", "[distillation]  # the student, the model that is evaluated and pushed",
              "enabled = true"]
    if c.param_ratio > MAX_PARAM_RATIO * 0.9:  # wide categorical columns: embeddings dominate
        lines.append(f"max_param_ratio = {min(1.0, _round_up(c.param_ratio * 1.2))}  # the "
                     f"student's embeddings of high-cardinality columns")
    lines += ["", "[evaluation]",
              "min_auc = 0.65  # a low bar to start: raise it once you know the model's level "
                               "(fairway status)"]
    lines.append("max_fpr_gap = 0.1  # the fairness gate: |FPR(protected) - FPR(reference)|"
                 if fairness else "# max_fpr_gap = 0.1  (the fairness gate; needs sensitive "
                                  "and groups)")
    if c.drift_shift or c.drift_category:
        lines += ["", f"# `fairway data --config {c.name}.toml --new-span DIR --inject-drift` "
                      f"writes a batch", "# with this drift: the drift gate must stop a run on "
                      "it.", "[inject_drift]"]
        if c.drift_shift:
            col, amount = c.drift_shift
            lines.append(f"shift = {{{col} = {amount}}}  # {DRIFT_SHIFT_SD} standard deviations "
                         f"of {col}, added to every row")
        if c.drift_category:
            lines += [f"new_category = {{{c.drift_category} = {_toml_str(DRIFT_CATEGORY)}}}  "
                      f"# a value {c.drift_category} never had", f"fraction = {DRIFT_FRACTION}  "
                      f"# share of the rows that get it"]
    return "\n".join(lines) + "\n"


def default_name(path: pathlib.Path) -> str:
    """The file's or folder's name as a dataset name: letters, digits, '_', '-', starting
    with a letter."""
    stem = path.resolve().name if path.is_dir() else path.stem
    name = re.sub(r"^[^A-Za-z]+", "", re.sub(r"[^A-Za-z0-9_-]+", "_", stem)).strip("_-")
    return name or "dataset"


def _relative(path: pathlib.Path, base: pathlib.Path) -> str:
    try:
        return pathlib.Path(os.path.relpath(path, base.resolve())).as_posix()
    except ValueError:  # another drive
        return path.as_posix()


def command(csv: str, label: str, *, positive: str | None = None, sensitive: str | None = None,
            groups: Sequence[str] | None = None, ignore: Sequence[str] = (),
            name: str | None = None, to: str | None = None, force: bool = False) -> str:
    """The `fairway init` command line of these options, each argument shell-quoted: ready to
    paste."""
    args = ["fairway", "init", "--csv", str(csv), "--label", label]
    for option, value in (("--positive", positive), ("--sensitive", sensitive),
                          ("--groups", ",".join(groups or ())), ("--ignore", ",".join(ignore)),
                          ("--name", name), ("--to", to)):
        if value:
            args += [option, str(value)]
    return shlex.join(args + ["--force"] * force)


def run(csv: str, label: str, *, positive: str | None = None, sensitive: str | None = None,
        groups: Sequence[str] | None = None, ignore: Sequence[str] = (), name: str | None = None,
        to: str | None = None, force: bool = False,
        log: Callable[[str], None] = print) -> int:
    """`fairway init`: check the CSVs, decide the config and the schema from the data, write
    both. Returns the exit code: 0, or 2 when --sensitive needs --groups (printed, nothing
    written)."""
    def rerun(chosen: Sequence[str]) -> str:  # the same options, with these groups
        return command(csv, label, positive=positive, sensitive=sensitive, groups=chosen,
                       ignore=ignore, name=given_name, to=to, force=force)

    source, given_name = pathlib.Path(csv), name
    name = name or default_name(source)
    if not _NAME_RE.match(name):
        raise ConfigError(f"--name {name!r}: expected letters, digits, '-' or '_', starting "
                          f"with a letter")
    out = pathlib.Path(to or ".")
    toml_path, schema_path = out / f"{name}.toml", out / "schema.pbtxt"
    existing = [str(p) for p in (toml_path, schema_path) if p.exists()]
    if existing and not force:
        raise ConfigError(f"{existing[0]} exists: not overwritten (--force overwrites, or "
                          f"--to DIR / --name NAME write elsewhere)")
    ignore = list(dict.fromkeys(ignore))

    log(f"[init] checking {source} ...")
    scan = csvfile.scan(source)
    csv_dir = source.resolve()  # dataset.csv_dir: the file, or the folder, the user named
    if out.resolve() in [csv_dir / split for split in scan.splits]:  # "" -> csv_dir
        raise ConfigError(f"--to {out}: the pipeline reads every file in {out.resolve()} as CSV "
                          f"data: write the config elsewhere (e.g. --to {csv_dir.parent})")
    split_rows = ", ".join(f"{s} {n:,}" for s, n in scan.rows.items() if s)
    log(f"[init] reading {len(scan.files)} file{'s' * (len(scan.files) > 1)} "
        f"({sum(scan.rows.values()):,} rows{': ' + split_rows if split_rows else ''}) ...")
    data = _read(scan, source)
    _check_rows(data)
    _check_columns(data, label, ignore)
    if not set(data.columns) - {label, *ignore}:
        raise ConfigError(f"--ignore: no feature column left in {source} besides the label")
    label_map = _label_map(data, label, positive)
    chosen = None
    if sensitive is not None:
        chosen = _groups(data, sensitive, groups, label, label_map, ignore, log, rerun)
        if chosen is None:
            return 2
    elif groups:
        raise ConfigError("--groups needs --sensitive COL")

    log("[init] statistics (TFDV) ...")
    frame = _frame(data, label, label_map)
    stats = tfdv.generate_statistics_from_dataframe(frame)
    log("[init] schema and drift thresholds (random halves of the data, rare values left "
        "out) ...")
    schema, comments = _curate(data, stats, frame, label, label_map, ignore, log)
    anomalies = tfdv.validate_statistics(stats, schema, environment="TRAINING").anomaly_info
    if anomalies:  # a bug here, not in the data: the schema must accept the data it came from
        raise FairwayError("the inferred schema does not accept its own data: " + "; ".join(
            f"{k}: {v.description}" for k, v in anomalies.items()))

    features = [n for n in data.columns if n != label and n not in ignore]
    numeric = [n for n in features if data.columns[n].type in (ColumnType.INT, ColumnType.FLOAT)]
    categorical = [n for n in features if n not in numeric]
    optional = {f.name for f in schema.feature if f.presence.min_fraction < 1}
    teacher, ratio = _teacher(data, numeric, categorical, optional)
    shift, category = _drift(data, numeric, categorical, schema, sensitive)
    choices = Choices(name, _relative(csv_dir, out), numeric, categorical, label, label_map,
                      sensitive, chosen, ignore, teacher, ratio, presplit="" not in data.splits,
                      drift_shift=shift, drift_category=category)

    splits = "; ".join(f"{s}/ {len(r):,}" for s, r in data.splits.items() if s)
    header = (f"# Written by `fairway init` from {source.resolve()} on "
              f"{datetime.date.today().isoformat()}: {data.rows:,} rows"
              f"{' (' + splits + ')' if splits else ''}.\n")
    out.mkdir(parents=True, exist_ok=True)
    schema_path.write_text(schema_text(schema, comments, header))
    toml_path.write_text(toml_text(choices, header))
    try:
        load(toml_path)  # what `fairway run` will read: fail here, not there
    except ConfigError:
        toml_path.unlink()
        schema_path.unlink()
        raise
    log(f"[init] wrote {schema_path} ({len(schema.feature)} features) and {toml_path} "
        f"({len(numeric)} numeric, {len(categorical)} categorical, label '{label}'"
        f"{', sensitive ' + repr(sensitive) if sensitive else ''})")
    log(f"\n{shlex.join(['fairway', 'run', '--config', str(toml_path)])}")
    return 0
