"""Label-free performance estimation (confidence-based, as NannyML's CBPE).

The model's scores are calibrated on labelled reference rows (isotonic regression). On a window
without labels, each row's calibrated probability is its chance of being positive, so the
expected ROC curve (true positives = the sum of probabilities above a cut, false positives = the
sum of their complements) gives the expected AUC, and accuracy at the decision threshold is the
mean chance of being right. The interval is the spread of the metric over label draws from those
probabilities (Monte Carlo): the uncertainty of a window of this size, given the calibration.
"""
from __future__ import annotations

import numpy as np
from sklearn.isotonic import IsotonicRegression


class Estimator:
    def __init__(self, scores: np.ndarray, labels: np.ndarray, threshold: float,
                 draws: int = 200, seed: int = 0):
        self.calibrator = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip")
        self.calibrator.fit(np.asarray(scores, float), np.asarray(labels, float))
        self.threshold, self.draws, self.seed = threshold, draws, seed

    def estimate(self, scores: np.ndarray) -> dict[str, dict[str, float]]:
        """{"auc"|"accuracy": {value, lower, upper}} (a 95 % interval) for a window's scores."""
        s = np.asarray(scores, float)
        p = self.calibrator.predict(s)
        order = np.argsort(-s, kind="stable")
        ranks = _ranks(s)
        right = np.where(s >= self.threshold, p, 1 - p)
        rng = np.random.default_rng(self.seed)
        y = rng.random((self.draws, len(s))) < p  # label draws, one per row and draw
        aucs = np.array([_auc_from_ranks(ranks, row) for row in y])
        accs = (y == (s >= self.threshold)).mean(axis=1)
        return {"auc": _summary(_expected_auc(p[order], s[order]), aucs),
                "accuracy": _summary(float(right.mean()), accs)}


def _summary(value: float, draws: np.ndarray) -> dict[str, float]:
    draws = draws[~np.isnan(draws)]
    lo, hi = (np.quantile(draws, [0.025, 0.975]) if len(draws) else (np.nan, np.nan))
    return {"value": value, "lower": float(lo), "upper": float(hi)}


def _ranks(s: np.ndarray) -> np.ndarray:
    from scipy.stats import rankdata

    return rankdata(s)  # ties share their mean rank, as in the Mann-Whitney U statistic


def _auc_from_ranks(ranks: np.ndarray, positive: np.ndarray) -> float:
    n1 = int(positive.sum())
    n0 = len(positive) - n1
    if n1 == 0 or n0 == 0:
        return float("nan")
    return float((ranks[positive].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


def _expected_auc(p: np.ndarray, s: np.ndarray) -> float:
    """The area under the expected ROC curve of rows sorted by descending score; tied scores
    form one step (a diagonal segment)."""
    tp, fp = p.sum(), (1 - p).sum()
    if tp <= 0 or fp <= 0:
        return float("nan")
    last = np.r_[s[1:] != s[:-1], True]  # the last row of each run of tied scores
    tpr = np.r_[0.0, np.cumsum(p)[last] / tp]
    fpr = np.r_[0.0, np.cumsum(1 - p)[last] / fp]
    return float(np.trapz(tpr, fpr))
