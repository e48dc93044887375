"""Multivariate drift: a classifier that tells reference rows from window rows (a domain
classifier, as Azure ML's dataset monitors and NannyML's use).

It is trained on half of each sample and scored on the other half. Its held-out AUC is the drift
coefficient: 0.5 when the two cannot be told apart. Under no drift the held-out AUC follows the
Mann-Whitney null distribution, so the threshold needs no bootstrap: its mean is 0.5 and its
standard deviation sqrt((n0 + n1 + 1) / (12 n0 n1)). The features that drive the difference are
ranked by permutation importance on the held-out half.
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.inspection import permutation_importance
from sklearn.metrics import roc_auc_score
from threadpoolctl import threadpool_limits

from monitoring.measures import category_text, present


def encode(frame: pd.DataFrame, numeric: dict[str, bool],
           categories: dict[str, list[str]]) -> np.ndarray:
    """Numbers as floats (NaN = missing, which the trees handle), categories as their index in
    the reference's list (unseen ones share the last code)."""
    cols = []
    for name, is_num in numeric.items():
        col = frame[name] if name in frame else pd.Series(np.nan, index=frame.index)
        if is_num:
            cols.append(pd.to_numeric(col, errors="coerce").to_numpy(float))
        else:
            cats = categories[name]
            text = category_text(present(col)).reindex(col.index)
            codes = pd.Categorical(text, categories=cats).codes.astype(float)
            codes[codes < 0] = len(cats)  # unseen categories share one code
            codes[text.isna().to_numpy()] = np.nan
            cols.append(codes)
    return np.column_stack(cols)


def null_sd(n0: int, n1: int) -> float:
    return math.sqrt((n0 + n1 + 1) / (12 * n0 * n1))


def drift(reference: np.ndarray, window: np.ndarray, features: list[str],
          categorical: list[bool], k: float, seed: int = 0, top: int = 5) -> dict:
    """{"auc", "threshold" (k null standard deviations above 0.5), "top": [{feature,
    importance}], ranked only when the AUC passes the threshold (the costly part)}."""
    # One OpenMP thread: on a busy machine the trees' spinning threads cost 10-50x.
    with threadpool_limits(limits=1, user_api="openmp"):
        return _drift(reference, window, features, categorical, k, seed, top)


def _drift(reference, window, features, categorical, k, seed, top) -> dict:
    rng = np.random.default_rng(seed)
    x = np.vstack([reference, window])
    y = np.r_[np.zeros(len(reference)), np.ones(len(window))]
    test = np.zeros(len(y), bool)
    for cls in (0, 1):  # half of each class is held out
        idx = np.flatnonzero(y == cls)
        test[rng.choice(idx, len(idx) // 2, replace=False)] = True
    model = HistGradientBoostingClassifier(max_iter=40, max_leaf_nodes=15, learning_rate=0.2,
                                           categorical_features=np.array(categorical),
                                           random_state=seed)
    model.fit(x[~test], y[~test])
    auc = float(roc_auc_score(y[test], model.predict_proba(x[test])[:, 1]))
    n1 = int(y[test].sum())
    out = {"auc": auc, "threshold": 0.5 + k * null_sd(int(test.sum()) - n1, n1), "top": []}
    if auc > out["threshold"]:
        imp = permutation_importance(model, x[test], y[test], scoring="roc_auc", n_repeats=2,
                                     random_state=seed)
        order = np.argsort(-imp.importances_mean)[:top]
        out["top"] = [{"feature": features[i], "importance": round(float(imp.importances_mean[i]), 4)}
                      for i in order if imp.importances_mean[i] > 0]
    return out
