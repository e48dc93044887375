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


# --- `fairway compare --seeds N` (#22) ---------------------------------------------------------


def seed_result(seed, student_gap=0.04, student_auc=0.903, blessed=True, latency=True):
    """A seed's `measure` result: baseline FPR gap 0.10, teacher gap 0.04 (a 60 % cut)."""
    r = result()
    r["models"]["student"] = _model(student_auc, 0.04, 0.04 + student_gap, 600, 0.5)
    if not latency:
        for m in r["models"].values():
            del m["latency"]
    return {"seed": seed, **r, "blessed": blessed,
            "blessing_failures": [] if blessed else ["auc on Overall = 0.80; required lower_bound 0.85"]}


def seeds(*student_gaps, blessed=None):
    blessed = blessed or [True] * len(student_gaps)
    return [seed_result(i + 1, g, 0.903 - 0.001 * i, b, latency=i == 0)
            for i, (g, b) in enumerate(zip(student_gaps, blessed))]


@pytest.mark.parametrize("xs", [
    [0.0, 0.0, 1.0],  # n = 3, 5, 8: one seed as far from the rest as a sample allows
    [0.0, 0.0, 0.0, 0.0, 1.0],
    [0.0] * 7 + [1.0],
    [0.912, 0.905, 0.899],
    [0.61, 0.2, 0.55, 0.58, 0.6],
])
def test_the_95_percent_interval_holds_every_seed(xs):
    from scipy import stats

    d = compare.describe(xs)
    assert d["lo"] <= min(xs) and max(xs) <= d["hi"], d
    assert (d["mean"], d["min"], d["max"], d["values"]) == (
        pytest.approx(np.mean(xs)), min(xs), max(xs), xs)
    n, s = len(xs), np.std(xs, ddof=1)
    if xs[-1] == 1.0 and n >= 5:  # the wrong formulas miss the outlying seed
        t = stats.t.ppf(0.975, n - 1)
        assert np.mean(xs) + t * s / np.sqrt(n) < 1.0  # the mean's confidence interval
        if n == 8:
            assert np.mean(xs) + t * s < 1.0  # without √(1 + 1/n)
            assert np.mean(xs) + t * np.std(xs) * np.sqrt(1 + 1 / n) < 1.0  # population s


def test_the_interval_is_the_t_prediction_interval():
    lo, hi = compare.interval([1.0, 2.0, 3.0])  # mean 2, s 1, t(0.975, 2) = 4.302653
    assert (lo, hi) == (pytest.approx(2 - 4.302653 * (4 / 3) ** 0.5),
                        pytest.approx(2 + 4.302653 * (4 / 3) ** 0.5))
    assert all(np.isnan(compare.interval([0.5])))


def test_seeds_are_summarised_per_model_with_derived_values():
    cfg = config.preset("census")
    r = compare.summarize(seeds(0.04, 0.03, 0.05), cfg)
    assert sorted(r["summary"]) == ["baseline", "student", "teacher"]
    assert sorted(r["summary"]["baseline"]) == ["accuracy", "auc", "fnr_gap", "fpr_gap"]
    student = r["summary"]["student"]
    assert student["fpr_gap"]["values"] == pytest.approx([0.04, 0.03, 0.05])
    assert student["fpr_gap_cut"]["values"] == pytest.approx([0.6, 0.7, 0.5])
    assert student["fpr_gap_cut"]["mean"] == pytest.approx(0.6)
    assert (student["fpr_gap_cut"]["min"], student["fpr_gap_cut"]["max"]) == (
        pytest.approx(0.5), pytest.approx(0.7))
    assert student["kept_reduction"]["values"] == pytest.approx([1.0, 0.7 / 0.6, 0.5 / 0.6])
    assert student["auc_drop"]["values"] == pytest.approx([0.007, 0.008, 0.009])
    assert r["summary"]["teacher"]["fpr_gap_cut"]["values"] == pytest.approx([0.6] * 3)
    for model, by_key in r["summary"].items():
        for key, d in by_key.items():
            assert d["lo"] <= d["min"] <= d["mean"] <= d["max"] <= d["hi"], (model, key)
    assert r["latency_seed"] == 1 and sorted(r["latency"]) == ["baseline", "student", "teacher"]
    checks = {c["check"]: c for c in r["checks"]}
    assert all(c["met"] for c in checks.values()), checks
    cut = checks["the student cuts the FPR gap (vs baseline)"]
    assert (cut["value"], cut["worst"], cut["judged_on"]) == (pytest.approx(0.6),
                                                             pytest.approx(0.5), "mean")
    speedup = checks["batch-1 speed-up of the student (graph p50)"]  # timed on seed 1 only
    assert speedup["value"] == speedup["worst"] == pytest.approx(4.0)
    assert speedup["judged_on"] == "seed 1"
    assert checks["AUC cost of MinDiff"]["worst"] == pytest.approx(0.005)


def test_one_bad_seed_fails_the_worst_seed_target_while_the_mean_passes():
    cfg = config.preset("census")
    r = compare.summarize(seeds(0.03, 0.03, 0.07), cfg)  # student cuts 70 %, 70 %, 30 %
    checks = {c["check"]: c for c in r["checks"]}
    mean = checks["the student cuts the FPR gap (vs baseline)"]
    assert mean["met"] and mean["value"] == pytest.approx(0.5667, abs=1e-4)
    worst = checks["the student cuts the FPR gap on the worst seed"]
    assert not worst["met"] and worst["value"] == worst["worst"] == pytest.approx(0.3)
    assert worst["judged_on"] == "worst seed"


def test_blessed_on_every_seed_fails_when_one_seed_is_not_blessed():
    cfg = config.preset("census")
    every = "the Evaluator blesses the student"
    ok = {c["check"]: c for c in compare.summarize(seeds(0.04, 0.04, 0.04), cfg)["checks"]}
    assert ok[every]["met"] and ok[every]["value"] == 1.0
    r = compare.summarize(seeds(0.04, 0.04, 0.04, blessed=[True, False, True]), cfg)
    bad = {c["check"]: c for c in r["checks"]}[every]
    assert not bad["met"] and bad["value"] == pytest.approx(2 / 3) and bad["worst"] == 0.0
    assert "| the Evaluator blesses the student | 2/3 seeds | NO | on every seed | every seed " \
           "| NO |" in compare.render(r)
    assert "- seed 2 not blessed: auc on Overall = 0.80" in compare.render(r)


def test_the_new_targets_come_from_the_config(tmp_path):
    raw = {"dataset": {"name": "census", "source": "census", "label": "income",
                       "numeric": ["age"], "categorical": ["sex"], "sensitive": "sex",
                       "groups": ["Female", "Male"]},
           "compare": {"min_student_gap_cut": 0.7, "min_kept_reduction": 1.2}}
    cfg = config.from_dict(raw)
    assert (cfg.compare.min_student_gap_cut, cfg.compare.min_worst_student_gap_cut,
            cfg.compare.max_student_auc_drop, cfg.compare.min_kept_reduction) == (0.7, 0.4,
                                                                                  0.01, 1.2)
    checks = {c["check"]: c for c in compare.summarize(seeds(0.04, 0.04), cfg)["checks"]}
    assert not checks["the student cuts the FPR gap (vs baseline)"]["met"]  # 60 % < 70 %
    assert not checks["share of MinDiff's FPR-gap cut the student keeps"]["met"]  # 1.0 < 1.2
    raw["compare"] = {"min_worst_student_gap_cut": 1.5}
    with pytest.raises(config.ConfigError, match=r"compare.min_worst_student_gap_cut.*\[0.0, 1.0\]"):
        config.from_dict(raw)


def test_seeds_report_files(tmp_path):
    r = compare.summarize(seeds(0.04, 0.03, 0.05), config.preset("census"))
    paths = compare.write(r, tmp_path / "cmp")
    md = paths["markdown"].read_text()
    assert md == compare.render(r) and "3 seeds" in md
    assert "| 2 | 0.9100 / 0.1000 | 0.9050 / 0.0400 (60%) | 0.9020 / 0.0300 (70%) | yes |" in md
    assert "| student | FPR-gap cut vs baseline | 0.6000 | 0.5000 | 0.7000 | [" in md
    assert "| student | share of the teacher's cut kept |" in md
    assert "| the student cuts the FPR gap (vs baseline) | 0.6000 | 0.5000 | >= 50% | mean " \
           "| yes |" in md
    saved = json.loads(paths["json"].read_text())
    assert [s["seed"] for s in saved["seeds"]] == [1, 2, 3]
    assert all(isinstance(s["blessed"], bool) and s["blessing_failures"] == []
               for s in saved["seeds"])
    assert saved["seeds"][1]["models"]["student"]["fpr_gap"] == pytest.approx(0.03)
    assert set(saved["summary"]["student"]["auc"]) == {"mean", "min", "max", "lo", "hi",
                                                       "values"}
    assert all({"check", "value", "worst", "target", "met"} <= set(c) for c in saved["checks"])
    assert paths["plot"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_seed_runs_use_a_side_folder_and_time_the_first_seed_only(tmp_path, monkeypatch):
    from runners import local

    cfg = config.from_dict({"dataset": {
        "name": "census", "source": "census", "label": "income", "numeric": ["age"],
        "categorical": ["sex"], "sensitive": "sex", "groups": ["Female", "Male"]},
        "pipeline": {"mysql": {"host": "db.example", "database": "mlmd"}}},
        output_dir=tmp_path / "out")
    runs, lines = [], []
    monkeypatch.setattr(local, "run", lambda c, with_baseline: runs.append(c) or 12.0)
    monkeypatch.setattr(compare.metadata, "run_summary",
                        lambda c: {"blessed": c.training.seed != 2})

    def fake_measure(c, summary, progress, latency):
        return {k: v for k, v in seed_result(c.training.seed, latency=latency,
                                             blessed=summary["blessed"]).items() if k != "seed"}

    monkeypatch.setattr(compare, "measure", fake_measure)
    r = compare.measure_seeds(cfg, 3, progress=lines.append)
    assert [c.training.seed for c in runs] == [1, 2, 3]
    assert {c.output_dir for c in runs} == {tmp_path / "out" / "compare" / "seeds"}
    assert all(c.mysql is None and c.training.train_steps == cfg.training.train_steps
               for c in runs)  # never the user's (MySQL) store
    assert [s["seed"] for s in r["seeds"]] == [1, 2, 3]
    assert ["latency" in s["models"]["student"] for s in r["seeds"]] == [True, False, False]
    assert [s["blessed"] for s in r["seeds"]] == [True, False, True]
    assert lines[0].startswith("seed 1/3: training (training.seed = 1) ...")
    assert any(line.startswith("seed 2/3: done in ") and "min left" in line for line in lines)
    assert not (tmp_path / "out" / "metadata.sqlite").exists()


@pytest.mark.parametrize("value, message", [
    ("0", "argument --seeds: expected a positive number, got 0"),
    ("-1", "argument --seeds: expected a positive number, got -1"),
    ("x", "argument --seeds: expected a whole number, got 'x'"),
    ("2.5", "argument --seeds: expected a whole number, got '2.5'"),
    ("21", "argument --seeds: expected at most 20 seeds, got 21"),
])
def test_bad_seeds_are_usage_errors(capsys, value, message):
    from runners import cli

    with pytest.raises(SystemExit) as e:
        cli.main(["compare", "--seeds", value, "--sample", "2000"])
    assert e.value.code == 2
    assert message in capsys.readouterr().err


def test_seeds_combine_with_the_run_options(tmp_path, monkeypatch, capsys):
    from runners import cli

    args = cli.parser().parse_args(["compare", "--dataset", "census",
                                    "--seeds", "20", "--sample", "500", "--train-steps", "30"])
    assert (args.seeds, args.sample, args.train_steps) == (20, 500, 30)
    assert cli.parser().parse_args(["compare"]).seeds == 1
    seen = {}

    def fake_seeds(cfg, n):
        seen.update(n=n, cfg=cfg)
        return compare.summarize(seeds(0.04, 0.03), cfg)

    monkeypatch.setattr(compare, "measure_seeds", fake_seeds)
    assert cli.main(["compare", "--seeds", "2", "--sample", "500", "--train-steps", "30",
                     "--output", str(tmp_path)]) == 0
    assert seen["n"] == 2 and seen["cfg"].sample == 500
    assert seen["cfg"].training.train_steps == 30
    out = capsys.readouterr().out
    assert "# Fairway comparison: census, 2 seeds" in out
    assert json.loads((tmp_path / "compare" / "comparison.json").read_text())["summary"]


def test_one_run_keeps_todays_checks():
    names = [c["check"] for c in compare.checks(result(), config.preset("census"))]
    assert names == ["MinDiff cuts the FPR gap (vs baseline)", "AUC cost of MinDiff",
                     "student AUC", "student AUC below teacher", "student / teacher parameters",
                     "batch-1 speed-up of the student (graph p50)"]
