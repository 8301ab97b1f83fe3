"""The SVM on both drug orders (``combine=concat``) fits the doubled design's problem through the
symmetrised kernel: the same predictions to libsvm's tolerance, half the support vectors, the same
score for either order of a pair, and the doubled design itself where the shortcut does not hold."""

import numpy as np
import pandas as pd
import pytest

from synbench.data import Batch
from synbench.plugins.models import svm
from synbench.registry import get_registry
from synbench.testing import mock_batches


def _pairs_only(batch):
    """The mock dataset's pairs as a pairwise dataset (no third drug column)."""
    pairs = batch.subset(batch.rows.index[batch.rows["n_drugs"] == 2])
    return Batch(pairs.rows.drop(columns="drug_3"), pairs.features, pairs.task, pairs.y)


def _swapped(batch):
    rows = batch.rows.copy()
    rows[["drug_1", "drug_2"]] = rows[["drug_2", "drug_1"]].to_numpy()
    return Batch(rows, batch.features, batch.task)


@pytest.mark.parametrize("task", ["regression", "classification"])
def test_the_symmetrised_kernel_fits_what_the_doubled_design_fits(task, monkeypatch):
    cls = get_registry().model("svm")
    train, _, test, _ = mock_batches(cls, task)
    train, test = _pairs_only(train), _pairs_only(test)
    params = {"task": task, "combine": "concat", "C": 3.0, "gamma_factor": 0.5}
    kernel = cls(**params).fit(train)
    assert kernel.training_log_["pair_kernel"].startswith("symmetrised")
    monkeypatch.setattr(svm, "MAX_KERNEL_ROWS", 0)  # too many rows for a Gram matrix: the doubled design
    doubled = cls(**params).fit(train)
    assert getattr(doubled, "pair_kernel_", None) is None
    # the doubled problem gives a pair and its swap the same dual coefficient: twice the support vectors
    assert 2 * kernel.training_log_["n_support"] == len(doubled.estimator_[-1].support_)
    expected = doubled.predict(test)
    np.testing.assert_allclose(kernel.predict(test), expected, atol=1e-3 * max(np.std(expected), 1e-3))
    assert kernel.predict(_swapped(test)) == pytest.approx(kernel.predict(test), abs=1e-9)


def test_a_training_set_that_lists_both_orders_keeps_the_doubled_design():
    cls = get_registry().model("svm")
    train, _, test, _ = mock_batches(cls, "regression")
    train = _pairs_only(train)
    twin = _swapped(train.subset(train.rows.index[:5]))  # MARSY's data ship both orders of a pair
    twin.rows.index = [f"{i}-swapped" for i in twin.rows.index]
    listed = Batch(pd.concat([train.rows, twin.rows]), train.features, train.task, np.concatenate([train.y, train.y[:5]]))
    model = cls(task="regression", combine="concat", C=3.0).fit(listed)
    assert getattr(model, "pair_kernel_", None) is None  # the doubled design leaves those copies out
    assert np.isfinite(model.predict(_pairs_only(test))).all()
    pooled = cls(task="regression", combine="mean", C=3.0).fit(train)
    assert getattr(pooled, "pair_kernel_", None) is None


def test_a_dataset_with_a_third_drug_column_keeps_the_doubled_design():
    cls = get_registry().model("svm")
    train, _, test, _ = mock_batches(cls, "regression")
    pairs = train.subset(train.rows.index[train.rows["n_drugs"] == 2])  # pairs, but the dataset has triples
    model = cls(task="regression", combine="concat", C=3.0).fit(pairs)
    assert getattr(model, "pair_kernel_", None) is None
    assert np.isfinite(model.predict(test)).all()  # so its triples are scored


def test_a_kernel_fit_refuses_rows_it_cannot_score():
    cls = get_registry().model("svm")
    train, _, test, _ = mock_batches(cls, "regression")
    model = cls(task="regression", combine="concat").fit(_pairs_only(train))
    from synbench.errors import DataError

    with pytest.raises(DataError, match="two drugs"):
        model.predict(test)  # a batch from another dataset, with triples
