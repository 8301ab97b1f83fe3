"""How well each stored regression model ranks a thresholded target, beside the classifier trained on it.

A classification target derived by a threshold (D1's ``loewe_gt30`` is ``loewe > 30``) can be
scored two ways: by a classifier trained on the 0/1 labels (what the board shows), or by ranking
the test rows with a regression model's predicted score. The second is how a regression paper can
quote a classification figure, so a published ROC-AUC may stand for either. For every regression
job of the stores whose target is the source of a thresholded one, this prints per method (model,
featurizers, profile, protocol, parameters), mean ± sample sd over its (seed, fold) jobs:

- ``ranked``: ROC-AUC of the stored regression predictions against ``y_true > threshold``;
- ``classifier``: the stored ROC-AUC of the same method's job on the thresholded target, same seed
  and fold, where one is stored (over the pairs both have);
- ``ranked - classifier`` and how many pairs the ranking is ahead on.

It reads only the stores and the datasets' target definitions; nothing is trained:

    SYNBENCH_DATA_DIR=../shared/data python benchmarks/regression_ranking.py results/d1-oneil-cpu
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from synbench.runner import load_dataset

# what makes two jobs the same method on the same test fold, apart from the target
SAME_METHOD = ("dataset", "split", "model", "featurizers", "profile", "protocol", "params", "seed", "fold", "n_folds")


def thresholded_targets(dataset: str, data_dir: str | None) -> dict[str, tuple[str, float]]:
    """regression target -> (the classification target derived from its column, threshold)."""
    targets = load_dataset(dataset, data_dir).targets
    sources = {t.column: t.name for t in targets.values() if t.task == "regression" and t.threshold is None}
    return {sources[t.column]: (t.name, t.threshold) for t in targets.values()
            if t.task == "classification" and t.threshold is not None and t.column in sources}


def method_key(job: dict) -> tuple:
    return tuple(json.dumps(job.get(k), sort_keys=True) for k in SAME_METHOD)


def ranked_roc_auc(predictions: pd.DataFrame, threshold: float) -> float:
    """ROC-AUC of a regression job's predicted scores for the rows whose true score exceeds ``threshold``
    (the target's own rule, ``label = score > threshold``)."""
    labels = predictions["y_true"].to_numpy(dtype=float) > threshold
    if labels.all() or not labels.any():
        raise ValueError(f"every test row is on one side of the threshold {threshold}: ROC-AUC is undefined")
    return float(roc_auc_score(labels, predictions["y_pred"].to_numpy(dtype=float)))


def regression_ranking(stores: list[Path], data_dir: str | None = None) -> pd.DataFrame:
    """One row per stored regression job with a thresholded counterpart: its ranked ROC-AUC and the
    matching classifier job's stored ROC-AUC (NaN where none is stored)."""
    records = []
    for store in stores:
        for record_file in sorted((Path(store) / "jobs").glob("*/record.json")):
            record = json.loads(record_file.read_text())
            records.append((store, record_file, record))
    derived: dict[str, dict[str, tuple[str, float]]] = {}
    classifiers: dict[tuple, float] = {}
    for _, _, record in records:
        job = record["job"]
        if record.get("task") == "classification" and "roc_auc" in record.get("metrics", {}):
            classifiers[(job["target"], *method_key(job))] = record["metrics"]["roc_auc"]
    rows = []
    for store, record_file, record in records:
        job = record["job"]
        if record.get("task") != "regression" or job["model"] == "constant":
            continue
        if job["dataset"] not in derived:
            derived[job["dataset"]] = thresholded_targets(job["dataset"], data_dir)
        if job["target"] not in derived[job["dataset"]]:
            continue
        target, threshold = derived[job["dataset"]][job["target"]]
        predictions = pd.read_parquet(record_file.parent / "predictions.parquet")
        rows.append({
            "store": Path(store).name, "model": job["model"], "featurizers": "+".join(job["featurizers"]) or "—",
            "protocol": job.get("protocol", "table1 (v0)"), "params": json.dumps(job.get("params") or {}, sort_keys=True),
            "seed": job.get("seed", 0), "fold": job["fold"], "target": f"{job['target']} -> {target}",
            "ranked": ranked_roc_auc(predictions, threshold),
            "classifier": classifiers.get((target, *method_key(job)), np.nan),
        })
    return pd.DataFrame(rows)


def summarise(table: pd.DataFrame) -> pd.DataFrame:
    """Per method: jobs, ranked ROC-AUC mean ± sd, and over the pairs with a stored classifier the
    classifier's mean, the difference and how many pairs the ranking is ahead on."""
    def one(group: pd.DataFrame) -> pd.Series:
        paired = group.dropna(subset=["classifier"])
        diff = paired["ranked"] - paired["classifier"]
        return pd.Series({
            "jobs": len(group),
            "ranked": f"{group['ranked'].mean():.3f} ± {group['ranked'].std(ddof=1):.3f}" if len(group) > 1 else f"{group['ranked'].mean():.3f}",
            "pairs": len(paired),
            "classifier": f"{paired['classifier'].mean():.3f}" if len(paired) else "—",
            "ranked - classifier": f"{diff.mean():+.3f}" if len(paired) else "—",
            "ranked ahead": f"{int((diff > 0).sum())}/{len(paired)}" if len(paired) else "—",
        })
    keys = ["store", "target", "model", "featurizers", "protocol", "params"]
    order = table.groupby(keys)["ranked"].mean().sort_values(ascending=False).index
    return table.groupby(keys)[table.columns.tolist()].apply(one).loc[order]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("stores", nargs="+", type=Path)
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--per-fold", action="store_true", help="also print every job's figures")
    args = parser.parse_args()
    table = regression_ranking(args.stores, args.data_dir)
    if table.empty:
        raise SystemExit("no stored regression job has a thresholded counterpart target in these stores")
    with pd.option_context("display.width", 250, "display.max_columns", 20, "display.max_rows", 500,
                           "display.max_colwidth", 60, "display.float_format", "{:.4f}".format):
        print(summarise(table).to_string())
        if args.per_fold:
            print(table.sort_values(["model", "featurizers", "protocol", "params", "seed", "fold"]).to_string(index=False))


if __name__ == "__main__":
    main()
