"""`fairway gc`: delete the files of the artifacts that nothing needs any more and mark them
DELETED in ML Metadata, so that the pipeline root stays small and the store stays truthful.

The candidates are the artifacts this pipeline's runs produced. An artifact is kept, and counted
under the first of these reasons that holds:

1. **run in progress**: a run with an execution NEW or RUNNING, or one that changed in the last
   SETTLE_SECONDS (TFX registers a node's execution only when the node starts, so between two
   nodes every execution of a running run looks finished): everything it used or produced.
2. **kept run**: the same for the `keep_runs` newest finished runs (a run in progress still
   takes from their cache) and for runs younger than `older_than`.
   Cached executions reuse older runs' artifacts; what a kept run used (events of any kind:
   input, output, resolved) is kept wherever it was produced.
3. **alias**: the versions the registry's aliases hold, and the others `fairway serve
   --registry` keeps loaded (production's rollback target): what their pushing run produced,
   which `fairway card`, `monitor` and `report` read, except TRAINING_ONLY outputs.
4. **latest blessed model**, with its blessing: the next run's Evaluator baseline.
5. **DataGate's accepted statistics** (its newest `accepted` output): the next run's drift
   reference.
6. **serving folder**: each version folder the Pusher wrote that is still there keeps its
   PushedModel, what the Pusher read (the blessing, the ServingCheck's copy it pushed), the
   trained model they came from and that model's transform graph.
7. **never deleted**: a path outside the pipeline root, a symbolic link, a folder that holds a
   kept artifact, an external artifact (TFX's `is_external`), state REFERENCE.

Deleting first marks the artifacts MARKED_FOR_DELETION (TFX's cache and resolvers take LIVE
artifacts only, so no run that starts from then on picks them up), drops any that a run started
since the plan used, removes the files, then marks them DELETED. An interrupted gc leaves
MARKED_FOR_DELETION artifacts, which the next one finishes.
"""
from __future__ import annotations

import collections
import dataclasses
import os
import pathlib
import shutil
import time
from typing import Any, Iterable

from ml_metadata.metadata_store import metadata_store
from ml_metadata.proto import metadata_store_pb2 as mlmd

from pipeline import metadata, store_backup
from pipeline.config import PipelineConfig
from pipeline.errors import FairwayError
from release import registry as registry_lib

DEFAULT_KEEP_RUNS = 5
SETTLE_SECONDS = 600.0
# Outputs only training reads (TFX's keys, tfx.types.standard_component_specs; importing it
# loads TensorFlow): Transform's materialized examples, analyzer cache and pre/post-transform
# statistics, schemas and anomalies; the Trainers' logs. The model embeds what it needs.
TRAINING_ONLY = frozenset({
    "transformed_examples", "updated_analyzer_cache", "pre_transform_schema",
    "pre_transform_stats", "post_transform_schema", "post_transform_stats",
    "post_transform_anomalies", "model_run"})
# The Evaluator's custom properties on a ModelBlessing (tfx.components.evaluator.constants).
_BLESSED, _CURRENT_MODEL_ID = "blessed", "current_model_id"
DATA_GATE, ACCEPTED = "DataGate", "accepted"

IN_PROGRESS, KEPT_RUN = "run in progress or just active", "used by a kept run"
LATEST_BLESSED, DRIFT_REFERENCE = "latest blessed model", "DataGate's accepted statistics"
LOADED, SERVING_FOLDER = "loaded by serve --registry", "in the serving folder"
OUTSIDE, LINK, HOLDS_KEPT, EXTERNAL = ("outside the pipeline root", "a symbolic link",
                                       "holds a kept artifact", "external")

_PRODUCED = (mlmd.Event.OUTPUT, mlmd.Event.DECLARED_OUTPUT, mlmd.Event.PENDING_OUTPUT)
_READ = (mlmd.Event.INPUT, mlmd.Event.DECLARED_INPUT)
_RUNNING = (mlmd.Execution.NEW, mlmd.Execution.RUNNING)
_GONE = (mlmd.Artifact.DELETED, mlmd.Artifact.REFERENCE)


class GcError(FairwayError):
    """Bad gc settings, or files that could not be deleted."""


class _Lineage:
    """This pipeline's runs (newest first) with their executions, events and artifacts, read
    from the store once."""

    def __init__(self, s, pipeline_name: str):
        self.runs: list[mlmd.Context] = []
        self.executions: dict[int, list[mlmd.Execution]] = {}  # run id -> its executions
        self.used: dict[int, set[int]] = collections.defaultdict(set)  # run id -> artifacts
        self.outputs: dict[int, list[tuple[str, int]]] = collections.defaultdict(list)
        self.inputs: dict[int, list[tuple[str, int]]] = collections.defaultdict(list)
        self.producers: dict[int, set[int]] = collections.defaultdict(set)
        self.artifacts: dict[int, mlmd.Artifact] = {}
        self.types = {t.id: t.name for t in s.get_artifact_types()}
        self.runs = metadata.runs(s, pipeline_name)[::-1]
        if not self.runs:
            return
        run_of = {}
        for run in self.runs:
            self.executions[run.id] = s.get_executions_by_context(run.id)
            run_of.update(dict.fromkeys((e.id for e in self.executions[run.id]), run.id))
        for ev in s.get_events_by_execution_ids(list(run_of)) if run_of else []:
            key = ev.path.steps[0].key if ev.path.steps else ""
            self.used[run_of[ev.execution_id]].add(ev.artifact_id)
            if ev.type in _PRODUCED:
                self.outputs[ev.execution_id].append((key, ev.artifact_id))
                self.producers[ev.artifact_id].add(ev.execution_id)
            elif ev.type in _READ:
                self.inputs[ev.execution_id].append((key, ev.artifact_id))
        ids = set(self.producers).union(*self.used.values())
        self.artifacts = {a.id: a for a in s.get_artifacts_by_id(sorted(ids))} if ids else {}

    def run(self, name: str | None) -> mlmd.Context | None:
        return next((r for r in self.runs if r.name == name), None)

    def read(self, executions: Iterable[int], keys: Iterable[str] | None = None) -> set[int]:
        keys = None if keys is None else set(keys)
        return {a for e in executions for k, a in self.inputs.get(e, ())
                if keys is None or k in keys}

    def producers_of(self, artifacts: Iterable[int]) -> set[int]:
        return set().union(*(self.producers.get(a, set()) for a in artifacts))

    def live(self, artifact_id: int) -> bool:
        a = self.artifacts.get(artifact_id)
        return a is not None and a.state == mlmd.Artifact.LIVE

    def of_type(self, name: str) -> list[mlmd.Artifact]:
        return [a for a in self.artifacts.values()
                if self.types.get(a.type_id) == name and a.state == mlmd.Artifact.LIVE]


@dataclasses.dataclass(frozen=True)
class Candidate:
    id: int
    type: str
    uri: str
    bytes: int


@dataclasses.dataclass
class Plan:
    pipeline: str
    root: pathlib.Path
    keep_runs: int
    older_than: float | None  # seconds
    settle: float  # seconds: a run active this recently counts as in progress
    runs: list[str]  # every run of the pipeline, newest first
    kept_runs: list[str]
    in_progress: list[str]
    delete: list[Candidate]
    kept: dict[str, int]  # reason -> artifacts (each under its first reason)
    why: dict[int, str]  # artifact id -> the first reason it is kept
    already_deleted: int
    disk_bytes: int
    store_bytes: int | None
    last_execution: int = 0  # the newest execution id when planned


@dataclasses.dataclass
class Result:
    deleted: list[Candidate]
    skipped: list[tuple[Candidate, str]]  # not deleted, and why
    disk_bytes: int
    store_bytes: int | None


def _version_lineage(g: _Lineage, v: registry_lib.ModelVersion | None) -> set[int]:
    """What the readers of a version open: its pushing run's outputs but TRAINING_ONLY."""
    if v is None or v.artifact_id is None:
        return set()
    run = g.run(v.run)
    kept = {v.artifact_id}
    for e in g.executions[run.id] if run else []:
        kept |= {a for k, a in g.outputs.get(e.id, ()) if k not in TRAINING_ONLY}
    return kept


def _pushed_source(g: _Lineage, pushed: int) -> set[int]:
    """A pushed version's source: what the Pusher read (the blessings; the ServingCheck's
    blessing holds the copy it pushed), the model those were made from, its transform graph."""
    read = g.read(g.producers_of([pushed]))
    models = g.read(g.producers_of(read), ["model"])
    graphs = g.read(g.producers_of(models), ["transform_graph"])
    return {pushed} | read | models | graphs


def _latest_blessed(g: _Lineage) -> set[int]:
    """The newest blessed model and its newest blessing (as the Evaluator's baseline
    resolver, pipeline.components.LatestBlessedOtherThanCandidate, picks them)."""
    blessing_of = {}
    for b in sorted(g.of_type("ModelBlessing"), key=lambda a: a.id):
        if metadata.execution_property(b, _BLESSED) == 1:
            blessing_of[metadata.execution_property(b, _CURRENT_MODEL_ID)] = b.id
    models = [m for m in blessing_of if m is not None and g.live(m)]
    return {max(models), blessing_of[max(models)]} if models else set()


def _drift_reference(g: _Lineage, s, pipeline_name: str) -> set[int]:
    """DataGate's newest LIVE `accepted` output (what previous_statistics_resolver picks)."""
    node = s.get_context_by_type_and_name("node", f"{pipeline_name}.{DATA_GATE}")
    if node is None:
        return set()
    executions = [e.id for e in s.get_executions_by_context(node.id)]
    accepted = [a for e in executions for k, a in g.outputs.get(e, ())
                if k == ACCEPTED and g.live(a)]
    return {max(accepted)} if accepted else set()


def _size(path: str) -> int:
    """Bytes of the files under `path` (links not followed); 0 when it is gone."""
    try:
        if not os.path.isdir(path) or os.path.islink(path):
            return os.lstat(path).st_size
    except OSError:
        return 0
    total = 0
    for folder, _, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(folder, name)).st_size
            except OSError:
                pass  # removed meanwhile
    return total


def _never(uri: str, root: str) -> str | None:
    """Why a path may never be deleted (None: it may): outside the pipeline root, or a link."""
    if "://" in uri or not os.path.isabs(uri):
        return OUTSIDE
    if os.path.islink(uri):
        return LINK
    real = os.path.realpath(uri)
    if real == root or os.path.commonpath([real, root]) != root:
        return OUTSIDE
    return None


def _store_bytes(cfg: PipelineConfig) -> int | None:
    try:
        return store_backup.size(cfg)
    except FairwayError:
        return None  # reported as unknown; the store itself was readable


def plan(cfg: PipelineConfig, keep_runs: int = DEFAULT_KEEP_RUNS,
         older_than: float | None = None, *, now: float | None = None,
         settle: float | None = None, store=None) -> Plan:
    """What `fairway gc` would delete and why everything else stays (reads only). `now` and
    `settle` (default SETTLE_SECONDS) are for tests."""
    if keep_runs < 1:
        raise GcError(f"keep_runs {keep_runs}: at least 1 (the newest run is what `fairway "
                      "status`, `report` and the next run's cache read)")
    s = store or metadata.store(cfg)
    now = time.time() if now is None else now
    settle = SETTLE_SECONDS if settle is None else settle
    last_execution = _last_execution(s)  # before reading: a run starting meanwhile is "late"
    g = _Lineage(s, cfg.pipeline_name)
    keep: dict[int, str] = {}

    def hold(ids: Iterable[int], reason: str) -> None:
        for i in ids:
            keep.setdefault(i, reason)

    in_progress, kept_runs, finished = [], [], 0
    for run in g.runs:
        executions = g.executions[run.id]
        changed = max([run.create_time_since_epoch]
                      + [e.last_update_time_since_epoch for e in executions]) / 1000
        if any(e.last_known_state in _RUNNING for e in executions) or (
                settle > 0 and now - changed < settle):
            in_progress.append(run)
            continue
        # The N newest finished runs: a run in progress will still take from their cache.
        finished += 1
        if finished <= keep_runs or (older_than is not None
                                     and now - run.create_time_since_epoch / 1000 < older_than):
            kept_runs.append(run)
    for runs, reason in ((in_progress, IN_PROGRESS), (kept_runs, KEPT_RUN)):
        for run in runs:
            hold(g.used[run.id], reason)

    reg = registry_lib.Registry(cfg, store=s)
    versions = {v.number: v for v in reg.versions()}
    holders = reg.aliases()
    for alias, number in sorted(holders.items()):
        hold(_version_lineage(g, versions.get(number)), f"alias {alias}")
    for number in sorted(set(reg.routing().versions) - set(holders.values())):
        hold(_version_lineage(g, versions.get(number)), LOADED)
    hold(_latest_blessed(g), LATEST_BLESSED)
    hold(_drift_reference(g, s, cfg.pipeline_name), DRIFT_REFERENCE)
    for v in versions.values():
        if v.exists and v.artifact_id is not None:
            hold(_pushed_source(g, v.artifact_id), SERVING_FOLDER)

    root = os.path.realpath(cfg.pipeline_root)
    produced = [g.artifacts[a] for a in sorted(g.producers) if a in g.artifacts]
    # A kept artifact's path and its parents up to the root are never deleted.
    holding = set()
    for a in g.artifacts.values():
        path = os.path.realpath(a.uri) if a.id in keep and a.uri else ""
        while path.startswith(root + os.sep):
            holding.add(path)
            path = os.path.dirname(path)
    delete, already = [], 0
    for a in produced:
        if a.state in _GONE:
            already += a.state == mlmd.Artifact.DELETED
            continue
        if metadata.execution_property(a, "is_external") == 1:
            keep.setdefault(a.id, EXTERNAL)
        if a.id in keep:
            continue
        why = _never(a.uri, root) or (HOLDS_KEPT if os.path.realpath(a.uri) in holding
                                      else None)
        if why:
            keep[a.id] = why
            continue
        delete.append(Candidate(a.id, g.types.get(a.type_id, "?"), a.uri, _size(a.uri)))
    why = {a.id: keep[a.id] for a in produced if a.id in keep and a.state not in _GONE}
    kept = collections.Counter(why.values())
    return Plan(cfg.pipeline_name, pathlib.Path(root), keep_runs, older_than, settle,
                [r.name for r in g.runs], [r.name for r in kept_runs],
                [r.name for r in in_progress], delete, dict(kept.most_common()), why, already,
                _size(root), _store_bytes(cfg), last_execution)


def _last_execution(s) -> int:
    newest = s.get_executions(list_options=metadata_store.ListOptions(
        limit=1, order_by=metadata_store.OrderByField.ID, is_asc=False))
    return newest[0].id if newest else 0


def _set_state(s, artifacts: list[mlmd.Artifact], state: int) -> None:
    if artifacts:
        updated = []
        for a in artifacts:
            copy = mlmd.Artifact()
            copy.CopyFrom(a)
            copy.state = state
            updated.append(copy)
        s.put_artifacts(updated)


def collect(cfg: PipelineConfig, p: Plan, store=None) -> Result:
    """Delete what `p` planned: the files, then the artifacts marked DELETED."""
    s = store or metadata.store(cfg)
    root = os.path.realpath(cfg.pipeline_root)
    if pathlib.Path(root) != p.root:
        raise GcError(f"the plan is for {p.root}, not for this config's {root}")
    artifacts = {a.id: a for a in s.get_artifacts_by_id([c.id for c in p.delete])}
    todo = [c for c in p.delete if c.id in artifacts and artifacts[c.id].state not in _GONE]
    _set_state(s, [artifacts[c.id] for c in todo], mlmd.Artifact.MARKED_FOR_DELETION)
    # A run that started after the plan may have taken one from the cache before the mark
    # (execution ids only grow).
    late = {ev.artifact_id for ev in s.get_events_by_artifact_ids([c.id for c in todo])
            if ev.execution_id > p.last_execution} if todo else set()
    skipped = [(c, "used by a run that started after the plan") for c in todo if c.id in late]
    _set_state(s, [artifacts[c.id] for c in todo if c.id in late], mlmd.Artifact.LIVE)
    deleted = []
    for c in (c for c in todo if c.id not in late):
        why = _never(c.uri, root)  # checked again: the file system may have changed
        if why:
            skipped.append((c, why))
            continue
        try:
            if os.path.isdir(c.uri):
                shutil.rmtree(c.uri)
            elif os.path.lexists(c.uri):
                os.remove(c.uri)
        except OSError as e:
            skipped.append((c, f"{e.filename}: {e.strerror}"))
            continue
        deleted.append(c)
    _set_state(s, [artifacts[c.id] for c in deleted], mlmd.Artifact.DELETED)
    return Result(deleted, skipped, _size(root), _store_bytes(cfg))


# --- the report -------------------------------------------------------------------------------

def human(n: int | None) -> str:
    if n is None:
        return "unknown"
    size = float(n)
    for unit in ("B", "kB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size:,.0f} {unit}" if unit == "B" else f"{size:,.1f} {unit}"
        size /= 1000
    return f"{n} B"


def _duration(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:g}{unit}"
    return f"{seconds:g}s"


def by_type(candidates: list[Candidate]) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = {}
    for c in sorted(candidates, key=lambda c: c.type):
        row = out.setdefault(c.type, {"count": 0, "bytes": 0})
        row["count"] += 1
        row["bytes"] += c.bytes
    return out


def to_dict(p: Plan, result: Result | None = None) -> dict[str, Any]:
    planned = sum(c.bytes for c in p.delete)
    return {
        "pipeline": p.pipeline, "pipeline_root": str(p.root), "dry_run": result is None,
        "keep_runs": p.keep_runs, "older_than_seconds": p.older_than,
        "runs": {"total": len(p.runs), "kept": p.kept_runs, "in_progress": p.in_progress},
        "delete": [dataclasses.asdict(c) for c in p.delete],
        "delete_by_type": by_type(p.delete),
        "deleted": None if result is None else [c.id for c in result.deleted],
        "skipped": None if result is None else [
            {**dataclasses.asdict(c), "why": why} for c, why in result.skipped],
        "kept": p.kept, "already_deleted": p.already_deleted,
        "disk_bytes": {"before": p.disk_bytes,
                       "after": p.disk_bytes - planned if result is None else result.disk_bytes},
        "store_bytes": {"before": p.store_bytes,
                        "after": p.store_bytes if result is None else result.store_bytes},
    }


def text(p: Plan, result: Result | None = None) -> str:
    d = to_dict(p, result)
    runs = d["runs"]
    window = f" or younger than {_duration(p.older_than)}" if p.older_than else ""
    lines = [f"fairway gc of {p.pipeline}: "
             + ("a dry run, nothing deleted (--yes deletes)" if result is None else "deleted"),
             f"pipeline root {p.root}",
             f"runs: {runs['total']}; kept {len(runs['kept'])} (the {p.keep_runs} newest"
             f"{window}); in progress or active in the last {_duration(p.settle)} "
             f"{len(runs['in_progress'])}", ""]
    rows = by_type(result.deleted) if result else d["delete_by_type"]
    lines.append(f"{'would delete' if result is None else 'deleted':34} {'count':>7} "
                 f"{'size':>12}")
    for kind, row in rows.items():
        lines.append(f"  {kind:32} {row['count']:>7} {human(row['bytes']):>12}")
    lines.append(f"  {'total':32} {sum(r['count'] for r in rows.values()):>7} "
                 f"{human(sum(r['bytes'] for r in rows.values())):>12}")
    for c, why in (result.skipped if result else []):
        lines.append(f"  not deleted: {c.type} {c.uri}: {why}")
    lines += ["", f"{'kept (each under its first reason)':34} {'count':>7}"]
    for reason, count in p.kept.items():
        lines.append(f"  {reason:32} {count:>7}")
    lines.append(f"  {'total':32} {sum(p.kept.values()):>7}")
    if p.already_deleted:
        lines.append(f"  ({p.already_deleted} deleted by an earlier gc)")
    after = "after" if result else "after (estimate)"
    lines += ["", f"{'':34} {'before':>12} {after:>18}"]
    for label, key in (("pipeline root on disk", "disk_bytes"), ("metadata store", "store_bytes")):
        lines.append(f"{label:34} {human(d[key]['before']):>12} {human(d[key]['after']):>18}")
    return "\n".join(lines)
