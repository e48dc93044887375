"""Global importance (mean |attribution| per feature, overall and per group) and its section of
the run report, in headless Chromium."""
import numpy as np
import pytest
import tensorflow as tf

import explain_support as support
from conftest import REPO
from monitoring import run_report
from pipeline import explanations
from test_monitor_page import BROWSER, chromium


def test_importance_ranks_features_and_names_the_largest_group_gap():
    groups = np.array(["a"] * 4 + ["b"] * 4)
    attr = {"x": np.array([1, -1, 1, -1, 1, -1, 1, -1], float),   # same for both groups
            "y": np.array([0, 0, 0, 0, 2, -2, 2, -2], float),    # only group b
            "z": np.array([0.1] * 8)}
    imp = explanations.importance(attr, groups, [("a", "b")])
    assert list(imp["overall"]) == ["x", "y", "z"]
    assert imp["overall"]["y"] == pytest.approx(1.0)
    assert imp["groups"]["b"]["y"] == pytest.approx(2.0) and imp["groups"]["a"]["y"] == 0
    first = imp["differs_most"][0]
    assert (first["feature"], first["high"], first["low"]) == ("y", "b", "a")
    assert first["gap"] == pytest.approx(2.0)
    assert imp["differs_most"][-1]["gap"] == pytest.approx(0.0)


def _examples(rows):
    out = []
    for r in rows:
        feats = {}
        for k, v in r.items():
            if k == support.FEATURES.label or not v:
                continue  # missing: absent from the example, as CsvExampleGen writes it
            if isinstance(v[0], bytes):
                feats[k] = tf.train.Feature(bytes_list=tf.train.BytesList(value=v))
            elif isinstance(v[0], float):
                feats[k] = tf.train.Feature(float_list=tf.train.FloatList(value=v))
            else:
                feats[k] = tf.train.Feature(int64_list=tf.train.Int64List(value=v))
        out.append(tf.train.Example(features=tf.train.Features(feature=feats))
                   .SerializeToString())
    return np.array(out, dtype=object)


@pytest.fixture(scope="module")
def importance(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("importance")
    model = support.export(support.analyse(tmp / "t"), tmp / "m", only="hours")
    rows = support.rows(80, seed=3)
    groups = np.array([r["sex"][0].decode() for r in rows])
    return explanations.eval_importance(model, _examples(rows), groups, [("F", "M")],
                                        max_rows=50)


def test_eval_importance_of_a_one_feature_model(importance):
    assert importance["rows"] == 50
    assert list(importance["overall"])[0] == "hours"
    assert importance["overall"]["hours"] > 0.01
    assert all(v < 1e-3 * importance["overall"]["hours"]
               for k, v in importance["overall"].items() if k != "hours")
    assert set(importance["groups"]) == {"F", "M"}
    assert importance["differs_most"][0]["feature"] == "hours"


@pytest.mark.skipif(not BROWSER, reason="needs Chromium on PATH (`make test` installs it with "
                    "`make chromium`)")
def test_the_importance_section_renders_in_headless_chromium(importance, tmp_path):
    """The report's section in a real browser: no console errors; screenshot kept in
    test-artifacts/importance.png."""
    page = tmp_path / "importance.html"
    page.write_text(f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>t"
                    f"</title><style>{run_report.STYLE}</style></head><body>"
                    f"{run_report.importance_section(importance, 'sex')}</body></html>")
    artifacts = REPO / "test-artifacts"
    artifacts.mkdir(exist_ok=True)
    shot = chromium(page.as_uri(), f"--screenshot={artifacts / 'importance.png'}")
    assert shot.returncode == 0, shot.stderr[-2000:]
    assert [line for line in shot.stderr.splitlines() if "CONSOLE" in line] == []
    dom = chromium(page.as_uri(), "--dump-dom").stdout
    assert 'id="importance-table"' in dom and 'id="importance-gaps"' in dom
    assert "hours (" in dom.split('id="importance-gaps"')[1]
    assert "sex=F" in dom and "sex=M" in dom
    none = run_report.importance_section(None, "sex", "no 'explain_from_examples' signature")
    assert "no explanations" in none
