"""Metrics, registered through the same hook as third-party ones.

Every metric is computed by the harness from stored predictions joined to labels by row id,
never by row order (:func:`score_predictions`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import pandas as pd

from .errors import DataError, SplitError
from .hookspecs import hookimpl


@dataclass(frozen=True)
class Metric:
    name: str
    task: str  # "regression" or "classification"
    fn: Callable[[np.ndarray, np.ndarray], float]  # (y_true, y_pred or class-1 probability)
    higher_is_better: bool
    description: str = ""
    headline: bool = False  # one of the paper's two metrics for this task


# A method that predicts one constant on a fold has failed on that fold: its correlation is
# scored 0 (it carries no ranking information), so the fold counts in the mean instead of being
# dropped from it (which biased the mean of a sometimes-failing method upward). The record and the
# board flag such folds. Constant *labels* leave the correlation undefined (NaN).
def _pcc(y, p):
    from scipy.stats import pearsonr

    if np.ptp(y) == 0:
        return float("nan")
    if np.ptp(p) == 0:
        return 0.0
    return float(pearsonr(y, p)[0])


def _spearman(y, p):
    from scipy.stats import spearmanr

    if np.ptp(y) == 0:
        return float("nan")
    if np.ptp(p) == 0:
        return 0.0
    return float(spearmanr(y, p)[0])


def _mse(y, p):
    from sklearn.metrics import mean_squared_error

    return float(mean_squared_error(y, p))


def _rmse(y, p):
    return float(np.sqrt(_mse(y, p)))


def _r2(y, p):
    from sklearn.metrics import r2_score

    return float(r2_score(y, p))


def _labels(p, threshold=0.5):
    return (np.asarray(p) >= threshold).astype(int)


def _roc_auc(y, p):
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(y, p))


def _auprc(y, p):
    from sklearn.metrics import average_precision_score

    return float(average_precision_score(y, p))


def _accuracy(y, p):
    from sklearn.metrics import accuracy_score

    return float(accuracy_score(y, _labels(p)))


def _f1(y, p):
    from sklearn.metrics import f1_score

    return float(f1_score(y, _labels(p), zero_division=0))


def _balanced_accuracy(y, p):
    from sklearn.metrics import balanced_accuracy_score

    return float(balanced_accuracy_score(y, _labels(p)))


def _kappa(y, p):
    from sklearn.metrics import cohen_kappa_score

    return float(cohen_kappa_score(y, _labels(p)))


BUILTIN_METRICS = [
    Metric("pcc", "regression", _pcc, True, "Pearson correlation", headline=True),
    Metric("mse", "regression", _mse, False, "mean squared error", headline=True),
    Metric("spearman", "regression", _spearman, True, "Spearman rank correlation"),
    Metric("rmse", "regression", _rmse, False, "root mean squared error"),
    Metric("r2", "regression", _r2, True, "coefficient of determination"),
    Metric("roc_auc", "classification", _roc_auc, True, "area under the ROC curve", headline=True),
    Metric("accuracy", "classification", _accuracy, True, "accuracy at probability 0.5", headline=True),
    Metric("auprc", "classification", _auprc, True, "average precision (area under PR curve)"),
    Metric("f1", "classification", _f1, True, "F1 score at probability 0.5"),
    Metric("balanced_accuracy", "classification", _balanced_accuracy, True, "balanced accuracy at 0.5"),
    Metric("kappa", "classification", _kappa, True, "Cohen's kappa at 0.5"),
]


@hookimpl
def synbench_register_metrics():
    return BUILTIN_METRICS


def metrics_for(task: str, registry=None) -> list[Metric]:
    from .registry import get_registry

    registry = registry or get_registry()
    return [m for m in (e.obj for e in registry.entries("metric")) if m.task == task]


def align(predictions: pd.DataFrame, labels: pd.Series, where: str = "") -> tuple[np.ndarray, np.ndarray]:
    """Join predictions (indexed by row id, column ``y_pred``) to labels by row id. ``where``
    names whose predictions these are (model and job, or a file) in the errors."""
    prefix = f"{where}: " if where else ""
    missing = predictions.index.difference(labels.index)
    if len(missing):
        raise DataError(f"{prefix}{len(missing)} predictions have row ids that are not in the dataset (e.g. {missing[0]})")
    y_true = labels.loc[predictions.index].to_numpy(dtype=float)
    y_pred = predictions["y_pred"].to_numpy(dtype=float)
    bad = ~np.isfinite(y_pred)
    if bad.any():
        raise DataError(f"{prefix}{int(bad.sum())} of {len(y_pred)} predictions are NaN or infinite "
                        f"(e.g. row {predictions.index[bad][0]})")
    return y_true, y_pred


def score_predictions(predictions: pd.DataFrame, labels: pd.Series, task: str, registry=None,
                      where: str = "") -> dict[str, float]:
    y_true, y_pred = align(predictions, labels, where)
    if task == "classification" and len(np.unique(y_true)) < 2:
        raise SplitError(f"cannot score a classification fold whose labels have a single class ({int(y_true[0])})")
    return {m.name: m.fn(y_true, y_pred) for m in metrics_for(task, registry)}
