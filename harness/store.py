"""The embedded result store: one directory per finished job, written atomically.

Layout under the store root (``results/`` by default, or ``--out``)::

    store.json                       marks the directory as a synbench store
    splits/<dataset>--<scheme>--k<folds>--seed<seed>.parquet
    jobs/<job_id>/record.json        parameters, per-fold metrics, timings, memory, provenance
    jobs/<job_id>/predictions.parquet   row_id, y_true, y_pred (+ y_std ...)
    invocations.jsonl                one line per `synbench run` (command, time, versions)

A job is written into a private staging directory and then renamed into place, so a job is
either fully there or absent: a killed run loses only the jobs in flight, and two runs writing
the same store never interleave a record. Reading skips staging directories.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import uuid
from contextlib import contextmanager
from pathlib import Path

from filelock import FileLock, Timeout

import pandas as pd

from .errors import StoreError

STORE_FORMAT = 1
MARKER = "store.json"


def new_temp_file(directory: Path) -> tuple[int, str]:
    """``mkstemp`` in ``directory``, with the permissions of an ordinary new file (mkstemp's own are
    0600, which would hide a shared store's files from its other users once renamed into place)."""
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".part-")
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)
    return fd, tmp


def atomic_write_bytes(path: Path, payload: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = new_temp_file(path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(payload)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


class Store:
    def __init__(self, root: str | os.PathLike, create: bool = True):
        self.root = Path(root)
        marker = self.root / MARKER
        if marker.is_file():
            try:
                meta = json.loads(marker.read_text())
            except json.JSONDecodeError:
                raise StoreError(f"{marker} is corrupt; not a usable synbench store") from None
            if meta.get("format") != STORE_FORMAT:
                raise StoreError(f"{self.root} uses store format {meta.get('format')}, this synbench reads {STORE_FORMAT}")
        elif create:
            if self.root.exists() and any(p for p in self.root.iterdir() if not p.name.startswith(".") and p.name not in {"README.md"}):
                if not (self.root / "jobs").is_dir():
                    raise StoreError(f"{self.root} exists and is not a synbench store; choose another --out")
            atomic_write_bytes(marker, json.dumps({"format": STORE_FORMAT}).encode())
        else:
            raise StoreError(f"{self.root} is not a synbench result store (no {MARKER})")
        self.jobs_dir = self.root / "jobs"
        self.splits_dir = self.root / "splits"

    # -- jobs ---------------------------------------------------------------------------------
    def has_job(self, job_id: str) -> bool:
        return (self.jobs_dir / job_id / "record.json").is_file()

    def write_job(self, job_id: str, record: dict, predictions: pd.DataFrame) -> bool:
        """Write a finished job atomically. Returns False if another writer finished it first."""
        self.jobs_dir.mkdir(parents=True, exist_ok=True)
        final = self.jobs_dir / job_id
        staging = self.jobs_dir / f".staging-{job_id}-{uuid.uuid4().hex[:8]}"
        staging.mkdir()
        try:
            predictions.to_parquet(staging / "predictions.parquet")
            with open(staging / "record.json", "w") as fh:
                json.dump(record, fh, indent=1, sort_keys=True, default=str)
                fh.flush()
                os.fsync(fh.fileno())
            try:
                os.rename(staging, final)  # atomic; fails if the job directory already exists
            except OSError:
                if self.has_job(job_id):
                    return False
                # a leftover without a record (cannot happen through this code path): replace it
                shutil.rmtree(final, ignore_errors=True)
                os.rename(staging, final)
            return True
        finally:
            if staging.exists():
                shutil.rmtree(staging, ignore_errors=True)

    @contextmanager
    def claim(self, job_id: str):
        """Yield True if this process holds the job's lock. The OS lock dies with the process; the
        file is removed on exit, on Ctrl-C and (under `synbench run`) on SIGTERM, not on SIGKILL."""
        self.jobs_dir.mkdir(parents=True, exist_ok=True)
        lock = FileLock(str(self._lock_path(job_id)))
        try:
            lock.acquire(timeout=0)
        except Timeout:
            yield False
            return
        try:
            yield True
        finally:
            # Removing the file leaves at worst a job computed twice by racing runs (write_job
            # keeps the first); it never leaves stray files in the store.
            Path(lock.lock_file).unlink(missing_ok=True)
            lock.release()

    def lock_present(self, job_id: str) -> bool:
        """Whether the job's lock file exists (held by a run, or left by one killed with SIGKILL).

        Only looks: taking the lock to test it could make a concurrent run skip the job.
        """
        return self._lock_path(job_id).exists()

    def _lock_path(self, job_id: str) -> Path:
        return self.jobs_dir / f".lock-{job_id}"

    def job_ids(self) -> list[str]:
        if not self.jobs_dir.is_dir():
            return []
        return sorted(p.name for p in self.jobs_dir.iterdir() if not p.name.startswith(".") and (p / "record.json").is_file())

    def record(self, job_id: str) -> dict:
        path = self.jobs_dir / job_id / "record.json"
        try:
            return json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise StoreError(f"cannot read job record {path}: {exc}") from None

    def records(self) -> list[dict]:
        return [self.record(j) for j in self.job_ids()]

    def predictions(self, job_id: str) -> pd.DataFrame:
        return pd.read_parquet(self.jobs_dir / job_id / "predictions.parquet")

    def metrics_frame(self) -> pd.DataFrame:
        """Tidy metrics: one row per job x metric, with the job's identifying columns."""
        from .leaderboard import method_of
        rows = []
        for rec in self.records():
            job = rec["job"]
            model, featurizers, profile = method_of(job)
            for metric, value in rec["metrics"].items():
                rows.append({
                    "job_id": rec["job_id"], "dataset": job["dataset"], "target": job["target"], "task": rec["task"],
                    "model": model, "featurizers": featurizers, "profile": profile,
                    "split": job["split"], "fold": job["fold"], "seed": job["seed"], "metric": metric, "value": value,
                    "fit_seconds": rec["timing"]["fit_seconds"], "predict_seconds": rec["timing"]["predict_seconds"],
                    "peak_memory_mb": rec["resources"]["peak_memory_mb"],
                })
        columns = ["job_id", "dataset", "target", "task", "model", "featurizers", "profile", "split", "fold", "seed",
                   "metric", "value", "fit_seconds", "predict_seconds", "peak_memory_mb"]
        return pd.DataFrame(rows, columns=columns)

    # -- splits -------------------------------------------------------------------------------
    def split_path(self, dataset: str, scheme: str, n_folds: int, seed: int) -> Path:
        return self.splits_dir / f"{dataset}--{scheme}--k{n_folds}--seed{seed}.parquet"

    def save_splits(self, path: Path, table: pd.DataFrame) -> None:
        """Store a split table once; a second run must produce exactly the same one."""
        if path.is_file():
            stored = pd.read_parquet(path)
            same = stored.shape == table.shape and (stored.astype(str).to_numpy() == table.astype(str).to_numpy()).all()
            if not same:
                raise StoreError(f"{path.name} in the store differs from the split computed now (the dataset changed?); use a new --out")
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = new_temp_file(path.parent)
        os.close(fd)
        table.to_parquet(tmp)
        os.replace(tmp, path)

    def load_splits(self, path: Path) -> pd.DataFrame:
        if not path.is_file():
            raise StoreError(f"split table {path} is missing from the store")
        return pd.read_parquet(path)

    # -- invocations --------------------------------------------------------------------------
    def invocations(self) -> list[dict]:
        path = self.root / "invocations.jsonl"
        if not path.is_file():
            return []
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]

    def log_invocation(self, entry: dict) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        with FileLock(str(self.root / ".invocations.lock")), open(self.root / "invocations.jsonl", "a") as fh:
            fh.write(json.dumps(entry, sort_keys=True, default=str) + "\n")
