"""`fairway data --new-span`: new batches drawn from the data, with and without drift."""
import csv

import pytest

from data import spans
from data.acquire import DataError


@pytest.fixture
def source(tmp_path):
    for split in ("train", "eval"):
        (tmp_path / "src" / split).mkdir(parents=True)
        (tmp_path / "src" / split / "a.csv").write_text(
            "age,workclass,sex\n" + "".join(f"{20 + i},Private,Male\n" for i in range(50)))
    return tmp_path / "src"


def rows(path):
    with path.open() as f:
        return list(csv.DictReader(f))


def test_a_clean_span_keeps_the_values_and_a_drifted_one_shifts_them(source, tmp_path):
    clean = rows(spans.write(source, tmp_path / "s2", 400, 1, False) / "train" / "data.csv")
    drift = rows(spans.write(source, tmp_path / "s3", 400, 1, True) / "train" / "data.csv")
    assert len(clean) == len(drift) == 400
    assert {r["workclass"] for r in clean} == {"Private"}
    assert all(20 <= int(r["age"]) < 70 for r in clean)
    assert 0.2 < sum(r["workclass"] == spans.DRIFT_CATEGORY for r in drift) / 400 < 0.4
    assert sum(int(r["age"]) for r in drift) / 400 > sum(int(r["age"]) for r in clean) / 400 + 7


def test_existing_folders_and_non_census_columns_are_refused(source, tmp_path):
    spans.write(source, tmp_path / "s2", 10, 1, False)
    with pytest.raises(DataError, match="already exists"):
        spans.write(source, tmp_path / "s2", 10, 1, False)
    (source / "train" / "a.csv").write_text("fare,tips\n1,2\n")
    with pytest.raises(DataError, match="shifts 'age' and 'workclass'"):
        spans.write(source, tmp_path / "s4", 10, 1, True)
