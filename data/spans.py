"""`fairway data --new-span DIR`: a new batch ("span") of data shaped like the dataset, drawn
from its rows with another seed, optionally with the config's [inject_drift] applied, to
exercise the drift gate (and, with only its new category, `fairway schema propose|accept`)."""
from __future__ import annotations

import csv
import dataclasses
import pathlib
import random

from data.acquire import DataError
from pipeline.config import DriftInjection


def _drift(row: dict, how: DriftInjection, rng: random.Random) -> dict:
    row = dict(row)
    for column, amount in how.shift:
        if row[column] != "":  # a missing value stays missing
            value = float(row[column]) + amount
            row[column] = str(int(value)) if value.is_integer() else str(value)
    if rng.random() < how.fraction:
        for column, value in how.new_category:
            row[column] = value
    return row


INJECT = ("all", "shift", "new-category")  # what `--inject-drift [WHAT]` applies


def injection(how: DriftInjection, what: str | None,
              fraction: float | None = None) -> DriftInjection | None:
    """The part of the config's [inject_drift] that `--inject-drift [WHAT]` asks for: all of
    it, only the numeric shift, or only the new category (a span whose one change is a value
    the schema does not know: refused until `fairway schema accept`, then passing, as long as
    `fraction`, the share of rows given the value, keeps it under the drift threshold)."""
    if what is None:
        if fraction is not None:
            raise DataError("--category-fraction goes with --inject-drift")
        return None
    if what not in INJECT:
        raise DataError(f"--inject-drift {what}: expected one of {', '.join(INJECT)}")
    if fraction is not None and not 0 < fraction <= 1:
        raise DataError(f"--category-fraction {fraction:g}: expected a share in (0, 1]")
    return dataclasses.replace(
        how, shift=() if what == "new-category" else how.shift,
        new_category=() if what == "shift" else how.new_category,
        fraction=how.fraction if fraction is None else fraction)


def _pool(folder: pathlib.Path) -> tuple[list[str], list[dict]]:
    """The header and every row of every CSV in `folder`."""
    files = sorted(folder.glob("*.csv"))
    if not files:
        raise DataError(f"{folder}: no .csv files to draw a span from")
    fields, pool = None, []
    for path in files:
        with path.open(newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            if fields is not None and reader.fieldnames != fields:
                raise DataError(f"{path}: header differs from {files[0]}")
            fields = reader.fieldnames
            pool.extend(reader)
    return fields, pool


def write(source: pathlib.Path, dest: pathlib.Path, rows: int, seed: int,
          inject_drift: DriftInjection | None) -> pathlib.Path:
    """dest/{train,eval}/data.csv: `rows` rows per split drawn (with replacement) from the
    source's train/ and eval/ folders (or, for unsplit data, from all its CSV files)."""
    if dest.exists():
        raise DataError(f"{dest}: already exists; choose a new folder for the new span")
    if inject_drift is not None and not (inject_drift.shift or inject_drift.new_category):
        raise DataError("--inject-drift: the config has no [inject_drift] table saying what to "
                        "change, e.g. shift = {age = 8} and new_category = {city = \"New\"}")
    rng = random.Random(seed)
    presplit = (source / "train").is_dir() and (source / "eval").is_dir()
    for split in ("train", "eval"):
        fields, pool = _pool(source / split if presplit else source)
        missing = sorted({c for c, _ in (inject_drift.shift + inject_drift.new_category)}
                         - set(fields)) if inject_drift else []
        if missing:
            raise DataError(f"[inject_drift] changes {missing}, which {source} does not have")
        picked = [rng.choice(pool) for _ in range(rows)]
        if inject_drift:
            picked = [_drift(r, inject_drift, rng) for r in picked]
        out = dest / split / "data.csv"
        out.parent.mkdir(parents=True)
        with out.open("w", newline="", encoding="utf-8") as f:
            writer = csv.DictWriter(f, fieldnames=fields)
            writer.writeheader()
            writer.writerows(picked)
    return dest
