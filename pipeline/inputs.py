"""What a pipeline run reads. No TFX import: `data.acquire.prepare` builds it before TFX loads."""
from __future__ import annotations

import dataclasses
import pathlib


@dataclasses.dataclass(frozen=True)
class Input:
    """What the pipeline reads: the CSV folder (presplit: it has train/ and eval/ subfolders)
    and the curated schema. Cloud runs pass gs:// URIs as strings."""

    base: pathlib.Path | str
    presplit: bool
    schema: pathlib.Path | str
