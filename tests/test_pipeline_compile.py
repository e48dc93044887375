"""Compile the DAG to IR without running it: catches wiring mistakes in seconds."""
import json

import pytest
from tfx.dsl.compiler import compiler

from pipeline import config
from pipeline import pipeline as pipeline_lib
from pipeline.inputs import Input


def compile_nodes(cfg, tmp_path, **kwargs):
    data = Input(tmp_path / "csv", presplit=cfg.dataset.name == "census",
                 schema=cfg.dataset.schema_file)
    compiled = compiler.Compiler().compile(pipeline_lib.create_pipeline(cfg, data, **kwargs))
    return {n.pipeline_node.node_info.id: n.pipeline_node for n in compiled.nodes}


@pytest.fixture(params=["census", "taxi"])
def ir(request, tmp_path):
    cfg = config.preset(request.param, output_dir=tmp_path)
    return cfg, compile_nodes(cfg, tmp_path)


TEACHER, STUDENT = pipeline_lib.TEACHER, pipeline_lib.STUDENT


def test_every_component_is_wired(ir):
    _, nodes = ir
    assert set(nodes) == {"CsvExampleGen", "StatisticsGen", "ImportSchemaGen", "ExampleValidator",
                          "DataGate", "Transform", TEACHER, STUDENT,
                          "latest_blessed_model_resolver", "Evaluator", "ServingCheck", "Pusher",
                          "previous_statistics_resolver"}
    assert "DataGate" in nodes["Transform"].upstream_nodes
    assert {"ExampleValidator", "StatisticsGen", "previous_statistics_resolver"} <= \
        set(nodes["DataGate"].upstream_nodes)
    # Drift is measured against the last data that passed the gate, not the last data seen.
    [channel] = nodes["previous_statistics_resolver"].inputs.inputs[
        "_DataGate.accepted"].channels
    node_query = [q for q in channel.context_queries if q.type.name == "node"][0]
    assert node_query.name.field_value.string_value.endswith(".DataGate")
    assert channel.output_key == "accepted"
    # The student learns from the teacher; the student is evaluated and pushed.
    assert TEACHER in nodes[STUDENT].upstream_nodes
    assert "base_model" in nodes[STUDENT].inputs.inputs
    assert {STUDENT, "latest_blessed_model_resolver"} <= set(nodes["Evaluator"].upstream_nodes)
    assert TEACHER not in nodes["Evaluator"].upstream_nodes
    # The Pusher pushes the serving check's copy (warmup requests inside) of the student.
    assert STUDENT in nodes["ServingCheck"].upstream_nodes
    assert {"ServingCheck", "Evaluator"} == set(nodes["Pusher"].upstream_nodes)
    assert set(nodes["Pusher"].inputs.inputs) == {"infra_blessing", "model_blessing"}


def test_without_distillation_the_teacher_is_pushed(tmp_path):
    cfg = config.preset("census", output_dir=tmp_path,
                        overrides={"distillation": {"enabled": False}})
    nodes = compile_nodes(cfg, tmp_path)
    assert STUDENT not in nodes and TEACHER in nodes["ServingCheck"].upstream_nodes


def test_compare_adds_a_baseline_without_mindiff(tmp_path):
    cfg = config.preset("census", output_dir=tmp_path)
    nodes = compile_nodes(cfg, tmp_path, with_baseline=True)
    baseline = json.loads(nodes[pipeline_lib.BASELINE].parameters.parameters[
        "custom_config"].field_value.string_value)
    teacher = json.loads(nodes[TEACHER].parameters.parameters[
        "custom_config"].field_value.string_value)
    assert baseline["mindiff"]["weight"] == 0 and teacher["mindiff"]["weight"] > 0
    assert {k: v for k, v in baseline.items() if k != "mindiff"} == \
        {k: v for k, v in teacher.items() if k != "mindiff"}
    assert pipeline_lib.BASELINE not in nodes["Evaluator"].upstream_nodes


def test_pusher_targets_the_serving_layout(ir):
    cfg, nodes = ir
    dest = nodes["Pusher"].parameters.parameters["push_destination"].field_value.string_value
    assert str(cfg.serving_dir / cfg.model_name) in dest


def test_trainer_and_transform_use_installed_module_paths(ir):
    _, nodes = ir
    params = {k: v.field_value.string_value
              for k, v in nodes[TEACHER].parameters.parameters.items()}
    assert params["run_fn"] == pipeline_lib.RUN_FN
    student = nodes[STUDENT].parameters.parameters["run_fn"].field_value.string_value
    assert student == pipeline_lib.STUDENT_RUN_FN
    t = {k: v.field_value.string_value for k, v in nodes["Transform"].parameters.parameters.items()}
    assert t["preprocessing_fn"] == pipeline_lib.PREPROCESSING_FN
    assert "module_file" not in t or not t["module_file"]


def test_custom_components_keep_their_keys_and_parameters(ir):
    """MLMD lineage, the drift resolver and compiled Vertex specs name these: renaming one
    breaks the next run's link to the previous ones."""
    _, nodes = ir
    gate, check = nodes["DataGate"], nodes["ServingCheck"]
    assert set(gate.inputs.inputs) == {"anomalies", "statistics", "schema",
                                       "previous_statistics"}
    assert set(gate.outputs.outputs) == {"accepted"}
    assert set(gate.parameters.parameters) == {"sensitive", "groups"}
    assert gate.node_info.type.name == "pipeline.components.DataGate"
    assert set(check.inputs.inputs) == {"model", "examples"}
    assert set(check.outputs.outputs) == {"blessing"}
    # split and num_examples keep their defaults (an unset default is not in the IR).
    assert {"model_name"} <= set(check.parameters.parameters) <= {"model_name", "split",
                                                                  "num_examples"}
    assert check.node_info.type.name == "pipeline.components.ServingCheck"
