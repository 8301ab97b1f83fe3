"""`benchmarks/regression_ranking.py`: each regression job's predictions scored as a ranking of the
classification target thresholded from its target, paired with the same method's classifier."""

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from conftest import benchmark_script
from synbench import runner
from synbench.store import Store


@pytest.fixture(scope="module")
def ranking():
    return benchmark_script("regression_ranking")


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    store = Store(tmp_path_factory.mktemp("ranking") / "s")
    runner.run(runner.plan(["mock"], ["lasso", "treecomb"], profile="smoke", folds=[0, 1]), store)
    # fold 2: lasso's regression job beside another model's classifier (the fold's labels), none of lasso's
    runner.run(runner.plan(["mock"], ["lasso"], targets=["score"], profile="smoke", folds=[2]), store)
    runner.run(runner.plan(["mock"], ["treecomb"], targets=["synergistic"], profile="smoke", folds=[2]), store)
    # fold 3: a regression job and no classification job at all: no labels to rank against
    runner.run(runner.plan(["mock"], ["lasso"], targets=["score"], profile="smoke", folds=[3]), store)
    return store


def test_each_regression_job_is_ranked_against_the_labels_of_its_test_rows(ranking, store):
    table = ranking.regression_ranking([store.root])
    assert sorted(zip(table["model"], table["fold"])) == [("lasso", 0), ("lasso", 1), ("lasso", 2), ("treecomb", 0), ("treecomb", 1)]
    assert set(zip(table["source"], table["target"])) == {("score", "synergistic")}
    threshold = runner.load_dataset("mock").targets["synergistic"].threshold
    records = {(r["job"]["model"], r["job"]["target"], r["job"]["fold"]): r for r in store.records()}
    for row in table.itertuples():
        predictions = store.predictions(records[(row.model, "score", row.fold)]["job_id"])
        assert row.ranked == pytest.approx(roc_auc_score(predictions["y_true"] > threshold, predictions["y_pred"]))
        classifier = records.get((row.model, "synergistic", row.fold))
        if classifier is None:
            assert np.isnan(row.classifier)  # lasso fold 2: no classifier stored
        else:
            assert row.classifier == classifier["metrics"]["roc_auc"]


def test_a_classifier_of_another_method_is_never_paired(ranking, store, tmp_path):
    """The pairing matches the whole method (model, featurizers, profile with its -p settings, protocol)."""
    copy = Store(tmp_path / "copy")
    for record in store.records():
        if record["job"]["target"] == "synergistic":
            record = {**record, "job": {**record["job"], "params": {"alpha": 1.0}}}
        copy.write_job(record["job_id"], record, store.predictions(record["job_id"]))
    table = ranking.regression_ranking([copy.root])
    assert len(table) == 5 and table["classifier"].isna().all()
    summary = ranking.summarise(table)
    assert set(summary["pairs"]) == {0} and set(summary["classifier"]) == {"—"}


def test_summary_counts_pairs_and_wins(ranking):
    table = pd.DataFrame({"model": "m", "featurizers": "f", "profile": "cpu", "protocol": "strong", "dataset": "d",
                          "split": "published", "target": "c", "source": "t", "seed": 0, "fold": range(4),
                          "ranked": [0.90, 0.80, 0.85, 0.70], "classifier": [0.88, 0.82, 0.80, np.nan]})
    row = ranking.summarise(table).iloc[0]
    assert (row["jobs"], row["pairs"], row["ranked ahead"]) == (4, 3, "2/3")
    assert row["classifier"] == "0.833" and row["ranked - classifier"] == "+0.017"
    assert row["ranked"] == f"{table['ranked'].mean():.3f} ± {table['ranked'].std(ddof=1):.3f}"
