"""Fairway's one typed configuration.

A dataset is described by a TOML file (the presets in ``pipeline/presets/`` use the same format as a
user's own file), validated here before anything runs. This is the only module that decides paths.
"""
from __future__ import annotations

import dataclasses
import os
import pathlib
import re
import time
from typing import Any, Mapping

import tomli

from pipeline.errors import FairwayError  # also importable from here, as before

REPO_ROOT = pathlib.Path(__file__).resolve().parent.parent
PRESETS_DIR = pathlib.Path(__file__).resolve().parent / "presets"
SCHEMAS_DIR = REPO_ROOT / "schemas"

# Beam's DirectRunner first tries to download the Prism runner (no internet here) and falls back
# after a delay; FnApiRunner was the fastest option measured on 2 cores.
# TFX builds an sdist of its own install for every Beam component it runs unless one of Beam's
# dependency flags is set (measured: 2.7 s and 48 MB left in /tmp per component run). In-process
# and on Fairway's Spark worker pool the code is already installed; TFX only checks that the
# flag is set, and no runner here uses a container image.
NO_TFX_SDIST = "--sdk_container_image=none"
DEFAULT_BEAM_ARGS = ("--runner=FnApiRunner", NO_TFX_SDIST)

SOURCES = ("census", "taxi", "csv")
_NAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_-]*$")
# Column names become serving input names: TensorFlow's SavedModel signatures refuse a leading
# '_' and the name 'self' (measured: the export fails), so they are refused up front.
_FEATURE_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
RESERVED_NAMES = frozenset({"self"})


def feature_name_problem(name: str) -> str | None:
    """Why a column cannot be a feature or label name (None: it can)."""
    if name in RESERVED_NAMES:
        return f"'{name}' is reserved by TensorFlow's serving signatures"
    if not _FEATURE_RE.match(name):
        return "expected letters, digits and '_', starting with a letter"
    return None


class ConfigError(FairwayError, ValueError):
    """An invalid configuration value; the message names the field."""


def _fail(source: str, field: str, expected: str, got: Any) -> None:
    raise ConfigError(f"{source}: field '{field}': expected {expected}, got {got!r}")


@dataclasses.dataclass(frozen=True)
class DatasetSpec:
    """What the pipeline needs to know about a tabular dataset."""

    name: str
    source: str  # census | taxi (obtained by data.acquire) | csv (user files in csv_dir)
    numeric: tuple[str, ...]
    categorical: tuple[str, ...]
    label: str
    sensitive: str | None = None
    groups: tuple[str, ...] = ()  # (protected, reference) values of `sensitive`
    slices: tuple[tuple[str, ...], ...] = ()
    # A CSV file, a folder of CSVs (split by ExampleGen), or a folder with train/ + eval/.
    csv_dir: pathlib.Path | None = None
    schema_path: pathlib.Path | None = None
    # Raw label value -> 1/0, for a label written as two strings (e.g. Yes/No); ExampleGen maps.
    label_map: tuple[tuple[str, int], ...] = ()
    optional: tuple[str, ...] = ()  # features the schema lets be missing (read from it)
    floats: tuple[str, ...] = ()  # FLOAT columns of the schema (ExampleGen reads them so)
    max_vocab: int = 200  # categorical vocabularies keep the most frequent values; rest -> OOV
    split: str = "hash"  # unsplit data: "hash" (2:1 by ExampleGen) or "stratified" (by label)

    @property
    def features(self) -> tuple[str, ...]:
        return self.numeric + self.categorical

    @property
    def schema_file(self) -> pathlib.Path:
        return self.schema_path or SCHEMAS_DIR / self.name / "schema.pbtxt"


def _knob(default, lo=None, hi=None, choices=None):
    """A config field with the range (inclusive) or choices its TOML value must respect."""
    return dataclasses.field(default=default, metadata={"lo": lo, "hi": hi, "choices": choices})


@dataclasses.dataclass(frozen=True)
class TrainingConfig:
    """The teacher (the only model when distillation is off)."""

    train_steps: int = 2000
    eval_steps: int = 200
    batch_size: int = 128
    hidden_units: tuple[int, ...] = (64, 32)
    learning_rate: float = _knob(1e-3, lo=1e-6, hi=1.0)
    embedding_dim: int = 8
    seed: int = _knob(42, lo=0)


# MMD with either kernel matches the groups' whole score distributions; "rate_gap" pulls only
# their decision rates at evaluation.decision_threshold together (modules.mindiff.LOSSES).
MINDIFF_LOSSES = ("gaussian", "laplacian", "rate_gap")


@dataclasses.dataclass(frozen=True)
class MinDiffConfig:
    """MinDiff remediation: an MMD penalty between the model's scores on the two groups of
    dataset.groups, computed on examples with one label (0: targets the false-positive gap)."""

    weight: float = _knob(0.0, lo=0.0, hi=100.0)  # 0 turns MinDiff off
    kernel: str = _knob("gaussian", choices=MINDIFF_LOSSES)
    label: int = _knob(0, lo=0, hi=1)
    batch_size: int = 128  # MinDiff examples per group and step


@dataclasses.dataclass(frozen=True)
class DistillationConfig:
    """A compact student distilled from the teacher; when enabled, the student is pushed."""

    enabled: bool = True
    hidden_units: tuple[int, ...] = (16,)
    embedding_dim: int = 2
    alpha: float = _knob(0.2, lo=0.0, hi=1.0)  # weight of the hard-label loss
    temperature: float = _knob(2.0, lo=0.05, hi=100.0)
    # MinDiff on the student as well: what carries the teacher's fairness through
    # distillation (measured over seeds on census, COMPAS and HMDA: docs/fair-student.md).
    # Unless set, 0 when the teacher has no MinDiff (mindiff.weight 0).
    mindiff_weight: float = _knob(0.3, lo=0.0, hi=100.0)
    mindiff_kernel: str = _knob("rate_gap", choices=MINDIFF_LOSSES)  # the student's MinDiff loss
    max_param_ratio: float = _knob(0.1, lo=0.0, hi=1.0)  # student params / teacher params


@dataclasses.dataclass(frozen=True)
class EvaluationConfig:
    min_auc: float = _knob(0.75, lo=0.0, hi=1.0)  # absolute bar a candidate must clear
    # Tolerated AUC loss against the last blessed model: lets a fairer, slightly less accurate
    # model through.
    max_auc_drop: float = _knob(0.01, lo=0.0, hi=1.0)
    # Fairness gate: |FPR(protected) - FPR(reference)| at decision_threshold.
    max_fpr_gap: float = _knob(0.05, lo=0.0, hi=1.0)
    decision_threshold: float = _knob(0.5, lo=0.0, hi=1.0)
    # Fairness Indicators cut-offs (the decision threshold is always added): the model view
    # draws each rate per slice across them.
    fairness_thresholds: tuple[float, ...] = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
    # Confidence intervals of every metric, per slice (TFMA): "bootstrap" (Poisson, 20
    # samples), "jackknife" (20 buckets) or "off". They cost Evaluator time: docs/model-view.md.
    confidence_intervals: str = _knob("off", choices=("off", "bootstrap", "jackknife"))


@dataclasses.dataclass(frozen=True)
class CompareConfig:
    """The targets `fairway compare` checks (baseline vs MinDiff teacher vs student)."""

    min_gap_cut: float = _knob(0.5, lo=0.0, hi=1.0)  # share of the baseline's FPR gap removed
    min_student_auc: float = _knob(0.0, lo=0.0, hi=1.0)
    min_speedup: float = _knob(3.0, lo=0.0)  # student vs teacher, batch-1 latency
    # Over `--seeds N`, each against the same seed's baseline: one seed hides how much of
    # MinDiff's cut the pushed student keeps. Judged on the mean, except the worst-seed bound.
    min_student_gap_cut: float = _knob(0.5, lo=0.0, hi=1.0)  # student's FPR-gap cut
    min_worst_student_gap_cut: float = _knob(0.4, lo=0.0, hi=1.0)  # ... on the worst seed
    max_student_auc_drop: float = _knob(0.01, lo=0.0, hi=1.0)  # baseline AUC - student AUC
    min_kept_reduction: float = _knob(0.9, lo=0.0)  # student's cut / teacher's cut


@dataclasses.dataclass(frozen=True)
class DriftInjection:
    """What `fairway data --new-span DIR --inject-drift` changes in the new span."""

    shift: tuple[tuple[str, float], ...] = ()  # numeric column -> amount added
    new_category: tuple[tuple[str, str], ...] = ()  # categorical column -> an unseen value
    fraction: float = 0.3  # share of rows that get the new category


def _drift_injection(raw: Mapping[str, Any], dataset: DatasetSpec, src: str) -> DriftInjection:
    for key in raw:
        if key not in {"shift", "new_category", "fraction"}:
            _fail(src, f"inject_drift.{key}", "one of fraction, new_category, shift", key)
    shift, new = raw.get("shift", {}), raw.get("new_category", {})
    if not isinstance(shift, dict) or not all(
            k in dataset.numeric and isinstance(v, (int, float)) and not isinstance(v, bool)
            for k, v in shift.items()):
        _fail(src, "inject_drift.shift", "a table of numeric features and amounts", shift)
    if not isinstance(new, dict) or not all(
            k in dataset.categorical and isinstance(v, str) and v for k, v in new.items()):
        _fail(src, "inject_drift.new_category", "a table of categorical features and new values",
              new)
    fraction = raw.get("fraction", DriftInjection.fraction)
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) \
            or not 0 < fraction <= 1:
        _fail(src, "inject_drift.fraction", "a number in (0, 1]", fraction)
    return DriftInjection(tuple((k, float(v)) for k, v in shift.items()),
                          tuple(new.items()), float(fraction))


@dataclasses.dataclass(frozen=True)
class ReleaseConfig:
    """What happens to a version the Pusher pushed, and how `fairway rollout` steps a canary
    (the `[release]` table)."""

    # auto: production at once; canary: `candidate`, then a canary rollout; manual:
    # `candidate`, waiting for `fairway approve VERSION --reason ...`.
    push_policy: str = _knob("auto", choices=("auto", "canary", "manual"))
    canary_steps: tuple[int, ...] = (5, 25, 50, 100)  # % of unpinned traffic per step
    step_seconds: int = _knob(60, lo=1)  # each step lasts at least this long
    step_timeout: int = _knob(300, lo=1)  # a step still short of traffic then is rolled back
    min_requests: int = _knob(200, lo=10)  # per arm and step, before a step is judged


@dataclasses.dataclass(frozen=True)
class CardConfig:
    """What `fairway card` says a pushed model is for; the `[card]` table, every field optional
    (the defaults are derived from the dataset: label, sensitive feature and groups)."""

    intended_use: str = ""
    users: tuple[str, ...] = ()
    limitations: tuple[str, ...] = ()  # known limits, stated in every card
    owners: tuple[str, ...] = ()  # names or contacts of whoever answers for the model


def _default_intended_use(ds: DatasetSpec) -> str:
    mapped = {v: k for k, v in ds.label_map}
    positive = f" ({ds.label} = {mapped[1]!r})" if 1 in mapped else ""
    text = (f"Scores the probability that '{ds.label}' is the positive class{positive} for "
            f"rows like the '{ds.name}' training data ({len(ds.features)} features: "
            f"{', '.join(ds.features)}); a decision is the score compared with "
            f"evaluation.decision_threshold.")
    if ds.groups:
        text += (f" Fairness is measured and gated between the {ds.sensitive} groups "
                 f"'{ds.groups[0]}' (protected) and '{ds.groups[1]}' (reference).")
    return text


def _card(raw: Mapping[str, Any], dataset: DatasetSpec, src: str) -> CardConfig:
    lists = ("users", "limitations", "owners")
    for key in raw:
        if key not in ("intended_use", *lists):
            _fail(src, f"card.{key}", f"one of {sorted(('intended_use', *lists))}", key)
    use = raw.get("intended_use", "")
    if not isinstance(use, str):
        _fail(src, "card.intended_use", "a text", use)
    values = {}
    for key in lists:
        value = raw.get(key, [])
        if not isinstance(value, list) or not all(isinstance(v, str) and v.strip()
                                                  for v in value):
            _fail(src, f"card.{key}", "a list of non-empty texts", value)
        values[key] = tuple(v.strip() for v in value)
    return CardConfig(intended_use=use.strip() or _default_intended_use(dataset), **values)


MYSQL_PASSWORD_ENV = "FAIRWAY_MYSQL_PASSWORD"
_ENV_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# MLMD creates the database on first connect (CREATE DATABASE IF NOT EXISTS, unquoted).
_DB_NAME_RE = re.compile(r"^[A-Za-z0-9_]+$")


@dataclasses.dataclass(frozen=True)
class MySQLConfig:
    """ML Metadata on a MySQL-compatible server (MySQL, MariaDB): the `[pipeline.mysql]` table.

    The password is never in the config file: it is read when the store is opened, from the
    file `password_file` (relative to the config file) or else from the environment variable
    `password_env`; neither set means a user without a password."""

    host: str
    database: str
    port: int = 3306
    user: str = "root"
    password_env: str = MYSQL_PASSWORD_ENV
    password_file: pathlib.Path | None = None
    src: str = dataclasses.field(default="<config>", compare=False)  # for error messages

    def password(self) -> str:
        """The password, read now (a rotated secret is picked up by the next connection)."""
        if self.password_file is not None:
            try:
                # One trailing line end is the file's, not the password's.
                return self.password_file.read_text().removesuffix("\n").removesuffix("\r")
            except OSError as e:
                raise ConfigError(f"{self.src}: field 'pipeline.mysql.password_file': cannot "
                                  f"read {self.password_file}: {e.strerror}") from None
        if self.password_env != MYSQL_PASSWORD_ENV and self.password_env not in os.environ:
            raise ConfigError(f"{self.src}: field 'pipeline.mysql.password_env': the "
                              f"environment variable {self.password_env} is not set")
        return os.environ.get(self.password_env, "")

    def describe(self) -> str:
        """Where the store is, for messages (no secret)."""
        return f"mysql://{self.user}@{self.host}:{self.port}/{self.database}"


def _mysql(raw: Any, src: str, base: pathlib.Path) -> MySQLConfig | None:
    if raw is None:
        return None
    field = "pipeline.mysql"
    if not isinstance(raw, dict):
        _fail(src, field, "a table with at least host and database", raw)
    if "password" in raw:  # the value is not echoed: it is a secret
        raise ConfigError(
            f"{src}: field '{field}.password': a password in the config file is refused; set "
            f"the environment variable {MYSQL_PASSWORD_ENV} (or the one named by "
            f"{field}.password_env), or name a file holding it with {field}.password_file")
    allowed = [f.name for f in dataclasses.fields(MySQLConfig) if f.name != "src"]
    for key in raw:
        if key not in allowed:
            _fail(src, f"{field}.{key}", f"one of {sorted(allowed)}", key)
    for key in ("host", "database"):
        if key not in raw:
            _fail(src, f"{field}.{key}", "a value (host and database are required)", None)
    for key in ("host", "user"):
        if key in raw and (not isinstance(raw[key], str) or not raw[key].strip()):
            _fail(src, f"{field}.{key}", "a non-empty text", raw[key])
    if not isinstance(raw["database"], str) or not _DB_NAME_RE.match(raw["database"]):
        _fail(src, f"{field}.database", "a database name of letters, digits and '_'",
              raw["database"])
    port = raw.get("port", MySQLConfig.port)
    if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
        _fail(src, f"{field}.port", "a whole number in [1, 65535]", port)
    env = raw.get("password_env", MYSQL_PASSWORD_ENV)
    if not isinstance(env, str) or not _ENV_NAME_RE.match(env):
        _fail(src, f"{field}.password_env", "an environment variable name", env)
    password_file = raw.get("password_file")
    if password_file is not None:
        if "password_env" in raw:
            _fail(src, f"{field}.password_file", "either password_file or password_env, not "
                  "both", password_file)
        if not isinstance(password_file, str) or not password_file:
            _fail(src, f"{field}.password_file", "a path (relative to the config file)",
                  password_file)
        password_file = (base / password_file).resolve()
        if not password_file.is_file():
            _fail(src, f"{field}.password_file", "an existing file holding the password",
                  str(password_file))
    return MySQLConfig(host=raw["host"].strip(), database=raw["database"], port=port,
                       user=raw.get("user", MySQLConfig.user).strip(), password_env=env,
                       password_file=password_file, src=src)


@dataclasses.dataclass(frozen=True)
class PipelineConfig:
    dataset: DatasetSpec
    output_dir: pathlib.Path
    training: TrainingConfig = TrainingConfig()
    mindiff: MinDiffConfig = MinDiffConfig()
    distillation: DistillationConfig = DistillationConfig()
    evaluation: EvaluationConfig = EvaluationConfig()
    compare: CompareConfig = CompareConfig()
    inject_drift: DriftInjection = DriftInjection()
    card: CardConfig = CardConfig()
    release: ReleaseConfig = ReleaseConfig()
    sample: int | None = None  # rows per split; None runs the full data
    beam_args: tuple[str, ...] = DEFAULT_BEAM_ARGS
    enable_cache: bool = True
    mysql: MySQLConfig | None = None  # ML Metadata on MySQL/MariaDB; None: SQLite

    @property
    def pipeline_name(self) -> str:
        return f"fairway-{self.dataset.name}"

    @property
    def model_name(self) -> str:
        return self.dataset.name

    @property
    def pipeline_root(self) -> pathlib.Path:
        return self.output_dir / "root"

    @property
    def metadata_path(self) -> pathlib.Path:
        return self.output_dir / "metadata.sqlite"

    @property
    def serving_dir(self) -> pathlib.Path:
        return self.output_dir / "serving"

    @property
    def model_base_dir(self) -> pathlib.Path:
        """The Pusher's base directory: one numbered folder per pushed version."""
        return self.serving_dir / self.model_name

    @property
    def input_dir(self) -> pathlib.Path:
        return self.output_dir / "input"

    @property
    def beam_jobs_dir(self) -> pathlib.Path:
        """Where a distributed runner records the engine's jobs per run (<run_id>.json)."""
        return self.output_dir / "beam-jobs"

    @property
    def logs_dir(self) -> pathlib.Path:
        """TFX's run logs and the logs of the services a runner starts."""
        return self.output_dir / "logs"

    def log_path(self, kind: str, suffix: str = "") -> pathlib.Path:
        """A new log in logs_dir named after its kind and the local time, e.g.
        `run-20260101-120000.log` (a file) or `spark-20260101-120000` (a folder)."""
        return self.logs_dir / f"{kind}-{time.strftime('%Y%m%d-%H%M%S')}{suffix}"

    def command_dir(self, command: str) -> pathlib.Path:
        """Where a command writes by default (compile, compare, deploy, monitor, report, ...)."""
        return self.output_dir / command

    def beam_job_name(self, node_id: str) -> str:
        """The Beam job name of a node: names its Spark application or Dataflow job (lower
        case, digits and '-', as Dataflow requires)."""
        return re.sub(r"[^a-z0-9]+", "-", f"{self.pipeline_name}-{node_id}".lower()).strip("-")


def outputs_dir(name: str) -> pathlib.Path:
    """The default output folder of a dataset's runs (or of a benchmark): <repo>/outputs/<name>."""
    return REPO_ROOT / "outputs" / name


def _user_cache() -> pathlib.Path:
    return pathlib.Path.home() / ".cache" / "fairway"


def data_home() -> pathlib.Path:
    """Where downloaded datasets are cached (FAIRWAY_DATA_HOME overrides)."""
    env = os.environ.get("FAIRWAY_DATA_HOME")
    return pathlib.Path(env) if env else _user_cache() / "datasets"


def cache_dir(kind: str) -> pathlib.Path:
    """Where downloads of one kind (e.g. "spark": Beam's job server) are cached:
    $FAIRWAY_CACHE/<kind>, default ~/.cache/fairway/<kind>."""
    env = os.environ.get("FAIRWAY_CACHE")
    return (pathlib.Path(env) if env else _user_cache()) / kind


def _str_list(raw: Mapping[str, Any], key: str, src: str, required: bool = True) -> tuple[str, ...]:
    value = raw.get(key, None if required else [])
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        _fail(src, f"dataset.{key}", "a list of column names", value)
    for v in value:
        if feature_name_problem(v):
            _fail(src, f"dataset.{key}", f"column names ({feature_name_problem(v)})", v)
    return tuple(value)


def _dataset_from_dict(raw: Mapping[str, Any], src: str, base: pathlib.Path) -> DatasetSpec:
    known = {"name", "source", "numeric", "categorical", "label", "sensitive", "groups", "slices",
             "csv_dir", "schema", "label_map", "max_vocab", "split"}
    for key in raw:
        if key not in known:
            _fail(src, f"dataset.{key}", f"one of {sorted(known)}", key)
    name = raw.get("name")
    if not isinstance(name, str) or not _NAME_RE.match(name):
        _fail(src, "dataset.name", "a name of letters, digits, '-' or '_'", name)
    source = raw.get("source", "csv")
    if source not in SOURCES:
        _fail(src, "dataset.source", f"one of {list(SOURCES)}", source)
    numeric = _str_list(raw, "numeric", src, required=False)
    categorical = _str_list(raw, "categorical", src, required=False)
    if not numeric and not categorical:
        _fail(src, "dataset.numeric/categorical", "at least one feature", [])
    both = set(numeric) & set(categorical)
    if both:
        _fail(src, "dataset.categorical", "columns not also listed as numeric", sorted(both))
    label = raw.get("label")
    if not isinstance(label, str) or feature_name_problem(label):
        _fail(src, "dataset.label", "a column name", label)
    if label in numeric or label in categorical:
        _fail(src, "dataset.label", "a column that is not also a feature", label)
    sensitive = raw.get("sensitive")
    if sensitive is not None and sensitive not in categorical:
        _fail(src, "dataset.sensitive", f"one of the categorical features {list(categorical)}",
              sensitive)
    groups = raw.get("groups", [])
    if groups and (sensitive is None or not isinstance(groups, list) or len(groups) != 2
                   or not all(isinstance(g, str) and g for g in groups)
                   or groups[0] == groups[1]):
        _fail(src, "dataset.groups",
              "two different values of dataset.sensitive: [protected, reference]", groups)
    slices_raw = raw.get("slices", [])
    if not isinstance(slices_raw, list):
        _fail(src, "dataset.slices", "a list of lists of feature names", slices_raw)
    slices = []
    for s in slices_raw:
        if (not isinstance(s, list) or not s
                or not all(isinstance(c, str) and c in numeric + categorical for c in s)):
            _fail(src, "dataset.slices", "lists of feature names from numeric/categorical", s)
        slices.append(tuple(s))
    csv_dir = raw.get("csv_dir")
    if source == "csv":
        if not isinstance(csv_dir, str):
            _fail(src, "dataset.csv_dir", "a CSV file or a folder of them (source = 'csv')",
                  csv_dir)
        csv_dir = (base / csv_dir).resolve()
    elif csv_dir is not None:
        _fail(src, "dataset.csv_dir", f"nothing for source '{source}' (use --data DIR)", csv_dir)
    schema = raw.get("schema")
    if schema is not None and not isinstance(schema, str):
        _fail(src, "dataset.schema", "a path to schema.pbtxt", schema)
    label_map = raw.get("label_map", {})
    if label_map and (not isinstance(label_map, dict)
                      or not all(type(v) is int for v in label_map.values())
                      or sorted(label_map.values()) != [0, 1]):
        _fail(src, "dataset.label_map", 'two raw label values mapped to 1 and 0, e.g. '
              '{"Yes" = 1, "No" = 0}', label_map)
    max_vocab = raw.get("max_vocab", DatasetSpec.max_vocab)
    if isinstance(max_vocab, bool) or not isinstance(max_vocab, int) or max_vocab < 1:
        _fail(src, "dataset.max_vocab", "a whole number >= 1", max_vocab)
    split = raw.get("split", DatasetSpec.split)
    if split not in ("hash", "stratified"):
        _fail(src, "dataset.split", "'hash' or 'stratified'", split)
    return DatasetSpec(
        name=name, source=source, numeric=numeric, categorical=categorical, label=label,
        sensitive=sensitive, groups=tuple(groups), slices=tuple(slices), csv_dir=csv_dir,
        schema_path=(base / schema).resolve() if schema else None,
        label_map=tuple(sorted(label_map.items())), max_vocab=max_vocab, split=split)


def _with_schema(dataset: DatasetSpec, src: str) -> DatasetSpec:
    """Check the features against the schema's types; record which ones may be missing."""
    from google.protobuf import text_format
    from tensorflow_metadata.proto.v0 import schema_pb2

    path = dataset.schema_file
    try:
        schema = text_format.Parse(path.read_text(), schema_pb2.Schema())
    except (OSError, text_format.ParseError) as e:
        raise ConfigError(f"{path}: not a readable schema.pbtxt: {e}") from None
    types = {f.name: schema_pb2.FeatureType.Name(f.type) for f in schema.feature}
    expected = {**{k: ("INT", "FLOAT") for k in dataset.numeric},
                **{k: ("BYTES", "INT") for k in dataset.categorical}, dataset.label: ("INT",)}
    for key, allowed in expected.items():
        if types.get(key) not in allowed:
            _fail(src, "dataset", f"feature '{key}' of type {' or '.join(allowed)} in the schema "
                  f"{path}", types.get(key, "not in the schema"))
    optional = tuple(f.name for f in schema.feature if f.name in dataset.features
                     and not (f.HasField("presence") and f.presence.min_fraction >= 1.0))
    floats = tuple(f.name for f in schema.feature if f.type == schema_pb2.FLOAT)
    return dataclasses.replace(dataset, optional=optional, floats=floats)


def _section(raw: Mapping[str, Any], cls: type, prefix: str, src: str):
    """Build a dataclass from a TOML table, checking names, types and ranges."""
    fields = {f.name: f for f in dataclasses.fields(cls)}
    defaults = cls()
    values = {}
    for key, value in raw.items():
        if key not in fields:
            _fail(src, f"{prefix}.{key}", f"one of {sorted(fields)}", key)
        default, meta, name = getattr(defaults, key), fields[key].metadata, f"{prefix}.{key}"
        number = isinstance(value, (int, float)) and not isinstance(value, bool)
        if isinstance(default, tuple) and isinstance(default[0], float):
            if (not isinstance(value, list) or not value
                    or not all(isinstance(v, (int, float)) and not isinstance(v, bool)
                               and 0.0 < v < 1.0 for v in value)):
                _fail(src, name, "a non-empty list of numbers in (0, 1)", value)
            value = tuple(float(v) for v in value)
        elif isinstance(default, tuple):
            if (not isinstance(value, list) or not value
                    or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0
                               for v in value)):
                _fail(src, name, "a non-empty list of positive integers", value)
            value = tuple(value)
        elif isinstance(default, bool):
            if not isinstance(value, bool):
                _fail(src, name, "true or false", value)
        elif isinstance(default, str):
            if value not in meta["choices"]:
                _fail(src, name, f"one of {list(meta['choices'])}", value)
        elif isinstance(default, (int, float)):
            lo = meta.get("lo")
            hi = meta.get("hi")
            if isinstance(default, int) and (not isinstance(value, int) or isinstance(value, bool)):
                _fail(src, name, "a whole number", value)
            if not number:
                _fail(src, name, "a number", value)
            if lo is None and isinstance(default, int):
                lo = 1
            if (lo is not None and value < lo) or (hi is not None and value > hi):
                _fail(src, name, f"a number in [{lo}, {'inf' if hi is None else hi}]", value)
            value = type(default)(value)
        values[key] = value
    return cls(**values)


def load(path: str | os.PathLike, *, output_dir: str | os.PathLike | None = None,
         data_dir: str | os.PathLike | None = None, sample: int | None = None,
         overrides: Mapping[str, Mapping[str, Any]] | None = None) -> PipelineConfig:
    """Read a TOML config, apply command-line choices, and validate everything."""
    path = pathlib.Path(path)
    src = str(path)
    try:
        raw = tomli.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"{src}: config file not found") from None
    except tomli.TOMLDecodeError as e:
        raise ConfigError(f"{src}: not valid TOML: {e}") from None
    return from_dict(raw, src=src, base=path.parent, output_dir=output_dir, data_dir=data_dir,
                     sample=sample, overrides=overrides)


def from_dict(raw: Mapping[str, Any], *, src: str = "<config>", base: pathlib.Path = REPO_ROOT,
              output_dir=None, data_dir=None, sample=None, overrides=None) -> PipelineConfig:
    raw = {k: dict(v) if isinstance(v, Mapping) else v for k, v in raw.items()}
    for table, values in (overrides or {}).items():
        raw.setdefault(table, {}).update(values)
    known = {"dataset", "training", "mindiff", "distillation", "evaluation", "compare",
             "inject_drift", "pipeline", "card", "release"}
    for key in raw:
        if key not in known:
            _fail(src, key, f"one of the tables {sorted(known)}", key)
    if "dataset" not in raw:
        _fail(src, "dataset", "a [dataset] table", None)
    dataset = _dataset_from_dict(raw["dataset"], src, base)
    if data_dir is not None:
        data_dir = pathlib.Path(data_dir).resolve()
        if not data_dir.exists():
            _fail("--data", "data", "an existing CSV file or folder of them", str(data_dir))
        dataset = dataclasses.replace(dataset, source="csv", csv_dir=data_dir)
    if not dataset.schema_file.is_file():
        _fail(src, "dataset.schema", "an existing schema.pbtxt", str(dataset.schema_file))
    dataset = _with_schema(dataset, src)
    training = _section(raw.get("training", {}), TrainingConfig, "training", src)
    evaluation = _section(raw.get("evaluation", {}), EvaluationConfig, "evaluation", src)
    mindiff = _section(raw.get("mindiff", {}), MinDiffConfig, "mindiff", src)
    distillation = _section(raw.get("distillation", {}), DistillationConfig, "distillation", src)
    compare = _section(raw.get("compare", {}), CompareConfig, "compare", src)
    inject_drift = _drift_injection(raw.get("inject_drift", {}), dataset, src)
    card = _card(raw.get("card", {}), dataset, src)
    release = _section(raw.get("release", {}), ReleaseConfig, "release", src)
    if release.canary_steps != tuple(sorted(set(release.canary_steps))) \
            or release.canary_steps[-1] != 100:
        _fail(src, "release.canary_steps", "rising percentages ending at 100, e.g. "
              "[5, 25, 50, 100]", list(release.canary_steps))
    if mindiff.weight == 0 and "mindiff_weight" not in raw.get("distillation", {}):
        # The student's default MinDiff carries the teacher's: none without it.
        distillation = dataclasses.replace(distillation, mindiff_weight=0.0)
    if (mindiff.weight > 0 or distillation.mindiff_weight > 0) and not dataset.groups:
        _fail(src, "dataset.groups", "two values of the sensitive feature (MinDiff is on)", [])
    pipe = raw.get("pipeline", {})
    for key in pipe:
        if key not in {"beam_args", "output_dir", "enable_cache", "mysql"}:
            _fail(src, f"pipeline.{key}", "one of beam_args, output_dir, enable_cache, mysql", key)
    enable_cache = pipe.get("enable_cache", True)
    if not isinstance(enable_cache, bool):  # bool("false") would be True
        _fail(src, "pipeline.enable_cache", "true or false", enable_cache)
    beam_args = pipe.get("beam_args", list(DEFAULT_BEAM_ARGS))
    if not isinstance(beam_args, list) or not all(isinstance(a, str) for a in beam_args):
        _fail(src, "pipeline.beam_args", "a list of strings", beam_args)
    mysql = _mysql(pipe.get("mysql"), src, base)
    # Paths in the file are relative to the file (as csv_dir and schema); --output to the cwd.
    out = output_dir or (base / pipe["output_dir"] if pipe.get("output_dir")
                         else outputs_dir(dataset.name))
    if sample is not None and (isinstance(sample, bool) or not isinstance(sample, int)
                               or sample < 100):
        _fail(src, "sample", "a whole number of rows >= 100", sample)
    return PipelineConfig(
        dataset=dataset, output_dir=pathlib.Path(out).resolve(), training=training,
        mindiff=mindiff, distillation=distillation, evaluation=evaluation, compare=compare,
        inject_drift=inject_drift, card=card, release=release, sample=sample,
        beam_args=tuple(beam_args),
        enable_cache=enable_cache, mysql=mysql)


def presets() -> dict[str, pathlib.Path]:
    return {p.stem: p for p in sorted(PRESETS_DIR.glob("*.toml"))}


def preset(name: str, **kwargs) -> PipelineConfig:
    available = presets()
    if name not in available:
        raise ConfigError(f"unknown dataset '{name}': expected one of {sorted(available)}")
    return load(available[name], **kwargs)
