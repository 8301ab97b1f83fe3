import numpy as np
import pandas as pd
import pytest
from scipy.stats import pearsonr, spearmanr
from sklearn import metrics as skm

from synbench.errors import DataError, SplitError
from synbench.metrics import score_predictions

rng = np.random.default_rng(0)
IDS = pd.Index([f"r{i}" for i in range(200)], name="row_id")


def test_regression_metrics_match_scipy_sklearn():
    y = pd.Series(rng.normal(size=200), index=IDS)
    p = y.to_numpy() + rng.normal(scale=0.5, size=200)
    scores = score_predictions(pd.DataFrame({"y_pred": p}, index=IDS), y, "regression")
    assert scores["pcc"] == pytest.approx(pearsonr(y, p)[0])
    assert scores["spearman"] == pytest.approx(spearmanr(y, p)[0])
    assert scores["mse"] == pytest.approx(skm.mean_squared_error(y, p))
    assert scores["rmse"] == pytest.approx(np.sqrt(skm.mean_squared_error(y, p)))
    assert scores["r2"] == pytest.approx(skm.r2_score(y, p))


def test_classification_metrics_match_sklearn():
    y = pd.Series((rng.random(200) < 0.3).astype(float), index=IDS)
    p = np.clip(0.3 * y.to_numpy() + rng.random(200) * 0.7, 0, 1)
    scores = score_predictions(pd.DataFrame({"y_pred": p}, index=IDS), y, "classification")
    labels = (p >= 0.5).astype(int)
    assert scores["roc_auc"] == pytest.approx(skm.roc_auc_score(y, p))
    assert scores["auprc"] == pytest.approx(skm.average_precision_score(y, p))
    assert scores["accuracy"] == pytest.approx(skm.accuracy_score(y, labels))
    assert scores["f1"] == pytest.approx(skm.f1_score(y, labels))
    assert scores["balanced_accuracy"] == pytest.approx(skm.balanced_accuracy_score(y, labels))
    assert scores["kappa"] == pytest.approx(skm.cohen_kappa_score(y, labels))


def test_join_by_row_id_not_row_order():
    y = pd.Series(rng.normal(size=200), index=IDS)
    preds = pd.DataFrame({"y_pred": y.to_numpy() * 2 + 1}, index=IDS)
    shuffled = preds.sample(frac=1.0, random_state=1)
    assert score_predictions(preds, y, "regression") == pytest.approx(score_predictions(shuffled, y, "regression"))
    assert score_predictions(shuffled, y, "regression")["pcc"] == pytest.approx(1.0)


def test_constant_prediction_scores_zero_correlation_so_the_fold_counts():
    y = pd.Series(rng.normal(size=200), index=IDS)
    scores = score_predictions(pd.DataFrame({"y_pred": np.full(200, 0.1)}, index=IDS), y, "regression")
    assert scores["pcc"] == 0.0 and scores["spearman"] == 0.0 and scores["mse"] > 0
    # constant labels leave the correlation undefined
    flat = pd.Series(2.0, index=IDS)
    assert np.isnan(score_predictions(pd.DataFrame({"y_pred": rng.normal(size=200)}, index=IDS), flat, "regression")["pcc"])


def test_unknown_row_ids_nan_and_single_class_are_errors():
    y = pd.Series(rng.normal(size=200), index=IDS)
    with pytest.raises(DataError, match="not in the dataset"):
        score_predictions(pd.DataFrame({"y_pred": [1.0]}, index=["nope"]), y, "regression")
    with pytest.raises(DataError, match="NaN"):
        score_predictions(pd.DataFrame({"y_pred": [np.nan]}, index=["r1"]), y, "regression")
    ones = pd.Series(1.0, index=IDS)
    with pytest.raises(SplitError, match="single class"):
        score_predictions(pd.DataFrame({"y_pred": np.full(200, 0.7)}, index=IDS), ones, "classification")
