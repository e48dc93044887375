"""Compile the DAG to IR without running it: catches wiring mistakes in seconds."""
import json
import pathlib

import pytest
from ml_metadata.metadata_store import metadata_store
from ml_metadata.proto import metadata_store_pb2
from tfx import v1 as tfx
from tfx.dsl.compiler import compiler
from tfx.dsl.component.experimental.decorators import component
from tfx.v1.dsl.components import InputArtifact, OutputArtifact, Parameter
from tfx.types import standard_artifacts

from pipeline import config, metadata
from pipeline import pipeline as pipeline_lib
from pipeline.components import LatestBlessedOtherThanCandidate
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
    assert set(gate.parameters.parameters) == {"sensitive", "groups", "code_hash"}
    assert gate.node_info.type.name == "pipeline.components.DataGate"
    assert set(check.inputs.inputs) == {"model", "examples", "schema"}
    assert set(check.outputs.outputs) == {"blessing"}
    # split and num_examples keep their defaults (an unset default is not in the IR).
    assert {"model_name", "code_hash"} <= set(check.parameters.parameters) <= {
        "model_name", "split", "num_examples", "code_hash"}
    assert check.node_info.type.name == "pipeline.components.ServingCheck"


def test_the_evaluator_baseline_is_the_latest_blessed_model_other_than_the_candidate(tmp_path):
    """Compiled form: the baseline resolver runs after the candidate Trainer and takes this run's
    candidate from it (Vertex keeps TFX's built-in strategy, tests/test_vertex.py)."""
    cfg = config.preset("census", output_dir=tmp_path)
    nodes = compile_nodes(cfg, tmp_path)
    resolver = nodes["latest_blessed_model_resolver"]
    assert list(resolver.upstream_nodes) == [STUDENT]
    [graph] = resolver.inputs.input_graphs.values()
    [op] = [n.op_node for n in graph.nodes.values() if n.HasField("op_node")]
    assert op.op_type == "pipeline.components.LatestBlessedOtherThanCandidate"
    [channel] = resolver.inputs.inputs[f"_{STUDENT}.model"].channels
    assert channel.producer_node_query.id == STUDENT and channel.output_key == "model"
    # This run's candidate only: the query is scoped to the current pipeline_run.
    assert "pipeline_run" in {q.type.name for q in channel.context_queries}


# A pipeline with the same baseline wiring as create_pipeline, on stand-in components (seconds
# with LocalDagRunner): a "trainer" whose model changes with `version`, an "evaluator" that
# blesses every candidate and records which baseline it was given.

@component
def FakeTrainer(model: OutputArtifact[standard_artifacts.Model], version: Parameter[int]):
    (pathlib.Path(model.uri) / "version").write_text(str(version))


@component
def FakeEvaluator(model: InputArtifact[standard_artifacts.Model],
                  blessing: OutputArtifact[standard_artifacts.ModelBlessing],
                  baseline_model: InputArtifact[standard_artifacts.Model] = None):
    blessing.set_int_custom_property("blessed", 1)
    blessing.set_int_custom_property("current_model_id", model.id)
    blessing.set_int_custom_property("baseline_model_id",
                                     baseline_model.id if baseline_model else 0)


def _baseline_pipeline(tmp_path, version: int, strategy) -> tfx.dsl.Pipeline:
    trainer = FakeTrainer(version=version)
    candidate = {"candidate": trainer.outputs["model"]} if strategy is not None else {}
    baseline = tfx.dsl.Resolver(
        strategy_class=strategy or tfx.dsl.experimental.LatestBlessedModelStrategy,
        model=tfx.dsl.Channel(type=standard_artifacts.Model),
        model_blessing=tfx.dsl.Channel(type=standard_artifacts.ModelBlessing),
        **candidate).with_id("latest_blessed_model_resolver")
    evaluator = FakeEvaluator(model=trainer.outputs["model"],
                              baseline_model=baseline.outputs["model"])
    return tfx.dsl.Pipeline(
        pipeline_name="baseline", pipeline_root=str(tmp_path / "root"),
        components=[trainer, baseline, evaluator], enable_cache=True,
        metadata_connection_config=tfx.orchestration.metadata.sqlite_metadata_connection_config(
            str(tmp_path / "metadata.sqlite")))


def _run_baseline_pipeline(tmp_path, version: int, strategy=LatestBlessedOtherThanCandidate):
    """Run once; -> (model id, baseline model id or 0, the evaluator's state) of that run."""
    tfx.orchestration.LocalDagRunner().run(_baseline_pipeline(tmp_path, version, strategy))
    s = metadata_store.MetadataStore(
        tfx.orchestration.metadata.sqlite_metadata_connection_config(
            str(tmp_path / "metadata.sqlite")))
    executions = metadata.node_executions(s, metadata.latest_run(s, "baseline").name)
    evaluation = executions["FakeEvaluator"]
    [blessing_id] = [e.artifact_id for e in s.get_events_by_execution_ids([evaluation.id])
                     if e.type == metadata_store_pb2.Event.OUTPUT]
    [blessing] = s.get_artifacts_by_id([blessing_id])
    props = {k: v.int_value for k, v in blessing.custom_properties.items()}
    state = metadata_store_pb2.Execution.State.Name(evaluation.last_known_state)
    return props["current_model_id"], props["baseline_model_id"], state


def test_the_baseline_resolver_never_resolves_the_candidate_itself(tmp_path):
    first = _run_baseline_pipeline(tmp_path, 1)
    m1 = first[0]
    assert first == (m1, 0, "COMPLETE")  # first run: nothing blessed yet, no baseline
    # Unchanged re-run: the same (cached, blessed) candidate; the baseline stays none, so the
    # evaluation is the cached one.
    assert _run_baseline_pipeline(tmp_path, 1) == (m1, 0, "CACHED")
    # A retrained candidate is compared with the latest blessed model, the previous one ...
    retrained = _run_baseline_pipeline(tmp_path, 2)
    m2 = retrained[0]
    assert m2 != m1 and retrained == (m2, m1, "COMPLETE")
    # ... and re-running it unchanged keeps that baseline (not itself, though it is now the
    # latest blessed model) and stays cached.
    assert _run_baseline_pipeline(tmp_path, 2) == (m2, m1, "CACHED")
    # Back to the first model (its Trainer's cache): the latest blessed model other than it.
    assert _run_baseline_pipeline(tmp_path, 1) == (m1, m2, "COMPLETE")


def test_tfx_latest_blessed_model_strategy_resolves_the_candidate_itself_on_a_rerun(tmp_path):
    """Why Fairway does not use it outside Vertex: the unchanged re-run re-evaluates the cached
    candidate against itself (and the Pusher would push it again as a new version)."""
    m1, _, _ = _run_baseline_pipeline(tmp_path, 1, strategy=None)
    assert _run_baseline_pipeline(tmp_path, 1, strategy=None) == (m1, m1, "COMPLETE")


def test_the_baseline_is_a_blessed_model_with_its_newest_blessing():
    def artifact(kind, id_, **custom):
        a = kind()
        a.id = id_
        for k, v in custom.items():
            a.set_int_custom_property(k, v)
        return a

    models = {i: artifact(standard_artifacts.Model, i) for i in (1, 2, 3, 4)}
    blessings = [artifact(standard_artifacts.ModelBlessing, 10, blessed=1, current_model_id=1),
                 artifact(standard_artifacts.ModelBlessing, 12, blessed=1, current_model_id=1),
                 artifact(standard_artifacts.ModelBlessing, 11, blessed=1, current_model_id=2),
                 artifact(standard_artifacts.ModelBlessing, 13, blessed=0, current_model_id=3),
                 artifact(standard_artifacts.ModelBlessing, 14, blessed=1, current_model_id=4)]
    resolve = LatestBlessedOtherThanCandidate().resolve_artifacts

    def baseline(candidate: int, model_ids=(1, 2, 3, 4)):
        got = resolve(None, {"model": [models[i] for i in model_ids],
                             "model_blessing": blessings, "candidate": [models[candidate]]})
        assert got["candidate"] == [models[candidate]]
        return [a.id for a in got["model"]], [a.id for a in got["model_blessing"]]

    assert baseline(4) == ([2], [11])  # 3 was not blessed
    assert baseline(3) == ([4], [14])
    assert baseline(2, model_ids=(2, 1)) == ([1], [12])
    assert baseline(1, model_ids=(1,)) == ([], [])


def test_a_training_knob_changes_the_trainers_not_transform(tmp_path):
    """TFX's cache keys on a node's parameters: --train-steps must re-run only the Trainers."""
    def params(steps):
        cfg = config.preset("census", output_dir=tmp_path,
                            overrides={"training": {"train_steps": steps}})
        nodes = compile_nodes(cfg, tmp_path)
        return {n: str(nodes[n].parameters) for n in ("Transform", TEACHER, STUDENT)}

    a, b = params(100), params(250)
    assert a["Transform"] == b["Transform"]
    assert a[TEACHER] != b[TEACHER] and a[STUDENT] != b[STUDENT]
