"""Splits are owned by the harness and identical for every model.

A split table is long-format: one row per (fold, row_id) with ``role`` in ``train`` (inner
training), ``valid`` (inner validation, carved from the training folds only) or ``test``. Rows
absent from a fold are in neither side (leave-drug-out drops rows that mix held-out and kept
drugs from training). The table is stored with the run, so every job of every model reads the
same one.

Schemes:
- ``published``: the dataset's own fold column (e.g. D1's leave-combination-out folds);
- ``random``: rows shuffled into k folds, replicates of a combination (same drug set and cell line,
  either drug order) kept together so that none is tested beside its twin in training;
- ``leave-combination-out``: a drug set (both orders, all cell lines) on one side only;
- ``leave-drug-out``: fold f tests every row containing a drug of group f and trains on rows
  containing none of them;
- ``leave-cell-out``: a cell line on one side only;
- any name in ``SynergyData.published_splits``: split files a dataset ships (e.g. DeepDDS's
  leave-drug folds), with the inner validation set carved from their training side.

The inner validation split follows the grouping of the outer scheme (a held-out combination,
drug or cell line stays held out in validation too), so early stopping and hyperparameter choice
see the same kind of generalisation gap as the test fold, and never see the test fold.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .data import CELL, SynergyData
from .errors import ConfigError, SplitError

SCHEMES = ("published", "random", "leave-combination-out", "leave-drug-out", "leave-cell-out")
VALID_FRACTION = 0.1


def combination_keys(rows: pd.DataFrame, drug_cols: list[str]) -> pd.Series:
    """An order-independent key per row: the sorted drug set ('A|B' == 'B|A')."""
    values = rows[drug_cols].to_numpy(dtype=object)
    keys = ["|".join(sorted(str(d) for d in row if isinstance(d, str))) for row in values]
    return pd.Series(keys, index=rows.index)


def replicate_keys(rows: pd.DataFrame, drug_cols: list[str]) -> pd.Series:
    """One key per (drug set, cell line): replicate measurements of a combination, in either drug
    order, share it, so that no split puts one replicate in training and another in the test fold."""
    return combination_keys(rows, drug_cols) + "@" + rows[CELL].astype(str)


def _group_folds(groups: pd.Series, n_folds: int, seed: int) -> np.ndarray:
    """Assign each row the fold of its group; groups are shuffled, then balanced by size."""
    uniq = groups.unique()
    if len(uniq) < n_folds:
        raise SplitError(f"only {len(uniq)} groups for {n_folds} folds")
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(uniq))
    sizes = groups.value_counts()
    loads = np.zeros(n_folds)
    fold_of = {}
    # Greedy balancing over shuffled groups (large first) keeps fold sizes close, as GroupKFold does,
    # while the seed still decides which groups end up together.
    shuffled = uniq[order]
    for g in sorted(shuffled, key=lambda g: -sizes[g]):
        f = int(np.argmin(loads))
        fold_of[g] = f
        loads[f] += sizes[g]
    return groups.map(fold_of).to_numpy()


def _drug_groups(rows: pd.DataFrame, drug_cols: list[str], n_folds: int, seed: int) -> dict[str, int]:
    drugs = sorted(pd.unique(rows[drug_cols].to_numpy().ravel()[pd.notna(rows[drug_cols].to_numpy().ravel())]))
    if len(drugs) < n_folds:
        raise SplitError(f"only {len(drugs)} drugs for {n_folds} leave-drug-out folds")
    perm = np.random.default_rng(seed).permutation(len(drugs))
    return {drugs[i]: pos % n_folds for pos, i in enumerate(perm)}


def _held_out_by_drug(rows, drug_cols, drug_fold: dict, fold: int) -> np.ndarray:
    held = np.zeros(len(rows), dtype=bool)
    for col in drug_cols:
        held |= rows[col].map(drug_fold).to_numpy() == fold
    return held


def _grouping(rows: pd.DataFrame, drug_cols: list[str], scheme: str) -> pd.Series | None:
    if scheme in ("published", "leave-combination-out"):
        return combination_keys(rows, drug_cols)
    if scheme == "leave-cell-out":
        return rows[CELL]
    if scheme == "random":
        return replicate_keys(rows, drug_cols)
    return None  # leave-drug-out is handled by drug groups


def _inner_valid(rows: pd.DataFrame, drug_cols: list[str], scheme: str, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Split training rows into (inner train mask, inner valid mask)."""
    if scheme == "leave-drug-out":
        drugs = sorted(pd.unique(rows[drug_cols].to_numpy().ravel()[pd.notna(rows[drug_cols].to_numpy().ravel())]))
        rng = np.random.default_rng(seed)
        held = set(rng.permutation(drugs)[: max(1, int(round(VALID_FRACTION * len(drugs))))])
        valid = np.zeros(len(rows), dtype=bool)
        for col in drug_cols:
            valid |= rows[col].isin(held).to_numpy()
        return ~valid, valid
    groups = _grouping(rows, drug_cols, scheme)
    uniq = groups.unique()
    rng = np.random.default_rng(seed)
    n_valid = max(1, int(round(VALID_FRACTION * len(uniq))))
    chosen = set(uniq[rng.permutation(len(uniq))[:n_valid]])
    valid = groups.isin(chosen).to_numpy()
    return ~valid, valid


_GROUP_SCHEME = {"combination": "leave-combination-out", "drug": "leave-drug-out", "cell": "leave-cell-out", "row": "random"}


EXTERNAL = "external:"


def schemes_of(data: SynergyData) -> tuple[str, ...]:
    return SCHEMES + tuple(data.published_splits) + tuple(EXTERNAL + n for n in data.external_sets)


def with_external(data: SynergyData, name: str) -> SynergyData:
    """The dataset plus one of its external evaluation sets, as a single one-fold split: every row
    of the dataset trains (inner validation carved out, grouped by combination) and every row of
    the external set tests. External row ids get the prefix ``<name>:``; entities and omics are
    joined so that featurizers see both sides."""
    from dataclasses import replace

    from .data import PublishedSplit
    from .registry import suggest

    if name not in data.external_sets:
        raise ConfigError(f"dataset '{data.name}' has no external set '{name}'{suggest(name, data.external_sets)}")
    ext = data.external_sets[name]
    ext_rows = ext.combinations.rename(index=lambda r: f"{name}:{r}")
    keep = [c for c in ext_rows.columns if c in data.combinations.columns or c.startswith("drug_")]
    combinations = pd.concat([data.combinations, ext_rows[keep]])
    combinations.index.name = "row_id"
    if data.fold_column:
        combinations = combinations.drop(columns=[data.fold_column])
    drugs = pd.concat([data.drugs, ext.drugs.loc[~ext.drugs.index.isin(data.drugs.index)]])
    cells = pd.concat([data.cell_lines, ext.cell_lines.loc[~ext.cell_lines.index.isin(data.cell_lines.index)]])
    omics = {}
    for key, matrix in data.omics.items():
        other = ext.omics.get(key)
        if other is not None and len(other):
            extra = other.loc[~other.index.isin(matrix.index)].reindex(columns=matrix.columns)
            omics[key] = pd.concat([matrix, extra.dropna()]) if extra.notna().all(axis=1).any() else matrix
        else:
            omics[key] = matrix
    table = pd.concat([pd.DataFrame({"fold": 0, "row_id": data.combinations.index, "role": "train"}),
                       pd.DataFrame({"fold": 0, "row_id": ext_rows.index, "role": "test"})], ignore_index=True)
    targets = {t: target for t, target in data.targets.items() if t in ext.targets}
    return replace(data, combinations=combinations, drugs=drugs, cell_lines=cells, omics=omics,
                   targets=targets, checksums={**data.checksums, **ext.checksums}, fold_column=None,
                   published_splits={EXTERNAL + name: PublishedSplit(table, group_by="combination")}, external_sets={})


def n_folds_of(data: SynergyData, scheme: str, n_folds: int) -> int:
    """How many folds a scheme has: fixed by the data for published ones, else ``n_folds``."""
    if scheme == "published" and data.fold_column:
        return int(data.combinations[data.fold_column].nunique())
    if scheme in data.published_splits:
        return int(data.published_splits[scheme].table["fold"].nunique())
    if scheme.startswith(EXTERNAL):
        return 1
    return n_folds


def _from_published(data: SynergyData, scheme: str, seed: int) -> pd.DataFrame:
    split = data.published_splits[scheme]
    table, dcols = split.table, data.drug_columns
    inner_scheme = _GROUP_SCHEME[split.group_by]
    parts = []
    for i, fold in enumerate(sorted(table["fold"].unique())):
        part = table[table["fold"] == fold]
        pool = data.combinations.loc[pd.Index(part.loc[part["role"] == "train", "row_id"])]
        inner_train, inner_valid = _inner_valid(pool, dcols, inner_scheme, seed * 1000 + i + 1)
        test_ids = part.loc[part["role"] == "test", "row_id"]
        for ids, role in ((pool.index[inner_train], "train"), (pool.index[inner_valid], "valid"), (test_ids, "test")):
            parts.append(pd.DataFrame({"fold": i, "row_id": np.asarray(ids), "role": role}))
    out = pd.concat(parts, ignore_index=True)
    out["role"] = pd.Categorical(out["role"], categories=["train", "valid", "test"])
    return out


def make_splits(data: SynergyData, scheme: str, n_folds: int = 5, seed: int = 0) -> pd.DataFrame:
    if scheme not in schemes_of(data):
        from .registry import suggest

        raise ConfigError(f"unknown split scheme '{scheme}' for dataset '{data.name}'{suggest(scheme, schemes_of(data))}")
    if scheme.startswith(EXTERNAL) and scheme not in data.published_splits:
        data = with_external(data, scheme[len(EXTERNAL):])
    if scheme in data.published_splits:
        return _from_published(data, scheme, seed)
    rows, dcols = data.combinations, data.drug_columns
    if scheme == "published":
        if data.fold_column is None:
            raise ConfigError(f"dataset '{data.name}' has no published folds; use one of {', '.join(SCHEMES[1:])}")
        fold_values = sorted(rows[data.fold_column].unique())
        fold_index = {v: i for i, v in enumerate(fold_values)}
        test_fold = rows[data.fold_column].map(fold_index).to_numpy()
        n_folds = len(fold_values)
    elif scheme == "random":
        # rows are shuffled into folds with their replicates (same drug set and cell line, either order)
        test_fold = _group_folds(replicate_keys(rows, dcols), n_folds, seed)
    elif scheme == "leave-drug-out":
        test_fold = None
        drug_fold = _drug_groups(rows, dcols, n_folds, seed)
    else:
        test_fold = _group_folds(_grouping(rows, dcols, scheme), n_folds, seed)

    parts = []
    for fold in range(n_folds):
        if test_fold is None:
            held = _held_out_by_drug(rows, dcols, drug_fold, fold)
            test = held
            # a training row must contain none of the held-out drugs
            train_pool = ~held
        else:
            test = test_fold == fold
            train_pool = ~test
        pool = rows[train_pool]
        inner_train, inner_valid = _inner_valid(pool, dcols, scheme, seed * 1000 + fold + 1)
        for ids, role in ((pool.index[inner_train], "train"), (pool.index[inner_valid], "valid"), (rows.index[test], "test")):
            parts.append(pd.DataFrame({"fold": fold, "row_id": ids, "role": role}))
    table = pd.concat(parts, ignore_index=True)
    table["role"] = pd.Categorical(table["role"], categories=["train", "valid", "test"])
    return table


def fold_ids(splits: pd.DataFrame, fold: int) -> dict[str, pd.Index]:
    part = splits[splits["fold"] == fold]
    if part.empty:
        raise SplitError(f"fold {fold} is not in the split table (folds: {sorted(splits['fold'].unique())})")
    return {role: pd.Index(part.loc[part["role"] == role, "row_id"]) for role in ("train", "valid", "test")}


def check_splits(splits: pd.DataFrame, labels: pd.Series, task: str, where: str = "") -> None:
    """Refuse folds a model cannot be trained or scored on, before any job runs."""
    for fold in sorted(splits["fold"].unique()):
        ids = fold_ids(splits, fold)
        for role, idx in ids.items():
            if len(idx) == 0:
                raise SplitError(f"{where}fold {fold} has an empty {role} set")
        if set(ids["test"]) & (set(ids["train"]) | set(ids["valid"])):
            raise SplitError(f"{where}fold {fold} has rows on both sides of the split")
        if task == "classification":
            for role, idx in ids.items():
                classes = np.unique(labels.loc[idx].to_numpy())
                if len(classes) < 2:
                    raise SplitError(
                        f"{where}fold {fold} {role} set has a single class ({int(classes[0])}); "
                        f"classification needs both classes in every fold"
                    )
