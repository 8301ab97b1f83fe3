"""`synbench verify`: recompute what a result store claims from what it holds.

A reader of a benchmark should not have to trust its tables. For every stored job this checks that

- each stored metric equals the metric recomputed from the job's stored predictions
  (``predictions.parquet``: ``y_true``, ``y_pred``) by the registered metric functions;
- the predictions cover the job's test fold in the stored split table exactly once: no test row
  missing, no other row, no row twice;
- with the data at hand (``--data-dir`` or the configured data directory): the stored ``y_true``
  are the dataset's labels for those rows, and the data files the job read still have the
  checksums its record names;

and, for the store as a whole, that ``leaderboard.csv`` (when the store has one) is the board
rebuilt from the records. Nothing is written or moved. Problems come back one line each.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from .errors import SynbenchError
from .leaderboard import CORRELATION_METRICS

# Metrics are recomputed by the same functions from the same stored floats, so they agree to the
# last bit; the tolerance only absorbs a JSON round trip.
TOLERANCE = 1e-9


@dataclass
class Verification:
    """What ``verify_store`` checked and found in one store."""

    store: Path
    jobs: int = 0
    metric_values: int = 0
    data_checked: list[str] = field(default_factory=list)  # datasets whose labels and files were compared
    data_skipped: dict[str, str] = field(default_factory=dict)  # dataset -> why its data was not compared
    files_checked: int = 0
    leaderboard: str = "absent"  # "matches", "differs" or "absent"
    former_constant_encoding: int = 0  # correlations of constant predictions stored as undefined (read as 0)
    problems: list[str] = field(default_factory=list)


def _same(stored, recomputed: float) -> bool:
    undefined = stored is None or (isinstance(stored, float) and math.isnan(stored))
    if undefined or not np.isfinite(recomputed):
        return undefined and not np.isfinite(recomputed)
    return abs(float(stored) - recomputed) <= TOLERANCE * max(1.0, abs(recomputed))


def recompute_metrics(predictions: pd.DataFrame, task: str, registry=None) -> dict[str, float]:
    """Every registered metric of ``task`` from the stored ``y_true`` and ``y_pred`` columns."""
    from .metrics import metrics_for

    y_true = predictions["y_true"].to_numpy(dtype=float)
    y_pred = predictions["y_pred"].to_numpy(dtype=float)
    return {m.name: float(m.fn(y_true, y_pred)) for m in metrics_for(task, registry)}


def _test_rows(store, job: dict, cache: dict) -> pd.Index | None:
    key = (job["dataset"], job["split"], job.get("n_folds"), job.get("seed", 0))
    if key not in cache:
        cache[key] = store.test_folds(*key)  # read once per split table
    folds = cache[key]
    return None if folds is None else folds.get(job["fold"], pd.Index([]))


def _load(dataset: str, split: str, data_dir, cache: dict, result: Verification):
    """The job's data (its split's view of it, e.g. a cross-dataset test set), loaded once; None
    when it cannot be loaded here (the reason is kept, once per dataset)."""
    from .runner import load_job_data

    key = (dataset, split)
    if key not in cache:
        try:
            cache[key] = load_job_data(dataset, split, data_dir)
            if dataset not in result.data_checked:
                result.data_checked.append(dataset)
        except SynbenchError as exc:
            cache[key] = None
            result.data_skipped.setdefault(dataset, (str(exc).strip().splitlines() or ["cannot be loaded"])[0])
    return cache[key]


def _check_job(store, record: dict, registry, split_cache: dict, data_cache: dict | None, data_dir,
               result: Verification) -> None:
    job_id, job = record["job_id"], record["job"]
    try:
        predictions = store.predictions(job_id)
    except SynbenchError as exc:
        result.problems.append(f"{job_id}: {exc}")
        return
    if "row_id" in predictions.columns:
        predictions = predictions.set_index("row_id")
    predictions.index = predictions.index.astype(str)
    recomputed = recompute_metrics(predictions, record["task"], registry)
    constant = bool(np.ptp(predictions["y_pred"].to_numpy(dtype=float)) == 0) if len(predictions) else False
    for name, stored in record["metrics"].items():
        if name not in recomputed:
            result.problems.append(f"{job_id}: metric '{name}' is stored but no registered {record['task']} metric has that name")
            continue
        result.metric_values += 1
        if constant and name in CORRELATION_METRICS and _same(stored, float("nan")) and recomputed[name] == 0.0:
            # written before a constant prediction's correlation was scored 0: the boards read the
            # undefined value as 0 (a failed fold), which is what the metric computes now
            result.former_constant_encoding += 1
            continue
        if not _same(stored, recomputed[name]):
            result.problems.append(f"{job_id}: {name} stored {stored!r}, recomputed from its predictions {recomputed[name]!r}")
    rows = predictions.index
    if rows.has_duplicates:
        result.problems.append(f"{job_id}: {int(rows.duplicated().sum())} rows are predicted more than once (e.g. {rows[rows.duplicated()][0]})")
    test = _test_rows(store, job, split_cache)
    if test is None:
        name = store.split_path(job["dataset"], job["split"], job.get("n_folds"), job.get("seed", 0)).name
        result.problems.append(f"{job_id}: split table {name} is missing or unreadable, so its test fold cannot be checked")
    else:
        missing, extra = test.difference(rows), rows.difference(test)
        if len(missing):
            result.problems.append(f"{job_id}: {len(missing)} rows of test fold {job['fold']} have no prediction (e.g. {missing[0]})")
        if len(extra):
            result.problems.append(f"{job_id}: {len(extra)} predicted rows are not in test fold {job['fold']} (e.g. {extra[0]})")
    n_test = (record.get("n_rows") or {}).get("test")
    if n_test is not None and n_test != len(rows):
        result.problems.append(f"{job_id}: the record counts {n_test} test rows, its predictions {len(rows)}")
    if data_cache is None:
        return
    data = _load(job["dataset"], job["split"], data_dir, data_cache, result)
    if data is None:
        return
    # the files the job read, as its record names them, against the files there now
    current = data.checksums
    for name, digest in (((record.get("provenance") or {}).get("data_checksums")) or {}).items():
        if name in current and current[name] != digest:
            result.problems.append(f"{job_id}: data file {name} has changed since the job read it "
                                   f"(sha256 {digest[:12]}... then, {current[name][:12]}... now)")
    try:
        labels = data.labels(job["target"])
    except SynbenchError as exc:
        result.problems.append(f"{job_id}: {exc}")
        return
    labels.index = labels.index.astype(str)
    known = rows.intersection(labels.index)
    if len(known) < len(rows):
        result.problems.append(f"{job_id}: {len(rows) - len(known)} predicted rows are not rows of dataset '{job['dataset']}' "
                               f"(e.g. {rows.difference(labels.index)[0]})")
    stored = predictions.loc[known, "y_true"].to_numpy(dtype=float)
    truth = labels.loc[known].to_numpy(dtype=float)
    # equal up to the last bits a text parser may round differently (another pandas read one ZIP
    # score of the same file as -1.9428902930940242e-16, this one as -1.942890293094024e-16); the
    # files themselves are compared by checksum above
    differ = ~np.isclose(stored, truth, rtol=1e-12, atol=0.0, equal_nan=True)
    if differ.any():
        first = known[np.flatnonzero(differ)[0]]
        result.problems.append(f"{job_id}: {int(differ.sum())} stored labels differ from the dataset's '{job['target']}' "
                               f"(e.g. row {first}: stored {predictions.loc[first, 'y_true']!r}, dataset {labels.loc[first]!r})")


def _check_leaderboard(store, records: list[dict], result: Verification) -> None:
    """The store's leaderboard.csv against the board ``synbench leaderboard STORE`` builds now."""
    from . import leaderboard as lb

    path = store.root / "leaderboard.csv"
    if not path.is_file():
        return
    combined = lb.combine([store])  # what `synbench leaderboard STORE` reads, with its default metrics
    buffer = io.StringIO()
    if not combined.metrics.empty:
        lb.build(combined.metrics, None, records=combined.records).to_csv(buffer)
    if path.read_text(encoding="utf-8") == buffer.getvalue():
        result.leaderboard = "matches"
    else:
        result.leaderboard = "differs"
        result.problems.append(f"leaderboard.csv differs from the board rebuilt from the {len(records)} stored records "
                               f"(stale or edited: `synbench leaderboard {store.root}` rewrites it)")


def verify_store(root, data_dir=None, check_data: bool = True, progress=None) -> Verification:
    """Check one store (see the module docstring); ``progress(done, total)`` after every job."""
    from .registry import get_registry
    from .store import Store

    store = Store(Path(root), create=False, repair=False)  # looks only: moves nothing aside
    result = Verification(store=Path(root))
    registry = get_registry()
    records = store.records()
    split_cache: dict = {}
    data_cache: dict | None = {} if check_data else None
    for i, record in enumerate(records, 1):
        _check_job(store, record, registry, split_cache, data_cache, data_dir, result)
        result.jobs += 1
        if progress:
            progress(i, len(records))
    # jobs the store itself could not read (a damaged record or predictions file): boards leave them out
    result.problems += [f"not counted: {message}" for message in store.set_aside]
    result.files_checked = len({n for d in (data_cache or {}).values() if d is not None for n in d.checksums})
    _check_leaderboard(store, records, result)
    return result
