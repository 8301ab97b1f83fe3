"""Featurisation with a content-keyed disk cache, and the tabular design matrix.

A feature set is cached under ``<cache>/features/<name>-<key>/`` where the key hashes the
featurizer's name, version and parameters together with the entity tables and omics it could
read, so a changed input or featurizer recomputes and nothing else does. The cache holds nothing
that can run code when read: tables and text as Parquet, graphs as arrays in an ``.npz`` read with
``allow_pickle=False``, and ``meta.json`` (format, key, featurizer, kind, info). An entry is used
only when its metadata names the same key; anything else (a damaged, foreign or old-format entry,
such as the ``.pkl`` files of format 1) is never loaded and the features are recomputed. A feature
set that cannot be stored this way (a graph attribute that is not a tensor or a number, an
``info`` that JSON does not round-trip exactly) is not cached.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import uuid
from pathlib import Path

import numpy as np
import pandas as pd

from .data import N_DRUGS, Batch, FeatureSet, SynergyData, drug_columns
from .datadir import cache_dir
from .errors import DataError, PluginError
from .validation import check_options

COMBINE_RULES = ("mean", "sum", "stack")
FEATURE_CACHE_FORMAT = 2  # format 1 was pickle: never read again


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
    fields = {"featurizer": featurizer_cls.name, "version": featurizer_cls.version, "params": params, "data": data_digest(data)}
    inputs = getattr(featurizer_cls, "cache_inputs", None)
    if inputs is not None:  # files outside the dataset (a user's embedding file): their content joins the key
        fields["inputs"] = inputs(params)
    payload = json.dumps(fields, sort_keys=True, default=str)
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


# -- the feature cache: safe formats only ----------------------------------------------------------
_CLEANED: set[str] = set()


class _Uncachable(Exception):
    """A feature set the safe formats cannot hold exactly: computed every time instead."""


def _cache_root() -> Path:
    root = cache_dir() / "features"
    if str(root) not in _CLEANED:  # once per process: debris of writers killed or failing on a full disk
        from .store import remove_stale_parts

        remove_stale_parts(root)
        _CLEANED.add(str(root))
    return root


def _json_exact(value) -> str | None:
    """``value`` as JSON if it reads back equal (no tuple, set or numpy value silently altered)."""
    try:
        text = json.dumps(value, sort_keys=True)
    except (TypeError, ValueError):
        return None
    try:
        return text if json.loads(text) == value else None
    except ValueError:
        return None


def _graph_arrays(series: pd.Series, part: str, arrays: dict) -> dict:
    """Each graph's tensor and number attributes (into ``arrays``); anything else is uncachable."""
    import torch

    graphs = []
    for i, g in enumerate(series.to_numpy()):
        if type(g).__name__ != "Data" or not callable(getattr(g, "keys", None)):
            raise _Uncachable
        entry = {}
        for k in g.keys():
            v = g[k]
            if isinstance(v, torch.Tensor):
                arrays[f"{part}/{i}/{k}"] = v.detach().cpu().numpy()
                entry[k] = "tensor"
            elif isinstance(v, (int, float)) and not isinstance(v, bool):
                entry[k] = v
            else:
                raise _Uncachable
        graphs.append(entry)
    index = _json_exact([*series.index])
    if index is None:
        raise _Uncachable
    return {"type": "graph", "index": json.loads(index), "index_name": series.index.name, "graphs": graphs}


def _write_cache_entry(folder: Path, features: FeatureSet, key: str) -> None:
    info = _json_exact(features.info)
    if info is None:
        raise _Uncachable
    tables, arrays = {}, {}
    for part in ("drugs", "cell_lines"):
        value = getattr(features, part)
        if value is None:
            tables[part] = None
        elif features.kind == "graph":
            tables[part] = _graph_arrays(value, part, arrays)
        elif isinstance(value, pd.DataFrame):
            columns = _json_exact([*value.columns])
            if columns is None:
                raise _Uncachable
            frame = value.set_axis([f"c{i}" for i in range(value.shape[1])], axis=1)  # Parquet wants string names
            frame.to_parquet(folder / f"{part}.parquet")
            tables[part] = {"type": "frame", "columns": json.loads(columns), "index_name": value.index.name,
                            "index_object": value.index.dtype == object}
        elif isinstance(value, pd.Series) and (value.name is None or isinstance(value.name, str)):
            value.rename("value").to_frame().to_parquet(folder / f"{part}.parquet")
            tables[part] = {"type": "series", "name": value.name, "index_name": value.index.name,
                            "index_object": value.index.dtype == object, "object": value.dtype == object}
        else:
            raise _Uncachable
    if arrays:
        np.savez(folder / "graphs.npz", **arrays)
    meta = {"format": FEATURE_CACHE_FORMAT, "key": key, "featurizer": features.featurizer, "kind": features.kind,
            "tables": tables, "info": json.loads(info)}
    (folder / "meta.json").write_text(json.dumps(meta, sort_keys=True))


def _read_cache_entry(folder: Path, key: str) -> FeatureSet | None:
    """The cached feature set if ``folder`` is a complete entry made for ``key``, else None.
    Reads only JSON, Parquet and arrays without pickled objects."""
    try:
        meta = json.loads((folder / "meta.json").read_text())
        if not isinstance(meta, dict) or meta.get("format") != FEATURE_CACHE_FORMAT or meta.get("key") != key:
            return None
        parts = {}
        for part in ("drugs", "cell_lines"):
            spec = meta["tables"][part]
            if spec is None:
                parts[part] = None
            elif spec["type"] == "frame":
                frame = pd.read_parquet(folder / f"{part}.parquet")
                if frame.shape[1] != len(spec["columns"]):
                    return None
                frame.columns = spec["columns"]
                parts[part] = _restore_index(frame, spec)
            elif spec["type"] == "series":
                series = pd.read_parquet(folder / f"{part}.parquet")["value"].rename(spec["name"])
                parts[part] = _restore_index(series.astype(object) if spec["object"] else series, spec)
            elif spec["type"] == "graph":
                with np.load(folder / "graphs.npz", allow_pickle=False) as arrays:
                    parts[part] = _rebuild_graphs(spec, arrays, part)
            else:
                return None
        return FeatureSet(meta["featurizer"], meta["kind"], parts["drugs"], parts["cell_lines"], meta["info"])
    except Exception:  # missing or damaged files, a foreign layout: recomputed, never trusted
        return None


def _restore_index(table, spec: dict):
    """Parquet reads strings back as pandas' string dtype; give back the object index written."""
    index = table.index.astype(object) if spec["index_object"] else table.index
    return table.set_axis(index.rename(spec["index_name"]), axis=0)


def _rebuild_graphs(spec: dict, arrays, part: str) -> pd.Series:
    import torch
    from torch_geometric.data import Data

    graphs = [Data(**{k: torch.from_numpy(arrays[f"{part}/{i}/{k}"]) if v == "tensor" else v for k, v in entry.items()})
              for i, entry in enumerate(spec["graphs"])]
    return pd.Series(graphs, index=pd.Index(spec["index"], name=spec["index_name"]), dtype=object)


def _save_cached(folder: Path, features: FeatureSet, key: str) -> None:
    """Write the entry into a staging directory and rename it into place, so readers see a
    complete entry or none; a failure (a full disk) leaves no staging directory behind."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = folder.parent / f".part-{uuid.uuid4().hex}"
    staging.mkdir()
    try:
        _write_cache_entry(staging, features, key)
        try:
            os.rename(staging, folder)
        except OSError:
            if _read_cache_entry(folder, key) is None:  # a damaged entry in the way: replace it
                shutil.rmtree(folder, ignore_errors=True)
                os.rename(staging, folder)
    except _Uncachable:
        pass
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)


def featurize(data: SynergyData, spec: str, params: dict | None = None, registry=None, use_cache: bool = True) -> FeatureSet:
    """Features for ``spec`` (a featurizer name, optionally with ``:key=value,...`` options)."""
    from .registry import get_registry

    registry = registry or get_registry()
    name, spec_params = parse_spec(spec)
    cls = registry.featurizer(name)
    params = {**spec_params, **(params or {})}
    check_options(cls, params)  # a bad option fails here, before the cache is consulted
    key = feature_key(cls, params, data)
    folder = _cache_root() / f"{name}-{key}"
    if use_cache and folder.is_dir():
        cached = _read_cache_entry(folder, key)  # None for a damaged or foreign entry: recomputed
        if cached is not None:
            return cached
    try:
        featurizer = cls(**params)
    except TypeError as exc:
        from .errors import ConfigError

        raise ConfigError(f"featurizer '{name}' rejected its options {params}: {exc}") from None
    features = featurizer.featurize(data)
    check_feature_set(features, data, name)
    try:
        _save_cached(folder, features, key)
    except OSError as exc:  # an unwritable or full cache costs time, never the run
        from .store import warn

        warn(f"could not cache features in {folder.parent} ({exc.strerror or exc}); they are recomputed next time")
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
