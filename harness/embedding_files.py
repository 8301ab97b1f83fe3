"""Embedding matrices computed elsewhere (scFoundation, Geneformer or scGPT cell embeddings, a drug
foundation model's vectors), read as features of a dataset's cell lines or drugs.

The file format (docs/plugins.md, *Embedding files*): CSV with a header row, or Parquet; the first
column (for Parquet: the index, when it is not a plain 0..n-1 range) holds entity names; every
other column is one numeric dimension of the embedding. Names are matched to the dataset's
entities through their aliases and the shared alias table (:mod:`synbench.entities`), ignoring case
and punctuation. Every problem with the file is one :class:`~synbench.errors.DataError` line
naming the file; an entity the combinations use and the file lacks is one line naming them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from .base import Featurizer
from .data import CELL, FeatureSet, SynergyData
from .errors import ConfigError, DataError

KINDS = {"drugs": "drug", "cell_lines": "cell line"}


def _first_line(exc: Exception) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _preview(names, limit: int = 5) -> str:
    names = [str(n) for n in names]
    return ", ".join(names[:limit]) + (f" (+{len(names) - limit} more)" if len(names) > limit else "")


def read_embedding(path: str | Path) -> pd.DataFrame:
    """The matrix in ``path``: indexed by name (text), one float column per dimension."""
    path = Path(path)
    lower = path.name.lower()
    if not path.is_file():
        raise DataError(f"{path}: embedding file not found" + (" (it is a directory)" if path.is_dir() else ""))
    try:
        if lower.endswith((".parquet", ".pq")):
            frame = pd.read_parquet(path)
            if not isinstance(frame.index, pd.RangeIndex):
                frame = frame.reset_index()  # the names are the index
        elif lower.endswith((".csv", ".csv.gz")):
            header = pd.read_csv(path, nrows=0)
            # names stay text ('0012' is not 12)
            frame = pd.read_csv(path, dtype={header.columns[0]: str}, keep_default_na=True) if len(header.columns) else header
        else:
            raise DataError(f"{path}: give an embedding file ending in .csv, .csv.gz or .parquet")
    except DataError:
        raise
    except pd.errors.EmptyDataError:
        raise DataError(f"{path}: the embedding file is empty") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: cannot read the embedding file ({getattr(exc, 'strerror', None) or _first_line(exc)})") from None
    except Exception as exc:  # the parsers' own errors (ParserError, ArrowInvalid, ...)
        raise DataError(f"{path}: malformed embedding file ({_first_line(exc)})") from None
    if frame.shape[1] < 2:
        raise DataError(f"{path}: an embedding file needs a name column and at least one numeric column "
                        f"(found {frame.shape[1]} column{'s' if frame.shape[1] != 1 else ''})")
    if len(frame) == 0:
        raise DataError(f"{path}: the embedding file has no rows")
    names = frame.iloc[:, 0]
    blank = names.isna() | (names.astype(str).str.strip() == "")
    if blank.any():
        raise DataError(f"{path}: {int(blank.sum())} rows have no name in the first column (data rows {_preview(np.flatnonzero(blank) + 1)})")
    names = names.astype(str).str.strip()
    if names.duplicated().any():
        raise DataError(f"{path}: duplicate names {_preview(names[names.duplicated()].unique())}")
    values = frame.iloc[:, 1:].copy()
    for column in values.columns:
        col = values[column]
        if pd.api.types.is_bool_dtype(col):  # True/False is not an embedding dimension
            raise DataError(f"{path}: column '{column}' is not numeric")
        numbers = pd.to_numeric(col, errors="coerce")
        bad = numbers.isna() & col.notna()
        if bad.any():
            first = int(np.flatnonzero(bad.to_numpy())[0])
            raise DataError(f"{path}: column '{column}' is not numeric ('{col.iloc[first]}' for '{names.iloc[first]}')")
        values[column] = numbers
    matrix = values.to_numpy(dtype=float)
    finite = np.isfinite(matrix)
    if not finite.all():
        row, col = map(int, np.argwhere(~finite)[0])
        raise DataError(f"{path}: {int((~finite).sum())} missing or infinite values (e.g. column '{values.columns[col]}' "
                        f"of '{names.iloc[row]}'); an embedding needs a number in every cell")
    return pd.DataFrame(matrix, index=pd.Index(names.to_numpy(dtype=object)), columns=[str(c) for c in values.columns])


def _aliases(table: pd.DataFrame, name) -> list[str]:
    value = table.at[name, "aliases"] if "aliases" in table.columns else None
    return [a for a in value if isinstance(a, str)] if isinstance(value, (list, tuple)) else []


def match_embedding(matrix: pd.DataFrame, data: SynergyData, kind: str, where: str) -> tuple[pd.DataFrame, dict]:
    """Rows of ``matrix`` re-indexed by the dataset's entity names (``kind``: drugs or cell_lines),
    matched by name or alias; a one-line error when an entity the combinations use is missing."""
    from .entities import EntityIndex, shared_aliases

    table = data.drugs if kind == "drugs" else data.cell_lines
    shared = shared_aliases(kind)
    names = [str(n) for n in table.index]
    index = EntityIndex(names, {n: [*_aliases(table, n), *shared.get(n, [])] for n in names})
    entity_of, by_alias = {}, 0
    for row in matrix.index:
        entity = index.resolve(row)
        if entity is None:
            continue
        if entity in entity_of:
            raise DataError(f"{where}: rows '{entity_of[entity]}' and '{row}' both name the {KINDS[kind]} '{entity}'")
        entity_of[entity] = row
        by_alias += row != entity
    if kind == "drugs":
        values = data.combinations[data.drug_columns].to_numpy(dtype=object).ravel()
        used = sorted({v for v in values if isinstance(v, str)})
    else:
        used = sorted(set(data.combinations[CELL].astype(str)))
    missing = [n for n in used if n not in entity_of]
    if missing:
        raise DataError(f"{where} lacks {len(missing)} of the {len(used)} {KINDS[kind]}s dataset '{data.name}' uses: "
                        f"{_preview(missing)}")
    covered = [n for n in names if n in entity_of]
    features = matrix.loc[[entity_of[n] for n in covered]].set_axis(pd.Index(covered, name=table.index.name or None), axis=0)
    info = {"file_rows": len(matrix), "file_rows_matched": len(entity_of), "matched_by_alias": int(by_alias),
            "entities_used": len(used), "entities_in_table": len(names), "entities_covered": len(covered),
            "dimension": matrix.shape[1]}
    return features.astype(np.float32), info


class EmbeddingFeaturizer(Featurizer):
    """Features read from a user's embedding file (``path=FILE``); subclasses set ``entity``."""

    kind = "tabular"
    needs = ("file",)  # the user's file, not the dataset's tables: `datasets show` counts no coverage from it
    version = "1"
    options = {"path": str}
    entity = "cell_lines"  # or "drugs"

    def __init__(self, path: str | None = None):
        self._require_path(path)
        super().__init__(path=path)
        self.path = path

    @classmethod
    def _require_path(cls, path) -> None:
        if not path:
            raise ConfigError(f"featurizer '{cls.name}' needs the embedding file: -f {cls.name}:path=FILE "
                              f"(CSV or Parquet; see docs/plugins.md, Embedding files)")

    @classmethod
    def check_inputs(cls, params: dict) -> None:
        """Read the file once when the run is planned, so a wrong path or a malformed file fails
        before any job starts (and before `--dry-run` counts jobs that could not run)."""
        cls._require_path(params.get("path"))
        read_embedding(params["path"])

    @classmethod
    def cache_inputs(cls, params: dict) -> dict:
        """The file's content joins the feature-cache key, so an edited file is read again."""
        from .datadir import sha256

        path = Path(str(params.get("path") or ""))
        if not path.is_file():
            return {}  # featurize() then says what is wrong with the path
        return {"sha256": sha256(path.resolve())}

    @classmethod
    def example_options(cls, data: SynergyData, folder: Path) -> dict:
        """A small embedding of ``data``'s entities, for the conformance checks."""
        table = data.drugs if cls.entity == "drugs" else data.cell_lines
        rng = np.random.default_rng(0)
        frame = pd.DataFrame(rng.normal(size=(len(table), 4)), index=pd.Index(table.index.astype(str), name="name"),
                             columns=[f"dim{i}" for i in range(4)])
        path = Path(folder) / f"{cls.name}.csv"
        frame.to_csv(path)
        return {"path": str(path)}

    def featurize(self, data: SynergyData) -> FeatureSet:
        from .datadir import sha256

        path = Path(self.path)
        matrix = read_embedding(path)
        features, info = match_embedding(matrix, data, self.entity, f"featurizer '{self.name}': {path}")
        info = {"path": str(path.resolve()), "sha256": sha256(path.resolve()), **info}
        parts = {"drugs": features} if self.entity == "drugs" else {"cell_lines": features}
        return FeatureSet(self.name, "tabular", info=info, **parts)
