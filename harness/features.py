"""Featurisation with a content-keyed disk cache, and the tabular design matrix.

A feature set is cached under ``<cache>/features/<key>.pkl`` where the key hashes the
featurizer's name, version and parameters together with the entity tables and omics it could
read, so a changed input or featurizer recomputes and nothing else does.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from .data import N_DRUGS, Batch, FeatureSet, SynergyData, drug_columns
from .datadir import cache_dir
from .errors import DataError, PluginError

COMBINE_RULES = ("mean", "sum", "stack")


def _frame_digest(frame: pd.DataFrame | pd.Series) -> str:
    hashed = pd.util.hash_pandas_object(frame.astype(str), index=True)
    cols = "|".join(map(str, getattr(frame, "columns", [])))
    return hashlib.sha256(hashed.to_numpy().tobytes() + cols.encode()).hexdigest()


_DIGESTS: dict[tuple, tuple[SynergyData, str]] = {}


def data_digest(data: SynergyData) -> str:
    """Content hash of the entity tables and omics (memoised per table objects: hashing costs
    tens of milliseconds per job otherwise; tables are replaced, not edited in place)."""
    key = (id(data), id(data.drugs), id(data.cell_lines), tuple((n, id(m)) for n, m in sorted(data.omics.items())))
    hit = _DIGESTS.get(key)
    if hit is not None and hit[0] is data:
        return hit[1]
    digest = _data_digest(data)
    if len(_DIGESTS) > 64:
        _DIGESTS.clear()
    _DIGESTS[key] = (data, digest)
    return digest


def _data_digest(data: SynergyData) -> str:
    parts = [_frame_digest(data.drugs), _frame_digest(data.cell_lines)]
    parts += [f"{name}:{_frame_digest(m)}" for name, m in sorted(data.omics.items())]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


def feature_key(featurizer_cls, params: dict, data: SynergyData) -> str:
    payload = json.dumps(
        {"featurizer": featurizer_cls.name, "version": featurizer_cls.version, "params": params, "data": data_digest(data)},
        sort_keys=True, default=str,
    )
    return hashlib.sha256(payload.encode()).hexdigest()[:24]


def parse_spec(spec: str) -> tuple[str, dict]:
    """``'expression:n_genes=1000,normalise=tanh'`` -> ``('expression', {'n_genes': 1000, 'normalise': 'tanh'})``."""
    import ast

    name, _, rest = spec.partition(":")
    params = {}
    for item in filter(None, (x.strip() for x in rest.split(","))):
        key, sep, raw = item.partition("=")
        if not sep:
            from .errors import ConfigError

            raise ConfigError(f"featurizer option '{item}' in '{spec}' must be NAME=VALUE")
        try:
            params[key.strip()] = ast.literal_eval(raw.strip())
        except (ValueError, SyntaxError):
            params[key.strip()] = raw.strip()
    return name.strip(), params


def featurize(data: SynergyData, spec: str, params: dict | None = None, registry=None, use_cache: bool = True) -> FeatureSet:
    """Features for ``spec`` (a featurizer name, optionally with ``:key=value,...`` options)."""
    from .registry import get_registry

    registry = registry or get_registry()
    name, spec_params = parse_spec(spec)
    cls = registry.featurizer(name)
    params = {**spec_params, **(params or {})}
    path = cache_dir() / "features" / f"{name}-{feature_key(cls, params, data)}.pkl"
    if use_cache and path.is_file():
        try:
            with open(path, "rb") as fh:
                return pickle.load(fh)
        except Exception:
            pass  # a damaged cache entry is recomputed, never trusted
    try:
        featurizer = cls(**params)
    except TypeError as exc:
        from .errors import ConfigError

        raise ConfigError(f"featurizer '{name}' rejected its options {params}: {exc}") from None
    features = featurizer.featurize(data)
    check_feature_set(features, data, name)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".part-")
    with os.fdopen(fd, "wb") as fh:
        pickle.dump(features, fh, protocol=pickle.HIGHEST_PROTOCOL)
    os.replace(tmp, path)
    return features


def check_feature_set(features, data: SynergyData, name: str) -> None:
    if not isinstance(features, FeatureSet):
        raise PluginError(f"featurizer '{name}' returned {type(features).__name__}, not a FeatureSet")
    used_drugs = set(pd.unique(data.combinations[data.drug_columns].to_numpy().ravel())) - {None, np.nan}
    used_drugs = {d for d in used_drugs if isinstance(d, str)}
    for label, table, needed in (("drugs", features.drugs, used_drugs), ("cell lines", features.cell_lines, set(data.combinations["cell_line"]))):
        if table is None:
            continue
        missing = sorted(needed - set(table.index))
        if missing:
            shown = ", ".join(missing[:5]) + (f" (+{len(missing) - 5} more)" if len(missing) > 5 else "")
            raise DataError(f"featurizer '{name}' has no features for {len(missing)} {label} of dataset '{data.name}': {shown}")
        if features.kind == "tabular" and not np.isfinite(table.to_numpy(dtype=float)).all():
            raise PluginError(f"featurizer '{name}' produced NaN or infinite {label} features")


def tabular_design(batch: Batch, rule: str = "mean") -> np.ndarray:
    """One row per combination: combined drug features || cell features || k, over all tabular sets.

    ``mean`` (BAITSAO's rule) and ``sum`` are order-invariant and work for any k; ``stack``
    concatenates drugs in their table order (zero-padded to the largest k).
    """
    if rule not in COMBINE_RULES:
        raise DataError(f"unknown combination rule '{rule}' (choose from {', '.join(COMBINE_RULES)})")
    rows = batch.rows
    dcols = drug_columns(rows)
    blocks = []
    for fs in batch.features.values():
        if fs.kind != "tabular":
            continue
        if fs.drugs is not None:
            table = fs.drugs.to_numpy(dtype=np.float32)
            position = pd.Series(np.arange(len(fs.drugs)), index=fs.drugs.index)
            stacked = []
            total = np.zeros((len(rows), table.shape[1]), dtype=np.float32)
            for col in dcols:
                idx = rows[col].map(position)
                present = idx.notna().to_numpy()
                values = np.zeros((len(rows), table.shape[1]), dtype=np.float32)
                values[present] = table[idx[present].astype(int).to_numpy()]
                stacked.append(values)
                total += values
            if rule == "stack":
                blocks.extend(stacked)
            elif rule == "sum":
                blocks.append(total)
            else:
                blocks.append(total / rows[N_DRUGS].to_numpy(dtype=np.float32)[:, None])
        if fs.cell_lines is not None:
            blocks.append(fs.cell_lines.loc[rows["cell_line"]].to_numpy(dtype=np.float32))
    if not blocks:
        raise DataError("no tabular features were given to a tabular model")
    blocks.append(rows[N_DRUGS].to_numpy(dtype=np.float32)[:, None])
    return np.hstack(blocks)
