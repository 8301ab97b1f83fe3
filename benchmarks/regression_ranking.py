"""How well each stored regression method ranks a thresholded target, beside the classifier trained on it.

A classification target derived by a threshold (D1's ``loewe_gt30`` is ``loewe > 30``) can be
scored two ways: by a classifier trained on the 0/1 labels (what the board shows), or by ranking
the test rows with a regression model's predicted score. The second is how a regression paper can
quote a classification figure, so a published ROC-AUC may stand for either. The report's *Baseline
strength* table shows the second for the baselines with a published figure; this prints it for
every method (model, featurizers, profile with its ``-p`` settings, protocol), mean ± sample sd over
its (seed, fold) jobs:

- ``ranked``: ROC-AUC of the stored regression predictions against the classification labels of
  the same test rows (``synbench.report.ranked_from_regression``: a target counts as derived when
  the regression target's stored true values separate its labels on every fold);
- ``classifier``: the stored ROC-AUC of the same method's job on the classification target, same
  seed and fold, over the pairs both have, the difference and how many pairs the ranking is ahead on.

It reads only the stores; nothing is trained:

    python benchmarks/regression_ranking.py results/d1-oneil-cpu [--seed 0]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from synbench import leaderboard as lb
from synbench import report as rp

PAIR = [*lb.METHOD_COLS, "dataset", "split", "target", "seed", "fold"]


def regression_ranking(stores: list[Path]) -> pd.DataFrame:
    """One row per stored regression job with a thresholded counterpart target: its ranked ROC-AUC
    and the same method's classifier's stored ROC-AUC on that seed and fold (NaN where none is stored)."""
    runs = rp.load(stores)
    ranked = rp.ranked_from_regression(runs)
    metrics = runs.metrics
    classifiers = (metrics[(metrics["task"] == "classification") & (metrics["metric"] == "roc_auc")]
                   .drop_duplicates(PAIR)[[*PAIR, "value"]].rename(columns={"value": "classifier"}))
    return ranked.merge(classifiers, on=PAIR, how="left")


def summarise(table: pd.DataFrame) -> pd.DataFrame:
    """Per method: jobs, ranked ROC-AUC mean ± sd, and over the pairs with a stored classifier the
    classifier's mean, the difference and how many pairs the ranking is ahead on."""
    def one(group: pd.DataFrame) -> pd.Series:
        paired = group.dropna(subset=["classifier"])
        diff = paired["ranked"] - paired["classifier"]
        spread = f" ± {group['ranked'].std(ddof=1):.3f}" if len(group) > 1 else ""
        return pd.Series({
            "jobs": len(group),
            "ranked": f"{group['ranked'].mean():.3f}{spread}",
            "pairs": len(paired),
            "classifier": f"{paired['classifier'].mean():.3f}" if len(paired) else "—",
            "ranked - classifier": f"{diff.mean():+.3f}" if len(paired) else "—",
            "ranked ahead": f"{int((diff > 0).sum())}/{len(paired)}" if len(paired) else "—",
        })
    keys = ["dataset", "source", "target", *lb.METHOD_COLS]
    order = table.groupby(keys)["ranked"].mean().sort_values(ascending=False).index
    return table.groupby(keys)[table.columns.tolist()].apply(one).loc[order]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("stores", nargs="+", type=Path)
    parser.add_argument("--seed", type=int, default=None, help="only this seed's jobs")
    parser.add_argument("--per-fold", action="store_true", help="also print every job's figures")
    args = parser.parse_args()
    table = regression_ranking(args.stores)
    if args.seed is not None:
        table = table[table["seed"] == args.seed]
    if table.empty:
        raise SystemExit("no stored regression job has a thresholded counterpart target in these stores")
    with pd.option_context("display.width", 250, "display.max_columns", 20, "display.max_rows", 500,
                           "display.max_colwidth", 60, "display.float_format", "{:.4f}".format):
        print(summarise(table).to_string())
        if args.per_fold:
            print(table.sort_values([*lb.METHOD_COLS, "seed", "fold"]).to_string(index=False))


if __name__ == "__main__":
    main()
