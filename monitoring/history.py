"""The monitor's history, in ML Metadata: every `fairway monitor` run is an execution of type
FairwayMonitor, in the context of the monitored model, and the windows it scored are its output
artifact (type MonitorResults: a JSON file of the tidy rows). The history is the union of those
artifacts, so a window already scored is never scored again, and it survives restarts."""
from __future__ import annotations

import json
import os
import pathlib
import time
import uuid
from typing import Any

from ml_metadata.proto import metadata_store_pb2 as mlmd

from pipeline import metadata
from pipeline.config import PipelineConfig

EXECUTION, ARTIFACT, CONTEXT = "FairwayMonitor", "MonitorResults", "fairway_monitor"


def _types(s) -> tuple[int, int, int]:
    e = mlmd.ExecutionType(name=EXECUTION)
    for p in ("requests", "window", "k", "windows", "alerts"):
        e.properties[p] = mlmd.STRING if p in ("requests", "window") else mlmd.DOUBLE
    a = mlmd.ArtifactType(name=ARTIFACT)
    a.properties["windows"] = mlmd.INT
    a.properties["alerts"] = mlmd.INT
    c = mlmd.ContextType(name=CONTEXT)
    return (s.put_execution_type(e, can_add_fields=True), s.put_artifact_type(a, can_add_fields=True),
            s.put_context_type(c))


class History:
    def __init__(self, cfg: PipelineConfig, model: str, folder: pathlib.Path):
        self.store = metadata.store(cfg)
        self.folder, self.model = folder, model
        self.exec_type, self.art_type, ctx_type = _types(self.store)
        ctx = self.store.get_context_by_type_and_name(CONTEXT, model)
        if ctx is None:
            [cid] = self.store.put_contexts([mlmd.Context(type_id=ctx_type, name=model)])
            ctx = self.store.get_contexts_by_id([cid])[0]
        self.context = ctx

    def rows(self, log=print) -> list[dict[str, Any]]:
        """Every row scored so far, oldest run first. An artifact whose file was deleted is
        marked DELETED in MLMD (with a warning): its windows are scored again."""
        arts = sorted(self.store.get_artifacts_by_context(self.context.id),
                      key=lambda a: a.id)
        out = []
        for a in arts:
            if a.type_id != self.art_type or a.state != mlmd.Artifact.LIVE:
                continue
            path = pathlib.Path(a.uri)
            if not path.exists():
                log(f"warning: monitor history file {path} is gone; its windows are scored "
                    "again")
                a.state = mlmd.Artifact.DELETED
                self.store.put_artifacts([a])
                continue
            out.extend(json.loads(path.read_text()))
        return out

    def record(self, rows: list[dict[str, Any]], props: dict[str, Any]) -> int:
        """Append one monitor run (an execution) and its rows (an artifact); its id."""
        run_dir = self.folder / f"{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}-" \
                                f"{uuid.uuid4().hex[:8]}"
        run_dir.mkdir(parents=True, exist_ok=True)
        path = run_dir / "windows.json"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(rows))
        os.replace(tmp, path)
        windows = len({r["window"] for r in rows})
        alerting = len({r["window"] for r in rows if r["alert"]})
        e = mlmd.Execution(type_id=self.exec_type,
                           last_known_state=mlmd.Execution.COMPLETE)
        for k, v in {**props, "windows": windows, "alerts": alerting}.items():
            if isinstance(v, str):
                e.properties[k].string_value = v
            else:
                e.properties[k].double_value = float(v)
        a = mlmd.Artifact(type_id=self.art_type, uri=str(path), state=mlmd.Artifact.LIVE)
        a.properties["windows"].int_value = windows
        a.properties["alerts"].int_value = alerting
        event = mlmd.Event(type=mlmd.Event.OUTPUT)
        # One transaction: the execution, its artifact, the event and the context together.
        eid, _, _ = self.store.put_execution(
            e, [(a, event)], [self.context], reuse_context_if_already_exist=True)
        return eid
