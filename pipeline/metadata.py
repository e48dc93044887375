"""ML Metadata: the connection config, and a summary of the latest run read back from it."""
from __future__ import annotations

import json
import logging
from typing import Any

from google.protobuf import text_encoding
from ml_metadata import errors as mlmd_errors
from ml_metadata.metadata_store import metadata_store
from ml_metadata.proto import metadata_store_pb2

from pipeline import code_hash
from pipeline.config import PipelineConfig
from pipeline.errors import FairwayError


class MetadataUnavailable(FairwayError):
    """The MySQL/MariaDB metadata store cannot be opened (server down, credentials, rights)."""


_STATES = {v: k for k, v in metadata_store_pb2.Execution.State.items()}


class _RedactPassword(logging.Filter):
    """Masks a password in log records: TFX's LocalDagRunner logs its connection config at
    INFO ("Using connection config: mysql { ... password: ... }"), which the run log keeps."""

    def __init__(self):
        super().__init__()
        self.secrets: set[str] = set()

    def add(self, password: str) -> None:
        # As given, and as protobuf text (str(proto): bytes escaped) or repr would write it.
        self.secrets |= {password, text_encoding.CEscape(password, as_utf8=True),
                         text_encoding.CEscape(password.encode(), as_utf8=False),
                         repr(password)[1:-1]}

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if any(secret in message for secret in self.secrets):
            for secret in sorted(self.secrets, key=len, reverse=True):
                message = message.replace(secret, "<redacted>")
            record.msg, record.args = message, None
        return True


_REDACT = _RedactPassword()


def connection_config(cfg: PipelineConfig) -> metadata_store_pb2.ConnectionConfig:
    """Built here rather than with tfx's helpers: `fairway status` must not import all of TFX.
    On MySQL/MariaDB the password is read now (environment or file, never the config file) and
    masked in what absl (TFX) logs from then on."""
    if cfg.mysql:
        m = cfg.mysql
        password = m.password()
        if password:
            _REDACT.add(password)
            absl_logger = logging.getLogger("absl")
            if _REDACT not in absl_logger.filters:
                absl_logger.addFilter(_REDACT)
        return metadata_store_pb2.ConnectionConfig(mysql=metadata_store_pb2.MySQLDatabaseConfig(
            host=m.host, port=m.port, database=m.database, user=m.user, password=password))
    return metadata_store_pb2.ConnectionConfig(sqlite=metadata_store_pb2.SqliteMetadataSourceConfig(
        filename_uri=str(cfg.metadata_path),
        connection_mode=metadata_store_pb2.SqliteMetadataSourceConfig.READWRITE_OPENCREATE))


def store(cfg: PipelineConfig) -> metadata_store.MetadataStore:
    if not cfg.mysql and not cfg.metadata_path.exists():
        raise FileNotFoundError(f"{cfg.metadata_path}: no metadata store; run `fairway run` first")
    try:
        return metadata_store.MetadataStore(connection_config(cfg))
    except (mlmd_errors.StatusError, RuntimeError) as e:
        if not cfg.mysql:
            raise
        # Unreachable server, wrong password, no privilege: the user's to fix, no traceback.
        # (MLMD 1.16 raises a bare RuntimeError "mysql_real_connect failed" for these.)
        raise MetadataUnavailable(f"ML Metadata at {cfg.mysql.describe()} (from "
                                  f"{cfg.mysql.src}): {e}") from None


def _prop(artifact_or_exec, name: str) -> Any:
    for props in (artifact_or_exec.custom_properties, artifact_or_exec.properties):
        if name in props:
            v = props[name]
            return getattr(v, v.WhichOneof("value"))
    return None


def runs(s: metadata_store.MetadataStore, pipeline_name: str) -> list:
    """The pipeline_run contexts of this pipeline, oldest first."""
    pipeline_ctx = s.get_context_by_type_and_name("pipeline", pipeline_name)
    run_type = {t.name: t.id for t in s.get_context_types()}.get("pipeline_run")
    if pipeline_ctx is None or run_type is None:
        return []
    return sorted((c for c in s.get_children_contexts_by_context(pipeline_ctx.id)
                   if c.type_id == run_type), key=lambda c: (c.create_time_since_epoch, c.id))


def latest_run(s: metadata_store.MetadataStore, pipeline_name: str):
    """The newest pipeline_run context of this pipeline, or None."""
    return (runs(s, pipeline_name) or [None])[-1]


def pushed_versions(cfg: PipelineConfig) -> dict[str, str]:
    """Every version a Pusher pushed -> the name of the pipeline_run context that pushed it."""
    s = store(cfg)
    run_type = s.get_context_type("pipeline_run")
    out = {}
    for a in s.get_artifacts_by_type("PushedModel"):
        if not _prop(a, "pushed") or _prop(a, "pushed_version") is None:
            continue
        for ev in s.get_events_by_artifact_ids([a.id]):
            for c in s.get_contexts_by_execution(ev.execution_id):
                if run_type is not None and c.type_id == run_type.id:
                    out.setdefault(str(_prop(a, "pushed_version")), c.name)
    return out


def node_executions(s: metadata_store.MetadataStore, run_name: str) -> dict[str, Any]:
    """Node id -> its execution (the last one) in the named pipeline_run context."""
    run = s.get_context_by_type_and_name("pipeline_run", run_name)
    if run is None:
        raise LookupError(f"no run {run_name} in the metadata store")
    node_type = s.get_context_type("node").id
    out = {}
    for e in sorted(s.get_executions_by_context(run.id),
                    key=lambda e: (e.create_time_since_epoch, e.id)):
        for c in s.get_contexts_by_execution(e.id):
            if c.type_id == node_type:
                out[c.name.split(".", 1)[-1]] = e
    return out


def completed_nodes(s: metadata_store.MetadataStore, run_name: str) -> set[str]:
    """The nodes whose last execution in the named run completed or was taken from the cache
    (a partial run's reused nodes are recorded as cached)."""
    return {node for node, e in node_executions(s, run_name).items()
            if e.last_known_state in _SUCCESS}


_OUTPUTS = (metadata_store_pb2.Event.OUTPUT, metadata_store_pb2.Event.DECLARED_OUTPUT)


def recorded_execution(s: metadata_store.MetadataStore, execution):
    """The execution that recorded the parameters `execution`'s outputs were made with: itself,
    or, for a partial run's reused node (TFX records it without parameters), the first
    execution with parameters that output the same artifacts."""
    if execution.custom_properties:
        return execution
    outputs = [ev.artifact_id for ev in s.get_events_by_execution_ids([execution.id])
               if ev.type in _OUTPUTS]
    producers = sorted({ev.execution_id for ev in s.get_events_by_artifact_ids(outputs)
                        if ev.type in _OUTPUTS and ev.execution_id != execution.id})
    for e in s.get_executions_by_id(producers) if producers else []:
        if e.custom_properties:
            return e
    return execution


def execution_property(execution, name: str) -> Any:
    """A property of an execution (e.g. a Trainer's custom_config, as the run recorded it)."""
    return _prop(execution, name)


def pushing_run(cfg: PipelineConfig, version: int) -> str | None:
    """Name of the pipeline_run context whose Pusher pushed `version`, or None."""
    s = store(cfg)
    run_type = s.get_context_type("pipeline_run").id
    for a in s.get_artifacts_by_type("PushedModel"):
        if str(_prop(a, "pushed_version")) != str(version) or not _prop(a, "pushed"):
            continue
        for ev in s.get_events_by_artifact_ids([a.id]):
            for c in s.get_contexts_by_execution(ev.execution_id):
                if c.type_id == run_type:
                    return c.name
    return None


def _store_and_run(cfg: PipelineConfig, run_name: str | None):
    """The store and the latest run's (or the named) pipeline_run context."""
    s = store(cfg)
    run = latest_run(s, cfg.pipeline_name) if run_name is None else \
        s.get_context_by_type_and_name("pipeline_run", run_name)
    if run is None:
        raise LookupError(f"no run {run_name or ''} of pipeline '{cfg.pipeline_name}' in "
                          f"{cfg.metadata_path}")
    return s, run


def run_summary(cfg: PipelineConfig, run_name: str | None = None) -> dict[str, Any]:
    """The latest run (or the named pipeline_run context) as recorded in MLMD."""
    s, run = _store_and_run(cfg, run_name)
    node_type = s.get_context_type("node").id
    artifact_types = {t.id: t.name for t in s.get_artifact_types()}
    executions = sorted(s.get_executions_by_context(run.id),
                        key=lambda e: (e.create_time_since_epoch, e.id))
    nodes, artifacts_by_type = [], {}
    for e in executions:
        node_ctx = [c for c in s.get_contexts_by_execution(e.id) if c.type_id == node_type]
        node_id = node_ctx[0].name.split(".", 1)[-1] if node_ctx else f"execution {e.id}"
        outputs = [ev.artifact_id for ev in s.get_events_by_execution_ids([e.id])
                   if ev.type in _OUTPUTS]
        arts = s.get_artifacts_by_id(outputs) if outputs else []
        for a in arts:
            artifacts_by_type.setdefault(artifact_types[a.type_id], []).append(a)
        nodes.append({
            "node": node_id,
            "state": _STATES.get(e.last_known_state, "UNKNOWN"),
            "seconds": round((e.last_update_time_since_epoch - e.create_time_since_epoch) / 1000, 1),
            "started": e.create_time_since_epoch / 1000, "ended": e.last_update_time_since_epoch / 1000,
            "artifacts": {artifact_types[a.type_id]: a.uri for a in arts},
        })
    summary: dict[str, Any] = {"pipeline": cfg.pipeline_name, "run_id": run.name, "nodes": nodes}
    blessing = (artifacts_by_type.get("ModelBlessing") or [None])[-1]
    summary["blessed"] = bool(_prop(blessing, "blessed")) if blessing else None
    pushed = (artifacts_by_type.get("PushedModel") or [None])[-1]
    summary["pushed"] = bool(_prop(pushed, "pushed")) if pushed else None
    summary["pushed_version"] = _prop(pushed, "pushed_version") if pushed else None
    summary["pushed_to"] = _prop(pushed, "pushed_destination") if pushed else None
    # The Pusher found the model already in the serving folder (pipeline.pusher).
    summary["same_as_version"] = _prop(pushed, "same_as_version") if pushed else None
    evaluation = (artifacts_by_type.get("ModelEvaluation") or [None])[-1]
    summary["metrics"] = slice_metrics(evaluation.uri) if evaluation else {}
    summary["blessing_failures"] = blessing_failures(evaluation.uri) if evaluation else []
    return summary


_SUCCESS = (metadata_store_pb2.Execution.COMPLETE, metadata_store_pb2.Execution.CACHED)
_INPUTS = (metadata_store_pb2.Event.INPUT, metadata_store_pb2.Event.DECLARED_INPUT)
_RESOLVER_TYPE = "tfx.dsl.components.common.resolver.Resolver"
_SHOWN = 3  # changed files or parameter fields named per reason


def cache_summary(cfg: PipelineConfig, run_name: str | None = None) -> dict[str, Any]:
    """`fairway status --cache`: each node of the latest run (or the named pipeline_run
    context), whether TFX took it from the cache and, when it ran, why: what differs from the
    node's previous successful execution (code digests, parameters, input artifact ids). TFX's
    cache key hashes the node's parameters and input artifacts, and Fairway's nodes carry the
    digests of their code among the parameters (pipeline.code_hash)."""
    s, run = _store_and_run(cfg, run_name)
    types = {t.id: t.name for t in s.get_context_types()}
    nodes = []
    for e in sorted(s.get_executions_by_context(run.id),
                    key=lambda e: (e.create_time_since_epoch, e.id)):
        contexts = s.get_contexts_by_execution(e.id)
        node_ctx = [c for c in contexts if types[c.type_id] == "node"]
        if not node_ctx:
            continue
        history = sorted((x for x in s.get_executions_by_context(node_ctx[0].id)
                          if x.id < e.id), key=lambda x: x.id)
        nodes.append({"node": node_ctx[0].name.split(".", 1)[-1],
                      "state": _STATES.get(e.last_known_state, "UNKNOWN"), "execution": e.id,
                      **_cache_verdict(s, e, history, contexts, types)})
    # A node that ran twice in this run (a retry) is shown once: its last execution.
    last = {n["node"]: n for n in nodes}
    return {"pipeline": cfg.pipeline_name, "run_id": run.name,
            "nodes": [n for n in nodes if last[n["node"]] is n]}


def _cache_verdict(s, e, history, contexts, types) -> dict[str, Any]:
    """cache_hit (True, False, or None: not cacheable / not finished), the reasons, and the
    execution compared with."""
    out: dict[str, Any] = {"cache_hit": None, "compared_with": None, "reasons": []}
    if e.type == _RESOLVER_TYPE:
        out["reasons"] = ["resolver: resolves its inputs anew on every run (never cached)"]
        return out
    if e.last_known_state == metadata_store_pb2.Execution.CACHED:
        out.update(cache_hit=True, reasons=["cached"])
        return out
    if e.last_known_state in (metadata_store_pb2.Execution.NEW,
                              metadata_store_pb2.Execution.RUNNING):
        out["reasons"] = ["running"]
        return out
    out["cache_hit"] = False
    if not history:
        out["reasons"] = ["first run of this node"]
        return out
    done = [x for x in history if x.last_known_state in _SUCCESS]
    if not done:
        out["reasons"] = [f"no earlier successful execution ({len(history)} did not succeed)"]
        return out
    prev = done[-1]
    out["compared_with"] = prev.id
    same_key = [x for c in contexts if types[c.type_id] == "execution_cache"
                for x in s.get_executions_by_context(c.id)
                if x.id < e.id and x.last_known_state in _SUCCESS]
    if same_key:
        out["reasons"] = ["same cache key as an earlier execution: caching was off "
                          "(--no-cache, enable_cache = false) or its outputs were gone"]
        return out
    out["reasons"] = (_code_change(e, prev) + _parameter_changes(e, prev)
                      + _input_changes(s, e, prev)) or [
        "cache key changed with the same parameters and inputs (the executor, the pipeline, "
        "an input artifact's properties or the TFX version)"]
    return out


def _parameters(execution) -> dict[str, Any]:
    """The exec properties TFX recorded on an execution (custom properties; `__x__` are TFX's
    own bookkeeping), JSON values parsed."""
    out = {}
    for key, value in execution.custom_properties.items():
        if key.startswith("__"):
            continue
        v = getattr(value, value.WhichOneof("value")) if value.WhichOneof("value") else None
        if isinstance(v, str) and v.startswith(("{", "[")):
            try:
                v = json.loads(v)
            except ValueError:
                pass
        out[key] = v
    return out


def _split_code(value: Any) -> tuple[Any, dict[str, str] | None]:
    """(the value without its code_hash.KEY entry, that entry), searched at any depth."""
    if not isinstance(value, dict):
        return value, None
    rest, code = {}, None
    for k, v in value.items():
        if k == code_hash.KEY and isinstance(v, dict):
            code = v
            continue
        rest[k], inner = _split_code(v)
        code = code or inner
    return rest, code


def _code_of(params: dict[str, Any]) -> tuple[dict[str, Any], dict[str, str] | None]:
    rest, code = {}, None
    for key, value in params.items():
        if key == code_hash.KEY:
            code = value if isinstance(value, dict) else None
            continue
        rest[key], inner = _split_code(value)
        code = code or inner
    return rest, code


def _code_change(e, prev) -> list[str]:
    _, before = _code_of(_parameters(prev))
    _, after = _code_of(_parameters(e))
    if after is None and before is None:
        return []
    if before is None:
        return ["code changed (no code digests recorded before)"]
    files = code_hash.changed_files(before, after or {})
    if not files:
        return []
    more = f" and {len(files) - _SHOWN} more" if len(files) > _SHOWN else ""
    return [f"code changed ({', '.join(files[:_SHOWN])}{more})"]


def _leaves(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, dict) and value:
        out = {}
        for k, v in value.items():
            out.update(_leaves(v, f"{prefix}.{k}" if prefix else str(k)))
        return out
    return {prefix: value}


def _parameter_changes(e, prev) -> list[str]:
    before, _ = _code_of(_parameters(prev))
    after, _ = _code_of(_parameters(e))
    out = []
    for key in sorted({*before, *after}):
        if key not in before:
            out.append(f"parameter {key} added")
        elif key not in after:
            out.append(f"parameter {key} removed")
        elif before[key] != after[key]:
            a, b = _leaves(before[key]), _leaves(after[key])
            fields = sorted(k for k in {*a, *b} if k and a.get(k) != b.get(k))
            more = f" and {len(fields) - _SHOWN} more" if len(fields) > _SHOWN else ""
            detail = f" ({', '.join(fields[:_SHOWN])}{more})" if fields else ""
            out.append(f"parameter {key} changed{detail}")
    return out


def _input_ids(s, execution) -> dict[str, list[int]]:
    out: dict[str, list[int]] = {}
    for ev in s.get_events_by_execution_ids([execution.id]):
        if ev.type in _INPUTS and ev.path.steps:
            out.setdefault(ev.path.steps[0].key, []).append(ev.artifact_id)
    return {k: sorted(v) for k, v in out.items()}


def _ids(ids: list[int]) -> str:
    return f"artifact{'s' if len(ids) > 1 else ''} {', '.join(map(str, ids))}" if ids else "none"


def _input_changes(s, e, prev) -> list[str]:
    """`input examples changed (artifact 12 -> 31)`, per input key whose artifacts differ."""
    before, after = _input_ids(s, prev), _input_ids(s, e)
    out = []
    for key in sorted({*before, *after}):
        old, new = before.get(key, []), after.get(key, [])
        if old != new:
            to = _ids(new).removeprefix("artifact ") if len(old) == len(new) == 1 else _ids(new)
            out.append(f"input {key} changed ({_ids(old)} -> {to})")
    return out


def node_artifact(summary: dict[str, Any], node: str, kind: str) -> str:
    """URI of the `kind` artifact (e.g. "Model") that `node` output in a run_summary."""
    for n in summary["nodes"]:
        if n["node"] == node and kind in n["artifacts"]:
            return n["artifacts"][kind]
    raise LookupError(f"run {summary['run_id']}: {node} has no {kind} output")


def blessing_failures(evaluation_uri: str) -> list[str]:
    """Why TFMA did not bless the candidate: one line per failed threshold."""
    import tensorflow_model_analysis as tfma

    try:
        result = tfma.load_validation_result(evaluation_uri)
    except (OSError, IndexError, ValueError):
        return []
    lines = []
    for per_slice in result.metric_validations_per_slice:
        where = _slice(per_slice.slice_key)
        for f in per_slice.failures:
            diff = " (change vs baseline)" if f.metric_key.is_diff else ""
            value = f.metric_value.double_value.value
            lines.append(f"{f.metric_key.name}{diff} on {where} = {value:.4f}; "
                         f"required {_bounds(f.metric_threshold)}")
    return lines


def _slice(key) -> str:
    parts = []
    for c in key.single_slice_keys:
        value = getattr(c, c.WhichOneof("kind"))
        parts.append(f"{c.column}={value.decode() if isinstance(value, bytes) else value}")
    return ", ".join(parts) or "Overall"


def _bounds(threshold) -> str:
    t = (threshold.value_threshold if threshold.HasField("value_threshold")
         else threshold.change_threshold)
    return ", ".join(f"{name} {getattr(t, name).value:g}"
                     for name in ("lower_bound", "upper_bound", "absolute")
                     if name in t.DESCRIPTOR.fields_by_name and t.HasField(name))


def slice_metrics(evaluation_uri: str) -> dict[str, dict[str, float]]:
    """Scalar metrics per slice ("Overall", "<feature>=<value>", ...) of the candidate model."""
    import tensorflow_model_analysis as tfma

    result = tfma.load_eval_result(evaluation_uri)
    out = {}
    for slice_key, by_output in result.slicing_metrics:
        name = ", ".join(f"{k}={v}" for k, v in slice_key) or "Overall"
        values = {}
        for sub in by_output.get("", {}).values():
            for metric, value in sub.items():
                if "doubleValue" in value:
                    values[metric] = value["doubleValue"]
        out[name] = values
    return dict(sorted(out.items(), key=lambda kv: (kv[0] != "Overall", kv[0])))


def to_json(summary: dict[str, Any]) -> str:
    return json.dumps(summary, indent=2, sort_keys=True, default=str)
