"""Schema evolution as a reviewed change: `fairway schema propose` and `fairway schema accept`.

propose: statistics of data the curated schema refused (a run the DataGate stopped, or served
traffic the monitor flagged) are validated against the curated schema with TFDV; for every
feature with an anomaly, TFDV's own fix (`tfdv.update_schema`) is taken, and every difference
from the curated schema is classified (`classify`) with the evidence from the statistics. The
result is written next to the curated schema as `<stem>.proposed.pbtxt` and a readable
`<stem>.proposed.md`. Features without anomalies are left alone: update_schema would also
"fix" what the environment explains (the label absent from served traffic).

accept: the proposal is classified again (it may have been edited by hand); a change to the
label, a feature's type, or a removed or added feature needs `force` and a reason. Every version
is kept as `versions/<stem>.v<N>.pbtxt` beside the curated file, the accepted one is also written
over the curated path (the config keeps pointing at it, and `data.acquire.stage_schema` gives
the next run a new content-hashed copy), and an MLMD artifact of type Schema records it.
"""
from __future__ import annotations

import dataclasses
import datetime
import difflib
import hashlib
import json
import os
import pathlib
import re
from typing import Any

from ml_metadata.proto import metadata_store_pb2 as mlmd

from pipeline import artifacts, data_gate, metadata
from pipeline.config import PipelineConfig
from pipeline.errors import FairwayError

# What a change does, as the proposal names it.
DOMAIN_EXTENDED, DOMAIN_NARROWED = "domain extended", "domain narrowed"
PRESENCE_RELAXED, PRESENCE_TIGHTENED = "presence relaxed", "presence tightened"
RANGE_WIDENED, RANGE_NARROWED = "range widened", "range narrowed"
TYPE_CHANGED, FEATURE_REMOVED, FEATURE_ADDED = "type changed", "feature removed", "feature added"
OTHER = "other change"
# Changes that alter what the model is fed (or trained on): accepted only with force + reason.
NEEDS_FORCE = frozenset({TYPE_CHANGED, FEATURE_REMOVED, FEATURE_ADDED})

PREFIX = "# fairway schema:"  # the comment line Fairway writes (and rewrites) in a schema file
_PROPOSED = re.compile(re.escape(PREFIX) + r" proposed on \S+ from (?P<source>.+) "
                       r"\(base (?P<base>[0-9a-f]{12})\)")
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')
# TFDV marks a feature it stops validating (its fix for a missing column or a wrong type).
_RETIRED = ("DEPRECATED", "DISABLED")


class SchemaEvolutionError(FairwayError):
    """A proposal cannot be made or accepted; the message names the file or feature."""


class NeedsForce(SchemaEvolutionError):
    """The proposal changes the label, a feature's type, or the feature set."""


@dataclasses.dataclass(frozen=True)
class Change:
    """One difference between the curated schema and a proposal, e.g. feature 'city': domain
    extended by 'Lima' (seen in 5.0 % of train rows of run X)."""

    feature: str  # "" for the schema as a whole
    kind: str
    detail: str = ""
    label: bool = False  # a change of the label: always needs force
    evidence: str = ""
    added: tuple[str, ...] = ()  # the new values of a domain extended by values

    @property
    def needs_force(self) -> bool:
        return self.label or self.kind in NEEDS_FORCE

    def __str__(self) -> str:
        who = (f"feature '{self.feature}'" + (" (the label)" if self.label else "")
               if self.feature else "schema")
        text = f"{who}: {self.kind}{' ' + self.detail if self.detail else ''}"
        return f"{text} ({self.evidence})" if self.evidence else text


@dataclasses.dataclass(frozen=True)
class Evidence:
    """The data a proposal is made from."""

    source: str  # "run <id>", "served traffic (...)": named in every line of evidence
    statistics: dict[str, Any]  # split name -> DatasetFeatureStatisticsList
    environment: str | None = None  # TRAINING (a run's splits) or SERVING (served traffic)
    notes: tuple[str, ...] = ()  # findings no schema change fixes (drift)


@dataclasses.dataclass(frozen=True)
class Paths:
    curated: pathlib.Path
    proposed: pathlib.Path
    markdown: pathlib.Path
    versions: pathlib.Path

    def version(self, n: int) -> pathlib.Path:
        return self.versions / f"{self.curated.stem}.v{n}{self.curated.suffix}"


@dataclasses.dataclass(frozen=True)
class Proposal:
    changes: list[Change]
    notes: list[str]  # drift, anomalies the proposal leaves (TFDV has no fix for them)
    paths: Paths
    written: bool  # False: nothing to propose


@dataclasses.dataclass(frozen=True)
class Accepted:
    version: int
    path: pathlib.Path  # the version file
    saved_before: int | None  # the version number the previous curated schema was kept as
    artifact_id: int
    changes: list[Change]


def paths(cfg: PipelineConfig) -> Paths:
    curated = cfg.dataset.schema_file
    stem = curated.stem
    return Paths(curated, curated.with_name(f"{stem}.proposed{curated.suffix}"),
                 curated.with_name(f"{stem}.proposed.md"), curated.parent / "versions")


# -- reading and writing schema files ---------------------------------------------------------

def parse(text: str, path: pathlib.Path):
    from google.protobuf import text_format
    from tensorflow_metadata.proto.v0 import schema_pb2

    try:
        return text_format.Parse(text, schema_pb2.Schema())
    except text_format.ParseError as e:
        raise SchemaEvolutionError(f"{path}: not a readable schema: {e}") from None


def _read(path: pathlib.Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except OSError as e:
        raise SchemaEvolutionError(f"{path}: cannot read the schema ({e.strerror})") from None


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def _write(path: pathlib.Path, text: str) -> None:
    """Whole or not at all: a run reading the curated schema meanwhile sees one or the other."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


@dataclasses.dataclass(frozen=True)
class _Statement:
    """A statement of a text proto at one level (a feature, a domain, a field), with the
    comment and blank lines right above it, and the message it parses to on its own."""

    above: tuple[str, ...]
    lines: tuple[str, ...]
    parsed: Any  # None if it does not parse alone
    key: tuple | None  # (field,) or (field, name or value) when it holds one element


def _key(fragment) -> tuple | None:
    fields = fragment.ListFields()
    if len(fields) != 1:
        return None
    field, value = fields[0]
    if field.label != field.LABEL_REPEATED:
        return (field.name,)
    if len(value) != 1:
        return None
    return (field.name, getattr(value[0], "name", value[0]))


def _statements(lines: list[str], message_type) -> tuple[list[_Statement], list[str]]:
    """The statements of one level of a text proto, and the lines after the last one."""
    from google.protobuf import text_format

    out, above, body, depth = [], [], [], 0
    for line in lines:
        code = _STRING.sub('""', line).split("#", 1)[0].strip()
        if not body and not code:
            above.append(line)
            continue
        body.append(line)
        depth += code.count("{") + code.count("<") - code.count("}") - code.count(">")
        if depth <= 0:
            try:
                parsed = text_format.Parse("\n".join(body), message_type())
            except text_format.ParseError:
                parsed = None
            out.append(_Statement(tuple(above), tuple(body), parsed,
                                  _key(parsed) if parsed else None))
            above, body, depth = [], [], 0
    return out, above + body


def _pieces(message) -> list[Any]:
    """The message as one message per element of its fields, in text_format's order."""
    out = []
    for field, value in message.ListFields():
        repeated = field.label == field.LABEL_REPEATED
        for item in (value if repeated else [value]):
            piece = type(message)()
            target = getattr(piece, field.name)
            if field.message_type is not None:
                (target.add() if repeated else target).CopyFrom(item)
            elif repeated:
                target.append(item)
            else:
                setattr(piece, field.name, item)
            out.append(piece)
    return out


def _is_block(statement: _Statement) -> bool:
    first = _STRING.sub('""', statement.lines[0]).split("#", 1)[0].rstrip()
    return len(statement.lines) > 1 and first.endswith("{") \
        and statement.lines[-1].strip() == "}"


def _laid_out(message, like: list[str], indent: str) -> list[str]:
    """`message` as text lines laid out like `like` (the same level of another version):
    unchanged statements as written there (comments included), a changed block with its own
    unchanged lines kept (recursively), new ones in text_format's form."""
    from google.protobuf import text_format

    statements, tail = _statements(like, type(message))
    indent = next((line[:len(line) - len(line.lstrip())] for s in statements
                   for line in s.lines[:1]), indent)
    pieces = _pieces(message)
    match: dict[int, int] = {}  # piece -> statement: the same one first, else the same key
    for same in (lambda s, p: s.parsed == p, lambda s, p: s.key == _key(p)):
        for j, piece in enumerate(pieces):
            free = (i for i, s in enumerate(statements)
                    if i not in match.values() and same(s, piece))
            if j not in match and (i := next(free, None)) is not None:
                match[j] = i
    placed, after = [], -1
    for j, piece in enumerate(pieces):  # in the file's order; a new piece after its predecessor
        if j in match:
            after = match[j]
            placed.append(((after, 0, j), _statement_lines(piece, statements[after], indent)))
        else:
            lines = text_format.MessageToString(piece, as_utf8=True, indent=len(indent))
            placed.append(((after, 1, j), lines.splitlines()))
    return [line for _, lines in sorted(placed, key=lambda x: x[0]) for line in lines] + tail


def _statement_lines(piece, statement: _Statement, indent: str) -> list[str]:
    """A piece where `statement` was: as written there if unchanged, else under its comments,
    its block's own unchanged lines kept."""
    from google.protobuf import text_format

    if statement.parsed == piece:
        return [*statement.above, *statement.lines]
    field, value = piece.ListFields()[0]
    if field.message_type is not None and _is_block(statement):
        inner = value[0] if field.label == field.LABEL_REPEATED else value
        lines = [statement.lines[0], *_laid_out(inner, list(statement.lines[1:-1]),
                                                indent + "  "), statement.lines[-1]]
    else:
        lines = text_format.MessageToString(piece, as_utf8=True, indent=len(indent)).splitlines()
    return [*statement.above, *lines]


def render(schema, like: str, line: str) -> str:
    """The schema as text, laid out like the schema file `like` so that the file's own diff
    shows only what changed: its header (the leading comments), Fairway's `line`, then
    `_laid_out` (text_format's layout if that would not read back as the same schema)."""
    from google.protobuf import text_format

    lines = like.splitlines()
    n = next((i for i, text in enumerate(lines) if not text.lstrip().startswith("#")),
             len(lines))
    head = [h for h in lines[:n] if not h.startswith(PREFIX)] + [line]
    text = "\n".join(head + _laid_out(schema, lines[n:], "")) + "\n"
    if text_format.Parse(text, type(schema)()) != schema:  # e.g. repeated values reordered
        text = "\n".join(head) + "\n" + text_format.MessageToString(schema, as_utf8=True)
    return text


# -- what changed -----------------------------------------------------------------------------

def _domain(schema, feature):
    import tensorflow_data_validation as tfdv

    try:
        return tfdv.get_domain(schema, feature.name)
    except ValueError:  # no domain
        return None


def _values(domain) -> set[str] | None:
    return set(domain.value) if domain is not None and hasattr(domain, "value") else None


def _bounds(domain) -> tuple[float | None, float | None]:
    if domain is None or not hasattr(domain, "min"):
        return None, None
    return (domain.min if domain.HasField("min") else None,
            domain.max if domain.HasField("max") else None)


def _quoted(values) -> str:
    return _and([f"'{v}'" for v in sorted(values)])


def _domain_changes(old_schema, old, new_schema, new) -> list[dict[str, Any]]:
    """Changes of a feature's values (string domain) and range (int or float domain)."""
    before, after = _domain(old_schema, old), _domain(new_schema, new)
    out = []
    a, b = _values(before), _values(after)
    if a is not None and after is None:
        out.append(dict(kind=DOMAIN_EXTENDED, detail="to any value (no domain)"))
    elif before is None and b is not None:
        out.append(dict(kind=DOMAIN_NARROWED, detail=f"to {len(b)} values (no domain before)"))
    elif a is not None and b is not None:
        if b - a:
            out.append(dict(kind=DOMAIN_EXTENDED, detail=f"by {_quoted(b - a)}",
                            added=tuple(sorted(b - a))))
        if a - b:
            out.append(dict(kind=DOMAIN_NARROWED, detail=f"without {_quoted(a - b)}"))
    (lo, hi), (new_lo, new_hi) = _bounds(before), _bounds(after)
    if (lo, hi) != (new_lo, new_hi):
        wider = ((new_lo is None or (lo is not None and new_lo <= lo))
                 and (new_hi is None or (hi is not None and new_hi >= hi)))
        moved = [f"{name} {'-' if x is None else f'{x:g}'} → {'-' if y is None else f'{y:g}'}"
                 for name, x, y in (("min", lo, new_lo), ("max", hi, new_hi)) if x != y]
        out.append(dict(kind=RANGE_WIDENED if wider else RANGE_NARROWED,
                        detail=", ".join(moved)))
    return out


def _presence_change(old, new) -> tuple[str, str] | None:
    a, b = old.presence, new.presence
    if (a.min_fraction, a.min_count) == (b.min_fraction, b.min_count):
        return None
    moved = [f"{name} {getattr(a, name):g} → {getattr(b, name):g}"
             for name in ("min_fraction", "min_count") if getattr(a, name) != getattr(b, name)]
    looser = b.min_fraction <= a.min_fraction and b.min_count <= a.min_count
    return (PRESENCE_RELAXED if looser else PRESENCE_TIGHTENED), ", ".join(moved)


def _rest(message, fields) -> Any:
    """A copy without the given fields (and without its domain, for a feature)."""
    copy = type(message)()
    copy.CopyFrom(message)
    for name in fields:
        copy.ClearField(name)
    if "domain_info" in copy.DESCRIPTOR.oneofs_by_name and copy.WhichOneof("domain_info"):
        copy.ClearField(copy.WhichOneof("domain_info"))
    return copy


def _differing(a, b) -> list[str]:
    names = {f.name for f, _ in a.ListFields()} | {f.name for f, _ in b.ListFields()}
    return sorted(n for n in names if getattr(a, n) != getattr(b, n))


_FEATURE_HANDLED = ("type", "presence", "lifecycle_stage")


def classify(old, new, label: str) -> list[Change]:
    """Every difference between two schemas, one Change per feature and kind, in the order of
    the new schema's features (removed ones last)."""
    from tensorflow_metadata.proto.v0 import schema_pb2

    stage = schema_pb2.LifecycleStage.Name
    olds = {f.name: f for f in old.feature}
    news = {f.name: f for f in new.feature}
    out: list[Change] = []

    def add(name, kind, detail="", added=()):
        out.append(Change(name, kind, detail, label=name == label, added=added))

    for name, f in news.items():
        if name not in olds:
            add(name, FEATURE_ADDED, f"(type {schema_pb2.FeatureType.Name(f.type)})")
            continue
        o = olds[name]
        if stage(f.lifecycle_stage) in _RETIRED and stage(o.lifecycle_stage) not in _RETIRED:
            add(name, FEATURE_REMOVED, f"(lifecycle_stage {stage(f.lifecycle_stage)}: no "
                                       "longer validated)")
            continue
        if o.type != f.type:
            add(name, TYPE_CHANGED, f"{schema_pb2.FeatureType.Name(o.type)} → "
                                    f"{schema_pb2.FeatureType.Name(f.type)}")
        for change in _domain_changes(old, o, new, f):
            add(name, **change)
        if presence := _presence_change(o, f):
            add(name, *presence)
        fields = _differing(_rest(o, _FEATURE_HANDLED), _rest(f, _FEATURE_HANDLED))
        if o.lifecycle_stage != f.lifecycle_stage:
            fields.append(f"lifecycle_stage {stage(o.lifecycle_stage)} → "
                          f"{stage(f.lifecycle_stage)}")
        if fields:
            add(name, OTHER, f"({', '.join(fields)})")
    for name in [n for n in olds if n not in news]:
        add(name, FEATURE_REMOVED)
    # Beyond the features (environments, dataset constraints); domains count with their feature.
    domains = ("feature", "string_domain", "int_domain", "float_domain")
    if fields := _differing(_rest(old, domains), _rest(new, domains)):
        out.append(Change("", OTHER, f"({', '.join(fields)})"))
    return out


# -- propose ----------------------------------------------------------------------------------

def _environment(schema, wanted: str | None) -> str | None:
    return wanted if wanted in schema.default_environment else None


def _take(proposed, updated, name: str) -> None:
    """Feature `name` (and the global domain it names) as `updated` has it."""
    fixed = next((f for f in updated.feature if f.name == name), None)
    if fixed is None:
        return
    current = next((f for f in proposed.feature if f.name == name), None)
    if current is None:
        proposed.feature.add().CopyFrom(fixed)
    else:
        current.CopyFrom(fixed)
    if fixed.WhichOneof("domain_info") == "domain":
        domain = next(d for d in updated.string_domain if d.name == fixed.domain)
        mine = next((d for d in proposed.string_domain if d.name == fixed.domain), None)
        (mine or proposed.string_domain.add()).CopyFrom(domain)


def propose(schema, evidence: Evidence) -> tuple[Any, dict[str, dict[str, str]], list[str]]:
    """The schema with TFDV's fix for each feature anomalous in the evidence (split by split,
    so the proposal accepts every split), TFDV's description of each anomaly by feature and
    split, and what is still anomalous after it (TFDV has no fix for it)."""
    import tensorflow_data_validation as tfdv

    proposed = type(schema)()
    proposed.CopyFrom(schema)
    found: dict[str, dict[str, str]] = {}
    env = _environment(schema, evidence.environment)
    for split, stats in evidence.statistics.items():
        anomalies = tfdv.validate_statistics(stats, proposed, environment=env)
        if not anomalies.anomaly_info:
            continue
        updated = tfdv.update_schema(proposed, stats)
        for name, info in anomalies.anomaly_info.items():
            found.setdefault(name, {})[split] = info.description
            _take(proposed, updated, name)
    left = []
    for split, stats in evidence.statistics.items():
        anomalies = tfdv.validate_statistics(stats, proposed, environment=env)
        left += [f"split '{split}', feature '{name}': {info.description} (no schema fix)"
                 for name, info in sorted(anomalies.anomaly_info.items())]
        if anomalies.HasField("dataset_anomaly_info"):
            left.append(f"split '{split}', dataset: "
                        f"{anomalies.dataset_anomaly_info.description} (no schema fix)")
    return proposed, found, left


def _feature_stats(stats, name: str):
    import tensorflow_data_validation as tfdv

    try:
        return tfdv.get_feature_stats(stats.datasets[0], tfdv.FeaturePath([name]))
    except (ValueError, IndexError):
        return None


def _percent(part: float, whole: float) -> str:
    return f"{100 * part / whole:.1f} %" if whole else "n/a"


def _per_split(evidence: Evidence, name: str, measure) -> str:
    """`measure(feature_stats, num_examples)` of each split, as "<value> <split> rows and
    ..." ("": no split has it)."""
    out = []
    for split, stats in evidence.statistics.items():
        fs = _feature_stats(stats, name)
        value = measure(fs, stats.datasets[0].num_examples) if fs is not None else None
        if value is not None:
            out.append(f"{value} {split} rows")
    return _and(out)


def _seen(value: str):
    def measure(fs, rows):
        buckets = {b.label: b.sample_count for b in fs.string_stats.rank_histogram.buckets}
        buckets = buckets or {v.value: v.frequency for v in fs.string_stats.top_values}
        return f"{_percent(buckets[value], rows)} of" if value in buckets else None
    return measure


def _present(fs, rows):
    kind = fs.WhichOneof("stats")
    common = getattr(fs, kind).common_stats if kind else None
    return f"{_percent(common.num_non_missing, rows)} of" if common else None


def _range(fs, _rows):
    return f"from {fs.num_stats.min:g} to {fs.num_stats.max:g} in" \
        if fs.HasField("num_stats") else None


def _and(items: list[str]) -> str:
    return " and ".join(filter(None, [", ".join(items[:-1]), items[-1] if items else ""]))


def _evidence(change: Change, evidence: Evidence, found: dict[str, dict[str, str]]) -> str:
    """Why the data asks for the change, measured in the evidence's statistics."""
    src = evidence.source
    seen = {v: _per_split(evidence, change.feature, _seen(v)) for v in change.added}
    if seen and all(seen.values()):
        return "; ".join((f"'{v}' " if len(seen) > 1 else "") + f"seen in {where}"
                         for v, where in seen.items()) + f" of {src}"
    measures = {PRESENCE_RELAXED: ("present in", _present),
                RANGE_WIDENED: ("values", _range)}
    if change.kind in measures:
        lead, measure = measures[change.kind]
        if where := _per_split(evidence, change.feature, measure):
            return f"{lead} {where} of {src}"
    texts = found.get(change.feature, {})
    if texts:
        return "; ".join(f"{split}: {t.strip()}" for split, t in texts.items()) + f" ({src})"
    return ""


def _diff(old: str, new: str, old_name: str, new_name: str) -> str:
    """A unified diff of two schema files, without Fairway's own line."""
    a, b = ([line for line in text.splitlines() if not line.startswith(PREFIX)]
            for text in (old, new))
    return "\n".join(difflib.unified_diff(a, b, old_name, new_name, lineterm=""))


NOT_FIXED = ("Drift is the data changing, not its contract: no schema change fixes it, and the "
             "DataGate refuses data that drifted from the last accepted data whatever the "
             "schema says. Anomalies TFDV has no fix for stay as well.")


def _markdown(p: Paths, evidence: Evidence, changes: list[Change], notes: list[str],
              diff: str, when: str) -> str:
    risky = [c for c in changes if c.needs_force]
    lines = [f"# Proposed change of `{p.curated.name}`", "",
             f"- curated schema: `{p.curated}`", f"- proposal: `{p.proposed}`",
             f"- from: {evidence.source}, proposed on {when}", "",
             "## Changes (each with its reason and evidence)", ""]
    lines += [f"- {c}" + (" — **needs `--force` and `--reason`**" if c.needs_force else "")
              for c in changes]
    if notes:
        lines += ["", "## Not fixed by a schema change", "", NOT_FIXED, ""]
        lines += [f"- {n}" for n in notes]
    how = ("`fairway schema accept --force --reason TEXT` (it changes the label, a type or the "
           "features)" if risky else "`fairway schema accept`")
    lines += ["", "## Diff", "",
              "```diff", diff, "```", "",
              f"Accept with {how}; reject by deleting the two proposal files.", ""]
    return "\n".join(lines)


def write_proposal(cfg: PipelineConfig, evidence: Evidence,
                   today: str | None = None) -> Proposal:
    """Propose the curated schema TFDV would accept the evidence with; write it and its
    review page unless nothing changes."""
    p = paths(cfg)
    text = _read(p.curated)
    curated = parse(text, p.curated)
    proposed, found, left = propose(curated, evidence)
    changes = [dataclasses.replace(c, evidence=_evidence(c, evidence, found))
               for c in classify(curated, proposed, cfg.dataset.label)]
    notes = list(evidence.notes) + left
    if not changes:
        return Proposal([], notes, p, written=False)
    when = today or datetime.date.today().isoformat()
    line = (f"{PREFIX} proposed on {when} from {evidence.source} (base {_digest(text)}); "
            f"review {p.markdown.name}, then `fairway schema accept`")
    proposal = render(proposed, text, line)
    _write(p.proposed, proposal)
    _write(p.markdown, _markdown(p, evidence, changes, notes,
                                 _diff(text, proposal, p.curated.name, p.proposed.name), when))
    return Proposal(changes, notes, p, written=True)


# -- evidence from a run ----------------------------------------------------------------------

_OUT = (mlmd.Event.OUTPUT, mlmd.Event.DECLARED_OUTPUT)
_IN = (mlmd.Event.INPUT, mlmd.Event.DECLARED_INPUT)


def _io(s, execution, event_types) -> dict[str, list]:
    """An execution's artifacts by key ("statistics", "previous_statistics", ...)."""
    ids: dict[str, list[int]] = {}
    for ev in s.get_events_by_execution_ids([execution.id]):
        if ev.type in event_types and ev.path.steps:
            ids.setdefault(ev.path.steps[0].key, []).append(ev.artifact_id)
    wanted = [i for v in ids.values() for i in v]
    found = {a.id: a for a in s.get_artifacts_by_id(wanted)} if wanted else {}
    return {k: [found[i] for i in v if i in found] for k, v in ids.items()}


def _drift_notes(s, gate) -> tuple[str, ...]:
    """The DataGate's drift findings of the run, measured again (they are not recorded)."""
    if gate is None:
        return ()
    inputs = _io(s, gate, _IN)
    prev, stats, schema = (inputs.get(k, [None])[0]
                           for k in ("previous_statistics", "statistics", "schema"))
    if prev is None or stats is None or schema is None:
        return ()
    source = prev.custom_properties.get(data_gate.SOURCE)
    if source is not None and source.string_value == stats.uri:
        return ()  # the same data as the reference (see data_gate.is_same_data)
    return tuple(data_gate.drift_problems(stats.uri, prev.uri, schema.uri))


def run_evidence(cfg: PipelineConfig, run_id: str | None = None) -> Evidence:
    """The statistics of a run's splits (the latest run, or `run_id`), with its drift."""
    s = metadata.store(cfg)
    if run_id in (None, "latest"):
        run = metadata.latest_run(s, cfg.pipeline_name)
        if run is None:
            raise SchemaEvolutionError(f"no run of pipeline '{cfg.pipeline_name}' in the "
                                       "metadata store; run `fairway run` first")
        run_id = run.name
    nodes = metadata.node_executions(s, run_id)
    if "StatisticsGen" not in nodes:
        raise SchemaEvolutionError(f"run {run_id} has no statistics (StatisticsGen did not "
                                   "run): nothing to propose from")
    stats = (_io(s, nodes["StatisticsGen"], _OUT).get("statistics") or [None])[0]
    if stats is None:
        raise SchemaEvolutionError(f"run {run_id}: StatisticsGen wrote no statistics")
    splits = json.loads(metadata.execution_property(stats, "split_names") or "[]")
    return Evidence(f"run {run_id}",
                    {split: artifacts.load_stats(stats.uri, split) for split in splits},
                    "TRAINING", _drift_notes(s, nodes.get("DataGate")))


# -- accept -----------------------------------------------------------------------------------

SCHEMA_TYPE = "Schema"  # TFX's artifact type: ImportSchemaGen's outputs and accepted versions
ACCEPT, CONTEXT = "FairwaySchemaAccept", "fairway_schema"  # an execution per accept, per pipeline


def _record(cfg: PipelineConfig, s, path: pathlib.Path, props: dict[str, Any]) -> int:
    """The accepted version as a Schema artifact, the output of an accept execution in the
    pipeline's `fairway_schema` context (the audit trail of the curated schema)."""
    from ml_metadata import errors as mlmd_errors

    try:  # TFX's own type, when a run registered it
        type_id = s.get_artifact_type(SCHEMA_TYPE).id
    except mlmd_errors.NotFoundError:
        type_id = s.put_artifact_type(mlmd.ArtifactType(name=SCHEMA_TYPE))
    exec_type = s.put_execution_type(mlmd.ExecutionType(name=ACCEPT))
    ctx_type = s.put_context_type(mlmd.ContextType(name=CONTEXT))
    a = mlmd.Artifact(type_id=type_id, uri=str(path), state=mlmd.Artifact.LIVE)
    e = mlmd.Execution(type_id=exec_type, last_known_state=mlmd.Execution.COMPLETE)
    for k, v in props.items():
        for message in (a, e):
            if isinstance(v, int):
                message.custom_properties[k].int_value = v
            else:
                message.custom_properties[k].string_value = v
    ctx = s.get_context_by_type_and_name(CONTEXT, cfg.pipeline_name) or \
        mlmd.Context(type_id=ctx_type, name=cfg.pipeline_name)
    _, [artifact_id], _ = s.put_execution(e, [(a, mlmd.Event(type=mlmd.Event.OUTPUT))], [ctx],
                                          reuse_context_if_already_exist=True)
    return artifact_id


def _versions(p: Paths) -> dict[int, pathlib.Path]:
    pattern = re.compile(re.escape(p.curated.stem) + r"\.v(\d+)" + re.escape(p.curated.suffix))
    return {int(m.group(1)): f for f in p.versions.glob("*")
            if (m := pattern.fullmatch(f.name))}


def _keep(path: pathlib.Path, text: str) -> None:
    """A new version file; never over another one (two accepts at once)."""
    try:
        with path.open("x", encoding="utf-8") as f:
            f.write(text)
    except FileExistsError:
        raise SchemaEvolutionError(f"{path}: already exists (another accept at the same "
                                   "time?); nothing was changed") from None


def accept(cfg: PipelineConfig, *, by: str, force: bool = False, reason: str = "",
           today: str | None = None) -> Accepted:
    """Make the proposal the curated schema (see the module's docstring)."""
    p = paths(cfg)
    if not p.proposed.is_file():
        raise SchemaEvolutionError(f"{p.proposed}: no proposal; make one with `fairway schema "
                                   "propose`")
    text, current = _read(p.proposed), _read(p.curated)
    proposed, curated = parse(text, p.proposed), parse(current, p.curated)
    made = _PROPOSED.search(text)
    if made and made["base"] != _digest(current):
        raise SchemaEvolutionError(
            f"{p.curated} changed since the proposal was made from it ({p.proposed}); make a "
            "new one with `fairway schema propose`")
    changes = classify(curated, proposed, cfg.dataset.label)
    if not changes:
        raise SchemaEvolutionError(f"{p.proposed}: the same as {p.curated}; nothing to accept")
    risky = [c for c in changes if c.needs_force]
    if risky and not force:
        raise NeedsForce("the proposal changes the label, a feature's type or the features; "
                         "accept it with --force and --reason TEXT if that is meant:\n  "
                         + "\n  ".join(str(c) for c in risky))
    reason = " ".join(reason.split())
    if force and not reason:
        raise SchemaEvolutionError("--force needs --reason TEXT: why the change is right "
                                   "(kept with the version in ML Metadata)")
    s = metadata.store(cfg)  # before any file changes: a store that cannot open changes nothing
    p.versions.mkdir(parents=True, exist_ok=True)
    existing = _versions(p)
    n = max(existing, default=0)
    saved_before = None
    if not existing or existing[n].read_text(encoding="utf-8") != current:
        n += 1  # the curated schema as it is now (v1, or a hand edit since the last accept)
        _keep(p.version(n), current)
        saved_before = n
    n += 1
    when = today or datetime.date.today().isoformat()
    line = (f"{PREFIX} version {n} ({p.versions.name}/{p.version(n).name}), accepted on "
            f"{when} by {by}" + (f": {reason}" if reason else ""))
    accepted = render(proposed, text, line)
    _keep(p.version(n), accepted)
    props = {"version": n, "reason": reason, "accepted_by": by,
             "changes": "\n".join(str(c) for c in changes),
             "source": made["source"] if made else "a proposal written by hand",
             "schema_file": str(p.curated), "forced": int(bool(risky))}
    try:
        artifact_id = _record(cfg, s, p.version(n), props)
    except Exception:
        p.version(n).unlink()  # not recorded, not kept
        raise
    _write(p.curated, accepted)
    p.proposed.unlink()
    p.markdown.unlink(missing_ok=True)
    return Accepted(n, p.version(n), saved_before, artifact_id, changes)
