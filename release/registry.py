"""The model registry, kept in ML Metadata next to the runs (no second database).

- A **version** is a model the Pusher pushed: its PushedModel artifact, in the pipeline_run
  context that trained, evaluated and blessed it (that is its lineage). A version folder placed
  under the Pusher's directory by hand is listed too, as unblessed.
- An **alias** (`production`, `canary`, `shadow`, `candidate`, `challenger`, or a name of your
  own) names one version at a time, as mlflow's aliases do. Every change is an execution of type
  FairwayAliasChange in the registered model's context, with the version as its input: when, by
  whom, why, from which version to which. The current aliases are the replay of those changes.
- After every change the registry rewrites the routing file (serving/routing.py) that
  `fairway serve --registry` follows.

Concurrent changes: each change of an alias carries the next sequence number of that alias; of
two changes with the same number the first written wins and the other is cancelled and reported
as a conflict, so two promotions racing on one store (SQLite or MySQL) never both take effect.
"""
from __future__ import annotations

import dataclasses
import getpass
import os
import pathlib
import re
import time
from typing import Any

from ml_metadata import errors as mlmd_errors
from ml_metadata.proto import metadata_store_pb2 as mlmd

from pipeline import metadata
from pipeline.config import PipelineConfig
from pipeline.errors import FairwayError
from serving import routing as routing_lib

CHANGE, CONTEXT, EXTERNAL = "FairwayAliasChange", "fairway_registered_model", "FairwayModelVersion"
PRODUCTION, CANARY, SHADOW, CHALLENGER = (routing_lib.PRODUCTION, routing_lib.CANARY,
                                          routing_lib.SHADOW, routing_lib.CHALLENGER)
CANDIDATE = "candidate"
BUILTIN = (PRODUCTION, CANARY, SHADOW, CANDIDATE, CHALLENGER)
LIVE = (PRODUCTION, CANARY, CHALLENGER)  # they answer users: an unblessed version needs --force
_ALIAS = re.compile(r"[a-z][a-z0-9_-]{0,39}")
_NONE = -1  # "no version" in an INT property
_STRING_PROPS = ("model", "alias", "action", "by", "reason")
_INT_PROPS = ("version", "previous", "seq")


class RegistryError(FairwayError):
    """An unknown version or alias, a refused promotion, or nothing to roll back to."""


class ConflictError(RegistryError):
    """Another change of the same alias was recorded first."""


@dataclasses.dataclass
class ModelVersion:
    number: int
    path: str
    blessed: bool  # pushed by a run whose Evaluator and ServingCheck blessed it
    run: str | None = None  # the pipeline_run context that pushed it
    pushed_at: float | None = None  # seconds since the epoch
    artifact_id: int | None = None
    aliases: list[str] = dataclasses.field(default_factory=list)

    @property
    def exists(self) -> bool:
        return (pathlib.Path(self.path) / "saved_model.pb").is_file()


@dataclasses.dataclass(frozen=True)
class Change:
    id: int
    alias: str
    version: int | None  # None: the alias was removed
    previous: int | None
    action: str  # promote | remove | rollback | approve | push
    by: str
    reason: str
    fraction: float | None
    seq: int
    time: float

    def to_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self),
                "utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.time))}


def routing_path(cfg: PipelineConfig) -> pathlib.Path:
    """Beside the version folders (serving ignores names that are not numbers)."""
    return cfg.model_base_dir / "routing.json"


def user(by: str | None) -> str:
    if by:
        return by
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (some containers)
        return os.environ.get("USER", "unknown")


def _types(s) -> tuple[int, int, int]:
    e = mlmd.ExecutionType(name=CHANGE)
    for p in _STRING_PROPS:
        e.properties[p] = mlmd.STRING
    for p in _INT_PROPS:
        e.properties[p] = mlmd.INT
    e.properties["fraction"] = mlmd.DOUBLE
    a = mlmd.ArtifactType(name=EXTERNAL)
    a.properties["version"] = mlmd.INT
    return (s.put_execution_type(e, can_add_fields=True),
            s.put_artifact_type(a, can_add_fields=True),
            s.put_context_type(mlmd.ContextType(name=CONTEXT)))


def _prop(x, name: str):
    return metadata.execution_property(x, name)


class Registry:
    def __init__(self, cfg: PipelineConfig, store=None):
        self.cfg = cfg
        self.store = store or metadata.store(cfg)
        self.change_type, self.external_type, ctx_type = _types(self.store)
        self.name = f"{cfg.pipeline_name}/{cfg.model_name}"
        ctx = self.store.get_context_by_type_and_name(CONTEXT, self.name)
        if ctx is None:
            try:
                self.store.put_contexts([mlmd.Context(type_id=ctx_type, name=self.name)])
            except mlmd_errors.AlreadyExistsError:  # another process made it meanwhile
                pass
            ctx = self.store.get_context_by_type_and_name(CONTEXT, self.name)
        self.context = ctx

    # -- versions --------------------------------------------------------------------------------
    def _pushed(self) -> dict[int, ModelVersion]:
        """Versions the Pusher pushed (PushedModel artifacts of this pipeline and model)."""
        s, out = self.store, {}
        try:
            run_type = s.get_context_type("pipeline_run")
        except mlmd_errors.NotFoundError:  # no run recorded in this store yet
            return out
        pipeline = s.get_context_by_type_and_name("pipeline", self.cfg.pipeline_name)
        if pipeline is None:
            return out
        ours: dict[int, bool] = {}  # run context id -> a run of this pipeline

        def of_this_pipeline(c) -> bool:
            if c.id not in ours:
                ours[c.id] = any(p.id == pipeline.id
                                 for p in s.get_parent_contexts_by_context(c.id))
            return ours[c.id]

        base = self.cfg.model_base_dir
        for a in s.get_artifacts_by_type("PushedModel"):
            number = _prop(a, "pushed_version")
            if not _prop(a, "pushed") or number is None or not str(number).isdigit():
                continue
            dest = pathlib.PurePath(str(_prop(a, "pushed_destination") or a.uri))
            if dest.parent.name != self.cfg.model_name:
                continue
            runs = [c.name for ev in s.get_events_by_artifact_ids([a.id])
                    for c in s.get_contexts_by_execution(ev.execution_id)
                    if c.type_id == run_type.id and of_this_pipeline(c)]
            if not runs:
                continue
            out[int(number)] = ModelVersion(
                int(number), str(base / str(number)), blessed=True, run=runs[0],
                pushed_at=a.create_time_since_epoch / 1000, artifact_id=a.id)
        return out

    def versions(self) -> list[ModelVersion]:
        """Every version, oldest first, with the aliases it holds now."""
        found = self._pushed()
        base = self.cfg.model_base_dir
        if base.is_dir():  # folders placed by hand: listed, unblessed
            for p in base.iterdir():
                if p.name.isdigit() and int(p.name) not in found \
                        and (p / "saved_model.pb").is_file():
                    found[int(p.name)] = ModelVersion(int(p.name), str(p), blessed=False,
                                                      pushed_at=p.stat().st_mtime)
        holders = self.aliases()
        for alias, number in holders.items():
            if number in found:
                found[number].aliases.append(alias)
        return [found[n] for n in sorted(found)]

    def version(self, number: int) -> ModelVersion:
        for v in self.versions():
            if v.number == number:
                if not v.exists:
                    raise RegistryError(f"version {number}: its folder {v.path} is gone (no "
                                        "saved_model.pb); it cannot be served")
                return v
        known = [v.number for v in self.versions()]
        raise RegistryError(f"unknown version {number}; the registered versions are "
                            f"{known or 'none (run `fairway run` first)'}")

    # -- the change log --------------------------------------------------------------------------
    def _recorded(self) -> list[Change]:
        out = []
        for e in self.store.get_executions_by_context(self.context.id):
            if e.type_id != self.change_type or e.last_known_state != mlmd.Execution.COMPLETE:
                continue
            version, previous = _prop(e, "version"), _prop(e, "previous")
            fraction = _prop(e, "fraction")
            out.append(Change(
                id=e.id, alias=_prop(e, "alias"), action=_prop(e, "action"),
                version=None if version == _NONE else version,
                previous=None if previous in (_NONE, None) else previous,
                by=_prop(e, "by") or "", reason=_prop(e, "reason") or "",
                fraction=None if fraction is None or fraction < 0 else fraction,
                seq=_prop(e, "seq"), time=e.create_time_since_epoch / 1000))
        return sorted(out, key=lambda c: c.id)

    def history(self, alias: str | None = None) -> list[Change]:
        """The changes in effect, oldest first: of two with the same alias and sequence number
        only the first written counts (the other lost a race and was cancelled)."""
        seen, out = set(), []
        for c in self._recorded():
            if (c.alias, c.seq) in seen:
                continue
            seen.add((c.alias, c.seq))
            if alias is None or c.alias == alias:
                out.append(c)
        return out

    def _stacks(self) -> dict[str, list[int | None]]:
        """Per alias, its holders in order; a rollback pops the current one, so each rollback
        goes one holder further back."""
        stacks: dict[str, list[int | None]] = {}
        for c in self.history():
            stack = stacks.setdefault(c.alias, [])
            if c.action == "rollback" and stack:
                stack.pop()
            else:
                stack.append(c.version)
        return stacks

    def aliases(self) -> dict[str, int]:
        return {a: s[-1] for a, s in self._stacks().items() if s and s[-1] is not None}

    def fractions(self) -> dict[str, float]:
        """The traffic share of `canary` and `challenger`, as their last change set it."""
        holders, out = self.aliases(), {}
        for c in self.history():
            if c.alias in routing_lib.SPLIT and c.alias in holders and c.fraction is not None:
                out[c.alias] = c.fraction
        return {a: f for a, f in out.items() if a in holders}

    def _rollback_target(self, alias: str) -> int | None:
        """The previous holder; for an alias other than production, none (the alias goes) when
        it had only one holder, e.g. a canary rolled back."""
        stack = self._stacks().get(alias, [])
        if len(stack) == 1 and alias != PRODUCTION:
            return None
        if len(stack) < 2:
            raise RegistryError(f"alias {alias!r} has no previous holder to roll back to "
                                f"(history: {stack or 'never set'})")
        return stack[-2]

    # -- changes ---------------------------------------------------------------------------------
    def _record(self, alias: str, version: int | None, action: str, by: str | None,
                reason: str, fraction: float | None = None) -> Change:
        if not _ALIAS.fullmatch(alias):
            raise RegistryError(f"alias {alias!r}: expected lower-case letters, digits, - or _, "
                                "starting with a letter (e.g. production, canary, shadow)")
        stack = self._stacks().get(alias, [])
        previous = stack[-1] if stack else None
        seq = max((c.seq for c in self.history(alias)), default=0) + 1
        e = mlmd.Execution(type_id=self.change_type, last_known_state=mlmd.Execution.COMPLETE)
        for k, v in (("model", self.name), ("alias", alias), ("action", action),
                     ("by", user(by)), ("reason", reason)):
            e.properties[k].string_value = v
        for k, v in (("version", version), ("previous", previous), ("seq", seq)):
            e.properties[k].int_value = _NONE if v is None else v
        e.properties["fraction"].double_value = -1.0 if fraction is None else fraction
        inputs = [] if version is None else [self._artifact(version)]
        ev = [(a, mlmd.Event(type=mlmd.Event.INPUT)) for a in inputs]
        exec_id, _, _ = self.store.put_execution(e, ev, [self.context])
        winner = min(c.id for c in self._recorded() if c.alias == alias and c.seq == seq)
        if winner != exec_id:
            e.id, e.last_known_state = exec_id, mlmd.Execution.CANCELED
            self.store.put_executions([e])
            other = next(c for c in self._recorded() if c.id == winner)
            raise ConflictError(
                f"alias {alias!r} was changed at the same time by {other.by} "
                f"({other.action} to {_v(other.version)}, reason {other.reason!r}); this change "
                "was not applied. Check `fairway models` and try again.")
        change = next(c for c in self._recorded() if c.id == exec_id)
        self.write_routing()
        return change

    def _artifact(self, number: int) -> mlmd.Artifact:
        """The version's artifact, for the change's lineage (a hand-placed folder gets one)."""
        v = self.version(number)
        if v.artifact_id is not None:
            return self.store.get_artifacts_by_id([v.artifact_id])[0]
        found = [a for a in self.store.get_artifacts_by_type(EXTERNAL) if a.uri == v.path]
        if found:
            return found[0]
        a = mlmd.Artifact(type_id=self.external_type, uri=v.path, state=mlmd.Artifact.LIVE)
        a.properties["version"].int_value = number
        [aid] = self.store.put_artifacts([a])
        self.store.put_attributions_and_associations(
            [mlmd.Attribution(artifact_id=aid, context_id=self.context.id)], [])
        return self.store.get_artifacts_by_id([aid])[0]

    def promote(self, version: int, alias: str, *, by: str | None = None, reason: str = "",
                force: bool = False, fraction: float | None = None,
                action: str = "promote") -> Change:
        v = self.version(version)
        if alias in LIVE and not v.blessed:
            if not (force and reason.strip()):
                raise RegistryError(
                    f"version {version} is not blessed (no run pushed it: no evaluation or "
                    f"serving check on record); putting it on {alias!r} needs --force and a "
                    "--reason")
        if fraction is not None:
            if alias not in routing_lib.SPLIT:
                raise RegistryError(f"a traffic share applies to {' and '.join(routing_lib.SPLIT)}"
                                    f", not to {alias!r}")
            if not 0.0 < fraction <= 1.0:
                raise RegistryError(f"traffic share {fraction}: expected more than 0, up to 1")
        elif alias in routing_lib.SPLIT:
            fraction = 0.5 if alias == CHALLENGER else 0.1
        return self._record(alias, version, action, by, reason, fraction)

    def remove(self, alias: str, *, by: str | None = None, reason: str = "") -> Change:
        if alias not in self.aliases():
            raise RegistryError(f"alias {alias!r} is not set; set aliases: "
                                f"{self.aliases() or 'none'}")
        return self._record(alias, None, "remove", by, reason)

    def rollback(self, alias: str = PRODUCTION, *, by: str | None = None,
                 reason: str = "") -> Change:
        target = self._rollback_target(alias)
        if target is not None:
            self.version(target)  # its folder must still be there
        return self._record(alias, target, "rollback", by, reason or "rollback")

    def approve(self, version: int, *, by: str | None = None, reason: str = "") -> Change:
        """The human in the loop: the `candidate` goes to production."""
        if not reason.strip():
            raise RegistryError("an approval needs a --reason (it goes into the audit trail)")
        held = self.aliases().get(CANDIDATE)
        if held != version:
            raise RegistryError(f"version {version} is not waiting for approval (candidate: "
                                f"{_v(held)})")
        change = self.promote(version, PRODUCTION, by=by, reason=reason, action="approve")
        self._record(CANDIDATE, None, "remove", by, f"approved as production: {reason}")
        return change

    def after_push(self, version: int, policy: str, run: str | None = None) -> Change:
        """The push policy: auto (production), canary or manual (candidate, waiting for a
        rollout or an approval)."""
        why = f"push policy {policy}: pushed by run {run}" if run else f"push policy {policy}"
        alias = PRODUCTION if policy == "auto" else CANDIDATE
        return self.promote(version, alias, by="fairway run", reason=why, action="push")

    # -- routing ---------------------------------------------------------------------------------
    def routing(self) -> routing_lib.Routing:
        """What serving loads and how it routes: every alias holder, plus production's rollback
        target (kept warm so a rollback is a switch, not a load). No alias yet: the newest."""
        holders = self.aliases()
        present = {v.number for v in self.versions() if v.exists}
        keep = {n for n in holders.values() if n in present}
        try:
            target = self._rollback_target(PRODUCTION)
            if target in present:
                keep.add(target)
        except RegistryError:
            pass
        if not keep and present:
            keep = {max(present)}
        labels = {a: n for a, n in holders.items() if n in present}
        fractions = {a: f for a, f in self.fractions().items() if a in labels}
        return routing_lib.Routing(self.cfg.model_name, tuple(sorted(keep)), labels, fractions,
                                   serial=len(self.history()))

    def write_routing(self) -> pathlib.Path:
        """The routing file, and `fairway deploy`'s models.config when there is one (real TF
        Serving re-reads it every --model_config_file_poll_wait_seconds)."""
        path, r = routing_path(self.cfg), self.routing()
        routing_lib.write(str(path), r)
        deployed = self.cfg.command_dir("deploy") / "models.config"
        if deployed.is_file():
            from serving import manager

            [source] = manager.sources_from_config(str(deployed))
            tmp = deployed.with_name(".models.config.tmp")
            tmp.write_text(routing_lib.models_config(r, source.base_path))
            os.replace(tmp, deployed)
        return path


def _v(version: int | None) -> str:
    return "none" if version is None else f"version {version}"
