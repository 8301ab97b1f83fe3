"""Pre-training on screens other than the evaluation set, and the checkpoint format.

``synbench pretrain`` pools one or more datasets (e.g. DrugComb-derived screens), featurizes them
with the model's featurizers, carves a validation split by drug combination, fits the model on
every target the pool has (one task per target) and saves a checkpoint that records what it was
trained on:

- ``model``: the registered model name, and ``model_state`` (its own weights and configuration);
- ``datasets``, ``data_checksums`` (their files) and ``training_checksum`` (the rows and labels
  actually used);
- ``featurizers`` (the specs, e.g. ``llm-description:encoder=...``), ``encoders`` and
  ``feature_info``; the entity feature tables, so queries need no dataset;
- ``seen``: the combination keys it saw (sorted, normalised drug set + cell line) and the alias
  map used to normalise names.

A model built on a checkpoint must refuse to score a row whose combination is in ``seen``
(:func:`check_unseen`); ``--exclude-overlap NAME[:FOLDS]`` drops such combinations up front.
Checkpoints hold only tensors and plain values and are read with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from .data import CELL, N_DRUGS, Batch, FeatureSet, drug_columns
from .entities import normalise_name
from .errors import ConfigError, DataError
from .splits import _inner_valid, combination_keys
from .store import new_temp_file

CHECKPOINT_FORMAT = "synbench-checkpoint/1"


# -- combination keys -------------------------------------------------------------------------
def _canonical(name, aliases: dict[str, str] | None) -> str | None:
    if not isinstance(name, str):
        return None
    key = normalise_name(name)
    return (aliases or {}).get(key, key)


def combination_set_keys(rows: pd.DataFrame, aliases: dict | None = None) -> pd.Series:
    """Order-independent key per row: normalised drug set + '@' + normalised cell line.

    ``aliases`` ({"drugs": {alias: canonical}, "cell_lines": {...}}, all normalised) maps the
    other names of an entity onto the one a checkpoint recorded.
    """
    aliases = aliases or {}
    dcols = drug_columns(rows)
    drugs = pd.DataFrame({c: [_canonical(d, aliases.get("drugs")) for d in rows[c].to_numpy(dtype=object)] for c in dcols},
                         index=rows.index)
    cells = [_canonical(c, aliases.get("cell_lines")) for c in rows[CELL].to_numpy(dtype=object)]
    return combination_keys(drugs, dcols) + "@" + pd.Series(cells, index=rows.index, dtype=object)


def check_unseen(checkpoint: dict, rows: pd.DataFrame, where: str = "") -> None:
    """Refuse rows whose combination (drug set + cell line) the checkpoint was pre-trained on."""
    seen = checkpoint.get("_seen_set")
    if seen is None:
        seen = checkpoint["_seen_set"] = frozenset(checkpoint["seen"])
    keys = combination_set_keys(rows, checkpoint.get("aliases"))
    overlap = sorted(set(keys[keys.isin(seen)]))
    if overlap:
        shown = ", ".join(overlap[:3]) + (f" (+{len(overlap) - 3} more)" if len(overlap) > 3 else "")
        raise DataError(
            f"{where}checkpoint {checkpoint.get('path', '')} was pre-trained on {len(overlap)} combination(s) of the rows "
            f"to score ({shown}); pre-train without them (synbench pretrain --exclude-overlap DATASET[:FOLDS])"
        )


# -- pooling datasets -------------------------------------------------------------------------
@dataclass
class Pool:
    """Rows of one or more datasets with every target they have (NaN where a dataset lacks one)."""

    rows: pd.DataFrame
    labels: pd.DataFrame
    tasks: dict[str, str]
    features: dict[str, FeatureSet]
    datasets: list[str]
    checksums: dict[str, dict]
    aliases: dict[str, dict[str, str]] = field(default_factory=dict)
    dropped: int = 0

    def batch(self, ids=None) -> Batch:
        """A batch whose ``y`` is the first target and ``aux`` the others (multi-task training)."""
        rows = self.rows if ids is None else self.rows.loc[ids]
        labels = self.labels.loc[rows.index]
        names = list(self.tasks)
        aux = {n: labels[n].to_numpy(dtype=float) for n in names[1:]} or None
        return Batch(rows, self.features, self.tasks[names[0]], labels[names[0]].to_numpy(dtype=float), names[0], aux,
                     {n: self.tasks[n] for n in names[1:]} or None)


def parse_exclusions(values) -> list[tuple[str, list[int] | None]]:
    """``['d1-oneil', 'mock:0,1']`` (or one comma-joined string) -> [(name, None), ('mock', [0, 1])]."""
    specs: list[list] = []
    for value in values or []:
        for token in filter(None, (t.strip() for t in str(value).split(","))):
            if token.isdigit() and specs and specs[-1][1] is not None:
                specs[-1][1].append(int(token))
            elif ":" in token:
                name, _, fold = token.partition(":")
                if not fold.strip().isdigit():
                    raise ConfigError(f"--exclude-overlap expects NAME or NAME:FOLD[,FOLD...], got '{value}'")
                specs.append([name.strip(), [int(fold)]])
            else:
                specs.append([token, None])
    return [(name, folds) for name, folds in specs]


def _excluded_keys(name: str, folds: list[int] | None, data_dir) -> set[str]:
    from .runner import load_dataset

    data = load_dataset(name, data_dir)
    rows = data.combinations
    if folds is not None:
        if data.fold_column is None:
            raise ConfigError(f"dataset '{name}' has no published folds to exclude")
        values = sorted(rows[data.fold_column].unique())
        bad = [f for f in folds if not 0 <= f < len(values)]
        if bad:
            raise ConfigError(f"dataset '{name}' has folds 0..{len(values) - 1}, not {bad[0]}")
        rows = rows[rows[data.fold_column].isin([values[f] for f in folds])]
    return set(combination_set_keys(rows))


def _merge_features(name: str, sets: list[tuple[str, FeatureSet]]) -> FeatureSet:
    first = sets[0][1]
    if first.kind != "tabular":
        raise ConfigError(f"pre-training needs tabular features; featurizer '{name}' gives {first.kind}")
    tables = {}
    for part in ("drugs", "cell_lines"):
        frames = [(ds, getattr(fs, part)) for ds, fs in sets if getattr(fs, part) is not None]
        if not frames:
            tables[part] = None
            continue
        columns = list(frames[0][1].columns)
        for ds, frame in frames[1:]:
            if list(frame.columns) != columns:
                raise DataError(f"featurizer '{name}' gives different {part} columns for '{frames[0][0]}' and '{ds}'; "
                                "pre-train on them separately")
        merged = pd.concat([f for _, f in frames])
        tables[part] = merged[~merged.index.duplicated()]
    return FeatureSet(first.featurizer, first.kind, tables["drugs"], tables["cell_lines"], first.info)


def _alias_map(frames) -> dict[str, str]:
    out = {}
    for table in frames:
        if table is None or "aliases" not in getattr(table, "columns", []):
            continue
        for name, others in table["aliases"].items():
            for other in others if isinstance(others, (list, tuple, np.ndarray)) else []:
                out.setdefault(normalise_name(other), normalise_name(name))
    return out


def build_pool(datasets, featurizers, data_dir=None, exclude=(), keep_keys=None, use_cache: bool = True) -> Pool:
    """Pool datasets for pre-training.

    ``exclude``: [(dataset, folds or None)] whose combinations are dropped; ``keep_keys``: if given,
    only rows with these combination keys are kept (pre-training inside a CV fold).
    """
    from .features import featurize
    from .registry import get_registry
    from .runner import load_dataset

    registry = get_registry()
    if not datasets:
        raise ConfigError("pre-training needs at least one dataset")
    rows, labels, tasks, per_spec, checksums = [], [], {}, {spec: [] for spec in featurizers}, {}
    drug_tables, cell_tables = [], []
    for name in datasets:
        data = load_dataset(name, data_dir)
        checksums[name] = dict(data.checksums)
        part = data.entity_rows().copy()
        part.index = pd.Index([f"{name}/{r}" for r in part.index], name="row_id")
        rows.append(part)
        lab = pd.DataFrame({t.name: t.values(data.combinations).to_numpy(dtype=float) for t in data.targets.values()},
                           index=part.index)
        labels.append(lab)
        for t in data.targets.values():
            if tasks.setdefault(t.name, t.task) != t.task:
                raise DataError(f"target '{t.name}' is {tasks[t.name]} in one dataset and {t.task} in '{name}'")
        for spec in featurizers:
            per_spec[spec].append((name, featurize(data, spec, registry=registry, use_cache=use_cache)))
        drug_tables.append(data.drugs)
        cell_tables.append(data.cell_lines)
    all_rows = pd.concat(rows)
    dcols = sorted({c for r in rows for c in drug_columns(r)}, key=lambda c: int(c[5:]))
    for col in dcols:  # datasets with fewer drug columns get empty ones
        all_rows[col] = all_rows[col].astype(object).where(all_rows[col].notna(), None)
    all_rows = all_rows[dcols + [CELL, N_DRUGS]]
    all_labels = pd.concat(labels)
    keys = combination_set_keys(all_rows)
    keep = pd.Series(True, index=all_rows.index)
    for name, folds in exclude:
        keep &= ~keys.isin(_excluded_keys(name, folds, data_dir))
    if keep_keys is not None:
        keep &= keys.isin(keep_keys)
    dropped = int((~keep).sum())
    if not keep.any():
        raise DataError(f"no rows of {', '.join(datasets)} are left for pre-training after removing {dropped} overlapping rows")
    features = {spec: _merge_features(spec, sets) for spec, sets in per_spec.items()}
    aliases = {"drugs": _alias_map(drug_tables), "cell_lines": _alias_map(cell_tables)}
    return Pool(all_rows[keep], all_labels[keep], tasks, features, list(datasets), checksums, aliases, dropped)


def split_pool(pool: Pool, seed: int) -> tuple[pd.Index, pd.Index]:
    """Inner train / validation ids, grouped by drug combination as the harness's own splits are."""
    train, valid = _inner_valid(pool.rows, drug_columns(pool.rows), "leave-combination-out", seed)
    if valid.sum() == 0 or train.sum() == 0:
        raise DataError("too few combinations to carve a validation split for pre-training")
    return pool.rows.index[train], pool.rows.index[valid]


def training_checksum(pool: Pool) -> str:
    frame = pool.rows.astype(str).join(pool.labels.astype(str))
    hashed = pd.util.hash_pandas_object(frame, index=True).to_numpy().tobytes()
    return hashlib.sha256(hashed + "|".join(frame.columns).encode()).hexdigest()


def encoder_id(features: FeatureSet) -> str:
    """What determines a feature set's vectors (text encoder, model, weights, dimension), as one string."""
    keys = ("encoder", "model", "weights", "dimensions", "dimension")
    parts = [f"{k}={features.info[k]}" for k in keys if features.info.get(k) is not None]
    return ",".join(parts) or features.featurizer


def _plain(value):
    """JSON-safe copy (checkpoints load with weights_only=True, which refuses arbitrary objects)."""
    return json.loads(json.dumps(value, default=str))


def make_checkpoint(model, pool: Pool, model_name: str, featurizers) -> dict:
    """The checkpoint dict for a model fitted on ``pool``."""
    import torch

    from . import __version__

    if not hasattr(model, "to_checkpoint"):
        raise ConfigError(f"model '{model_name}' cannot be saved as a checkpoint")
    entities = {}
    for spec, fs in pool.features.items():
        entry = {}
        for part in ("drugs", "cell_lines"):
            table = getattr(fs, part)
            if table is not None:
                entry[part] = {"names": [str(n) for n in table.index], "columns": [str(c) for c in table.columns],
                               "values": torch.tensor(table.to_numpy(dtype=np.float32))}
        entities[spec] = entry
    k_seen = sorted(int(k) for k in pool.rows[N_DRUGS].unique())
    return {
        "format": CHECKPOINT_FORMAT,
        "model": model_name,
        "model_state": model.to_checkpoint(),
        "datasets": list(pool.datasets),
        "data_checksums": _plain(pool.checksums),
        "training_checksum": training_checksum(pool),
        "n_rows": int(len(pool.rows)),
        "tasks": dict(pool.tasks),
        "featurizers": list(featurizers),
        "encoders": {spec: encoder_id(fs) for spec, fs in pool.features.items()},
        "feature_info": _plain({spec: fs.info for spec, fs in pool.features.items()}),
        "entities": entities,
        "seen": sorted(set(combination_set_keys(pool.rows, pool.aliases))),
        "aliases": pool.aliases,
        "k_seen": k_seen,
        "training_log": _plain(getattr(model, "training_log_", None)),
        "synbench_version": __version__,
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def save_checkpoint(checkpoint: dict, path) -> Path:
    import torch

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    clean = {k: v for k, v in checkpoint.items() if not k.startswith("_") and k != "path"}
    fd, tmp = new_temp_file(path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:  # a file object: torch names the archive after a path's file name
            torch.save(clean, fh)
        os.replace(tmp, path)
    except OSError as exc:  # no half-written temporary file is left beside the path
        Path(tmp).unlink(missing_ok=True)
        raise ConfigError(f"cannot write the checkpoint {path}: {exc.strerror or exc}") from None
    return path


def load_checkpoint(path) -> dict:
    import warnings
    import zipfile

    import torch

    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"checkpoint '{path}' is a directory; name the file `synbench pretrain --out` wrote")
    if not path.is_file():
        raise ConfigError(f"checkpoint '{path}' does not exist (make one with `synbench pretrain`)")
    if not zipfile.is_zipfile(path):  # every torch.save archive is a zip file; junk or a truncated copy is not
        raise DataError(f"checkpoint '{path}' is not a file `synbench pretrain` wrote, or it is damaged "
                        f"({path.stat().st_size:,} bytes, not a torch archive)")
    try:
        with warnings.catch_warnings():  # torch warns about legacy formats before it fails on them: the error says it
            warnings.simplefilter("ignore")
            checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:  # weights_only refused an object that would run code when loaded
        raise DataError(f"checkpoint '{path}' holds objects other than tensors and plain values; refusing to load it "
                        "(only checkpoints written by `synbench pretrain` are read)") from None
    except Exception as exc:  # junk bytes, an empty or truncated file: torch's own message is no help (a bare number)
        first = (str(exc).strip().splitlines() or [""])[0]
        why = f"{type(exc).__name__}: {first}" if first else type(exc).__name__
        raise DataError(f"checkpoint '{path}' is not a file `synbench pretrain` wrote, or it is damaged "
                        f"({path.stat().st_size:,} bytes; torch: {why})") from None
    if not isinstance(checkpoint, dict) or checkpoint.get("format") != CHECKPOINT_FORMAT:
        raise DataError(f"'{path}' is not a synbench checkpoint ({CHECKPOINT_FORMAT})")
    checkpoint["path"] = str(path)
    return checkpoint


def check_features(checkpoint: dict, features: dict[str, FeatureSet], where: str = "") -> None:
    """The model's inputs must come from the featurizers (and encoders) the checkpoint was trained on."""
    specs = list(features)
    if specs != list(checkpoint["featurizers"]):
        raise ConfigError(f"{where}checkpoint {checkpoint.get('path', '')} was pre-trained on features "
                          f"{', '.join(checkpoint['featurizers'])}, not {', '.join(specs) or 'none'}; use the same -f")
    for spec, fs in features.items():
        encoder = encoder_id(fs)
        if encoder != checkpoint["encoders"].get(spec, encoder):
            raise ConfigError(f"{where}checkpoint {checkpoint.get('path', '')} was pre-trained with encoder "
                              f"'{checkpoint['encoders'][spec]}' for {spec}, these features use '{encoder}'")


# -- pre-training -----------------------------------------------------------------------------
def fit_on_pool(pool: Pool, model_cls, params: dict, seed: int):
    train_ids, valid_ids = split_pool(pool, seed)
    first = next(iter(pool.tasks))
    try:
        model = model_cls(task=pool.tasks[first], seed=seed, **params)
    except TypeError as exc:
        raise ConfigError(f"model '{model_cls.name}' rejected its parameters: {exc}") from None
    model.fit(pool.batch(train_ids), pool.batch(valid_ids) if model_cls.uses_validation else None)
    return model, len(train_ids), len(valid_ids)


def pretrain_in_fold(datasets, train: Batch, valid: Batch | None, model_cls, params: dict, seed: int) -> dict:
    """A checkpoint pre-trained inside one CV fold: only on combinations of the rows being fitted.

    The harness never puts a test combination among the training rows, so such a checkpoint
    cannot have seen one (and :func:`check_unseen` still verifies it at prediction time).
    """
    fit_rows = train.rows if valid is None else pd.concat([train.rows, valid.rows])
    keys = set(combination_set_keys(fit_rows))
    pool = build_pool(list(datasets), list(train.features), keep_keys=keys)
    model, _, _ = fit_on_pool(pool, model_cls, params, seed)
    return make_checkpoint(model, pool, model_cls.name, list(train.features))


def pretrain(datasets, out, model: str = "baitsao", featurizers=None, profile: str = "cpu", params=None,
             exclude=(), seed: int = 0, data_dir=None) -> dict:
    """Pre-train ``model`` on the pooled datasets and save the checkpoint at ``out``. Returns a summary."""
    from .registry import get_registry
    from .runner import resolve_profile

    registry = get_registry()
    model_cls = registry.model(model)
    if not getattr(model_cls, "pretrainable", False):
        raise ConfigError(f"model '{model}' cannot be pre-trained (models with a checkpoint format declare pretrainable = True)")
    featurizers = list(featurizers or model_cls.featurizers)
    for spec in featurizers:
        from .features import parse_spec

        registry.featurizer(parse_spec(spec)[0])
    settings = {**resolve_profile(model_cls, profile).params, **(params or {})}
    unknown = set(settings) - set(model_cls.param_names())
    if unknown:
        from .registry import suggest

        name = sorted(unknown)[0]
        raise ConfigError(f"model '{model}' has no parameter '{name}'{suggest(name, model_cls.param_names())}")
    exclusions = parse_exclusions(exclude) if not (exclude and isinstance(exclude[0], tuple)) else list(exclude)
    for name, _ in exclusions:
        registry.dataset(name)
    t0 = time.perf_counter()
    pool = build_pool(list(datasets), featurizers, data_dir=data_dir, exclude=exclusions)
    fitted, n_train, n_valid = fit_on_pool(pool, model_cls, settings, seed)
    checkpoint = make_checkpoint(fitted, pool, model, featurizers)
    checkpoint["pretrain"] = _plain({"profile": profile, "params": settings, "seed": seed,
                                     "excluded": [f"{n}" + (f":{','.join(map(str, f))}" if f else "") for n, f in exclusions],
                                     "n_train": n_train, "n_valid": n_valid, "dropped_overlapping": pool.dropped,
                                     "seconds": round(time.perf_counter() - t0, 1)})
    path = save_checkpoint(checkpoint, out)
    return {"path": str(path), "rows": len(pool.rows), "train": n_train, "valid": n_valid, "dropped": pool.dropped,
            "tasks": pool.tasks, "combinations": len(checkpoint["seen"]), "training_log": checkpoint["training_log"],
            "seconds": checkpoint["pretrain"]["seconds"], "training_checksum": checkpoint["training_checksum"]}
