"""Harness overhead: `synbench run` versus calling the same scikit-learn model directly.

Both sides fit the same estimator with the same fixed hyperparameters on the same folds (the
split table the harness stored) and the same design matrix. The harness side is timed end to end
through `synbench.runner.run` (planning, split checks, feature-cache reads, batching, the fit,
prediction, metrics from stored predictions, atomic record writes); the direct side times only
design matrix + fit + predict + PCC. Features are computed once beforehand for both (the harness
reads them from its cache), so featurisation cost is not counted on either side. The sides run in
alternating order, and the harness's time outside the model (wall time minus the fit and predict
seconds its records hold) is reported as a second, noise-free view of the same overhead.

    python benchmarks/overhead.py --data-dir ../shared/data            # D1, Lasso, 5 folds
    python benchmarks/overhead.py --dataset mock --repeats 3
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time

import numpy as np


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", default="d1-oneil")
    ap.add_argument("--target", default=None, help="default: the dataset's first regression target")
    ap.add_argument("--featurizers", default="chem:n_bits=256,expression:n_genes=500")
    ap.add_argument("--alpha", type=float, default=0.05, help="Lasso alpha (fixed on both sides)")
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--repeats", type=int, default=1)
    args = ap.parse_args()

    from scipy.stats import pearsonr
    from sklearn.linear_model import Lasso
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from synbench import runner
    from synbench.data import Batch
    from synbench.features import featurize, tabular_design
    from synbench.splits import fold_ids
    from synbench.store import Store

    data = runner.load_dataset(args.dataset, args.data_dir)
    target = args.target or next(t.name for t in data.targets.values() if t.task == "regression")
    specs = [s for s in args.featurizers.split(",") if s]
    features = {s: featurize(data, s) for s in specs}  # warm the feature cache for both sides
    settings = runner.RunSettings(data_dir=args.data_dir)

    def run_harness():
        with tempfile.TemporaryDirectory() as tmp:
            store = Store(tmp)
            jobs = runner.plan([args.dataset], ["lasso"], targets=[target], featurizers=specs, profile="smoke",
                               params={"alpha": args.alpha}, data_dir=args.data_dir)
            t0 = time.perf_counter()
            runner.run(jobs, store, settings)
            elapsed = time.perf_counter() - t0
            records = store.records()
            # the model's own work as the records time it; the rest of the wall time is the harness's
            model_work = sum(r["timing"]["fit_seconds"] + r["timing"]["predict_seconds"] for r in records)
            pcc = {r["job"]["fold"]: r["metrics"]["pcc"] for r in records}
            return elapsed, elapsed - model_work, pcc, jobs, store.load_splits(store.split_path(*jobs[0].split_key))

    def run_direct(jobs, splits):
        y = data.labels(target).to_numpy(dtype=float)
        full = Batch(data.entity_rows(), features, "regression", y)
        t0 = time.perf_counter()
        pcc = {}
        for job in jobs:
            ids = fold_ids(splits, job.fold)
            train = full.subset(ids["train"].append(ids["valid"]))
            test = full.subset(ids["test"])
            # exactly the `lasso` plugin's estimator
            model = make_pipeline(StandardScaler(), Lasso(alpha=args.alpha, max_iter=2000, random_state=0))
            model.fit(tabular_design(train), train.y)
            pcc[job.fold] = pearsonr(test.y, model.predict(tabular_design(test)))[0]
        return time.perf_counter() - t0, pcc

    harness_times, direct_times, bookkeeping, agree = [], [], [], []
    _, _, _, jobs, splits = run_harness()  # stores the split table for the direct side, warms caches
    for repeat in range(args.repeats):
        # alternate which side goes first so that warm-up and clock drift do not favour one side
        order = ("harness", "direct") if repeat % 2 == 0 else ("direct", "harness")
        for side in order:
            if side == "harness":
                elapsed, other, harness_pcc, _, _ = run_harness()
                harness_times.append(elapsed)
                bookkeeping.append(other)
            else:
                elapsed, direct_pcc = run_direct(jobs, splits)
                direct_times.append(elapsed)
        agree.append(all(np.isclose(harness_pcc[f], direct_pcc[f]) for f in direct_pcc))

    h, d = float(np.median(harness_times)), float(np.median(direct_times))
    report = {"dataset": args.dataset, "target": target, "featurizers": specs, "folds": len(jobs),
              "harness_seconds": round(h, 3), "direct_seconds": round(d, 3),
              "overhead_percent": round(100 * (h - d) / d, 2),
              "harness_seconds_outside_model": round(float(np.median(bookkeeping)), 3),
              "outside_model_percent": round(100 * float(np.median(bookkeeping)) / h, 2),
              "harness_runs": [round(t, 2) for t in harness_times], "direct_runs": [round(t, 2) for t in direct_times],
              "same_pcc_per_fold": all(agree), "repeats": args.repeats}
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
