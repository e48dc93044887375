"""End-to-end runs with LocalDagRunner on small samples; assertions read MLMD and the pushed model.

Select with `-m e2e`; each run takes a minute or two on 2 cores.
"""
import csv
import pathlib

import numpy as np
import pytest
import tensorflow as tf

from data import acquire
from modules import signatures
from pipeline import config, metadata
from runners import cli

pytestmark = pytest.mark.e2e
SAMPLE, STEPS = "2000", "200"


def run(out: pathlib.Path, *extra: str) -> int:
    return cli.main(["run", "--sample", SAMPLE, "--train-steps", STEPS, "--output", str(out),
                     *extra])


def states(summary) -> dict[str, str]:
    return {n["node"]: n["state"] for n in summary["nodes"]}


def versions(cfg) -> list[str]:
    model_dir = cfg.serving_dir / cfg.model_name
    return sorted(p.name for p in model_dir.iterdir()) if model_dir.exists() else []


@pytest.fixture(scope="module")
def census(tmp_path_factory):
    out = tmp_path_factory.mktemp("census")
    assert run(out) == 0
    cfg = config.preset("census", output_dir=out)
    return cfg, metadata.run_summary(cfg)


def eval_rows(n: int) -> list[dict[str, str]]:
    path = config.data_home() / "census" / "eval" / "adult.test.csv"
    with path.open() as f:
        return [row for _, row in zip(range(n), csv.DictReader(f))]


def test_every_node_completes_and_the_model_is_pushed(census):
    cfg, summary = census
    assert set(states(summary).values()) == {"COMPLETE"}, states(summary)
    assert len(summary["nodes"]) == 10
    assert summary["blessed"] is True and summary["pushed"] is True
    assert versions(cfg) == [str(summary["pushed_version"])]


def test_auc_is_well_above_chance_overall_and_per_sex(census):
    _, summary = census
    metrics = summary["metrics"]
    assert metrics["Overall"]["auc"] > 0.8
    assert metrics["Overall"]["example_count"] == 2000
    fpr = "fairness_indicators_metrics/false_positive_rate@0.5"
    for group in ("sex=Female", "sex=Male"):
        assert metrics[group]["auc"] > 0.75, group
        assert 0.0 <= metrics[group][fpr] < 0.5, group  # Fairness Indicators per group
    assert any(k.startswith("race=") for k in metrics)


def test_pushed_model_serves_raw_rows_and_examples_alike(census):
    cfg, summary = census
    model = tf.saved_model.load(summary["pushed_to"])
    rows = eval_rows(64)
    spec = cfg.dataset
    raw = {k: tf.constant([r[k] for r in rows]) for k in spec.categorical}
    raw |= {k: tf.constant([int(r[k]) for r in rows], tf.int64) for k in spec.numeric}
    probs = model.signatures[signatures.RAW_SIGNATURE](**raw)[signatures.OUTPUT_KEY].numpy()
    assert probs.shape == (64,) and ((probs >= 0) & (probs <= 1)).all()
    assert probs.std() > 0.01  # not a constant

    def example(r):
        feats = {k: tf.train.Feature(bytes_list=tf.train.BytesList(value=[r[k].encode()]))
                 for k in spec.categorical if r[k]}
        feats |= {k: tf.train.Feature(int64_list=tf.train.Int64List(value=[int(r[k])]))
                  for k in spec.numeric}
        return tf.train.Example(features=tf.train.Features(feature=feats)).SerializeToString()

    by_example = model.signatures[signatures.EXAMPLES_SIGNATURE](
        examples=tf.constant([example(r) for r in rows]))[signatures.OUTPUT_KEY].numpy()
    np.testing.assert_allclose(by_example, probs, rtol=1e-5, atol=1e-6)
    labels = np.array([int(r["income"]) for r in rows])
    assert probs[labels == 1].mean() > probs[labels == 0].mean()


def test_immediate_rerun_is_served_from_cache(census):
    cfg, _ = census
    assert run(cfg.output_dir) == 0
    rerun = states(metadata.run_summary(cfg))
    for node in ("CsvExampleGen", "ImportSchemaGen", "StatisticsGen", "ExampleValidator",
                 "DataGate", "Transform", "Trainer"):
        assert rerun[node] == "CACHED", (node, rerun)


def test_bad_data_stops_before_pusher_and_keeps_what_is_served(census, tmp_path, capsys):
    cfg, _ = census
    served = versions(cfg)
    sample = next((cfg.input_dir).glob("sample-*"))
    for split in ("train", "eval"):
        lines = (sample / split / "data.csv").read_text().splitlines()
        rows = [lines[0]] + [("thirty" + l[l.index(","):]) if i % 3 == 0 else l
                             for i, l in enumerate(lines[1:])]
        (tmp_path / split).mkdir()
        (tmp_path / split / "data.csv").write_text("\n".join(rows) + "\n")
    capsys.readouterr()
    assert run(cfg.output_dir, "--data", str(tmp_path)) == 1
    err = capsys.readouterr().err
    assert "feature 'age'" in err and "nothing was trained or pushed" in err
    assert versions(cfg) == served
    bad = metadata.run_summary(cfg)  # the store still reads
    assert "Pusher" not in states(bad) and "Trainer" not in states(bad)
    assert states(bad)["DataGate"] == "FAILED"


def test_taxi_runs_through_the_same_pipeline(tmp_path):
    assert cli.main(["run", "--dataset", "taxi", "--sample", "1500", "--train-steps", "100",
                     "--output", str(tmp_path)]) == 0
    cfg = config.preset("taxi", output_dir=tmp_path)
    summary = metadata.run_summary(cfg)
    assert set(states(summary).values()) == {"COMPLETE"}
    assert summary["metrics"]["Overall"]["auc"] > 0.7
    assert any(k.startswith("payment_type=") for k in summary["metrics"])


def test_a_failing_component_is_named_with_the_log(tmp_path, write, capsys):
    write("csv/train/a.csv", "age,sex,income\n30,Male,0\n40,Female,1\n")
    write("csv/eval/a.csv", "age,sex,income\n35,Male,1\n")
    schema = write("broken.pbtxt", "feature { name: 'age' type: NOT_A_TYPE }")
    cfg = write("cfg.toml", f"""
[dataset]
name = "broken"
csv_dir = "csv"
schema = "{schema}"
numeric = ["age"]
categorical = ["sex"]
label = "income"
""")
    assert cli.main(["run", "--config", str(cfg), "--output", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err
    assert "component ImportSchemaGen failed" in err
    log = pathlib.Path(err.split("Full log: ")[1].strip())
    assert "Traceback" in log.read_text()
