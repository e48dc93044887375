"""data/csvfile.py: a user's CSV input read as CsvExampleGen reads it; every error names the
file and the line."""
import pathlib

import pytest

from data import csvfile
from data.acquire import DataError
from pipeline.errors import FairwayError


def test_quotes_newlines_unicode_blank_lines_and_crlf_pass(write):
    f = write("d/a.csv", 'id,text,city\n1,"a, b",Zürich\n\n2,"two\nlines ""quoted""",東京\n'
                         '3,plain,"São Paulo"\n')
    (f.parent / "b.csv").write_bytes(b"id,text,city\r\n4,x,y\r\n")
    assert csvfile.check_folder(f.parent) == {"": [f, f.parent / "b.csv"]}
    header, rows = csvfile.read_rows([f, f.parent / "b.csv"])
    assert header == ("id", "text", "city")
    assert [(p.name, line, fields) for p, line, fields in rows] == [
        ("a.csv", 2, ["1", "a, b", "Zürich"]),
        ("a.csv", 4, ["2", 'two\nlines "quoted"', "東京"]),
        ("a.csv", 6, ["3", "plain", "São Paulo"]),
        ("b.csv", 2, ["4", "x", "y"])]
    scan = csvfile.scan(f.parent)
    assert scan.rows == {"": 4} and scan.headers == {"": ("id", "text", "city")}


def test_a_single_file_and_train_eval_folders(write):
    f = write("one/data.csv", "a,b\n1,2\n")
    assert csvfile.check_folder(f) == {"": [f]}
    train = write("split/train/t.csv", "a,b\n1,2\n")
    ev = write("split/eval/e.csv", "b,a\n2,1\n")  # another column order is fine across splits
    write("split/README.md", "not read by the pipeline: only train/ and eval/ are")
    assert csvfile.check_folder(train.parent.parent) == {"train": [train], "eval": [ev]}


@pytest.mark.parametrize("files, where, message", [
    ({"notes.txt": "x"}, "", "no .csv files"),
    ({"a.csv": ""}, "a.csv", "empty file (0 bytes)"),
    ({"a.csv": "age,sex\n\n"}, "a.csv", "a header and no data rows"),
    ({"a.csv": "1,2,3\n4,5,6\n"}, "a.csv: line 1 (header)", "every cell is a number"),
    ({"a.csv": "age,,sex\n1,2,3\n"}, "a.csv: line 1 (header)", "column 2 has no name"),
    ({"a.csv": "age,sex,age\n1,F,2\n"}, "a.csv: line 1 (header)", "duplicate column names ['age']"),
    ({"a.csv": '"age","sex"\n1,F\n'}, "a.csv: line 1 (header)", "quoted column names"),
    ({"a.csv": "age,sex\n1,F\n2,M,extra\n"}, "a.csv: line 3", "3 fields, expected 2"),
    ({"a.csv": "age,sex\n1,F\n2\n"}, "a.csv: line 3", "1 fields, expected 2"),
    ({"a.csv": 'age,sex\n1,"F\n2,M\n'}, "a.csv: line 2", "a quoted field is never closed"),
    ({"a.csv": "age,sex\n1,F\n", "b.csv": "age,gender\n1,F\n"}, "b.csv: line 1 (header)",
     "differ from"),
    ({"a.csv": "age,sex\n1,F\n", "notes.txt": "x"}, "", "holds ['notes.txt'] besides"),
    ({"train/a.csv": "age,sex\n1,F\n"}, "", "has train/ but not eval/"),
    ({"train/a.csv": "age,sex\n1,F\n", "eval/a.csv": "age,sex\n1,F\n", "x.csv": "age,sex\n1,F\n"},
     "", "also ['x.csv']"),
    ({"train/a.csv": "age,sex\n1,F\n", "eval/a.csv": "age,race\n1,F\n"}, "eval/a.csv",
     "expected the same columns in train/ and eval/"),
])
def test_text_problems_name_file_and_line(tmp_path, write, files, where, message):
    for rel, text in files.items():
        write(f"d/{rel}", text)
    with pytest.raises(DataError) as e:
        csvfile.check_folder(tmp_path / "d")
    text = str(e.value)
    assert message in text and f"{tmp_path / 'd'}{'/' + where if where else ''}" in text
    assert "\n" not in text and isinstance(e.value, FairwayError)


@pytest.mark.parametrize("data, message", [
    (b"age,sex\n1,F\n2,M\n3,\xe9t\xe9\n", "line 4, column 3: byte 0xe9 is not UTF-8"),  # Latin-1
    (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "line 1, column 1: byte 0x89 is not UTF-8"),
    (b"age,sex\n1,F\x00\n", "line 2, column 4: NUL byte"),
    (b"\xef\xbb\xbfage,sex\n1,F\n", "UTF-8 byte-order mark (BOM)"),
])
def test_binary_and_encoding_problems_name_the_line(tmp_path, data, message):
    f = tmp_path / "x.csv"
    f.write_bytes(data)
    with pytest.raises(DataError, match=str(f)) as e:
        csvfile.check_folder(f)
    assert message in str(e.value)


def test_not_a_csv_or_missing(tmp_path):
    with pytest.raises(DataError, match="no such file or folder"):
        csvfile.check_folder(tmp_path / "nope")
    (tmp_path / "x.tsv").write_text("a\tb\n")
    with pytest.raises(DataError, match=r"x\.tsv: expected a \.csv file"):
        csvfile.check_folder(tmp_path / "x.tsv")


def test_rows_are_streamed(write):
    f = write("big.csv", "a,b\n" + "1,2\n" * 10 + "3\n")
    header, rows = csvfile.read_rows([pathlib.Path(f)])
    first = next(rows)  # nothing read past the first rows yet: the bad line comes later
    assert header == ("a", "b") and first[1:] == (2, ["1", "2"])
    with pytest.raises(DataError, match="big.csv: line 12: 1 fields"):
        list(rows)
