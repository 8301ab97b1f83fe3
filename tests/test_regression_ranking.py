"""`benchmarks/regression_ranking.py`: a regression job's predictions scored as a ranking of its
dataset's thresholded target, paired with the same method's classifier on the same fold."""

import importlib.util
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from synbench import runner
from synbench.store import Store

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "regression_ranking.py"


@pytest.fixture(scope="module")
def ranking():
    spec = importlib.util.spec_from_file_location("regression_ranking", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    store = Store(tmp_path_factory.mktemp("ranking") / "s")
    runner.run(runner.plan(["mock"], ["lasso", "treecomb"], profile="smoke", folds=[0, 1]), store)
    # a classifier with no regression counterpart, and a regression job on another fold with no classifier
    runner.run(runner.plan(["mock"], ["lasso"], targets=["score"], profile="smoke", folds=[2]), store)
    return store


def test_each_regression_job_is_ranked_against_the_targets_own_threshold(ranking, store):
    table = ranking.regression_ranking([store.root])
    assert sorted(zip(table["model"], table["fold"])) == [("lasso", 0), ("lasso", 1), ("lasso", 2), ("treecomb", 0), ("treecomb", 1)]
    assert set(table["target"]) == {"score -> synergistic"}
    threshold = runner.load_dataset("mock").targets["synergistic"].threshold
    records = {(r["job"]["model"], r["job"]["target"], r["job"]["fold"]): r for r in store.records()}
    for row in table.itertuples():
        regression = records[(row.model, "score", row.fold)]
        predictions = store.predictions(regression["job_id"])
        assert row.ranked == pytest.approx(roc_auc_score(predictions["y_true"] > threshold, predictions["y_pred"]))
        classifier = records.get((row.model, "synergistic", row.fold))
        if classifier is None:
            assert np.isnan(row.classifier)  # lasso fold 2: no classifier stored
        else:
            assert row.classifier == classifier["metrics"]["roc_auc"]


def test_a_classifier_of_another_method_is_never_paired(ranking, store, tmp_path):
    """The pairing matches the whole method (model, featurizers, profile, protocol, parameters), not the model."""
    copy = Store(tmp_path / "copy")
    for record in store.records():
        if record["job"]["target"] == "synergistic":
            record = {**record, "job": {**record["job"], "params": {"alpha": 1.0}}}
        copy.write_job(record["job_id"], record, store.predictions(record["job_id"]))
    table = ranking.regression_ranking([copy.root])
    assert len(table) == 5 and table["classifier"].isna().all()
    summary = ranking.summarise(table)
    assert set(summary["pairs"]) == {0} and set(summary["classifier"]) == {"—"}


def test_ranking_rule_and_one_sided_folds(ranking):
    scores = pd.DataFrame({"y_true": [10.0, 31.0, 50.0, 30.0], "y_pred": [1.0, 3.0, 4.0, 2.0]})
    assert ranking.ranked_roc_auc(scores, 30.0) == 1.0  # 30 itself is not above the threshold
    assert ranking.ranked_roc_auc(scores.assign(y_pred=-scores["y_pred"]), 30.0) == 0.0
    with pytest.raises(ValueError, match="one side of the threshold 30"):
        ranking.ranked_roc_auc(scores.assign(y_true=[1.0, 2.0, 3.0, 4.0]), 30.0)


def test_summary_counts_pairs_and_wins(ranking):
    table = pd.DataFrame({"store": "s", "target": "t -> c", "model": "m", "featurizers": "f", "protocol": "strong",
                          "params": json.dumps({}), "seed": 0, "fold": range(4),
                          "ranked": [0.90, 0.80, 0.85, 0.70], "classifier": [0.88, 0.82, 0.80, np.nan]})
    row = ranking.summarise(table).iloc[0]
    assert (row["jobs"], row["pairs"], row["ranked ahead"]) == (4, 3, "2/3")
    assert row["classifier"] == "0.833" and row["ranked - classifier"] == "+0.017"
