import numpy as np
import pandas as pd
import pytest

from synbench.errors import ConfigError, DataError, SplitError
from synbench.splits import SCHEMES, check_splits, combination_keys, fold_ids, make_splits, n_folds_of, schemes_of
from synbench.testing import mock_data


@pytest.fixture(scope="module")
def data():
    return mock_data()


def _sides(data, splits, fold):
    ids = fold_ids(splits, fold)
    rows = data.combinations
    return ids, rows.loc[ids["train"].append(ids["valid"])], rows.loc[ids["test"]]


@pytest.mark.parametrize("scheme", SCHEMES)
def test_no_row_on_both_sides_and_deterministic(data, scheme):
    splits = make_splits(data, scheme, seed=3)
    assert splits.equals(make_splits(data, scheme, seed=3)), "same seed must give the same split"
    for fold in sorted(splits["fold"].unique()):
        ids = fold_ids(splits, fold)
        assert not set(ids["test"]) & set(ids["train"])
        assert not set(ids["test"]) & set(ids["valid"])
        assert not set(ids["train"]) & set(ids["valid"])
        assert len(ids["test"]) and len(ids["train"]) and len(ids["valid"])


@pytest.mark.parametrize("scheme", ["random", "leave-combination-out", "leave-cell-out"])
def test_each_row_tested_exactly_once(data, scheme):
    splits = make_splits(data, scheme, seed=0)
    tested = splits.loc[splits["role"] == "test", "row_id"]
    assert tested.is_unique and set(tested) == set(data.combinations.index)


def test_published_folds_are_the_dataset_column(data):
    splits = make_splits(data, "published")
    for fold in range(5):
        ids = fold_ids(splits, fold)
        assert set(ids["test"]) == set(data.combinations.index[data.combinations["fold"] == fold])


@pytest.mark.parametrize("scheme", ["published", "leave-combination-out"])
def test_a_combination_never_crosses_the_split(data, scheme):
    """Both drug orders and all cell lines of a drug set stay on one side (and in inner validation too)."""
    keys = combination_keys(data.combinations, data.drug_columns)
    splits = make_splits(data, scheme, seed=1)
    for fold in range(5):
        ids = fold_ids(splits, fold)
        test_keys, train_keys, valid_keys = (set(keys.loc[ids[r]]) for r in ("test", "train", "valid"))
        assert not test_keys & (train_keys | valid_keys)
        assert not train_keys & valid_keys


def test_combination_key_ignores_drug_order():
    rows = pd.DataFrame({"drug_1": ["A", "B"], "drug_2": ["B", "A"]}, index=["r1", "r2"])
    keys = combination_keys(rows, ["drug_1", "drug_2"])
    assert keys["r1"] == keys["r2"]


def test_leave_drug_out_trains_without_held_out_drugs(data):
    splits = make_splits(data, "leave-drug-out", seed=0)
    dcols = data.drug_columns
    for fold in range(5):
        ids, train, test = _sides(data, splits, fold)
        test_drugs = set(pd.unique(test[dcols].to_numpy().ravel())) - {None}
        train_drugs = set(pd.unique(train[dcols].to_numpy().ravel())) - {None}
        held = {d for d in test_drugs if d is not None and d not in train_drugs}
        assert held, "every fold holds out at least one drug"
        # every test row contains at least one drug never seen in training
        assert all(any(d in held for d in row if d is not None) for row in test[dcols].to_numpy())


def test_leave_cell_out(data):
    splits = make_splits(data, "leave-cell-out", seed=0)
    for fold in range(5):
        _, train, test = _sides(data, splits, fold)
        assert not set(test["cell_line"]) & set(train["cell_line"])


def test_unknown_scheme_and_missing_published(data):
    with pytest.raises(ConfigError, match="did you mean 'random'"):
        make_splits(data, "randm")
    data2 = mock_data()
    data2.fold_column = None
    with pytest.raises(ConfigError, match="no published folds"):
        make_splits(data2, "published")


def test_single_class_fold_is_refused(data):
    splits = make_splits(data, "published")
    labels = pd.Series(0.0, index=data.combinations.index)
    with pytest.raises(SplitError, match="single class"):
        check_splits(splits, labels, "classification")
    check_splits(splits, labels, "regression")  # a constant regression target is not a split problem


def test_dataset_shipped_split_files_become_a_named_scheme(data):
    """A split a dataset ships (train/test per fold) is used as given; validation comes from its train side."""
    import dataclasses

    from synbench.data import PublishedSplit

    rows = data.combinations
    cells = sorted(rows["cell_line"].unique())
    parts = []
    for fold, cell in enumerate(cells[:3]):
        test = rows.index[rows["cell_line"] == cell]
        # leave a few rows out of both sides, as split files do
        train = rows.index[rows["cell_line"] != cell][5:]
        parts += [pd.DataFrame({"fold": fold, "row_id": test, "role": "test"}),
                  pd.DataFrame({"fold": fold, "row_id": train, "role": "train"})]
    shipped = PublishedSplit(pd.concat(parts, ignore_index=True), group_by="cell")
    custom = dataclasses.replace(data, published_splits={"files-leave-cell": shipped}).validate()
    assert "files-leave-cell" in schemes_of(custom) and n_folds_of(custom, "files-leave-cell", 5) == 3
    table = make_splits(custom, "files-leave-cell", seed=1)
    for fold, cell in enumerate(cells[:3]):
        ids = fold_ids(table, fold)
        assert set(ids["test"]) == set(rows.index[rows["cell_line"] == cell])
        shipped_train = set(rows.index[rows["cell_line"] != cell][5:])
        assert set(ids["train"]) | set(ids["valid"]) == shipped_train
        # grouped like the scheme: a validation cell line is absent from inner training
        assert not set(rows.loc[ids["valid"], "cell_line"]) & set(rows.loc[ids["train"], "cell_line"])
    bad = dataclasses.replace(data, published_splits={"x": PublishedSplit(pd.DataFrame({"fold": [0], "row_id": ["nope"], "role": ["test"]}))})
    with pytest.raises(DataError, match="split 'x' names unknown rows nope"):
        bad.validate()


def test_external_set_is_one_fold_training_on_everything(data):
    import dataclasses

    from synbench.splits import with_external

    ext = mock_data()
    held = ext.combinations.index[:40]
    ext = dataclasses.replace(ext, combinations=ext.combinations.loc[held])
    joined = dataclasses.replace(data, external_sets={"lab": ext})
    assert "external:lab" in schemes_of(joined) and n_folds_of(joined, "external:lab", 5) == 1
    table = make_splits(joined, "external:lab", seed=0)
    ids = fold_ids(table, 0)
    assert set(ids["test"]) == {f"lab:{r}" for r in held}
    assert set(ids["train"]) | set(ids["valid"]) == set(data.combinations.index)
    merged = with_external(joined, "lab").validate()
    assert merged.fold_column is None and len(merged.combinations) == len(data.combinations) + 40
    with pytest.raises(ConfigError, match="no external set 'lbb'; did you mean 'lab'"):
        with_external(joined, "lbb")
