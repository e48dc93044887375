"""create_pipeline: the TFX DAG, wiring only (no I/O, no paths chosen here)."""
from __future__ import annotations

import dataclasses
import json
from typing import TYPE_CHECKING

from tfx import v1 as tfx

from modules import features as F
from pipeline import code_hash, eval_config, metadata
from pipeline import components as components_lib
from pipeline import example_gen as example_gen_lib
from pipeline import pusher as pusher_lib
from pipeline.components import (DataGate, LatestBlessedOtherThanCandidate, LatestOrNone,
                                 ServingCheck)
from pipeline.config import PipelineConfig
from pipeline.inputs import Input  # runners/local.py still names it pipeline_lib.Input

if TYPE_CHECKING:
    import tensorflow_model_analysis as tfma

PREPROCESSING_FN = "modules.transform.preprocessing_fn"
RUN_FN = "modules.trainer.run_fn"
STUDENT_RUN_FN = "modules.trainer.student_run_fn"
TEACHER, STUDENT, BASELINE = "TeacherTrainer", "StudentTrainer", "BaselineTrainer"


def features(cfg: PipelineConfig) -> F.Features:
    ds = cfg.dataset
    return F.Features(ds.numeric, ds.categorical, ds.label, ds.sensitive, ds.optional,
                      ds.max_vocab)


def trainer_configs(cfg: PipelineConfig) -> tuple[dict, dict]:
    """The custom_config of the TeacherTrainer and of the StudentTrainer. Each Trainer gets only
    its own knobs, so tuning the student keeps the teacher cached."""
    teacher = {"features": features(cfg).to_config(),
               "training": dataclasses.asdict(cfg.training),
               "mindiff": {**dataclasses.asdict(cfg.mindiff), "groups": list(cfg.dataset.groups),
                           # where the rate_gap loss decides
                           "threshold": cfg.evaluation.decision_threshold}}
    return teacher, {**teacher, "distillation": dataclasses.asdict(cfg.distillation)}


def node_code(node: str, evaluation: tfma.EvalConfig | None = None) -> dict[str, str]:
    """The digests of the source files that `node` executes (pipeline.code_hash), for its cache
    key: TFX keys on the dotted names (RUN_FN, ...), not on the code behind them. {} for a node
    that runs no Fairway code (the Evaluator without a Fairway metric in `evaluation`)."""
    fn_module = {"Transform": PREPROCESSING_FN, TEACHER: RUN_FN, BASELINE: RUN_FN,
                 STUDENT: STUDENT_RUN_FN}
    if node in fn_module:
        return code_hash.digests(fn_module[node].rpartition(".")[0])
    if node in components_lib.EXECUTES:  # the component's body delegates to its module
        return code_hash.digests(components_lib.EXECUTES[node],
                                 shallow=[components_lib.__name__])
    if node == example_gen_lib.NODE_ID:
        return code_hash.digests(example_gen_lib.Executor.__module__)
    if node == pusher_lib.NODE_ID:
        return code_hash.digests(pusher_lib.__name__)
    if node == "Evaluator":  # TFMA imports a metric's module by name (MetricConfig.module)
        metric_modules = sorted({m.module for spec in evaluation.metrics_specs
                                 for m in spec.metrics
                                 if m.module.split(".")[0] in code_hash.PACKAGES})
        return code_hash.digests(*metric_modules) if metric_modules else {}
    raise KeyError(f"node_code: {node} runs no Fairway code")


def create_pipeline(cfg: PipelineConfig, data: Input, with_baseline: bool = False,
                    pipeline_root: str | None = None,
                    kubeflow_v2: bool = False) -> tfx.dsl.Pipeline:
    """The DAG; `with_baseline` adds BaselineTrainer (the teacher without MinDiff) for
    `fairway compare`. It is never evaluated or pushed. `kubeflow_v2`: the form Vertex AI
    Pipelines accepts (its resolvers know only TFX's built-in strategies; Vertex keeps the
    metadata itself)."""
    teacher_config, student_config = trainer_configs(cfg)
    # Each node that runs Fairway code gets the digests of that code as a parameter (key
    # code_hash.KEY): editing it re-runs the node, and its new artifacts what follows.
    custom_config = {"features": teacher_config["features"],
                     code_hash.KEY: node_code("Transform")}

    example_gen = example_gen_lib.component(str(data.base), data.presplit, cfg.dataset.label,
                                            dict(cfg.dataset.label_map), cfg.dataset.floats,
                                            code_hash=node_code(example_gen_lib.NODE_ID))
    statistics_gen = tfx.components.StatisticsGen(examples=example_gen.outputs["examples"])
    schema_gen = tfx.components.ImportSchemaGen(schema_file=str(data.schema))
    example_validator = tfx.components.ExampleValidator(
        statistics=statistics_gen.outputs["statistics"], schema=schema_gen.outputs["schema"])
    # Statistics of the last data that passed the DataGate: the drift reference.
    previous_statistics = tfx.dsl.Resolver(
        strategy_class=LatestOrNone,
        statistics=tfx.dsl.Channel(type=tfx.types.standard_artifacts.ExampleStatistics,
                                   producer_component_id="DataGate", output_key="accepted"),
    ).with_id("previous_statistics_resolver")
    # Vertex's resolvers cannot select DataGate's `accepted` output (their queries filter on
    # type only, which would compare with any statistics): no drift gate between runs there.
    drift = {} if kubeflow_v2 else {"previous_statistics": previous_statistics.outputs["statistics"]}
    data_gate = DataGate(anomalies=example_validator.outputs["anomalies"],
                         statistics=statistics_gen.outputs["statistics"],
                         schema=schema_gen.outputs["schema"], **drift,
                         sensitive=cfg.dataset.sensitive or "",
                         groups=json.dumps(list(cfg.dataset.groups)),
                         code_hash=code_hash.as_text(node_code("DataGate")))

    # TF1-graph tracing of preprocessing_fn: measured 60 s -> 43 s on 2 cores (no autograph);
    # the exported Transform graph still loads as a TF2 Keras layer for serving.
    transform = tfx.components.Transform(
        examples=example_gen.outputs["examples"], schema=schema_gen.outputs["schema"],
        preprocessing_fn=PREPROCESSING_FN, force_tf_compat_v1=True,
        # Features only: a training knob (e.g. --train-steps) must not re-run Transform.
        custom_config=custom_config)
    transform.add_upstream_node(data_gate)  # no training on data with anomalies

    def trainer(node: str, run_fn: str, config: dict, **inputs) -> tfx.components.Trainer:
        config = {**config, code_hash.KEY: node_code(node)}
        return tfx.components.Trainer(
            run_fn=run_fn,
            examples=transform.outputs["transformed_examples"],
            transform_graph=transform.outputs["transform_graph"],
            schema=schema_gen.outputs["schema"],
            train_args=tfx.proto.TrainArgs(num_steps=cfg.training.train_steps),
            eval_args=tfx.proto.EvalArgs(num_steps=cfg.training.eval_steps),
            custom_config=config, **inputs).with_id(node)

    teacher = trainer(TEACHER, RUN_FN, teacher_config)
    trainers = [teacher]
    if cfg.distillation.enabled:
        # base_model: MLMD lineage records which teacher trained which student.
        trainers.append(trainer(STUDENT, STUDENT_RUN_FN, student_config,
                                base_model=teacher.outputs["model"]))
    candidate = trainers[-1]  # the model that is evaluated and pushed
    if with_baseline:
        trainers.append(trainer(BASELINE, RUN_FN, {**teacher_config, "mindiff": {
            **teacher_config["mindiff"], "weight": 0.0}}))

    # The Evaluator's baseline: the latest blessed model other than this run's candidate, so an
    # unchanged re-run (cached Trainers) gives the Evaluator the inputs it had: Evaluator,
    # ServingCheck and Pusher stay cached and no new version is pushed. Vertex's resolvers know
    # only TFX's built-in strategies: there the baseline may be the candidate itself.
    candidate_channel = {} if kubeflow_v2 else {"candidate": candidate.outputs["model"]}
    baseline = tfx.dsl.Resolver(
        strategy_class=(tfx.dsl.experimental.LatestBlessedModelStrategy if kubeflow_v2
                        else LatestBlessedOtherThanCandidate),
        model=tfx.dsl.Channel(type=tfx.types.standard_artifacts.Model),
        model_blessing=tfx.dsl.Channel(type=tfx.types.standard_artifacts.ModelBlessing),
        **candidate_channel,
    ).with_id("latest_blessed_model_resolver")

    evaluation = eval_config.build(cfg)
    evaluator = tfx.components.Evaluator(
        examples=example_gen.outputs["examples"],
        model=candidate.outputs["model"],
        baseline_model=baseline.outputs["model"],
        eval_config=evaluation)
    if evaluator_code := node_code("Evaluator", evaluation):
        # The Evaluator's spec has no free parameter: one more exec property (the executor
        # reads only its own keys; the compiler and TFX's cache key take every one).
        evaluator.exec_properties[code_hash.KEY] = code_hash.as_text(evaluator_code)

    serving_check = ServingCheck(model=candidate.outputs["model"],
                                 examples=example_gen.outputs["examples"],
                                 schema=schema_gen.outputs["schema"],  # for serve --validate
                                 model_name=cfg.model_name,
                                 code_hash=code_hash.as_text(node_code("ServingCheck")))
    # Checked after the Evaluator, as the DAG reads: `run --from Evaluator` checks it again.
    serving_check.add_upstream_node(evaluator)

    pusher = pusher_lib.Pusher(  # pushes the serving check's copy, warmup file included
        model_blessing=evaluator.outputs["blessing"],
        infra_blessing=serving_check.outputs["blessing"],
        push_destination=tfx.proto.PushDestination(
            filesystem=tfx.proto.PushDestination.Filesystem(
                base_directory=str(cfg.model_base_dir))),
        custom_config={code_hash.KEY: node_code(pusher_lib.NODE_ID)})

    return tfx.dsl.Pipeline(
        pipeline_name=cfg.pipeline_name,
        pipeline_root=pipeline_root or str(cfg.pipeline_root),
        components=[*([] if kubeflow_v2 else [previous_statistics]), example_gen,
                    statistics_gen, schema_gen, example_validator, data_gate, transform,
                    *trainers, baseline, evaluator, serving_check, pusher],
        enable_cache=cfg.enable_cache,
        metadata_connection_config=None if kubeflow_v2 else metadata.connection_config(cfg),
        beam_pipeline_args=list(cfg.beam_args))
