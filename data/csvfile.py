"""Checks of a user's CSV input, read the way the pipeline's CsvExampleGen reads it.

Every problem is a `DataError` whose one-line message names the file, the line (and column)
and what was expected, before anything runs. The reading rules are TFX's (tfx 1.16): the header
is the first line split at every comma (no CSV quoting); each following line is joined with the
next ones while its count of '"' is odd (a quoted field spanning lines), then parsed with Python's
csv module; blank lines are skipped; files are UTF-8. Files are streamed line by line.

A UTF-8 byte-order mark is refused (TFX would make it part of the first column's name).
"""
from __future__ import annotations

import csv
import dataclasses
import pathlib
from typing import Iterator

from data.acquire import DataError

SPLITS = ("train", "eval")  # presplit input: the pipeline reads train/* and eval/*
_BOM = b"\xef\xbb\xbf"


@dataclasses.dataclass(frozen=True)
class Scan:
    """What check_folder found: the files per split ("" when unsplit), the header of each split
    and the number of data rows per split."""

    splits: dict[str, list[pathlib.Path]]
    headers: dict[str, tuple[str, ...]]
    rows: dict[str, int]

    @property
    def files(self) -> list[pathlib.Path]:
        return [f for files in self.splits.values() for f in files]


def _lines(path: pathlib.Path) -> Iterator[tuple[int, str]]:
    """(line number, text with its line ending) of a non-empty UTF-8 file without NUL bytes."""
    if path.stat().st_size == 0:
        raise DataError(f"{path}: empty file (0 bytes): expected a header line and data rows")
    with path.open("rb") as f:
        for lineno, raw in enumerate(f, start=1):
            if lineno == 1 and raw.startswith(_BOM):
                raise DataError(f"{path}: starts with a UTF-8 byte-order mark (BOM), which the "
                                f"pipeline would read as part of the first column name: save the "
                                f"file as UTF-8 without BOM")
            if b"\0" in raw:
                raise DataError(f"{path}: line {lineno}, column {raw.index(0) + 1}: NUL byte: "
                                f"expected CSV text, this looks like a binary file")
            try:
                yield lineno, raw.decode("utf-8")
            except UnicodeDecodeError as e:
                raise DataError(f"{path}: line {lineno}, column {e.start + 1}: byte "
                                f"0x{raw[e.start]:02x} is not UTF-8: expected UTF-8 text (save the "
                                f"file as UTF-8; another encoding, e.g. Latin-1, or a binary "
                                f"file?)") from None


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _header(path: pathlib.Path, text: str) -> tuple[str, ...]:
    # TFX: io_utils.load_csv_column_names = first line, strip(), split(',').
    if '"' in text:
        raise DataError(f"{path}: line 1 (header): quoted column names are not supported (the "
                        f"pipeline splits the header at every comma): expected e.g. age,sex,label")
    names = tuple(text.strip().split(","))
    unnamed = [i for i, n in enumerate(names, start=1) if not n.strip()]
    if unnamed:
        raise DataError(f"{path}: line 1 (header): column {unnamed[0]} has no name: expected a "
                        f"header line naming every column (no header?)")
    if all(_is_number(n) for n in names):
        raise DataError(f"{path}: line 1 (header): every cell is a number ({text.strip()[:60]!r}): "
                        f"expected a header line of column names (no header?)")
    dups = sorted({n for n in names if names.count(n) > 1})
    if dups:
        raise DataError(f"{path}: line 1 (header): duplicate column names {dups}: expected "
                        f"each column name once")
    return names


def _parse(path: pathlib.Path, lineno: int, record: str) -> list[str]:
    try:
        return next(csv.reader([record]), [])
    except csv.Error as e:
        raise DataError(f"{path}: line {lineno}: not valid CSV ({e}): a '\"' in an unquoted "
                        f"field? quote the field and double the quotes inside it") from None


def read_file(path: pathlib.Path) -> tuple[tuple[str, ...], Iterator[tuple[int, list[str]]]]:
    """The header and an iterator of (line number, fields) of one CSV file, checked as it
    streams: encoding, quoting and each row's number of fields."""
    path = pathlib.Path(path)
    lines = _lines(path)
    header = _header(path, next(lines)[1])

    def rows() -> Iterator[tuple[int, list[str]]]:
        buf, start, quotes = [], 0, 0
        for lineno, text in lines:
            if not buf:
                start = lineno
            buf.append(text)
            quotes += text.count('"')
            if quotes % 2:  # inside a quoted field: the record goes on on the next line
                continue
            fields = _parse(path, start, "".join(buf))
            buf, quotes = [], 0
            if not fields:  # a blank line (TFX skips them)
                continue
            if len(fields) != len(header):
                raise DataError(f"{path}: line {start}: {len(fields)} fields, expected "
                                f"{len(header)} as in the header (an unquoted comma, or a "
                                f"missing one?)")
            yield start, fields
        if buf:
            raise DataError(f"{path}: line {start}: a quoted field is never closed (odd number "
                            f"of '\"' up to the end of the file): a stray quote? quote the field "
                            f"and double the quote, e.g. \"5\"\" pipe\"")

    return header, rows()


def read_rows(files: list[pathlib.Path]
              ) -> tuple[tuple[str, ...], Iterator[tuple[pathlib.Path, int, list[str]]]]:
    """The header and the rows, as (file, line number, fields), of the CSV files of one split,
    streamed and checked; every file must have the first one's header and data rows."""
    lines = _lines(files[0])
    header = _header(files[0], next(lines)[1])
    lines.close()

    def rows() -> Iterator[tuple[pathlib.Path, int, list[str]]]:
        for f in files:
            this, body = read_file(f)
            _same_header(f, this, files[0], header)
            n = 0
            for lineno, fields in body:
                n += 1
                yield f, lineno, fields
            if not n:
                raise DataError(f"{f}: a header and no data rows: expected at least one row")

    return header, rows()


def _same_header(path, header, first, expected) -> None:
    if header != expected:
        raise DataError(f"{path}: line 1 (header): columns {list(header)} differ from "
                        f"{first}'s {list(expected)}: expected the same header in every file "
                        f"of a split (same names, same order)")


def _csv_files(folder: pathlib.Path, what: str) -> list[pathlib.Path]:
    """The CSV files of a folder the pipeline reads whole (pattern '*': every entry, hidden
    ones too, is read as CSV)."""
    entries = sorted(folder.iterdir())
    others = [p.name for p in entries if not (p.is_file() and p.suffix.lower() == ".csv")]
    files = [p for p in entries if p.name not in others]
    if not files:
        raise DataError(f"{folder}: no .csv files: expected {what}")
    if others:
        raise DataError(f"{folder}: holds {others[:5]} besides its .csv files: the pipeline "
                        f"reads every file in it; move them out")
    return files


def _find(path: pathlib.Path) -> dict[str, list[pathlib.Path]]:
    if path.is_file():
        if path.suffix.lower() != ".csv":
            raise DataError(f"{path}: expected a .csv file or a folder of them")
        return {"": [path]}
    if not path.is_dir():
        raise DataError(f"{path}: no such file or folder")
    subdirs = {p.name for p in path.iterdir() if p.is_dir()}
    if set(SPLITS) <= subdirs:
        stray = sorted(p.name for p in path.glob("*.csv"))
        if stray:
            raise DataError(f"{path}: has train/ and eval/ and also {stray[:5]}: the pipeline "
                            f"reads only train/ and eval/; move these files into one of them")
        return {s: _csv_files(path / s, f"the {s} split's CSV files") for s in SPLITS}
    if subdirs & set(SPLITS):
        raise DataError(f"{path}: has {sorted(subdirs & set(SPLITS))[0]}/ but not "
                        f"{sorted(set(SPLITS) - subdirs)[0]}/: expected both train/ and eval/ "
                        f"subfolders, or only CSV files (split 2:1 by the pipeline)")
    return {"": _csv_files(path, "CSV files, or train/ and eval/ subfolders of them")}


def scan(path: str | pathlib.Path) -> Scan:
    """Check every file under `path` (see check_folder) and count its rows."""
    splits = _find(pathlib.Path(path))
    headers, rows = {}, {}
    for split, files in splits.items():
        headers[split], body = read_rows(files)
        rows[split] = sum(1 for _ in body)
    if len(headers) > 1 and len({frozenset(h) for h in headers.values()}) > 1:
        train, other = headers[SPLITS[0]], headers[SPLITS[1]]
        diff = sorted(set(train) ^ set(other))
        raise DataError(f"{splits[SPLITS[1]][0]}: columns differ from "
                        f"{splits[SPLITS[0]][0]}'s ({diff}): expected the same columns in "
                        f"train/ and eval/")
    return Scan(splits, headers, rows)


def check_folder(path: str | pathlib.Path) -> dict[str, list[pathlib.Path]]:
    """The CSV files of `path` per split: {"": [...]} for a CSV file or a folder of CSVs,
    {"train": [...], "eval": [...]} for a folder with train/ and eval/ subfolders. Every file
    is read once, line by line; any problem raises DataError naming file and line."""
    return scan(path).splits
