"""FalsePositiveRateGap's combiner on hand-made TFMA inputs (the Evaluator runs it e2e)."""
import math

import numpy as np
import tensorflow_model_analysis as tfma
from tensorflow_model_analysis.metrics import metric_types

from pipeline import tfma_metrics


def combiner(threshold=0.5):
    metric = tfma_metrics.FalsePositiveRateGap(feature="sex", protected="Female",
                                               reference="Male", threshold=threshold)
    [computation] = metric.computations(eval_config=tfma.EvalConfig(
        model_specs=[tfma.ModelSpec(label_key="income")]))
    return computation.combiner


def inputs(sex, label, prediction):
    return metric_types.StandardMetricInputs({
        "labels": np.array([label]), "predictions": np.array([prediction]),
        "example_weights": np.array([1.0]),
        "features": {"sex": np.array([sex.encode()]) if sex else None}})


def gap(rows, threshold=0.5):
    c = combiner(threshold)
    half = len(rows) // 2  # two accumulators merged, as Beam does
    accs = []
    for part in (rows[:half], rows[half:]):
        acc = c.create_accumulator()
        for row in part:
            acc = c.add_input(acc, inputs(*row))
        accs.append(acc)
    return list(c.extract_output(c.merge_accumulators(accs)).values())[0]


ROWS = [("Female", 0, 0.6), ("Female", 0, 0.2), ("Female", 0, 0.1), ("Female", 0, 0.3),
        ("Male", 0, 0.9), ("Male", 0, 0.7), ("Male", 0, 0.1), ("Male", 0, 0.2),
        ("Male", 1, 0.1), ("Female", 1, 0.9),  # positives do not count
        ("", 0, 0.9), ("Other", 0, 0.9)]  # neither group


def test_gap_is_the_absolute_fpr_difference_on_negatives():
    assert gap(ROWS) == 0.25  # Female 1/4, Male 2/4
    swapped = {"Female": "Male", "Male": "Female"}
    assert gap([(swapped.get(s, s), y, p) for s, y, p in ROWS]) == 0.25  # symmetric
    assert gap(ROWS, threshold=0.05) == 0.0  # everyone positive: FPR 1 in both groups


def test_a_group_without_negatives_gives_nan():
    assert math.isnan(gap([r for r in ROWS if r[0] != "Female" or r[1] == 1]))
