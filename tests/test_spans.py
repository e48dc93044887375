"""`fairway data --new-span`: new batches drawn from the data, with and without drift."""
import csv

import pytest

from data import spans
from data.acquire import DataError
from pipeline.config import DriftInjection

DRIFT = DriftInjection(shift=(("age", 8.0),), new_category=(("workclass", "Gig"),), fraction=0.3)


@pytest.fixture
def source(tmp_path):
    for split in ("train", "eval"):
        (tmp_path / "src" / split).mkdir(parents=True)
        for part in range(2):  # every CSV of a split is drawn from
            (tmp_path / "src" / split / f"{part}.csv").write_text(
                "age,workclass,sex\n" + "".join(f"{20 + i + 100 * part},Private,Male\n"
                                                for i in range(50)))
    return tmp_path / "src"


def rows(path):
    with path.open() as f:
        return list(csv.DictReader(f))


def test_a_clean_span_keeps_the_values_and_a_drifted_one_shifts_them(source, tmp_path):
    clean = rows(spans.write(source, tmp_path / "s2", 400, 1, None) / "train" / "data.csv")
    drift = rows(spans.write(source, tmp_path / "s3", 400, 1, DRIFT) / "train" / "data.csv")
    assert len(clean) == len(drift) == 400
    assert {r["workclass"] for r in clean} == {"Private"}
    assert any(int(r["age"]) >= 120 for r in clean)  # rows of the second file too
    assert 0.2 < sum(r["workclass"] == "Gig" for r in drift) / 400 < 0.4
    assert sum(int(r["age"]) for r in drift) / 400 > sum(int(r["age"]) for r in clean) / 400 + 7


def test_existing_folders_unknown_columns_and_no_drift_table_are_refused(source, tmp_path):
    spans.write(source, tmp_path / "s2", 10, 1, None)
    with pytest.raises(DataError, match="already exists"):
        spans.write(source, tmp_path / "s2", 10, 1, None)
    with pytest.raises(DataError, match=r"no \[inject_drift\] table"):
        spans.write(source, tmp_path / "s5", 10, 1, DriftInjection())
    for f in (source / "train").glob("*.csv"):
        f.write_text("fare,tips\n1,2\n")
    with pytest.raises(DataError, match=r"changes \['age', 'workclass'\]"):
        spans.write(source, tmp_path / "s4", 10, 1, DRIFT)
