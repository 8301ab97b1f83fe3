"""The SVM on both drug orders: the doubled design against the symmetrised kernel, on the same rows.

``-p combine=concat`` trains the SVM on every pair in both drug orders. Fitted as written, the
design has twice the rows and libsvm computes its kernel on the fly through a cache; the plugin
instead fits the same problem on the pairs as listed with the symmetrised kernel
k(x, z) + k(x, swap(z)), precomputed once (``plugins/models/svm.py`` has the derivation). This
times both paths on one sample of a D1 fold's training rows (standardised Loewe target, as under
`strong`) and reports the ratio of their seconds, measured in one run, and how far their test
predictions differ (they agree to libsvm's stopping tolerance):

    SYNBENCH_DATA_DIR=../shared/data python benchmarks/svm_pair_kernel.py --train-rows 6000 --test-rows 2000
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from synbench.data import Batch
from synbench.features import featurize
from synbench.plugins.models import svm
from synbench.reference import CHEM_EXPR
from synbench.runner import load_job_data
from synbench.splits import fold_ids, make_splits


def timed(model, train, test) -> tuple[np.ndarray, float, float]:
    start = time.perf_counter()
    model.fit(train)
    fitted = time.perf_counter()
    predictions = model.predict(test)
    return predictions, fitted - start, time.perf_counter() - fitted


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="d1-oneil")
    parser.add_argument("--target", default="loewe")
    parser.add_argument("--fold", type=int, default=0)
    parser.add_argument("--train-rows", type=int, default=6000)
    parser.add_argument("--test-rows", type=int, default=2000)
    parser.add_argument("--C", type=float, default=3.0)
    parser.add_argument("--gamma-factor", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    data = load_job_data(args.dataset, "published")
    target = data.targets[args.target]
    features = {spec: featurize(data, spec) for spec in CHEM_EXPR}
    labels = data.labels(target.name).to_numpy(dtype=float)
    full = Batch(data.entity_rows(), features, target.task, labels)
    ids = fold_ids(make_splits(data, "published", seed=0), args.fold)
    rng = np.random.default_rng(args.seed)
    train_ids = list(ids["train"]) + list(ids.get("valid", []))
    train = full.subset(rng.choice(train_ids, size=min(args.train_rows, len(train_ids)), replace=False))
    test = full.subset(rng.choice(list(ids["test"]), size=min(args.test_rows, len(ids["test"])), replace=False))
    y_test = test.y
    if target.task == "regression":  # the harness standardises the target under `strong`
        mean, sd = train.y.mean(), train.y.std()
        train.y = (train.y - mean) / sd
    params = {"task": target.task, "combine": "concat", "C": args.C, "gamma_factor": args.gamma_factor}

    kernel, kernel_fit, kernel_predict = timed(svm.SVMModel(**params), train, test)
    limit, svm.MAX_KERNEL_ROWS = svm.MAX_KERNEL_ROWS, 0  # the doubled design, as the generic tabular path fits it
    try:
        doubled, doubled_fit, doubled_predict = timed(svm.SVMModel(**params), train, test)
    finally:
        svm.MAX_KERNEL_ROWS = limit
    if target.task == "regression":
        kernel, doubled = kernel * sd + mean, doubled * sd + mean
        score = lambda p: np.corrcoef(p, y_test)[0, 1]  # noqa: E731
        name = "PCC"
    else:
        from sklearn.metrics import roc_auc_score

        score = lambda p: roc_auc_score(y_test, p)  # noqa: E731
        name = "ROC-AUC"
    print(f"{args.dataset}/{args.target} fold {args.fold}: {len(train)} training pairs ({2 * len(train)} rows doubled), "
          f"{len(test)} test pairs; C {args.C}, gamma factor {args.gamma_factor}")
    print("| path | fit s | predict s | total s | " + name + " |")
    print("|---|---|---|---|---|")
    print(f"| doubled design (libsvm kernel cache) | {doubled_fit:.1f} | {doubled_predict:.1f} | {doubled_fit + doubled_predict:.1f} | {score(doubled):.4f} |")
    print(f"| symmetrised kernel (precomputed) | {kernel_fit:.1f} | {kernel_predict:.1f} | {kernel_fit + kernel_predict:.1f} | {score(kernel):.4f} |")
    print(f"ratio doubled / kernel: fit x{doubled_fit / kernel_fit:.1f}, total x{(doubled_fit + doubled_predict) / (kernel_fit + kernel_predict):.1f}; "
          f"largest prediction difference {np.abs(kernel - doubled).max():.2g} (predictions' sd {np.std(doubled):.3g})")


if __name__ == "__main__":
    main()
