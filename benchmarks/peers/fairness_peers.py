"""The fairness benchmark's peers: Fairlearn on Fairway's splits (run in the peers' own venv).

    fairness_peers.py IN_FOLDER OUT.json

IN_FOLDER (written by benchmarks/fairness_bench.py): train.parquet and eval.parquet (the rows of
Fairway's ExampleGen: raw features with missing cells kept missing, `_label` 0/1, `_sensitive`)
and spec.json (numeric, categorical, groups [protected, reference], threshold, seeds, max_vocab).

The model: scikit-learn LogisticRegression (lbfgs, C=1, max_iter 1000) on standardized numerics
(median-imputed) and one-hot categoricals (a missing cell is the category "missing"; at most
max_vocab categories a column, as Fairway's vocabularies, rarer ones pooled). The preprocessing
is fitted once on the train split and is not in the fit seconds.

- `lr`: that model alone (the peers' unconstrained baseline), at the decision threshold.
- `threshold_optimizer`: ThresholdOptimizer(constraints="false_positive_rate_parity",
  prefit=True, predict_method="predict_proba") on the fitted LR; its fit seconds include the LR's.
- `exponentiated_gradient`: ExponentiatedGradient(LogisticRegression(...),
  constraints=FalsePositiveRateParity()) with its defaults (eps 0.01, max_iter 50).
Every method is fitted on the train split with the sensitive column as `sensitive_features`
(every value of it, not only the two groups) and scored on the eval split.

The two Fairlearn methods are randomized classifiers. Their AUC ranks the eval rows by the
probability of a positive prediction (`_pmf_predict`), their accuracy and FPRs are the
expected ones under that probability (no draw); `realized` has the same rates for one draw
(`predict(random_state=seed)`). The LR and both fits are deterministic (lbfgs): across seeds
only the fit seconds and the realized draws vary.
"""
from __future__ import annotations

import json
import pathlib
import sys
import time
import warnings

warnings.filterwarnings("ignore")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

METHODS = ("lr", "threshold_optimizer", "exponentiated_gradient")


def preprocess(train: pd.DataFrame, evalset: pd.DataFrame, spec: dict):
    """(X_train, X_eval, seconds): the fitted column transform of both splits (dense)."""
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    num, cat = spec["numeric"], spec["categorical"]

    def cells(frame):
        out = frame[num + cat].copy()
        for c in num:
            out[c] = pd.to_numeric(out[c], errors="coerce").astype(float)
        for c in cat:
            out[c] = out[c].astype(object).where(out[c].notna(), "missing").astype(str)
        return out

    transform = ColumnTransformer([
        ("num", make_pipeline(SimpleImputer(strategy="median"), StandardScaler()), num),
        ("cat", OneHotEncoder(handle_unknown="infrequent_if_exist", sparse_output=False,
                              max_categories=spec["max_vocab"] + 1), cat)],
        sparse_threshold=0.0)
    t = time.perf_counter()
    x_train = transform.fit_transform(cells(train))
    seconds = time.perf_counter() - t
    return x_train, transform.transform(cells(evalset)), seconds


def rates(y: np.ndarray, positive: np.ndarray, groups: np.ndarray, spec: dict) -> dict:
    """Accuracy, FPR of the two groups and their gap; `positive` is 0/1 decisions or, for a
    randomized classifier, the probability of a positive decision (expected rates)."""
    out = {"accuracy": float(np.mean(np.where(y == 1, positive, 1 - positive)))}
    for g in spec["groups"]:
        neg = (groups == g) & (y == 0)
        out[f"fpr:{g}"] = float(positive[neg].mean()) if neg.any() else None
    a, b = (out[f"fpr:{g}"] for g in spec["groups"])
    out["fpr_gap"] = abs(a - b) if a is not None and b is not None else None
    return out


def one_seed(seed: int, x_train, y_train, a_train, x_eval, y_eval, a_eval, spec) -> dict:
    from fairlearn.postprocessing import ThresholdOptimizer
    from fairlearn.reductions import ExponentiatedGradient, FalsePositiveRateParity
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score

    def lr():
        return LogisticRegression(max_iter=1000, random_state=seed)

    def scored(score, positive, seconds, realized=None):
        m = {"auc": float(roc_auc_score(y_eval, score)), **rates(y_eval, positive, a_eval, spec),
             "fit_seconds": seconds}
        if realized is not None:
            m["realized"] = rates(y_eval, realized.astype(float), a_eval, spec)
        return m

    out = {}
    t = time.perf_counter()
    base = lr().fit(x_train, y_train)
    lr_seconds = time.perf_counter() - t
    p = base.predict_proba(x_eval)[:, 1]
    out["lr"] = scored(p, (p >= spec["threshold"]).astype(float), lr_seconds)
    print(f"peers: seed {seed}: LR {lr_seconds:.1f}s, AUC {out['lr']['auc']:.4f}, FPR gap "
          f"{out['lr']['fpr_gap']:.4f}", flush=True)

    t = time.perf_counter()
    opt = ThresholdOptimizer(estimator=base, constraints="false_positive_rate_parity",
                             prefit=True, predict_method="predict_proba")
    opt.fit(x_train, y_train, sensitive_features=a_train)
    own = time.perf_counter() - t
    pmf = opt._pmf_predict(x_eval, sensitive_features=a_eval)[:, 1]
    out["threshold_optimizer"] = scored(
        pmf, pmf, lr_seconds + own,
        opt.predict(x_eval, sensitive_features=a_eval, random_state=seed))
    out["threshold_optimizer"]["own_fit_seconds"] = own
    print(f"peers: seed {seed}: ThresholdOptimizer {own:.1f}s (+ LR), AUC "
          f"{out['threshold_optimizer']['auc']:.4f}, FPR gap "
          f"{out['threshold_optimizer']['fpr_gap']:.4f}", flush=True)

    t = time.perf_counter()
    eg = ExponentiatedGradient(lr(), constraints=FalsePositiveRateParity())
    eg.fit(x_train, y_train, sensitive_features=a_train)
    seconds = time.perf_counter() - t
    pmf = eg._pmf_predict(x_eval)[:, 1]
    out["exponentiated_gradient"] = scored(pmf, pmf, seconds, eg.predict(x_eval, random_state=seed))
    out["exponentiated_gradient"]["predictors"] = int(len(eg.predictors_))
    out["exponentiated_gradient"]["nonzero_weights"] = int((np.asarray(eg.weights_) > 0).sum())
    print(f"peers: seed {seed}: ExponentiatedGradient {seconds:.1f}s "
          f"({len(eg.predictors_)} predictors), AUC {out['exponentiated_gradient']['auc']:.4f}, "
          f"FPR gap {out['exponentiated_gradient']['fpr_gap']:.4f}", flush=True)
    return out


def summary(runs: list[dict]) -> dict:
    """method -> metric -> {mean, min, max, values} over the seeds (realized rates included)."""
    out = {}
    for method in METHODS:
        rows = [r[method] for r in runs]
        flat = [{**{k: v for k, v in row.items() if not isinstance(v, dict)},
                 **{f"realized:{k}": v for k, v in row.get("realized", {}).items()}}
                for row in rows]
        out[method] = {}
        for metric in flat[0]:
            values = [f[metric] for f in flat]
            if any(v is None for v in values):
                out[method][metric] = {"mean": None, "min": None, "max": None, "values": values}
                continue
            out[method][metric] = {"mean": float(np.mean(values)), "min": float(np.min(values)),
                                   "max": float(np.max(values)), "values": values}
    return out


def main(folder: str, out: str) -> None:
    import fairlearn
    import sklearn

    folder = pathlib.Path(folder)
    spec = json.loads((folder / "spec.json").read_text())
    train = pd.read_parquet(folder / "train.parquet")
    evalset = pd.read_parquet(folder / "eval.parquet")
    x_train, x_eval, prep_seconds = preprocess(train, evalset, spec)
    print(f"peers: {len(train)} train / {len(evalset)} eval rows, {x_train.shape[1]} columns "
          f"after one-hot ({prep_seconds:.1f}s)", flush=True)
    y_train = train["_label"].to_numpy(int)
    y_eval = evalset["_label"].to_numpy(int)
    a_train = train["_sensitive"].to_numpy(str)
    a_eval = evalset["_sensitive"].to_numpy(str)
    runs = [one_seed(seed, x_train, y_train, a_train, x_eval, y_eval, a_eval, spec)
            for seed in range(1, spec["seeds"] + 1)]
    result = {
        "versions": {"fairlearn": fairlearn.__version__, "scikit-learn": sklearn.__version__,
                     "pandas": pd.__version__, "numpy": np.__version__,
                     "python": sys.version.split()[0]},
        "rows": {"train": len(train), "eval": len(evalset)}, "columns": int(x_train.shape[1]),
        "prep_seconds": prep_seconds, "seeds": list(range(1, spec["seeds"] + 1)),
        "runs": runs, "summary": summary(runs)}
    pathlib.Path(out).write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: fairness_peers.py IN_FOLDER OUT.json")
    main(*sys.argv[1:3])
