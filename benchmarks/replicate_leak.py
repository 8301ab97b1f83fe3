"""How much a split that lets replicates straddle train and test lifts a stored ROC-AUC.

A test row whose (drug set, cell line) was also measured in training (a replicate, in either drug
order) can be scored from memory rather than by generalisation. For every classification job of
the stores given this prints, per store and model, means over folds of:

- ``all``: the stored ROC-AUC over every test row (what the board shows);
- ``no-replicate``: the same predictions scored only on the test rows without a replicate among
  the fold's training rows (inner-training and validation);
- ``memorised``: the stored predictions with each replicated test row's score replaced by the mean
  label of its training replicates: what remembering the replicates could add at most;
- ``replicated``: the share of test rows with a training replicate.

It reads only the stores (split tables, predictions) and the datasets' rows; nothing is trained:

    SYNBENCH_DATA_DIR=../shared/data python benchmarks/replicate_leak.py results/d3-deepdds-cpu results/d3-deepdds
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from synbench.runner import load_job_data
from synbench.splits import replicate_keys
from synbench.store import Store


def fold_figures(predictions: pd.DataFrame, roles: pd.Series, keys: pd.Series, labels: pd.Series) -> dict[str, float]:
    """One fold: ``roles`` maps row_id -> train/valid/test; ``keys`` and ``labels`` cover every row."""
    training = roles.index[roles.isin(["train", "valid"])]
    memory = labels.loc[training].groupby(keys.loc[training]).mean()  # replicate key -> mean training label
    y_true = predictions["y_true"].to_numpy(dtype=float)
    y_pred = predictions["y_pred"].to_numpy(dtype=float)
    remembered = keys.loc[predictions.index].map(memory).to_numpy(dtype=float)
    replicated = ~np.isnan(remembered)
    fresh = ~replicated
    return {
        "all": roc_auc_score(y_true, y_pred),
        "no-replicate": roc_auc_score(y_true[fresh], y_pred[fresh]),
        "memorised": roc_auc_score(y_true, np.where(replicated, remembered, y_pred)),
        "replicated": float(replicated.mean()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("stores", nargs="+", type=Path)
    parser.add_argument("--data-dir", default=None)
    args = parser.parse_args()

    data: dict[tuple[str, str, str], tuple[pd.Series, pd.Series]] = {}
    figures = []
    for path in args.stores:
        store = Store(path)
        for record_file in sorted((path / "jobs").glob("*/record.json")):
            record = json.loads(record_file.read_text())
            job = record["job"]
            if record.get("task") != "classification" or job["model"] == "constant":
                continue
            source = (job["dataset"], job["split"], job["target"])
            if source not in data:
                loaded = load_job_data(job["dataset"], job["split"], args.data_dir)
                rows = loaded.combinations
                data[source] = (replicate_keys(rows, loaded.drug_columns), loaded.labels(job["target"]).astype(float))
            keys, labels = data[source]
            split = pd.read_parquet(store.split_path(job["dataset"], job["split"], job["n_folds"], job.get("seed", 0)))
            roles = split[split["fold"] == job["fold"]].set_index("row_id")["role"]
            predictions = pd.read_parquet(record_file.parent / "predictions.parquet")
            figures.append({"store": path.name, "model": job["model"], "protocol": job.get("protocol", "table1 (v0)"),
                            "fold": job["fold"], **fold_figures(predictions, roles, keys, labels)})
    table = pd.DataFrame(figures)
    summary = (table.groupby(["store", "model", "protocol"])
               .agg(folds=("fold", "nunique"), all=("all", "mean"), no_replicate=("no-replicate", "mean"),
                    memorised=("memorised", "mean"), replicated=("replicated", "mean")))
    summary["no_replicate - all"] = summary["no_replicate"] - summary["all"]
    summary["memorised - all"] = summary["memorised"] - summary["all"]
    with pd.option_context("display.width", 250, "display.max_columns", 20, "display.max_rows", 200, "display.float_format", "{:.4f}".format):
        print(summary)


if __name__ == "__main__":
    main()
