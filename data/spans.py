"""`fairway data --new-span DIR`: a new batch ("span") of data shaped like the dataset, drawn
from its rows with another seed, optionally with injected drift, to exercise the drift gate."""
from __future__ import annotations

import csv
import pathlib
import random

from data.acquire import DataError

DRIFT_CATEGORY = "Gig-economy"


def _drift(row: dict, rng: random.Random) -> dict:
    """Census: older people (+8 years, kept inside the schema's 16..100) and a workclass the
    schema has never seen on 30 % of rows."""
    row = dict(row)
    row["age"] = str(min(int(row["age"]) + 8, 100))
    if rng.random() < 0.3:
        row["workclass"] = DRIFT_CATEGORY
    return row


def write(source: pathlib.Path, dest: pathlib.Path, rows: int, seed: int,
          inject_drift: bool) -> pathlib.Path:
    """dest/{train,eval}/data.csv: `rows` rows per split drawn (with replacement) from source."""
    if dest.exists():
        raise DataError(f"{dest}: already exists; choose a new folder for the new span")
    rng = random.Random(seed)
    for split in ("train", "eval"):
        files = sorted((source / split).glob("*.csv"))
        if not files:
            raise DataError(f"{source / split}: no .csv files to draw a span from")
        with files[0].open(newline="") as f:
            reader = csv.DictReader(f)
            fields, pool = reader.fieldnames, list(reader)
        if inject_drift and not {"age", "workclass"} <= set(fields):
            raise DataError("--inject-drift shifts 'age' and 'workclass' (census columns); "
                            f"{files[0]} has {fields}")
        picked = [rng.choice(pool) for _ in range(rows)]
        if inject_drift:
            picked = [_drift(r, rng) for r in picked]
        out = dest / split / "data.csv"
        out.parent.mkdir(parents=True)
        with out.open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=fields)
            writer.writeheader()
            writer.writerows(picked)
    return dest
