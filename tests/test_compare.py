"""The comparison report's arithmetic and files (the models themselves are e2e-tested)."""
import json

import numpy as np
import pytest

from pipeline import config, metrics
from runners import compare


def _model(auc, fpr_f, fpr_m, params, ms):
    group = {"rows": 10, "fnr": 0.3, "auc": auc}
    return {"auc": auc, "accuracy": 0.85, "params": params, "fpr_gap": abs(fpr_f - fpr_m),
            "fnr_gap": 0.0, "groups": {"Female": {**group, "fpr": fpr_f},
                                       "Male": {**group, "fpr": fpr_m}},
            "latency": {f"batch_{b}": {k: {"p50_ms": ms * b ** 0.5, "p99_ms": 2 * ms}
                                       for k in ("call", "graph")} for b in (1, 256)}}


def result(teacher_auc=0.905, teacher_gap=0.04):
    return {"dataset": "census", "eval_rows": 10, "sensitive": "sex", "threshold": 0.5,
            "groups": ["Female", "Male"], "run_id": "r",
            "models": {"baseline": _model(0.91, 0.03, 0.13, 200_000, 2.0),
                       "teacher": _model(teacher_auc, 0.04, 0.04 + teacher_gap, 200_000, 2.0),
                       "student": _model(0.903, 0.04, 0.08, 600, 0.5)}}


def test_checks_compare_against_the_targets():
    cfg = config.preset("census")
    r = result()
    met = {c["check"]: c["met"] for c in compare.checks(r, cfg)}
    assert all(met.values()), met
    worse = {c["check"]: c for c in compare.checks(result(0.895, 0.08), cfg)}
    assert not worse["AUC cost of MinDiff"]["met"]
    assert not worse["MinDiff cuts the FPR gap (vs baseline)"]["met"]
    assert worse["MinDiff cuts the FPR gap (vs baseline)"]["value"] == pytest.approx(0.2)


def test_report_files(tmp_path):
    r = result()
    r["checks"] = compare.checks(r, config.preset("census"))
    paths = compare.write(r, tmp_path / "cmp")
    md = paths["markdown"].read_text()
    assert md.count("\n| baseline |") == 1 and "| student | 600 |" in md
    assert json.loads(paths["json"].read_text())["models"]["student"]["params"] == 600
    assert paths["plot"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_group_without_negatives_is_a_clear_error_not_a_traceback():
    cfg = config.preset("census")  # groups Female (protected), Male (reference)
    groups = np.array(["Female"] * 3 + ["Male"] * 3)
    scores = np.array([0.9, 0.2, 0.7, 0.1, 0.8, 0.6])
    fine = compare.quality(np.array([1, 0, 1, 0, 1, 0]), scores, groups, cfg)
    assert fine["fpr_gap"] == pytest.approx(0.5) and fine["fnr_gap"] == 0.0
    with pytest.raises(metrics.MetricError, match="group 'Female' has no negative examples "
                       r"\(label 0\) in the eval split \(dataset.sensitive 'sex'\): its "
                       "false-positive rate, and the FPR gap, are undefined"):
        compare.quality(np.array([1, 1, 1, 0, 1, 0]), scores, groups, cfg)
    with pytest.raises(metrics.MetricError, match="group 'Male' has no positive examples"):
        compare.quality(np.array([1, 0, 1, 0, 0, 0]), scores, groups, cfg)
    with pytest.raises(metrics.MetricError, match="group 'Male' has no rows"):
        compare.quality(np.array([1, 0, 1, 0, 1, 0]), scores, np.array(["Female"] * 6), cfg)
