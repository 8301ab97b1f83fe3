"""Typed data objects that flow one way: dataset -> featurizer -> model -> predictions.

A :class:`SynergyData` is what a dataset plugin yields: a combination table (one row per ordered
tuple of k >= 2 drugs and a cell line, indexed by a stable ``row_id``), its named targets, entity
tables for drugs and cell lines, and any omics matrices. ``validate()`` turns every inconsistency
into a one-line :class:`~synbench.errors.DataError`.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import pandas as pd

from .errors import DataError

TaskType = Literal["regression", "classification"]
TASK_TYPES = ("regression", "classification")
CELL = "cell_line"
N_DRUGS = "n_drugs"
TISSUE = "tissue"  # the cell-line table's optional tissue column (the tissue split schemes group by it)
# A finite label this large is a unit or parsing error (synergy scores are in the hundreds at
# most), and its square overflows every error metric.
MAX_ABS_LABEL = 1e9
_warned: set = set()  # (dataset, target) pairs whose replicate conflicts were reported


def quiet_data_warnings() -> None:
    """Pool workers load the data the main process has already warned about."""
    _warned.add("*")


def _warn(key, message: str) -> None:
    if key in _warned or "*" in _warned:
        return
    _warned.add(key)
    print(f"warning: {message}", file=sys.stderr, flush=True)


def drug_columns(frame: pd.DataFrame) -> list[str]:
    """The ``drug_1 .. drug_K`` columns of a combination table, in order."""
    cols = [c for c in frame.columns if c.startswith("drug_") and c[5:].isdigit()]
    return sorted(cols, key=lambda c: int(c[5:]))


def _preview(values, limit: int = 5) -> str:
    values = [str(v) for v in values]
    more = f" (+{len(values) - limit} more)" if len(values) > limit else ""
    return ", ".join(values[:limit]) + more


@dataclass(frozen=True)
class Target:
    """A named prediction target of a dataset.

    A classification target may be derived from a regression column by a threshold
    (``label = source > threshold``), e.g. D1's ``loewe_gt30``.
    """

    name: str
    task: TaskType
    column: str
    description: str = ""
    threshold: float | None = None

    def values(self, combinations: pd.DataFrame) -> pd.Series:
        raw = combinations[self.column]
        if self.threshold is None:
            return raw.astype(float).rename(self.name)
        labels = (raw.astype(float) > self.threshold).astype(float)
        return labels.where(raw.notna()).rename(self.name)


@dataclass(frozen=True)
class PublishedSplit:
    """A split a dataset ships as files (e.g. DeepDDS's leave-drug folds), usable as a named scheme.

    ``table`` is long-format with columns ``fold``, ``row_id`` and ``role`` in ``train`` / ``test``
    (rows in neither are unused in that fold). The harness carves the inner validation set out of
    ``train``, grouped by ``group_by``: ``combination``, ``drug``, ``cell`` or ``row``.
    """

    table: pd.DataFrame
    group_by: str = "combination"
    description: str = ""


@dataclass
class SynergyData:
    """A loaded dataset: combinations, targets, entities, omics, and the checksums of its files."""

    name: str
    combinations: pd.DataFrame
    targets: dict[str, Target]
    drugs: pd.DataFrame
    cell_lines: pd.DataFrame
    omics: dict[str, pd.DataFrame] = field(default_factory=dict)
    checksums: dict[str, str] = field(default_factory=dict)
    fold_column: str | None = None
    published_splits: dict[str, PublishedSplit] = field(default_factory=dict)
    external_sets: dict[str, "SynergyData"] = field(default_factory=dict)  # held-out evaluation sets

    # -- access -------------------------------------------------------------------------------
    @property
    def drug_columns(self) -> list[str]:
        return drug_columns(self.combinations)

    def target(self, name: str) -> Target:
        from .registry import suggest

        if name not in self.targets:
            raise DataError(f"dataset '{self.name}' has no target '{name}'{suggest(name, self.targets)}")
        return self.targets[name]

    def labels(self, target: str) -> pd.Series:
        return self.target(target).values(self.combinations)

    def entity_rows(self) -> pd.DataFrame:
        """The entity columns only: drugs, cell line and k; what a model may see of a row."""
        return self.combinations[self.drug_columns + [CELL, N_DRUGS]]

    def row_tissues(self) -> np.ndarray | None:
        """The tissue of each row's cell line (the cell-line table's ``tissue`` column), or None
        when the dataset records none. An entity attribute, not a label."""
        if TISSUE not in self.cell_lines.columns:
            return None
        return self.combinations[CELL].map(self.cell_lines[TISSUE]).to_numpy(dtype=object)

    # -- validation ---------------------------------------------------------------------------
    def validate(self) -> "SynergyData":
        c, where = self.combinations, f"dataset '{self.name}'"
        if c.index.name != "row_id":
            raise DataError(f"{where}: combination table must be indexed by 'row_id'")
        if len(c) == 0:
            raise DataError(f"{where}: combination table is empty")
        if c.index.has_duplicates:
            dups = c.index[c.index.duplicated()].unique()
            raise DataError(f"{where}: duplicate row ids {_preview(dups)}")
        dcols = self.drug_columns
        if len(dcols) < 2:
            raise DataError(f"{where}: needs at least the columns drug_1 and drug_2, found {dcols}")
        for col in (CELL, N_DRUGS):
            if col not in c.columns:
                raise DataError(f"{where}: missing column '{col}'")
        if c[CELL].isna().any():
            raise DataError(f"{where}: {int(c[CELL].isna().sum())} rows have no cell line")
        present = c[dcols].notna().sum(axis=1)
        if (present < 2).any():
            raise DataError(f"{where}: rows with fewer than two drugs: {_preview(c.index[present < 2])}")
        if not (present == c[N_DRUGS]).all():
            raise DataError(f"{where}: column '{N_DRUGS}' disagrees with the drug columns")
        known_drugs = set(self.drugs.index)
        used = pd.unique(c[dcols].to_numpy().ravel())
        unknown = sorted(str(d) for d in used if isinstance(d, str) and d not in known_drugs)
        if unknown:
            raise DataError(f"{where}: drugs not in the drug table: {_preview(unknown)}")
        unknown_cells = sorted(set(c[CELL]) - set(self.cell_lines.index))
        if unknown_cells:
            raise DataError(f"{where}: cell lines not in the cell-line table: {_preview(unknown_cells)}")
        if not self.targets:
            raise DataError(f"{where}: declares no target")
        for target in self.targets.values():
            if target.task not in TASK_TYPES:
                raise DataError(f"{where}: target '{target.name}' has unknown task '{target.task}'")
            if target.column not in c.columns:
                raise DataError(f"{where}: target '{target.name}' needs missing column '{target.column}'")
            try:
                raw = pd.to_numeric(c[target.column], errors="raise")
            except (ValueError, TypeError):
                raise DataError(f"{where}: target column '{target.column}' is not numeric") from None
            bad = ~np.isfinite(raw.to_numpy(dtype=float))
            if bad.any():
                raise DataError(
                    f"{where}: target '{target.name}' has {int(bad.sum())} NaN or infinite values "
                    f"(rows {_preview(c.index[bad])})"
                )
            huge = np.abs(raw.to_numpy(dtype=float)) > MAX_ABS_LABEL
            if huge.any():
                first = int(np.argmax(huge))
                raise DataError(f"{where}: target '{target.name}' has {int(huge.sum())} values beyond ±{MAX_ABS_LABEL:g} "
                                f"(e.g. {raw.iloc[first]:g} in row {c.index[first]}); a unit or parsing error?")
            if target.task == "classification" and target.threshold is None:
                classes = set(np.unique(raw))
                if not classes <= {0, 1}:
                    raise DataError(f"{where}: classification target '{target.name}' must be 0/1, found {_preview(sorted(classes))}")
        if self.fold_column is not None:
            if self.fold_column not in c.columns:
                raise DataError(f"{where}: missing fold column '{self.fold_column}'")
            if c[self.fold_column].isna().any():
                raise DataError(f"{where}: {int(c[self.fold_column].isna().sum())} rows have no fold")
            self._check_fold_values(where)
        for scheme, split in self.published_splits.items():
            t = split.table
            missing = {"fold", "row_id", "role"} - set(t.columns)
            if missing:
                raise DataError(f"{where}: split '{scheme}' lacks columns {', '.join(sorted(missing))}")
            unknown_rows = ~t["row_id"].isin(c.index)
            if unknown_rows.any():
                raise DataError(f"{where}: split '{scheme}' names unknown rows {_preview(t['row_id'][unknown_rows].unique())}")
            if not set(t["role"]) <= {"train", "test"}:
                raise DataError(f"{where}: split '{scheme}' roles must be 'train' or 'test'")
            if split.group_by not in ("combination", "drug", "cell", "row"):
                raise DataError(f"{where}: split '{scheme}' has unknown group_by '{split.group_by}'")
        for name, matrix in self.omics.items():
            if matrix.isna().to_numpy().any():
                raise DataError(f"{where}: omics matrix '{name}' contains NaN values")
        self._warn_conflicting_replicates()
        return self

    def _check_fold_values(self, where: str) -> None:
        """Published folds are the integers 0..k-1 (``--folds 0`` must mean the rows marked 0)."""
        folds = self.combinations[self.fold_column]
        numeric = pd.to_numeric(folds, errors="coerce") if folds.dtype != bool else pd.Series(np.nan, index=folds.index)
        not_int = numeric.isna() | (numeric != np.round(numeric))
        if not_int.any():
            raise DataError(f"{where}: fold column '{self.fold_column}' must hold integers; found "
                            f"{_preview(pd.unique(folds[not_int]))} (rows {_preview(folds.index[not_int])})")
        values = sorted(int(v) for v in pd.unique(numeric))
        if values != list(range(len(values))):
            raise DataError(f"{where}: fold column '{self.fold_column}' must number its {len(values)} folds "
                            f"0..{len(values) - 1}; found {_preview(values)}")

    def _warn_conflicting_replicates(self) -> None:
        """A combination measured more than once (the same drugs in any order on the same cell
        line) with different class labels is kept (real screens have them: DeepDDS's data has 26
        such groups among 185), and reported once: one line with the count and an example.
        Labels thresholded from a score are left out: replicate scores differ by measurement noise."""
        c = self.combinations
        labelled = [t for t in self.targets.values() if t.task == "classification" and t.threshold is None]
        if not labelled:
            return
        drugs = np.sort(c[self.drug_columns].fillna("").astype(str).to_numpy(), axis=1)
        groups = pd.DataFrame(drugs, index=c.index)
        groups["cell"] = c[CELL].astype(str).to_numpy()
        keys = list(groups.columns)
        for target in labelled:
            stats = groups.assign(label=target.values(c).to_numpy()).groupby(keys, sort=False)["label"].agg(["size", "nunique"])
            replicated = stats[stats["size"] > 1]
            conflicting = replicated[replicated["nunique"] > 1]
            if len(conflicting):
                *example_drugs, example_cell = conflicting.index[0]
                _warn((self.name, target.name),
                      f"dataset '{self.name}': {len(conflicting)} of {len(replicated)} replicate groups (same drugs in any "
                      f"order, same cell line) have conflicting '{target.name}' labels, e.g. "
                      f"{' + '.join(d for d in example_drugs if d)} on {example_cell}; they are kept")


@dataclass
class FeatureSet:
    """Features of entities, made by one featurizer.

    ``drugs`` and ``cell_lines`` map entity name -> feature. For ``kind='tabular'`` they are
    numeric frames (one row per entity); for ``'text'`` string series; for ``'graph'`` series of
    graph objects. ``info`` records what was used (gene set, fingerprint size, encoder...).
    """

    featurizer: str
    kind: Literal["tabular", "text", "graph"]
    drugs: pd.DataFrame | pd.Series | None = None
    cell_lines: pd.DataFrame | pd.Series | None = None
    info: dict = field(default_factory=dict)


@dataclass
class Batch:
    """What a model sees: entity rows (no labels of other rows), their features, and labels.

    ``rows`` holds ``drug_1..drug_K``, ``cell_line`` and ``n_drugs`` indexed by ``row_id``;
    ``y`` is aligned with ``rows`` (None at prediction time). ``target`` names what ``y`` holds.
    ``aux`` holds the dataset's other targets for the same rows (by name, task types in
    ``aux_tasks``), for multi-task models; the runner gives them for training rows only.
    ``tissue`` is the tissue of each row's cell line (None when the dataset has none) and ``group``
    the group the fold holds out (:func:`synbench.splits.fold_groups`: the target tissue of the
    tissue schemes, else None). Neither is a label, so every side carries them: a transfer model
    finds the target tissue's few-shot training rows with them.
    """

    rows: pd.DataFrame
    features: dict[str, FeatureSet]
    task: TaskType
    y: np.ndarray | None = None
    target: str | None = None
    aux: dict[str, np.ndarray] | None = None
    aux_tasks: dict[str, str] | None = None
    tissue: np.ndarray | None = None
    group: str | None = None

    def __len__(self) -> int:
        return len(self.rows)

    def subset(self, row_ids) -> "Batch":
        pos = self.rows.index.get_indexer(row_ids)
        aux = None if self.aux is None else {name: values[pos] for name, values in self.aux.items()}
        return Batch(self.rows.iloc[pos], self.features, self.task, None if self.y is None else self.y[pos],
                     self.target, aux, self.aux_tasks, None if self.tissue is None else self.tissue[pos], self.group)
