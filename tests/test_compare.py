"""The comparison report's arithmetic and files (the models themselves are e2e-tested)."""
import json

import numpy as np
import pytest

from pipeline import config
from runners import compare


def brute_force_auc(labels, scores):
    pos, neg = scores[labels == 1], scores[labels == 0]
    wins = (pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()
    return wins / (len(pos) * len(neg))


def test_auc_matches_the_pairwise_definition_with_ties():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 300)
    scores = np.round(rng.random(300) + 0.3 * labels, 1)  # rounding makes ties
    assert compare.auc(labels, scores) == pytest.approx(brute_force_auc(labels, scores))
    assert compare.auc(np.array([0, 1]), np.array([0.1, 0.9])) == 1.0
    assert np.isnan(compare.auc(np.array([1, 1]), np.array([0.1, 0.9])))


def test_group_rates_count_errors_per_group():
    labels = np.array([0, 0, 1, 1, 0, 0, 1, 1])
    scores = np.array([0.9, 0.1, 0.8, 0.2, 0.1, 0.1, 0.9, 0.9])
    groups = np.array(["F"] * 4 + ["M"] * 4)
    rates = compare.group_rates(labels, scores, groups, 0.5)
    assert rates["F"]["fpr"] == 0.5 and rates["F"]["fnr"] == 0.5
    assert rates["M"]["fpr"] == 0.0 and rates["M"]["fnr"] == 0.0
    assert rates["M"]["rows"] == 4


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
