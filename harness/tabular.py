"""Base class for models that are scikit-learn estimators on the tabular design matrix."""

from __future__ import annotations

import numpy as np

from .base import Model
from .data import Batch
from .features import tabular_design


class TabularModel(Model):
    """Subclasses implement ``make_estimator()`` returning an unfitted scikit-learn estimator.

    The design matrix is :func:`synbench.features.tabular_design` with the model's ``combine``
    rule. For classification, ``predict`` returns the class-1 probability (``predict_proba``) or,
    for margin classifiers, the logistic of the decision function (same ranking, 0.5 at the
    decision boundary; not calibrated).
    """

    combine: str = "mean"

    def make_estimator(self):
        raise NotImplementedError

    def fit(self, train: Batch, valid: Batch | None = None) -> "TabularModel":
        X = tabular_design(train, self.combine)
        self.estimator_ = self.make_estimator().fit(X, train.y if self.task == "regression" else train.y.astype(int))
        return self

    def predict(self, batch: Batch) -> np.ndarray:
        X = tabular_design(batch, self.combine)
        if self.task == "regression":
            return self.estimator_.predict(X)
        if hasattr(self.estimator_, "predict_proba"):
            return self.estimator_.predict_proba(X)[:, 1]
        margin = self.estimator_.decision_function(X)
        return 1.0 / (1.0 + np.exp(-margin))
