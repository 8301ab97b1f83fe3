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
- ``leave-tissue-out``: fold = tissue (the cell-line table's ``tissue`` column): every row of the
  tissue tests, every row of the other tissues trains;
- ``tissue-few-shot:fraction=F`` (0 <= F < 1): fold = target tissue; training holds every other
  tissue plus a fraction F of the target tissue's drug sets (rounded to whole sets; a set with
  both drug orders and all its cell lines of that tissue on one side), the rest of the tissue
  tests. The tissue of each fold is the ``group`` column of the split table (:func:`fold_groups`);
- ``cross:TRAIN``: train on every row of dataset TRAIN, test on every row of the chosen dataset
  (one fold; the two are joined by :func:`with_cross`, entities resolved through their aliases);
- any name in ``SynergyData.published_splits``: split files a dataset ships (e.g. DeepDDS's
  leave-drug folds), with the inner validation set carved from their training side.

The inner validation split follows the grouping of the outer scheme (a held-out combination,
drug or cell line stays held out in validation too), so early stopping and hyperparameter choice
see the same kind of generalisation gap as the test fold, and never see the test fold.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .data import CELL, TISSUE, SynergyData  # TISSUE: the cell-line column the tissue schemes group by
from .errors import ConfigError, SplitError

SCHEMES = ("published", "random", "leave-combination-out", "leave-drug-out", "leave-cell-out", "leave-tissue-out")
GENERATED_SCHEMES = ("random", "leave-combination-out", "leave-drug-out", "leave-cell-out")  # their fold count is n_folds
VALID_FRACTION = 0.1
LEAVE_TISSUE_OUT = "leave-tissue-out"
FEW_SHOT = "tissue-few-shot"
CROSS = "cross:"


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
    """The scheme names of a dataset; parametrised ones appear as templates (``...:fraction=F``)."""
    return (SCHEMES + (f"{FEW_SHOT}:fraction=F", f"{CROSS}DATASET") + tuple(data.published_splits)
            + tuple(EXTERNAL + n for n in data.external_sets))


def parse_fraction(scheme: str) -> float:
    """``tissue-few-shot:fraction=0.1`` -> 0.1; a missing, malformed or out-of-range fraction is one line."""
    usage = f"write {FEW_SHOT}:fraction=F with 0 <= F < 1"
    head, _, rest = scheme.partition(":")
    if head.strip() != FEW_SHOT:
        raise ConfigError(f"split '{scheme}' is not a {FEW_SHOT} scheme")
    key, sep, raw = rest.partition("=")
    if not sep or key.strip() != "fraction":
        raise ConfigError(f"split '{scheme}' needs its fraction of the target tissue: {usage}")
    try:
        value = float(raw.strip())
    except ValueError:
        raise ConfigError(f"split '{scheme}': fraction '{raw.strip()}' is not a number; {usage}") from None
    if not 0 <= value < 1:  # also refuses NaN; 1 would leave nothing of the tissue to test
        raise ConfigError(f"split '{scheme}': fraction {raw.strip()} is out of range; {usage}")
    return value


def check_scheme(data: SynergyData, scheme: str) -> str:
    """The canonical name of ``scheme`` for ``data`` (``tissue-few-shot:fraction=0.10`` ->
    ``tissue-few-shot:fraction=0.1``, so one split has one name in job ids and file names), or a
    one-line :class:`ConfigError`."""
    from .registry import get_registry, suggest

    scheme = str(scheme).strip()
    if scheme == FEW_SHOT or scheme.startswith(FEW_SHOT + ":"):
        value = parse_fraction(scheme)
        text = repr(value)
        scheme = f"{FEW_SHOT}:fraction={text[:-2] if text.endswith('.0') else text}"
    elif scheme.startswith(CROSS):
        train = scheme[len(CROSS):].strip()
        if scheme in data.published_splits:  # already joined by with_cross
            return scheme
        if not train:
            raise ConfigError(f"split '{scheme}' needs the training dataset: {CROSS}DATASET")
        train = get_registry().entry("dataset", train).name  # unknown names fail with a suggestion
        if train == data.name:
            raise ConfigError(f"split '{scheme}' trains and tests on dataset '{data.name}'; "
                              f"{CROSS}DATASET needs another dataset (use a cross-validation scheme here)")
        return CROSS + train
    elif scheme not in schemes_of(data):
        raise ConfigError(f"unknown split scheme '{scheme}' for dataset '{data.name}'{suggest(scheme, schemes_of(data))}")
    if scheme == LEAVE_TISSUE_OUT or scheme.startswith(FEW_SHOT):
        tissues_of(data)  # every cell line needs a tissue
    return scheme


def tissues_of(data: SynergyData) -> pd.Series:
    """The tissue of each row (by ``row_id``), from the cell-line table; one line when it has none."""
    cells = data.cell_lines
    if TISSUE not in cells.columns:
        raise ConfigError(f"dataset '{data.name}' has no '{TISSUE}' column in its cell-line table, "
                          f"so it has no tissue split schemes")
    tissue = data.combinations[CELL].map(cells[TISSUE])
    blank = tissue.isna() | (tissue.astype(str).str.strip() == "")
    if blank.any():
        missing = sorted(set(data.combinations.loc[blank, CELL].astype(str)))
        raise ConfigError(f"dataset '{data.name}': {len(missing)} cell lines have no tissue "
                          f"({', '.join(missing[:5])}{' ...' if len(missing) > 5 else ''}); the tissue schemes need one for every cell line")
    return tissue.astype(str)


def fold_groups(splits: pd.DataFrame) -> dict[int, str]:
    """Fold -> the group it holds out (the target tissue of the tissue schemes); empty for others."""
    if "group" not in splits.columns:
        return {}
    return {int(f): str(g) for f, g in splits.groupby("fold", observed=True)["group"].first().items()}


def _tissue_splits(data: SynergyData, fraction: float | None, seed: int) -> pd.DataFrame:
    """One fold per tissue (sorted by name). ``fraction=None``: leave-tissue-out; else few-shot."""
    rows, dcols = data.combinations, data.drug_columns
    tissue = tissues_of(data)
    tissues = sorted(tissue.unique())
    if len(tissues) < 2:
        raise SplitError(f"dataset '{data.name}' has {len(tissues)} tissue; the tissue schemes need two or more")
    combo = combination_keys(rows, dcols)
    parts = []
    for fold, target in enumerate(tissues):
        in_target = (tissue == target).to_numpy()
        test = in_target.copy()
        if fraction:
            # a drug set of the target tissue (both orders, all its cell lines there) is on one side
            sets = np.array(sorted(combo[in_target].unique()))
            n_shot = min(int(np.floor(fraction * len(sets) + 0.5)), len(sets) - 1)  # keep one set to test
            rng = np.random.default_rng(seed * 1000 + fold + 1)
            shot = set(sets[rng.permutation(len(sets))[:n_shot]])
            test &= ~combo.isin(shot).to_numpy()
        pool = rows[~test]
        inner_train, inner_valid = _tissue_inner_valid(pool, combo[~test], tissue[~test], fraction is None,
                                                       seed * 1000 + fold + 1)
        for ids, role in ((pool.index[inner_train], "train"), (pool.index[inner_valid], "valid"), (rows.index[test], "test")):
            parts.append(pd.DataFrame({"fold": fold, "row_id": ids, "role": role, "group": target}))
    table = pd.concat(parts, ignore_index=True)
    table["role"] = pd.Categorical(table["role"], categories=["train", "valid", "test"])
    return table


def _tissue_inner_valid(pool: pd.DataFrame, combo: pd.Series, tissue: pd.Series, whole_tissues: bool,
                        seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Inner validation shaped like the test fold: whole tissues for leave-tissue-out (cell lines when
    training holds one tissue), drug sets within a tissue for few-shot (the test pairs are seen in
    other tissues, as these are)."""
    if whole_tissues:
        groups = tissue if tissue.nunique() > 1 else pool[CELL].astype(str)
    else:
        groups = combo + "@" + tissue
    uniq = np.array(sorted(groups.unique()))
    rng = np.random.default_rng(seed)
    chosen = set(uniq[rng.permutation(len(uniq))[: max(1, int(round(VALID_FRACTION * len(uniq))))]])
    valid = groups.isin(chosen).to_numpy()
    return ~valid, valid


def with_cross(test: SynergyData, train: SynergyData) -> SynergyData:
    """Train on every row of ``train``, test on every row of ``test``, as one one-fold split named
    ``cross:<train>``. The result is ``test`` (its name, row ids and targets) plus the training rows
    under ids ``<train>:<row_id>``. Training entities are renamed to the test side's name where
    they resolve to one through the alias tables (:class:`~synbench.entities.EntityIndex`), so a
    drug spelled two ways is one entity; targets are those both datasets have with the same task
    (and threshold); omics rows of training cell lines join the test side's matrices."""
    from dataclasses import replace

    from .data import N_DRUGS, PublishedSplit
    from .entities import EntityIndex, shared_aliases

    name = CROSS + train.name
    targets = {t: target for t, target in test.targets.items()
               if t in train.targets and train.targets[t].task == target.task and train.targets[t].threshold == target.threshold}
    if not targets:
        raise ConfigError(f"split '{name}': datasets '{train.name}' and '{test.name}' share no target "
                          f"(test: {', '.join(test.targets)}; training: {', '.join(train.targets)})")
    drug_map = _resolve_names(train.drugs, test.drugs, shared_aliases("drugs"), EntityIndex)
    cell_map = _resolve_names(train.cell_lines, test.cell_lines, shared_aliases("cell_lines"), EntityIndex)
    src = train.combinations
    dcols = sorted(set(test.drug_columns) | set(train.drug_columns), key=lambda c: int(c[5:]))
    train_rows = pd.DataFrame(index=pd.Index([f"{train.name}:{r}" for r in src.index], name="row_id"))
    for col in dcols:
        values = src[col].map(lambda d: drug_map.get(d, d) if isinstance(d, str) else None) if col in src else None
        train_rows[col] = None if values is None else values.to_numpy(dtype=object)
    train_rows[CELL] = src[CELL].map(lambda c: cell_map.get(c, c)).to_numpy()
    train_rows[N_DRUGS] = src[N_DRUGS].to_numpy()
    test_rows = test.combinations[[c for c in test.drug_columns] + [CELL, N_DRUGS]].copy()
    for col in dcols:
        if col not in test_rows:
            test_rows[col] = None
    for t, target in targets.items():  # the test side's column names; one column may serve several targets
        test_rows[target.column] = test.combinations[target.column].to_numpy()
        train_rows[target.column] = src[train.targets[t].column].to_numpy()
    combinations = pd.concat([test_rows, train_rows[test_rows.columns]])
    combinations.index.name = "row_id"
    drugs = _join_entities(test.drugs, train.drugs, drug_map)
    cells = _join_entities(test.cell_lines, train.cell_lines, cell_map)
    omics = {}
    for key, matrix in test.omics.items():
        other = train.omics.get(key)
        if other is not None and len(other):
            other = other.rename(index=lambda c: cell_map.get(c, c))
            extra = other.loc[~other.index.isin(matrix.index) & ~other.index.duplicated()].reindex(columns=matrix.columns)
            omics[key] = pd.concat([matrix, extra.dropna()])  # rows lacking a test-side gene are left out
        else:
            omics[key] = matrix
    table = pd.concat([pd.DataFrame({"fold": 0, "row_id": train_rows.index, "role": "train"}),
                       pd.DataFrame({"fold": 0, "row_id": test_rows.index, "role": "test"})], ignore_index=True)
    checksums = {**{f"{train.name}:{k}": v for k, v in train.checksums.items()}, **test.checksums}
    return replace(test, combinations=combinations, drugs=drugs, cell_lines=cells, omics=omics, targets=targets,
                   checksums=checksums, fold_column=None, external_sets={},
                   published_splits={name: PublishedSplit(table, group_by="combination")})


def _resolve_names(source: pd.DataFrame, reference: pd.DataFrame, shared: dict, index_cls) -> dict[str, str]:
    """Source entity name -> the reference table's name it resolves to (by name or any alias)."""
    def aliases(table, name):
        value = table.at[name, "aliases"] if "aliases" in table.columns else None
        return [a for a in value if isinstance(a, str)] if isinstance(value, (list, tuple)) else []

    names = [str(n) for n in reference.index]
    index = index_cls(names, {n: [*aliases(reference, n), *shared.get(n, [])] for n in names})
    found = {}
    for name in source.index:
        hit = next((h for h in (index.resolve(s) for s in (name, *aliases(source, name), *shared.get(name, []))) if h), None)
        if hit is not None and hit != name:
            found[name] = hit
    return found


def _join_entities(test: pd.DataFrame, train: pd.DataFrame, renamed: dict) -> pd.DataFrame:
    extra = train.rename(index=lambda n: renamed.get(n, n))
    extra = extra.loc[~extra.index.isin(test.index) & ~extra.index.duplicated()]
    joined = pd.concat([test, extra.reindex(columns=test.columns)])
    joined.index.name = test.index.name
    return joined


def entity_coverage(data: SynergyData, train_ids, test_ids) -> dict:
    """Which drugs and cell lines of the test rows no training row has (names as resolved by the
    split, e.g. :func:`with_cross`), and how many test rows hold one (per kind, and of either kind)."""
    rows, dcols = data.combinations, data.drug_columns
    train, test = rows.loc[pd.Index(train_ids)], rows.loc[pd.Index(test_ids)]
    seen_drugs = set(pd.unique(train[dcols].to_numpy().ravel())) - {None}
    seen_cells = set(train[CELL])
    out, any_new = {}, np.zeros(len(test), dtype=bool)
    for kind, seen, cols in (("drugs", seen_drugs, dcols), ("cell_lines", seen_cells, [CELL])):
        values = test[cols].to_numpy(dtype=object)
        names = sorted({v for v in values.ravel() if isinstance(v, str)})
        unseen = [n for n in names if n not in seen]
        new = set(unseen)
        has_new = np.array([any(v in new for v in row if isinstance(v, str)) for row in values], dtype=bool)
        any_new |= has_new
        out[kind] = {"test": len(names), "unseen": unseen, "n_unseen": len(unseen), "test_rows_with_unseen": int(has_new.sum())}
    out["test_rows"] = len(test)
    out["test_rows_with_unseen"] = int(any_new.sum())
    return out


def describe_coverage(coverage: dict) -> str:
    """One line: ``26 of 38 test drugs and 39 of 39 test cell lines never seen in training (...); ...``."""
    d, c = coverage["drugs"], coverage["cell_lines"]
    shown = [*d["unseen"][:3], *c["unseen"][:3]]
    more = d["n_unseen"] + c["n_unseen"] - len(shown)
    names = f" ({', '.join(shown)}{f' +{more} more' if more > 0 else ''})" if shown else ""
    return (f"{d['n_unseen']} of {d['test']} test drugs and {c['n_unseen']} of {c['test']} test cell lines never seen "
            f"in training{names}; {coverage['test_rows_with_unseen']:,} of {coverage['test_rows']:,} test rows hold one")


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
    if scheme.startswith(EXTERNAL) or scheme.startswith(CROSS):
        return 1
    if scheme == LEAVE_TISSUE_OUT or scheme.startswith(FEW_SHOT):  # one fold per tissue
        return int(tissues_of(data).nunique())
    return n_folds


DEFAULT_N_FOLDS = 5


def fold_count(data: SynergyData, scheme: str, n_folds: int | None) -> int:
    """The folds a run of ``scheme`` has: ``n_folds`` (default :data:`DEFAULT_N_FOLDS`) for a
    generated split; for one whose folds the data fixes (published, one per tissue), that count,
    and a ConfigError when ``n_folds`` was given as another count rather than ignoring it."""
    n = n_folds_of(data, scheme, DEFAULT_N_FOLDS if n_folds is None else n_folds)
    if n_folds is not None and n != n_folds:
        raise ConfigError(f"--n-folds {n_folds} does not apply to split '{scheme}' of dataset '{data.name}', whose "
                          f"{n} folds the data fixes; for {n_folds} generated folds add --split "
                          f"{GENERATED_SCHEMES[0]} (or {', '.join(GENERATED_SCHEMES[1:])})")
    return n


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
    scheme = check_scheme(data, scheme)
    if scheme.startswith(EXTERNAL) and scheme not in data.published_splits:
        data = with_external(data, scheme[len(EXTERNAL):])
    if scheme.startswith(CROSS) and scheme not in data.published_splits:
        raise ConfigError(f"split '{scheme}' needs the two datasets joined first (synbench.splits.with_cross)")
    if scheme == LEAVE_TISSUE_OUT:
        return _tissue_splits(data, None, seed)
    if scheme.startswith(FEW_SHOT):
        return _tissue_splits(data, parse_fraction(scheme), seed)
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
