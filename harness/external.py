"""Predictions made outside synbench, scored on the same folds and by the same metrics.

``export_splits`` writes the split a run would store (one row per fold and row: its role, the entity
keys, and the targets except on test rows, where a label would leak). A method in any framework
trains on each fold's train and valid rows and predicts its test rows; ``score`` checks the
predictions file (columns ``row_id``, ``fold``, ``y_pred``: every test row of every fold exactly
once, nothing else) and stores one job per fold, as the runner does, under the method's name and
the profile ``external``, so leaderboards and reports rank it beside the built-in models and mark
it "external predictions".
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from pathlib import Path

import numpy as np
import pandas as pd

from . import provenance
from .data import CELL, N_DRUGS, SynergyData
from .errors import ConfigError, DataError, StoreError
from .leaderboard import EXTERNAL_PROFILE, same_result
from .metrics import score_predictions
from .registry import get_registry
from .runner import Job, _jsonable, load_dataset, load_job_data, prepare
from .splits import GENERATED_SCHEMES, check_scheme, check_splits, fold_count, make_splits
from .store import Store

COLUMNS = ("row_id", "fold", "y_pred")
# a method name becomes part of a job directory's name
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+-]*")
MISMATCH_HINT = "export the folds with `synbench splits export` and the same --split, --n-folds and --seed"


def _format(path: Path) -> str:
    name = path.name.lower()
    if name.endswith(".parquet"):
        return "parquet"
    if name.endswith((".csv", ".csv.gz")):
        return "csv"
    raise ConfigError(f"{path}: give a .csv, .csv.gz or .parquet file name")


def resolve_split(dataset: str, split: str | None, n_folds: int | None, seed: int,
                  data_dir: str | None) -> tuple[SynergyData, str, int]:
    """The data, scheme and fold count a run with the same options would use (as ``runner.plan``)."""
    if seed < 0:
        raise ConfigError(f"--seed must be 0 or more, got {seed}")
    get_registry().dataset(dataset)
    data = load_dataset(dataset, data_dir)
    scheme = check_scheme(data, split or ("published" if data.fold_column else "random"))  # one line if unknown
    if n_folds is not None and n_folds < 2 and scheme in GENERATED_SCHEMES:
        raise ConfigError("--n-folds must be at least 2")
    return load_job_data(dataset, scheme, data_dir), scheme, fold_count(data, scheme, n_folds)


def export_table(dataset: str, split: str | None = None, n_folds: int | None = None, seed: int = 0,
                 data_dir: str | None = None) -> pd.DataFrame:
    """One row per (fold, row_id): role (train / valid / test), entity keys, and every target of the
    dataset, blank on the fold's test rows."""
    data, scheme, n = resolve_split(dataset, split, n_folds, seed, data_dir)
    table = make_splits(data, scheme, n, seed)
    entities = data.entity_rows()
    targets = pd.DataFrame({name: data.labels(name) for name in data.targets})
    out = table[["fold", "row_id"]].copy()
    out["role"] = table["role"].astype(str)
    ids = pd.Index(table["row_id"])
    for col in [*data.drug_columns, CELL, N_DRUGS]:
        out[col] = entities[col].reindex(ids).to_numpy()
    test = (out["role"] == "test").to_numpy()
    for name in targets.columns:
        out[name] = targets[name].reindex(ids).to_numpy(dtype=float)
        out.loc[test, name] = np.nan  # the label of a test row would leak
    return out.reset_index(drop=True)


def export_splits(dataset: str, out: str | Path, split: str | None = None, n_folds: int | None = None, seed: int = 0,
                  data_dir: str | None = None) -> dict:
    out = Path(out)
    kind = _format(out)
    table = export_table(dataset, split, n_folds, seed, data_dir)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        if kind == "parquet":
            table.to_parquet(out, index=False)
        else:
            table.to_csv(out, index=False)
    except OSError as exc:
        raise ConfigError(f"cannot write {out}: {exc.strerror or exc}") from None
    return {"path": out, "rows": len(table), "folds": int(table["fold"].nunique()),
            "test_rows": int((table["role"] == "test").sum())}


# -- scoring ---------------------------------------------------------------------------------------
def read_predictions(path: str | Path) -> pd.DataFrame:
    """The file's ``row_id`` (as text, so ids such as ``0012`` survive CSV), ``fold`` and ``y_pred``;
    other columns are ignored."""
    path = Path(path)
    kind = _format(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    try:
        if kind == "parquet":
            frame = pd.read_parquet(path)
        else:
            frame = pd.read_csv(path, dtype={"row_id": str})
    except Exception as exc:  # parser, encoding or parquet errors: one line naming the file
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise DataError(f"{path}: unreadable {kind} file ({first})") from None
    missing = [c for c in COLUMNS if c not in frame.columns]
    if missing:
        raise DataError(f"{path}: missing column(s) {', '.join(map(repr, missing))}; a predictions file has row_id, fold, y_pred")
    if frame.empty:
        raise DataError(f"{path}: no rows")
    return frame[list(COLUMNS)].copy()


def _plain_value(value):
    """A NumPy scalar as the Python value it holds: `0.5`, not `np.float64(0.5)`."""
    return value.item() if isinstance(value, np.generic) else value


def _example(frame: pd.DataFrame, mask) -> str:
    row = frame[np.asarray(mask)].iloc[0]
    return f"fold {row['fold']}, row {row['row_id']}"


def check_predictions(frame: pd.DataFrame, splits: pd.DataFrame, task: str, where: str) -> dict[int, pd.DataFrame]:
    """Per fold, the predictions indexed by the dataset's row ids in the split's test order. Every
    test row of every fold exactly once, finite numbers, probabilities for classification, no other rows."""
    if frame["row_id"].isna().any():
        raise DataError(f"{where}{int(frame['row_id'].isna().sum())} rows have no row_id")
    fold = pd.to_numeric(frame["fold"], errors="coerce")
    bad = fold.isna() | (fold != fold.round())
    if bad.any():
        raise DataError(f"{where}{int(bad.sum())} rows have a fold that is not an integer (e.g. {_plain_value(frame['fold'][bad].iloc[0])!r})")
    y = pd.to_numeric(frame["y_pred"], errors="coerce")
    bad = y.isna() & frame["y_pred"].notna()
    if bad.any():
        raise DataError(f"{where}{int(bad.sum())} y_pred values are not numbers (e.g. {_example(frame, bad)}: {_plain_value(frame['y_pred'][bad].iloc[0])!r})")
    bad = ~np.isfinite(y.to_numpy(dtype=float))
    if bad.any():
        raise DataError(f"{where}{int(bad.sum())} y_pred values are missing, NaN or infinite (e.g. {_example(frame, bad)})")
    if task == "classification":
        bad = ((y < 0) | (y > 1)).to_numpy()
        if bad.any():
            raise DataError(f"{where}{int(bad.sum())} y_pred values are outside [0, 1]; a classification target needs "
                            f"class-1 probabilities (e.g. {_example(frame, bad)}: {y[bad].iloc[0]:g})")
    frame = pd.DataFrame({"fold": fold.astype(int).to_numpy(), "row_id": frame["row_id"].astype(str).to_numpy(),
                          "y_pred": y.to_numpy(dtype=float)})
    dup = frame.duplicated(["fold", "row_id"], keep="first")
    if dup.any():
        raise DataError(f"{where}{int(dup.sum())} (fold, row_id) pairs appear more than once (e.g. {_example(frame, dup)}); "
                        "each test row needs exactly one prediction")
    folds = sorted(int(f) for f in splits["fold"].unique())
    unknown = ~frame["fold"].isin(folds)
    if unknown.any():
        raise DataError(f"{where}fold {frame['fold'][unknown].iloc[0]} is not a fold of this split (folds {folds[0]}..{folds[-1]}); "
                        f"{MISMATCH_HINT}")
    keys = pd.DataFrame({"fold": splits["fold"].astype(int).to_numpy(), "row_id": splits["row_id"].astype(str).to_numpy(),
                         "role": splits["role"].astype(str).to_numpy(), "original": splits["row_id"].to_numpy()})
    joined = frame.merge(keys, on=["fold", "row_id"], how="left")
    extra = joined["role"] != "test"
    if extra.any():
        first = joined[extra].iloc[0]
        what = "is not a row of the dataset" if pd.isna(first["role"]) else f"is a {first['role']} row there"
        raise DataError(f"{where}{int(extra.sum())} rows are not test rows of their fold (e.g. fold {first['fold']}, row "
                        f"{first['row_id']} {what}); predict only each fold's test rows, or {MISMATCH_HINT}")
    tests = keys[keys["role"] == "test"]
    covered = tests.merge(frame[["fold", "row_id"]], on=["fold", "row_id"], how="left", indicator=True)["_merge"] == "both"
    if not covered.all():
        first = tests[~covered.to_numpy()].iloc[0]
        raise DataError(f"{where}{int((~covered).sum())} test rows have no prediction (e.g. fold {first['fold']}, row "
                        f"{first['row_id']}); every test row of every fold needs one, or {MISMATCH_HINT}")
    by_key = joined.set_index(["fold", "row_id"])["y_pred"]
    out = {}
    for f in folds:
        part = tests[tests["fold"] == f]
        values = by_key.loc[list(zip(part["fold"], part["row_id"]))].to_numpy(dtype=float)
        out[f] = pd.DataFrame({"y_pred": values}, index=pd.Index(part["original"].to_numpy(), name="row_id"))
    return out


def check_method_name(method: str) -> None:
    if not NAME_PATTERN.fullmatch(method or ""):
        raise ConfigError(f"--method '{method}' must start with a letter or digit and hold only letters, digits and _ . + -")
    def key(name):  # `-m SVM` runs `svm`: a name that differs only so would be read as the model
        return name.lower().replace("_", "-")

    if key(method) in {key(e.name) for e in get_registry().entries("model")}:
        raise ConfigError(f"--method '{method}' is a registered model; give the external predictions their own name "
                          f"(e.g. '{method}-external') so they never mix with the built-in results")


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _record(job: Job, task: str, metrics: dict, n_rows: dict, data: SynergyData, source: Path, y_pred: np.ndarray) -> dict:
    """A job record shaped like ``runner.compute``'s; what ran elsewhere (timings, memory, device,
    hyperparameters) is not known here and is left empty."""
    nan = float("nan")
    record = {
        "job_id": job.job_id,
        "job": job.to_dict(),
        "task": task,
        "external": True,
        "params": {},
        "selected_params": {},
        "search": [],
        "metrics": metrics,
        "n_rows": n_rows,
        "constant_prediction": bool(len(y_pred) > 1 and np.ptp(y_pred) == 0),  # flagged as for built-in models
        "timing": {"featurize_seconds": nan, "search_seconds": nan, "fit_seconds": nan, "predict_seconds": nan},
        "resources": {"peak_memory_mb": nan, "start_memory_mb": nan, "threads": "n/a", "device": "external"},
        "training": None,
        "feature_info": {},
        "provenance": {"versions": provenance.package_versions(), "git_commit": provenance.git_commit(),
                       "plugin_package": None, "plugin_version": None,
                       "predictions_file": str(source.resolve()), "predictions_sha256": _sha256(source),
                       "data_checksums": data.checksums, "machine": provenance.machine(),
                       "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S%z")},
    }
    return json.loads(json.dumps(record, default=_jsonable))


def _refuse_a_repeat_under_another_seed(store, jobs, records, stored) -> None:
    """The same predictions scored again under another --seed would count as a second seed of the
    method (its folds doubled on the board) while repeating nothing."""
    first = jobs[0]
    others = {}
    for record in store.records():
        job = record["job"]
        if all(job.get(k) == getattr(first, k) for k in ("dataset", "target", "model", "split", "n_folds")) \
                and job["seed"] != first.seed:
            others.setdefault(job["seed"], {})[job["fold"]] = record
    for seed, by_fold in sorted(others.items()):
        if all(j.fold in by_fold and same_result(by_fold[j.fold]["metrics"], records[j.job_id]["metrics"],
                                                 store.predictions(by_fold[j.fold]["job_id"]), stored[j.job_id]) for j in jobs):
            raise StoreError(f"{store.root} already holds these same predictions for '{first.model}' under --seed {seed}; "
                             f"under --seed {first.seed} they would count twice as two seeds (score predictions made "
                             f"on the folds `synbench splits export --seed {first.seed}` writes)")


def score(predictions: str | Path, dataset: str, target: str, method: str, out: str | Path, split: str | None = None,
          n_folds: int | None = None, seed: int = 0, data_dir: str | None = None) -> dict:
    """Check a predictions file and store it as one job per fold of ``method``. Everything is checked
    before the store is touched; scoring the same file again stores nothing new, and a store that
    already holds different predictions for the method keeps them (an error says so)."""
    source = Path(predictions)
    check_method_name(method)
    dataset = get_registry().entry("dataset", dataset).name  # the registered spelling, as in a run's job ids
    data, scheme, n = resolve_split(dataset, split, n_folds, seed, data_dir)
    target = data.target(target).name
    task = data.target(target).task
    frame = read_predictions(source)
    splits = make_splits(data, scheme, n, seed)
    per_fold = check_predictions(frame, splits, task, f"{source}: ")
    labels = data.labels(target)
    check_splits(splits, labels, task, where=f"{dataset}/{target} ({scheme}): ")  # as a run refuses them
    jobs, records, stored = [], {}, {}
    for f, pred in per_fold.items():
        job = Job(dataset=dataset, target=target, model=method, featurizers=(), profile=EXTERNAL_PROFILE, split=scheme,
                  n_folds=n, fold=f, seed=seed)
        roles = splits.loc[splits["fold"] == f, "role"].astype(str).value_counts()
        n_rows = {r: int(roles.get(r, 0)) for r in ("train", "valid", "test")}
        metrics = score_predictions(pred, labels, task)
        records[job.job_id] = _record(job, task, metrics, n_rows, data, source, pred["y_pred"].to_numpy())
        pred = pred.copy()
        pred.insert(0, "y_true", labels.loc[pred.index].to_numpy())
        stored[job.job_id] = pred
        jobs.append(job)

    out = Path(out)
    store = Store(out)
    present = [j for j in jobs if store.has_job(j.job_id)]
    for job in present:
        if not same_result(store.record(job.job_id)["metrics"], records[job.job_id]["metrics"],
                           store.predictions(job.job_id), stored[job.job_id]):
            raise StoreError(f"{store.root} already holds different predictions for '{method}' on {job.describe()}; "
                             "score them into another --out, or under another --method name")
    _refuse_a_repeat_under_another_seed(store, jobs, records, stored)
    prepare(jobs, store, data_dir)  # the split table, stored exactly as a run stores it
    written = 0
    for job in jobs:
        if store.has_job(job.job_id):
            continue
        with store.claim(job.job_id) as claimed:
            written += bool(claimed and store.write_job(job.job_id, records[job.job_id], stored[job.job_id]))
    return {"method": method, "dataset": dataset, "target": target, "split": scheme, "folds": len(jobs), "written": written,
            "already": len(present), "metrics": {j.fold: records[j.job_id]["metrics"] for j in jobs},
            "test_rows": sum(len(p) for p in stored.values())}

