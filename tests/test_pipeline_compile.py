"""Compile the DAG to IR without running it: catches wiring mistakes in seconds."""
import pathlib

import pytest
from tfx.dsl.compiler import compiler

from pipeline import config
from pipeline import pipeline as pipeline_lib


@pytest.fixture(params=["census", "taxi"])
def ir(request, tmp_path):
    cfg = config.preset(request.param, output_dir=tmp_path)
    data = pipeline_lib.Input(tmp_path / "csv", presplit=request.param == "census",
                              schema=cfg.dataset.schema_file)
    compiled = compiler.Compiler().compile(pipeline_lib.create_pipeline(cfg, data))
    return cfg, {n.pipeline_node.node_info.id: n.pipeline_node for n in compiled.nodes}


def test_every_component_is_wired(ir):
    _, nodes = ir
    assert set(nodes) == {"CsvExampleGen", "StatisticsGen", "ImportSchemaGen", "ExampleValidator",
                          "DataGate", "Transform", "Trainer", "latest_blessed_model_resolver",
                          "Evaluator", "Pusher"}
    assert "DataGate" in nodes["Transform"].upstream_nodes
    assert "ExampleValidator" in nodes["DataGate"].upstream_nodes
    assert {"Trainer", "latest_blessed_model_resolver"} <= set(nodes["Evaluator"].upstream_nodes)
    assert {"Trainer", "Evaluator"} <= set(nodes["Pusher"].upstream_nodes)


def test_pusher_targets_the_serving_layout(ir):
    cfg, nodes = ir
    dest = nodes["Pusher"].parameters.parameters["push_destination"].field_value.string_value
    assert str(cfg.serving_dir / cfg.model_name) in dest


def test_trainer_and_transform_use_installed_module_paths(ir):
    _, nodes = ir
    params = {k: v.field_value.string_value
              for k, v in nodes["Trainer"].parameters.parameters.items()}
    assert params["run_fn"] == pipeline_lib.RUN_FN
    t = {k: v.field_value.string_value for k, v in nodes["Transform"].parameters.parameters.items()}
    assert t["preprocessing_fn"] == pipeline_lib.PREPROCESSING_FN
    assert "module_file" not in t or not t["module_file"]
