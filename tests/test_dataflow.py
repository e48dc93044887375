"""Dataflow: the Beam arguments, and an offline translation of StatisticsGen's Beam pipeline
(TFDV's GenerateStatistics, as its executor builds it) into the Dataflow job it would submit."""
import apache_beam as beam
import pyarrow as pa
import pytest
import tensorflow_data_validation as tfdv

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


def statistics_pipeline(p):
    batch = pa.RecordBatch.from_arrays(
        [pa.array([[39], [50]]), pa.array([[b"Male"], [b"Female"]])], ["age", "sex"])
    _ = (p | "ReadExamples" >> beam.Create([batch])
         | tfdv.GenerateStatistics() | tfdv.WriteStatisticsToBinaryFile(
             "gs://fairway-bucket/root/StatisticsGen/statistics/1/Split-train/FeatureStats.pb"))


def test_a_component_pipeline_translates_to_a_dataflow_job_offline():
    cfg = config.preset("census")
    name = cfg.beam_job_name("StatisticsGen")
    job = dataflow.translate([*dataflow.beam_args(*GOOD), f"--job_name={name}"],
                             statistics_pipeline)
    assert job["name"] == "fairway-census-statisticsgen" and job["type"] == "JOB_TYPE_BATCH"
    assert job["images"] == [IMAGE]  # every worker runs the pinned image
    assert job["environments"] == ["beam:env:docker:v1"]
    opts = job["options"]
    assert (opts["project"], opts["region"]) == ("my-project", "us-central1")
    assert opts["temp_location"] == "gs://fairway-bucket/tmp"
    assert any(t.startswith("GenerateStatistics/RunStatsGenerators") for t in job["transforms"])
    assert any(t.startswith("WriteStatisticsToBinaryFile") for t in job["transforms"])
