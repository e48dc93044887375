"""Fairway's own TFMA metric: the false-positive-rate gap between two groups, in one slice.

TFMA 0.47's cross-slice thresholds cannot bless: a passing cross-slice check is recorded under
the overall slice and then reported as a missing cross slice (metrics_validator hashes only
`slicing_spec`), so validation always fails. This metric puts the gap in the ordinary slices,
where a per-slice threshold works. Loaded by TFMA by module path (MetricConfig.module).
"""
from __future__ import annotations

from typing import Dict, Iterable, List, Optional

import apache_beam as beam
import numpy as np
from tensorflow_model_analysis.metrics import metric_types, metric_util

NAME = "false_positive_rate_gap"


class FalsePositiveRateGap(metric_types.Metric):
    """|FPR(protected) - FPR(reference)| at `threshold`; NaN when a group has no negatives."""

    def __init__(self, feature: str = "", protected: str = "", reference: str = "",
                 threshold: float = 0.5, name: str = NAME):
        super().__init__(_computations, feature=feature, protected=protected,
                         reference=reference, threshold=threshold, name=name)


def _computations(feature: str, protected: str, reference: str, threshold: float,
                  name: str = NAME, eval_config=None, model_names: Optional[List[str]] = None,
                  output_names: Optional[List[str]] = None,
                  example_weighted: bool = False) -> metric_types.MetricComputations:
    computations = []
    for model_name in model_names or [""]:
        for output_name in output_names or [""]:
            key = metric_types.MetricKey(name=name, model_name=model_name,
                                         output_name=output_name,
                                         example_weighted=example_weighted)
            computations.append(metric_types.MetricComputation(
                keys=[key], preprocessors=[metric_types.FeaturePreprocessor([feature])],
                combiner=_GapCombiner(key, eval_config, feature, (protected, reference),
                                      threshold)))
    return computations


class _GapCombiner(beam.CombineFn):
    """Accumulates [false positives, negatives] per group (weighted)."""

    def __init__(self, key, eval_config, feature: str, groups: tuple[str, str],
                 threshold: float):
        self._key, self._eval_config = key, eval_config
        self._feature, self._groups, self._threshold = feature, groups, threshold

    def create_accumulator(self) -> np.ndarray:
        return np.zeros((2, 2))

    def add_input(self, acc: np.ndarray, element: metric_types.StandardMetricInputs):
        values = np.ravel(element.features.get(self._feature, [])) if element.features else []
        if not len(values):
            return acc
        group = values[0].decode() if isinstance(values[0], bytes) else str(values[0])
        if group not in self._groups:
            return acc
        row = self._groups.index(group)
        for label, prediction, weight in metric_util.to_label_prediction_example_weight(
                element, eval_config=self._eval_config, model_name=self._key.model_name,
                output_name=self._key.output_name,
                example_weighted=self._key.example_weighted):
            if float(label) == 0.0:
                acc[row, 0] += float(weight) * (float(prediction) >= self._threshold)
                acc[row, 1] += float(weight)
        return acc

    def merge_accumulators(self, accs: Iterable[np.ndarray]) -> np.ndarray:
        return np.sum(list(accs), axis=0)

    def extract_output(self, acc: np.ndarray) -> Dict[metric_types.MetricKey, float]:
        if (acc[:, 1] == 0).any():
            return {self._key: float("nan")}
        fpr = acc[:, 0] / acc[:, 1]
        return {self._key: float(abs(fpr[0] - fpr[1]))}
