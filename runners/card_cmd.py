"""`fairway card`: the model card of a pushed version; and the card every run that pushed
writes for its new version (a failure to write it is a warning, never a failed run)."""
from __future__ import annotations

import pathlib

from pipeline.config import PipelineConfig
from pipeline.errors import FairwayError


def run(cfg: PipelineConfig, version: str | None, to: str | None,
        measure: bool = True) -> list[pathlib.Path]:
    """Writes the card of `version` (default: the newest pushed) to `to` or <output>/cards;
    `measure` False is the quick card of a run (no scoring of its models)."""
    from pipeline import metadata
    from runners.progress import Progress

    metadata.store(cfg)  # no run yet: say so before a log folder is made for nothing
    out = pathlib.Path(to).resolve() if to else None
    # TensorFlow's start-up lines and TFMA's warnings go to a log, not the console; with --to
    # the log goes there too, so reading a run writes nothing into its folder.
    log = (out / "logs" / cfg.log_path("card", ".log").name) if out else cfg.log_path("card", ".log")
    with Progress(log):
        from monitoring import model_card

        paths = model_card.write(cfg, version, out, measure=measure)
    return list(paths)


def after_run(cfg: PipelineConfig) -> str:
    """The line `fairway run` prints about the card of the version its run pushed ("" when
    the run pushed nothing)."""
    from pipeline import metadata

    try:
        # MLMD only (no TFMA, whose warnings would reach the console): did the last run push?
        latest = metadata.latest_run(metadata.store(cfg), cfg.pipeline_name)
        pushed = [v for v, r in metadata.pushed_versions(cfg).items()
                  if latest is not None and r == latest.name]
        if not pushed:
            return ""
        html, _ = run(cfg, pushed[0], None, measure=False)
    except (FairwayError, LookupError, OSError, ValueError, KeyError) as err:
        return f"warning: the model card was not written: {err}"
    return f"Model card: {html} (+ .json)"
