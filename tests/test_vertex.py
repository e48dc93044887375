"""`fairway compile --target vertex`: the KFP v2 spec has every node, each in the given image
with TFX's v2 entrypoint and its executor."""
import json

import pytest

from pipeline import config
from pipeline import pipeline as pipeline_lib
from pipeline.inputs import Input
from runners import cli

IMAGE = "us-central1-docker.pkg.dev/my-project/fairway/fairway:1"
FLAGS = ["--image", IMAGE, "--pipeline-root", "gs://fairway-bucket/root",
         "--input-uri", "gs://fairway-bucket/census"]


@pytest.fixture(scope="module")
def spec(tmp_path_factory):
    out = tmp_path_factory.mktemp("vertex")
    assert cli.main(["compile", "--target", "vertex", *FLAGS, "--output", str(out)]) == 0
    return json.loads((out / "compile" / "pipeline.json").read_text())


def test_every_node_is_a_task(spec):
    cfg = config.preset("census")
    p = pipeline_lib.create_pipeline(
        cfg, Input("gs://b/x", True, "/fairway/s.pbtxt"), kubeflow_v2=True)
    tasks = set(spec["pipelineSpec"]["root"]["dag"]["tasks"])
    nodes = {c.id for c in p.components}
    # TFX splits the blessed-model resolver into two KFP resolver tasks.
    assert tasks == (nodes - {"latest_blessed_model_resolver"}) | {
        "latest_blessed_model_resolver-model-resolver",
        "latest_blessed_model_resolver-model-blessing-resolver"}
    assert "previous_statistics_resolver" not in tasks  # no drift gate on Vertex (documented)


def test_every_container_runs_the_image_with_its_executor(spec):
    executors = spec["pipelineSpec"]["deploymentSpec"]["executors"]
    containers = {k.removesuffix("_executor"): v["container"]
                  for k, v in executors.items() if "container" in v}
    assert len(containers) == 11
    expected = {"CsvExampleGen": "pipeline.example_gen.Executor",
                "Transform": "tfx.components.transform.executor.Executor",
                "TeacherTrainer": "tfx.components.trainer.executor.GenericExecutor",
                "DataGate": "pipeline.components.DataGate_Executor",
                "ServingCheck": "pipeline.components.ServingCheck_Executor",
                "Pusher": "pipeline.pusher.Executor"}
    for node, c in containers.items():
        assert c["image"] == IMAGE, node
        assert c["command"] == ["python", "-m",
                                "tfx.orchestration.kubeflow.v2.container.kubeflow_v2_run_executor"]
        assert "--runner=FnApiRunner" in c["args"]  # the config's beam_args
    for node, executor in expected.items():
        args = containers[node]["args"]
        assert args[args.index("--executor_class_path") + 1] == executor, node


def test_inputs_and_root_point_at_cloud_storage(spec):
    assert spec["runtimeConfig"]["gcsOutputDirectory"] == "gs://fairway-bucket/root"
    text = json.dumps(spec)
    assert "gs://fairway-bucket/census" in text  # CsvExampleGen's input_base
    assert "/fairway/schemas/census/schema.pbtxt" in text  # the schema inside the image


@pytest.mark.parametrize("flags, message", [
    (["--pipeline-root", "/tmp/root"], "--pipeline-root: expected gs://"),
    (["--input-uri", "outputs/census"], "--input-uri: expected gs://"),
    (["--image", " "], "--image"),
])
def test_bad_flags_are_named(capsys, tmp_path, flags, message):
    argv = dict(zip(FLAGS[::2], FLAGS[1::2])) | dict(zip(flags[::2], flags[1::2]))
    code = cli.main(["compile", "--target", "vertex", *sum(map(list, argv.items()), []),
                     "--output", str(tmp_path)])
    assert code == cli.EXIT_USAGE
    assert message in capsys.readouterr().err
