"""Partial runs: `fairway run --from NODE` and `fairway run --resume`.

Both are TFX partial runs: the chosen nodes and everything downstream of them execute, and every
other node's outputs come from a base run. TFX's snapshot records those as cached executions in
the new run's context, with the base run as its parent context, so MLMD's lineage shows what
was reused and from where."""
from __future__ import annotations

import dataclasses

from tfx.proto.orchestration import pipeline_pb2

from pipeline import metadata
from pipeline.config import PipelineConfig
from pipeline.errors import FairwayError


class PartialRunError(FairwayError):
    """The partial run cannot start: an unknown node, or no run to take artifacts from."""


@dataclasses.dataclass(frozen=True)
class PartialRun:
    from_nodes: tuple[str, ...]  # they and everything downstream run
    base_run: str  # the pipeline_run whose artifacts the other nodes reuse
    why: str  # one line for the console


def _node_ids(ir: pipeline_pb2.Pipeline) -> list[str]:
    return [n.pipeline_node.node_info.id for n in ir.nodes]


def _runnable(node_ids: list[str]) -> list[str]:
    return [n for n in node_ids if not n.endswith("_resolver")]


def _changed(s, ir: pipeline_pb2.Pipeline, executions: dict) -> list[str]:
    """The nodes whose parameters in the compiled pipeline differ from what their execution
    recorded: an edited config, code (Fairway's nodes carry their code digests as a parameter),
    schema or data folder."""
    out = []
    for node in ir.nodes:
        pn = node.pipeline_node
        e = executions.get(pn.node_info.id)
        e = e and metadata.recorded_execution(s, e)
        for name, value in pn.parameters.parameters.items():
            if e is None or not value.HasField("field_value"):
                continue
            now = getattr(value.field_value, value.field_value.WhichOneof("value"))
            if str(now) != str(metadata.execution_property(e, name)):
                out.append(pn.node_info.id)
                break
    return out


def start_from(cfg: PipelineConfig, ir: pipeline_pb2.Pipeline, node: str) -> PartialRun:
    """Re-execute `node` and its downstream on the artifacts of the latest run in which every
    node of the pipeline completed (a refused or failed run lends nothing)."""
    node_ids = _node_ids(ir)
    by_name = {n.lower(): n for n in _runnable(node_ids)}
    if node.lower() not in by_name:
        raise PartialRunError(f"--from {node}: no such node; expected one of "
                              f"{', '.join(_runnable(node_ids))}")
    node = by_name[node.lower()]
    s = metadata.store(cfg)
    for run in reversed(metadata.runs(s, cfg.pipeline_name)):
        if set(node_ids) <= metadata.completed_nodes(s, run.name):
            return PartialRun((node,), run.name,
                              f"Partial run: {node} and what follows it; the other nodes' "
                              f"artifacts from run {run.name}")
    raise PartialRunError(f"--from {node}: no run of '{cfg.pipeline_name}' in "
                          f"{cfg.metadata_path} completed every node; run `fairway run` first")


def resume(cfg: PipelineConfig, ir: pipeline_pb2.Pipeline) -> PartialRun:
    """Re-execute what the latest run did not complete, reusing every node it completed. A
    completed node whose parameters changed since (code, config, an accepted schema) runs
    again too, as a cache miss would, and so does what follows it."""
    node_ids = _node_ids(ir)
    s = metadata.store(cfg)
    runs = metadata.runs(s, cfg.pipeline_name)
    if not runs:
        raise PartialRunError(f"--resume: no run of '{cfg.pipeline_name}' in "
                              f"{cfg.metadata_path}; run `fairway run` first")
    run = runs[-1].name
    executions = metadata.node_executions(s, run)
    done = metadata.completed_nodes(s, run)
    todo = [n for n in node_ids if n not in done]
    if not todo:
        raise PartialRunError(f"--resume: the latest run {run} completed every node; nothing to "
                              "resume (`fairway run --from NODE` re-runs part of it)")
    stale = [n for n in _changed(s, ir, executions) if n in done]
    note = f", and {', '.join(stale)} (changed since)" if stale else ""
    return PartialRun(tuple(todo + stale), run,
                      f"Resuming run {run}: from {(_runnable(todo) or todo)[0]}{note}; the nodes it completed "
                      f"are reused")
