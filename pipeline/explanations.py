"""Global importance: mean |attribution| per raw feature on labelled rows, overall and per group
of the sensitive feature, from the model's `explain_from_examples` signature (modules.explain).

Read by `fairway report`; the features whose importance differs most between groups are a
lead for fairness work.
"""
from __future__ import annotations

import itertools
from typing import Any, Sequence

import numpy as np

EXAMPLES_SIGNATURE = "explain_from_examples"  # modules.signatures.EXPLAIN_EXAMPLES_SIGNATURE
PREFIX = "attribution_"  # modules.explain.ATTRIBUTION_PREFIX


def attributions(signature, serialized: np.ndarray, batch: int = 512) -> dict[str, np.ndarray]:
    """Feature -> attribution per row (logit units)."""
    import tensorflow as tf

    parts: dict[str, list] = {}
    for i in range(0, len(serialized), batch):
        out = signature(examples=tf.constant(serialized[i:i + batch]))
        for k, v in out.items():
            if k.startswith(PREFIX):
                parts.setdefault(k[len(PREFIX):], []).append(v.numpy())
    return {k: np.concatenate(v) for k, v in parts.items()}


def importance(attr: dict[str, np.ndarray], groups: np.ndarray,
               pairs: Sequence[tuple[str, str]] = ()) -> dict[str, Any]:
    """{"rows", "overall": {feature: mean |a|}, "groups": {group: {feature: mean |a|}},
    "differs_most": [{feature, gap, high, low}] largest gap first}. `pairs`: the groups to
    compare (default: every pair of groups present)."""
    groups = np.asarray(groups)
    features = sorted(attr, key=lambda k: -np.abs(attr[k]).mean())
    out = {"rows": int(len(groups)),
           "overall": {k: float(np.abs(attr[k]).mean()) for k in features}, "groups": {}}
    present = [g for g in sorted(set(groups.tolist())) if g != ""]
    for g in present:
        m = groups == g
        out["groups"][g] = {k: float(np.abs(attr[k][m]).mean()) for k in features}
    pairs = [p for p in pairs if p[0] in out["groups"] and p[1] in out["groups"]] or \
        list(itertools.combinations(present, 2))
    gaps = []
    for k in features:
        a, b = max(pairs, key=lambda p: abs(out["groups"][p[0]][k] - out["groups"][p[1]][k]),
                   default=(None, None))
        if a is None:
            continue
        hi, lo = (a, b) if out["groups"][a][k] >= out["groups"][b][k] else (b, a)
        gaps.append({"feature": k, "gap": out["groups"][hi][k] - out["groups"][lo][k],
                     "high": hi, "low": lo})
    out["differs_most"] = sorted(gaps, key=lambda d: -d["gap"])
    return out


def eval_importance(model_dir: str, serialized: np.ndarray, groups: np.ndarray,
                    pairs: Sequence[tuple[str, str]] = (), max_rows: int = 2000,
                    seed: int = 0) -> dict[str, Any]:
    """`importance` on at most `max_rows` rows drawn with `seed` (the cost grows with rows)."""
    import tensorflow as tf

    sigs = tf.saved_model.load(model_dir).signatures
    if EXAMPLES_SIGNATURE not in sigs:
        raise LookupError(f"{model_dir}: no '{EXAMPLES_SIGNATURE}' signature (a model exported "
                          "before explanations)")
    if len(serialized) > max_rows:
        keep = np.sort(np.random.default_rng(seed).choice(len(serialized), max_rows,
                                                          replace=False))
        serialized, groups = serialized[keep], np.asarray(groups)[keep]
    return importance(attributions(sigs[EXAMPLES_SIGNATURE], serialized), groups, pairs)
