"""The TFMA EvalConfig: metrics, slices and the blessing thresholds, all from the config."""
from __future__ import annotations

import json

import tensorflow_model_analysis as tfma

from modules import signatures
from pipeline import tfma_metrics
from pipeline.config import PipelineConfig


def key_metrics(threshold: float) -> tuple[tuple[str, str], ...]:
    """(column label, metric key) of the metrics reports show, the rates at `threshold` (the
    decision threshold; Fairness Indicators computes them at evaluation.fairness_thresholds)."""
    fi = "fairness_indicators_metrics/{}@{:g}"
    return (("count", "example_count"), ("auc", "auc"), ("accuracy", "binary_accuracy"),
            ("precision", "precision"), ("recall", "recall"), ("calibration", "calibration"),
            (f"fpr@{threshold:g}", fi.format("false_positive_rate", threshold)),
            (f"fnr@{threshold:g}", fi.format("false_negative_rate", threshold)),
            ("fpr gap", "false_positive_rate_gap"))


def fairness_thresholds(cfg: PipelineConfig) -> list[float]:
    """The thresholds Fairness Indicators computes its rates at: the configured cut-offs and
    the decision threshold."""
    ev = cfg.evaluation
    return sorted({*ev.fairness_thresholds, ev.decision_threshold})


CI_METHODS = {"bootstrap": tfma.ConfidenceIntervalOptions.POISSON_BOOTSTRAP,
              "jackknife": tfma.ConfidenceIntervalOptions.JACKKNIFE}


def _overall(threshold: tfma.MetricThreshold) -> list[tfma.PerSliceMetricThreshold]:
    # Gate on the overall slice only: tiny slices have noisy (or undefined) metrics.
    return [tfma.PerSliceMetricThreshold(slicing_specs=[tfma.SlicingSpec()], threshold=threshold)]


def _fairness_gate(cfg: PipelineConfig) -> list[tfma.MetricConfig]:
    """|FPR(protected) - FPR(reference)| <= max_fpr_gap at the decision threshold (Fairway's own
    metric: TFMA 0.47's cross-slice thresholds never pass, see pipeline/tfma_metrics.py)."""
    ds = cfg.dataset
    if not ds.groups:
        return []
    protected, reference = ds.groups
    return [tfma.MetricConfig(
        class_name="FalsePositiveRateGap", module=tfma_metrics.__name__,
        config=json.dumps({"feature": ds.sensitive, "protected": protected,
                           "reference": reference,
                           "threshold": cfg.evaluation.decision_threshold}),
        per_slice_thresholds=_overall(tfma.MetricThreshold(
            value_threshold=tfma.GenericValueThreshold(
                upper_bound={"value": cfg.evaluation.max_fpr_gap}))))]


def build(cfg: PipelineConfig) -> tfma.EvalConfig:
    ev = cfg.evaluation
    auc_threshold = tfma.MetricThreshold(
        value_threshold=tfma.GenericValueThreshold(lower_bound={"value": ev.min_auc}),
        # No regression against the last blessed model beyond the tolerated drop.
        change_threshold=tfma.GenericChangeThreshold(
            direction=tfma.MetricDirection.HIGHER_IS_BETTER,
            absolute={"value": -ev.max_auc_drop}))
    thresholds = {"thresholds": [ev.decision_threshold]}
    # The baseline (the last blessed model) is needed for the AUC change threshold only: every
    # other metric is computed for the candidate alone, which halves the Evaluator's per-slice
    # work once a baseline exists. Without a baseline TFMA names the one model "" and both
    # specs apply to it.
    compared = [tfma.MetricConfig(class_name="AUC",
                                  per_slice_thresholds=_overall(auc_threshold))]
    metrics = [
        tfma.MetricConfig(class_name="ExampleCount"),
        tfma.MetricConfig(class_name="BinaryAccuracy",
                          config=json.dumps({"threshold": ev.decision_threshold})),
        tfma.MetricConfig(class_name="Precision", config=json.dumps(thresholds)),
        tfma.MetricConfig(class_name="Recall", config=json.dumps(thresholds)),
        tfma.MetricConfig(class_name="Calibration"),
        tfma.MetricConfig(class_name="MeanLabel"),
        tfma.MetricConfig(class_name="MeanPrediction"),
        # TFMA 0.47 has no built-in FairnessIndicators: it comes from fairness-indicators.
        tfma.MetricConfig(class_name="FairnessIndicators",
                          module="fairness_indicators.fairness_indicators_metrics",
                          config=json.dumps({"thresholds": fairness_thresholds(cfg)})),
        tfma.MetricConfig(class_name="CalibrationPlot", config=json.dumps({"num_buckets": 100})),
        # ROC and precision-recall curves of the model view; 100 thresholds draw them.
        tfma.MetricConfig(class_name="ConfusionMatrixPlot",
                          config=json.dumps({"num_thresholds": 100})),
        *_fairness_gate(cfg),
    ]
    return tfma.EvalConfig(
        model_specs=[tfma.ModelSpec(signature_name=signatures.EXAMPLES_SIGNATURE,
                                    label_key=cfg.dataset.label,
                                    preprocessing_function_names=[])],
        slicing_specs=[tfma.SlicingSpec()] + [tfma.SlicingSpec(feature_keys=list(s))
                                             for s in cfg.dataset.slices],
        metrics_specs=[tfma.MetricsSpec(metrics=compared),
                       tfma.MetricsSpec(metrics=metrics, model_names=[tfma.CANDIDATE_KEY])],
        # The model's compiled Keras metrics would duplicate these at extra cost per slice.
        options=tfma.Options(
            include_default_metrics={"value": False},
            compute_confidence_intervals={"value": ev.confidence_intervals != "off"},
            confidence_intervals=tfma.ConfidenceIntervalOptions(
                method=CI_METHODS.get(ev.confidence_intervals,
                                      tfma.ConfidenceIntervalOptions.JACKKNIFE))))
