"""Dataflow: the Beam arguments, and an offline translation of the Beam pipeline that the
executor of Fairway's StatisticsGen node builds into the Dataflow job it would submit."""
import dataclasses

import pytest

from pipeline import config
from runners import cli, dataflow

IMAGE = "us-central1-docker.pkg.dev/my-project/fairway/fairway:1"
GOOD = ("my-project", "us-central1", "gs://fairway-bucket/tmp", IMAGE)


def test_args_ship_the_pinned_image_and_stage_under_the_temp_location():
    args = dataflow.beam_args(*GOOD)
    assert args[0] == "--runner=DataflowRunner"
    assert "--staging_location=gs://fairway-bucket/tmp/staging" in args
    assert f"--sdk_container_image={IMAGE}" in args and "--sdk_location=container" in args
    assert not any(a.startswith(("--requirements_file", "--setup_file")) for a in args)


@pytest.mark.parametrize("index, value, message", [
    (0, "My_Project", "--project"), (0, None, "--project"),
    (1, "central", "--region"), (2, "/tmp/local", "--temp-location"),
    (2, "gs://", "--temp-location"), (3, None, "--image"), (3, "a b", "--image"),
])
def test_bad_values_name_the_flag(index, value, message):
    values = list(GOOD)
    values[index] = value
    with pytest.raises(config.ConfigError, match=message):
        dataflow.beam_args(*values)


def test_cli_refuses_dataflow_without_its_flags(capsys):
    assert cli.main(["run", "--runner", "dataflow", "--project", "my-project"]) == cli.EXIT_USAGE
    assert "--region" in capsys.readouterr().err


def statistics_gen_pipeline(tmp_path, cfg):
    """`build(p)` for dataflow.translate: the Beam pipeline the executor of Fairway's own
    StatisticsGen node (from create_pipeline, with the runner's Beam arguments and job name as
    runners/local.py sets them) builds on the splits Fairway's CsvExampleGen writes, and the
    node's Beam arguments."""
    import contextlib
    import json

    import tensorflow as tf
    from tfx.dsl.components.base.base_beam_executor import BaseBeamExecutor
    from tfx.types import artifact_utils, standard_artifacts

    from pipeline import pipeline as pipeline_lib
    from pipeline.inputs import Input

    p = pipeline_lib.create_pipeline(cfg, Input(tmp_path / "csv", True, tmp_path / "s.pbtxt"))
    nodes = {c.id: c for c in p.components}
    example_gen, node = nodes["CsvExampleGen"], nodes["StatisticsGen"]
    node.with_beam_pipeline_args([f"--job_name={cfg.beam_job_name(node.id)}"])
    splits = [s["name"] for s in json.loads(example_gen.exec_properties["input_config"])["splits"]]
    examples = standard_artifacts.Examples()
    examples.uri = str(tmp_path / "CsvExampleGen" / "examples" / "1")
    examples.split_names = artifact_utils.encode_split_names(splits)
    row = tf.train.Example(features=tf.train.Features(feature={
        "age": tf.train.Feature(int64_list=tf.train.Int64List(value=[39]))}))
    for split in splits:  # one file per split, named as ExampleGen names them
        folder = tmp_path / "CsvExampleGen" / "examples" / "1" / f"Split-{split}"
        folder.mkdir(parents=True)
        with tf.io.TFRecordWriter(str(folder / "data_tfrecord-00000-of-00001.gz"),
                                  "GZIP") as w:
            w.write(row.SerializeToString())
    statistics = standard_artifacts.ExampleStatistics()
    statistics.uri = str(tmp_path / "StatisticsGen" / "statistics" / "2")
    props = {k: v for k, v in node.exec_properties.items() if v is not None}

    def build(beam_pipeline):
        executor = node.executor_spec.executor_class(BaseBeamExecutor.Context(
            make_beam_pipeline_fn=lambda: contextlib.nullcontext(beam_pipeline),
            tmp_dir=str(tmp_path / "tmp")))
        executor.Do({"examples": [examples]}, {"statistics": [statistics]}, props)

    return build, list(node.executor_spec.beam_pipeline_args), splits


def test_fairways_statistics_gen_translates_to_a_dataflow_job_offline(tmp_path):
    cfg = dataclasses.replace(config.preset("census"),
                              beam_args=tuple(dataflow.beam_args(*GOOD)))  # as `run --runner dataflow`
    build, args, splits = statistics_gen_pipeline(tmp_path, cfg)
    assert splits == ["train", "eval"]
    job = dataflow.translate(args, build)
    assert job["name"] == "fairway-census-statisticsgen" and job["type"] == "JOB_TYPE_BATCH"
    assert job["images"] == [IMAGE]  # every worker runs the pinned image
    assert job["environments"] == ["beam:env:docker:v1"]
    opts = job["options"]
    assert (opts["project"], opts["region"]) == ("my-project", "us-central1")
    assert opts["temp_location"] == "gs://fairway-bucket/tmp"
    assert opts["sdk_location"] == "container"
    top = {t for t in job["transforms"] if "/" not in t}
    for split in splits:  # read, TFDV statistics and the FeatureStats.pb write of every split
        assert {f"TFXIORead[{split}]", f"GenerateStatistics[{split}]",
                f"WriteStatsOutput[{split}]"} <= top, top
        assert any(t.startswith(f"GenerateStatistics[{split}]/RunStatsGenerators")
                   for t in job["transforms"])
