"""The Pusher: TFX's, except that a model already in the serving folder is not pushed again.

TFX's Pusher copies whatever it is given into a new version folder. A partial run
(`fairway run --from Evaluator`), a re-run without the cache or a retrain that reproduces the
same bytes would otherwise make the served model a "new" version: the registry would see a
release that changes nothing, and a rollback to "the previous version" would change nothing
either. The pushed artifact then says `pushed = 0` and names the version it already is. The
check reads local folders; a push to Cloud Storage (Vertex) is TFX's as is."""
from __future__ import annotations

import hashlib
import logging
import os
import pathlib

from tfx import v1 as tfx
from tfx.components.pusher import executor as pusher_executor
from tfx.dsl.components.base import executor_spec
from tfx.proto import pusher_pb2
from tfx.types import artifact_utils, standard_component_specs
from tfx.utils import proto_utils

NODE_ID = "Pusher"
SAME_AS = "same_as_version"  # custom property of a PushedModel that was not pushed again

log = logging.getLogger(__name__)


def _files(root: pathlib.Path) -> dict[str, int]:
    return {p.relative_to(root).as_posix(): p.stat().st_size
            for p in root.rglob("*") if p.is_file()}


def _digest(root: pathlib.Path, files) -> str:
    h = hashlib.sha256()
    for rel in sorted(files):
        h.update(rel.encode() + b"\0")
        with open(root / rel, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()


def same_version(model_dir: str, base_directory: str) -> str | None:
    """The version folder under `base_directory` whose files are byte for byte those of
    `model_dir`, or None. Only folders with the same names and sizes are read."""
    model, base = pathlib.Path(model_dir), pathlib.Path(base_directory)
    if not base.is_dir():
        return None
    files = _files(model)
    digest = None
    for version in sorted((p for p in base.iterdir() if p.name.isdigit()),
                          key=lambda p: int(p.name), reverse=True):
        if _files(version) != files:
            continue
        digest = digest or _digest(model, files)
        if _digest(version, files) == digest:
            return version.name
    return None


class Executor(pusher_executor.Executor):
    def Do(self, input_dict, output_dict, exec_properties) -> None:
        if self.CheckBlessing(input_dict):
            destination = pusher_pb2.PushDestination()
            proto_utils.json_to_proto(
                exec_properties[standard_component_specs.PUSH_DESTINATION_KEY], destination)
            if destination.WhichOneof("destination") == "filesystem" and os.path.isdir(
                    model_dir := self.GetModelPath(input_dict)):
                if version := same_version(model_dir, destination.filesystem.base_directory):
                    pushed = artifact_utils.get_single_instance(
                        output_dict[standard_component_specs.PUSHED_MODEL_KEY])
                    self._MarkNotPushed(pushed)
                    pushed.set_string_custom_property(SAME_AS, version)
                    log.info("The model is version %s, already in %s: not pushed again",
                             version, destination.filesystem.base_directory)
                    return
        super().Do(input_dict, output_dict, exec_properties)


class Pusher(tfx.components.Pusher):
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(Executor)
