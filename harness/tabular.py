"""Base class for models that are scikit-learn estimators on the tabular design matrix."""

from __future__ import annotations

import numpy as np

from .base import Model
from .data import Batch
from .features import tabular_design

# ``concat``: each drug's features in its own block, trained on every drug order of a row and
# predicted as the mean over the orders (DeepSynergy's augmentation; the prediction does not depend
# on how a pair is written). ``mean`` / ``sum``: order-invariant pooling of the drugs (BAITSAO's rule).
TABULAR_COMBINE = ("concat", "mean", "sum")


class TabularModel(Model):
    """Subclasses implement ``make_estimator()`` returning an unfitted scikit-learn estimator.

    The design matrix is :func:`synbench.features.tabular_design` with the model's ``combine``
    rule (see :data:`TABULAR_COMBINE`). For classification, ``predict`` returns the class-1
    probability (``predict_proba``) or, for margin classifiers, the logistic of the decision
    function (same ranking, 0.5 at the decision boundary; not calibrated). ``fit_estimator`` may be
    overridden to use the validation rows (early stopping).
    """

    combine: str = "concat"

    def make_estimator(self):
        raise NotImplementedError

    def fit_estimator(self, estimator, X, y, X_valid=None, y_valid=None):
        return estimator.fit(X, y)

    def _designs(self, batch: Batch, fitting: bool):
        """(row positions, design) pairs: one for pooled rules, one per drug order for ``concat``."""
        if self.combine not in TABULAR_COMBINE:
            from .errors import ConfigError

            raise ConfigError(f"model '{self.name}' has no combine rule '{self.combine}' (choose from {', '.join(TABULAR_COMBINE)})")
        if self.combine != "concat":
            return [(np.arange(len(batch)), tabular_design(batch, self.combine))]
        from .neural import drug_orderings

        # orders the batch lists as rows of their own are not added twice when fitting
        return [(positions, tabular_design(ordered, "stack")) for positions, _, ordered in drug_orderings(batch, skip_listed=fitting)]

    def _design_xy(self, batch: Batch):
        parts = self._designs(batch, fitting=True)
        X = np.vstack([d for _, d in parts])
        y = np.concatenate([batch.y[p] for p, _ in parts])
        return X, (y if self.task == "regression" else y.astype(int))

    def fit(self, train: Batch, valid: Batch | None = None) -> "TabularModel":
        X, y = self._design_xy(train)
        X_valid, y_valid = self._design_xy(valid) if valid is not None and valid.y is not None else (None, None)
        import warnings

        from sklearn.exceptions import ConvergenceWarning

        # a weakly regularised linear model may stop at max_iter: recorded, not printed per fit
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ConvergenceWarning)
            self.estimator_ = self.fit_estimator(self.make_estimator(), X, y, X_valid, y_valid)
        if any(issubclass(w.category, ConvergenceWarning) for w in caught):
            self.training_log_ = {**(getattr(self, "training_log_", None) or {}), "converged": False}
        for w in caught:
            if not issubclass(w.category, ConvergenceWarning):
                warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
        return self

    def _predict_design(self, X) -> np.ndarray:
        if self.task == "regression":
            return self.estimator_.predict(X)
        if hasattr(self.estimator_, "predict_proba"):
            return self.estimator_.predict_proba(X)[:, 1]
        margin = self.estimator_.decision_function(X)
        return 1.0 / (1.0 + np.exp(-margin))

    def predict(self, batch: Batch) -> np.ndarray:
        total = np.zeros(len(batch))
        count = np.zeros(len(batch))
        for positions, X in self._designs(batch, fitting=False):
            np.add.at(total, positions, np.asarray(self._predict_design(X), dtype=float))
            np.add.at(count, positions, 1)
        return total / count
