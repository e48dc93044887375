"""The TFMA EvalConfig: metrics, slices and the blessing thresholds, all from the config."""
from __future__ import annotations

import json

import tensorflow_model_analysis as tfma

from modules import signatures
from pipeline.config import PipelineConfig


FPR = "false_positive_rate"  # at the decision threshold


def _fairness_gate(cfg: PipelineConfig):
    """(cross-slicing specs, thresholds): FPR(protected) - FPR(reference) within +-max_fpr_gap.

    TFMA computes a cross-slice metric as slice minus baseline slice, so the bound is two-sided.
    """
    ds = cfg.dataset
    if not ds.groups:
        return [], []
    protected, reference = ds.groups
    spec = tfma.CrossSlicingSpec(
        baseline_spec=tfma.SlicingSpec(feature_values={ds.sensitive: reference}),
        slicing_specs=[tfma.SlicingSpec(feature_values={ds.sensitive: protected})])
    gap = cfg.evaluation.max_fpr_gap
    threshold = tfma.MetricThreshold(value_threshold=tfma.GenericValueThreshold(
        lower_bound={"value": -gap}, upper_bound={"value": gap}))
    return [spec], [tfma.CrossSliceMetricThreshold(cross_slicing_specs=[spec],
                                                   threshold=threshold)]


def build(cfg: PipelineConfig) -> tfma.EvalConfig:
    ev = cfg.evaluation
    auc_threshold = tfma.MetricThreshold(
        value_threshold=tfma.GenericValueThreshold(lower_bound={"value": ev.min_auc}),
        # No regression against the last blessed model beyond the tolerated drop.
        change_threshold=tfma.GenericChangeThreshold(
            direction=tfma.MetricDirection.HIGHER_IS_BETTER,
            absolute={"value": -ev.max_auc_drop}))
    thresholds = {"thresholds": [ev.decision_threshold]}
    gap_specs, fpr_gate = _fairness_gate(cfg)
    metrics = [
        tfma.MetricConfig(class_name="ExampleCount"),
        # Gate on the overall slice only: tiny slices have noisy (or undefined) AUC.
        tfma.MetricConfig(class_name="AUC", per_slice_thresholds=[
            tfma.PerSliceMetricThreshold(slicing_specs=[tfma.SlicingSpec()],
                                         threshold=auc_threshold)]),
        tfma.MetricConfig(class_name="BinaryAccuracy",
                          config=json.dumps({"threshold": ev.decision_threshold})),
        tfma.MetricConfig(class_name="Precision", config=json.dumps(thresholds)),
        tfma.MetricConfig(class_name="Recall", config=json.dumps(thresholds)),
        tfma.MetricConfig(class_name="FallOut",
                          config=json.dumps({**thresholds, "name": FPR}),
                          cross_slice_thresholds=fpr_gate),
        tfma.MetricConfig(class_name="Calibration"),
        tfma.MetricConfig(class_name="MeanLabel"),
        tfma.MetricConfig(class_name="MeanPrediction"),
        # TFMA 0.47 has no built-in FairnessIndicators: it comes from fairness-indicators.
        tfma.MetricConfig(class_name="FairnessIndicators",
                          module="fairness_indicators.fairness_indicators_metrics",
                          config=json.dumps({"thresholds": list(ev.fairness_thresholds)})),
        tfma.MetricConfig(class_name="CalibrationPlot", config=json.dumps({"num_buckets": 100})),
    ]
    return tfma.EvalConfig(
        model_specs=[tfma.ModelSpec(signature_name=signatures.EXAMPLES_SIGNATURE,
                                    label_key=cfg.dataset.label,
                                    preprocessing_function_names=[])],
        slicing_specs=[tfma.SlicingSpec()] + [tfma.SlicingSpec(feature_keys=list(s))
                                             for s in cfg.dataset.slices],
        cross_slicing_specs=gap_specs,
        metrics_specs=[tfma.MetricsSpec(metrics=metrics)],
        # The model's compiled Keras metrics would duplicate these at extra cost per slice.
        options=tfma.Options(include_default_metrics={"value": False}))
