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

The store heals instead of blocking: a job whose ``record.json`` or ``predictions.parquet`` does
not validate (truncated, empty, not a record) is reported, moved aside to
``jobs/.quarantine/<job_id>-<time>/`` (never deleted) and counted as not done, so the next run
recomputes it; an unreadable split table is moved aside to ``splits/.quarantine/`` and
recomputed; a torn last line of ``invocations.jsonl`` is reported and skipped. Temporary files
(``.part-*``) and staging directories older than an hour are debris of a killed or failed writer
and are removed when the store is opened; a job's staging directory left by a writer on this host
that has since died is removed sooner, by the next run that takes the job's lock. Only a directory
holding ``store.json`` is a store.
Every record and invocation is redacted (:func:`synbench.redaction.redact`) when written and read.
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import sys
import tempfile
import time
import uuid
from contextlib import contextmanager
from pathlib import Path

from filelock import FileLock, Timeout

import pandas as pd

from .errors import StoreError
from .redaction import redact

STORE_FORMAT = 1
MARKER = "store.json"
PART_PREFIX = ".part-"
QUARANTINE = ".quarantine"
SUPERSEDED = ".superseded"  # valid jobs whose result came from a harness defect since fixed
# A temporary file or staging directory untouched for this long belongs to no live writer (every
# write finishes in seconds and keeps touching its file), so opening a store or cache removes it.
STALE_SECONDS = 3600
RECORD_KEYS = ("job_id", "job", "task", "metrics")
JOB_KEYS = ("dataset", "target", "model", "split", "fold")
PREDICTION_COLUMNS = ("row_id", "y_true", "y_pred")


def _file_safe(name: str) -> str:
    """A split name as part of a file name: names made of letters, digits and ``._:-`` (every name
    before parametrised schemes) are kept as they are; any other character (``=`` of
    ``tissue-few-shot:fraction=0.1``, a path separator) becomes ``_``, with a short hash of the
    name so that two names never share a file."""
    import hashlib
    import re

    safe = re.sub(r"[^A-Za-z0-9._:-]", "_", name)
    return safe if safe == name else f"{safe}-{hashlib.sha256(name.encode()).hexdigest()[:8]}"


def _host_tag() -> str:
    """A short hash of the host name: a store on a shared file system may be written from several
    machines, and a process id means something only on its own."""
    import hashlib
    import socket

    return hashlib.sha256(socket.gethostname().encode()).hexdigest()[:6]


def _writer_tag() -> str:
    """``<host>-<pid>`` naming a staging directory's writer."""
    return f"{_host_tag()}-{os.getpid()}"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # alive, owned by another user
    return True


def warn(message: str) -> None:
    """One ``warning:`` line on stderr for what the store repaired or set aside (never fatal)."""
    print(f"warning: {redact(message)}", file=sys.stderr, flush=True)


def remove_stale_parts(directory: Path, recursive: bool = False, max_age: float = STALE_SECONDS) -> int:
    """Remove ``.part-*`` temporary files (and ``.staging-*`` directories) older than ``max_age``
    seconds under ``directory``: what a writer killed mid-write, or failing on a full disk, left."""
    directory = Path(directory)
    if not directory.is_dir():
        return 0
    now, removed = time.time(), 0
    patterns = (f"{PART_PREFIX}*", ".staging-*")
    for pattern in patterns:
        for path in (directory.rglob(pattern) if recursive else directory.glob(pattern)):
            try:
                if now - path.lstat().st_mtime < max_age:
                    continue
                if path.is_dir() and not path.is_symlink():
                    shutil.rmtree(path)
                else:
                    path.unlink()
                removed += 1
            except OSError:
                pass  # a read-only store, or another process removed it first
    return removed


def new_temp_file(directory: Path) -> tuple[int, str]:
    """``mkstemp`` in ``directory``, with the permissions of an ordinary new file (mkstemp's own are
    0600, which would hide a shared store's files from its other users once renamed into place)."""
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".part-")
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)
    return fd, tmp


def atomic_write_bytes(path: Path, payload: bytes) -> None:
    def write(tmp):
        with open(tmp, "wb") as fh:
            fh.write(payload)
            fh.flush()
            os.fsync(fh.fileno())

    atomic_write(path, write)


def atomic_write(path: Path, write) -> None:
    """``write(tmp_path)`` then rename into ``path``; on any failure (a full disk) the temporary
    file is removed, so no ``.part-*`` file is left behind."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = new_temp_file(path.parent)
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def superseded_because(record: dict) -> str | None:
    """Why a stored, valid job no longer counts as done (None when it does): its result came from
    a harness defect fixed since, so the next run recomputes it. The old job is moved aside, not
    deleted. A search that pruned no trial is unaffected by the pruner fix: with nothing pruned,
    the corrected pruner sees the same history and samples the same trials."""
    summary = record.get("search_summary") or {}
    if summary.get("pruned") and "pruner_revision" not in summary:
        return ("its search pruned every trial outside the best quarter at a step (the pruner now prunes "
                "only the worst quarter)")
    return None


class Store:
    def __init__(self, root: str | os.PathLike, create: bool = True, repair: bool = True):
        """``repair=False`` (a dry run, leaderboard, report, verify) only looks: damaged jobs are
        reported and counted as not done but stay where they are, and no debris is removed."""
        self.root = Path(root)
        self.repair = repair
        marker = self.root / MARKER
        if self.root.exists() and not self.root.is_dir():
            raise StoreError(f"{self.root} is a file, not a synbench result store directory")
        if marker.is_file():
            try:
                meta = json.loads(marker.read_text())
            except (OSError, ValueError):
                raise StoreError(f"{marker} is corrupt or unreadable; not a usable synbench store") from None
            if not isinstance(meta, dict) or meta.get("format") != STORE_FORMAT:
                found = meta.get("format") if isinstance(meta, dict) else None
                raise StoreError(f"{self.root} uses store format {found}, this synbench reads {STORE_FORMAT}")
        elif create:
            # Only the marker makes a store: a directory holding anything else (even just `jobs/`,
            # a README or dotfiles) is someone's, and a store in it would write beside their files.
            try:
                # another run creating the same store at this moment leaves its half-written marker
                # (.part-*) or, once the marker is in place, the store's first files: neither is foreign
                others = [p for p in self.root.iterdir() if not p.name.startswith(PART_PREFIX)] if self.root.exists() else []
                if others and not marker.is_file():
                    raise StoreError(f"{self.root} exists, is not empty and is not a synbench store (no {MARKER}); "
                                     "choose another --out")
                if not marker.is_file():
                    atomic_write_bytes(marker, json.dumps({"format": STORE_FORMAT}).encode())
            except OSError as exc:
                raise StoreError(f"cannot create a result store in {self.root}: {exc.strerror or exc}") from None
        else:
            raise StoreError(f"{self.root} is not a synbench result store (no {MARKER})")
        self.jobs_dir = self.root / "jobs"
        self.splits_dir = self.root / "splits"
        self.set_aside: list[str] = []  # the damaged jobs and tables this Store reported, one line each
        self._valid: dict[str, tuple] = {}  # job_id -> file signature of a job that validated
        for directory in (self.root, self.splits_dir, self.jobs_dir) if repair else ():
            remove_stale_parts(directory)

    # -- validation and quarantine ------------------------------------------------------------
    def job_problem(self, job_id: str) -> str | None:
        """Why the stored job does not validate (None when it does): its record must be a JSON
        object naming this job, with its job, task and numeric metrics, and its predictions a
        readable Parquet file with row_id, y_true and y_pred."""
        folder = self.jobs_dir / job_id
        try:
            text = (folder / "record.json").read_text(encoding="utf-8")
        except FileNotFoundError:
            return "record.json is missing"
        except (OSError, UnicodeDecodeError) as exc:
            return f"record.json is unreadable ({getattr(exc, 'strerror', None) or type(exc).__name__})"
        if not text.strip():
            return "record.json is empty"
        try:
            record = json.loads(text)
        except ValueError:
            return "record.json is truncated or not JSON"
        if not isinstance(record, dict):
            return "record.json is not a job record"
        missing = [k for k in RECORD_KEYS if k not in record]
        if missing:
            return f"record.json lacks {', '.join(missing)}"
        if record["job_id"] != job_id:
            return f"record.json belongs to job {record['job_id']!r}"
        job, metrics = record["job"], record["metrics"]
        if not isinstance(job, dict) or any(k not in job for k in JOB_KEYS):
            return "record.json has no complete job description"
        if not isinstance(metrics, dict) or not all(v is None or (isinstance(v, (int, float)) and not isinstance(v, bool))
                                                   for v in metrics.values()):
            return "record.json has non-numeric metrics"
        try:
            import pyarrow.parquet as pq

            columns = set(pq.read_schema(folder / "predictions.parquet").names)
        except FileNotFoundError:
            return "predictions.parquet is missing"
        except Exception as exc:  # pyarrow raises ArrowInvalid, OSError and others for damaged files
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            return f"predictions.parquet is unreadable ({first})"
        lacking = [c for c in PREDICTION_COLUMNS if c not in columns]
        if lacking:
            return f"predictions.parquet lacks column(s) {', '.join(lacking)}"
        return None

    def _signature(self, job_id: str) -> tuple | None:
        folder = self.jobs_dir / job_id
        try:
            return tuple((st.st_mtime_ns, st.st_size, st.st_ino) for st in
                         (os.stat(folder / "record.json"), os.stat(folder / "predictions.parquet")))
        except OSError:
            return None

    def _validated(self, job_id: str) -> bool:
        """Whether the job directory holds a valid job; an invalid one is set aside (once)."""
        signature = self._signature(job_id)
        if signature is not None and self._valid.get(job_id) == signature:
            return True
        problem = self.job_problem(job_id)
        if problem is None:
            reason = superseded_because(json.loads((self.jobs_dir / job_id / "record.json").read_text(encoding="utf-8")))
            if reason is None:
                if signature is not None:
                    self._valid[job_id] = signature
                return True
            self.supersede(job_id, reason)
            return False
        self._valid.pop(job_id, None)
        self._quarantine(self.jobs_dir / job_id, f"job {job_id}: {problem}", "it will be recomputed by the next run")
        return False

    def _quarantine(self, path: Path, what: str, then: str, folder: str = QUARANTINE) -> Path | None:
        """Move ``path`` into a ``.quarantine`` (or ``folder``) folder beside it (kept for
        inspection, never deleted) and say so; returns where it went (None if it could not be moved)."""
        if not path.exists():
            return None
        if not self.repair:
            message = f"{what}; counted as not done (left in place: only `synbench run` moves it aside, and recomputes it)"
            if message not in self.set_aside:
                self.set_aside.append(message)
                warn(message)
            return None
        folder = path.parent / folder / f"{path.name}-{time.strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:6]}"
        try:
            folder.parent.mkdir(parents=True, exist_ok=True)
            os.rename(path, folder)
        except FileNotFoundError:
            return None  # another process set it aside first
        except OSError as exc:
            message = f"{what}; could not move it aside ({exc.strerror or exc}), ignoring it"
            if message not in self.set_aside:
                self.set_aside.append(message)
                warn(message)
            return None
        message = f"{what}; moved to {folder}, {then}"
        self.set_aside.append(message)
        warn(message)
        return folder

    def supersede(self, job_id: str, reason: str) -> None:
        """Set a valid stored job aside because ``reason`` says it is no longer what its plan computes."""
        self._valid.pop(job_id, None)
        self._quarantine(self.jobs_dir / job_id, f"job {job_id}: superseded, {reason}", "it will be recomputed by the next run",
                         folder=SUPERSEDED)

    # -- jobs ---------------------------------------------------------------------------------
    def has_job(self, job_id: str) -> bool:
        """Whether a valid finished job is stored (an invalid one is set aside: not done)."""
        if not (self.jobs_dir / job_id).is_dir():
            return False
        return self._validated(job_id)

    def write_job(self, job_id: str, record: dict, predictions: pd.DataFrame) -> bool:
        """Write a finished job atomically. Returns False if another writer finished it first."""
        self.jobs_dir.mkdir(parents=True, exist_ok=True)
        final = self.jobs_dir / job_id
        staging = self.jobs_dir / f".staging-{job_id}-{_writer_tag()}-{uuid.uuid4().hex[:8]}"
        staging.mkdir()
        try:
            predictions.to_parquet(staging / "predictions.parquet")
            with open(staging / "record.json", "w") as fh:
                json.dump(redact(record), fh, indent=1, sort_keys=True, default=str)
                fh.flush()
                os.fsync(fh.fileno())
            try:
                os.rename(staging, final)  # atomic; fails if the job directory already exists
            except OSError:
                if (final / "record.json").is_file():
                    return False  # another writer finished first (a damaged job was set aside by has_job)
                # a leftover without a record (cannot happen through this code path): set it aside
                self._quarantine(final, f"job {job_id}: record.json is missing", "replaced by the job computed now")
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
            self._remove_dead_staging(job_id)
            yield True
        finally:
            # Removing the file leaves at worst a job computed twice by racing runs (write_job
            # keeps the first); it never leaves stray files in the store.
            Path(lock.lock_file).unlink(missing_ok=True)
            lock.release()

    def _remove_dead_staging(self, job_id: str) -> None:
        """Remove this job's staging directories whose writer (a process on this host) is gone: a
        worker killed mid-write leaves one, and the run that takes the job next cleans it up rather
        than leaving it for the hour-old sweep. Another host's directories are left to that sweep."""
        prefix = f".staging-{job_id}-{_host_tag()}-"
        for path in self.jobs_dir.glob(glob.escape(prefix) + "*"):
            try:
                pid = int(path.name[len(prefix):].split("-")[0])
            except ValueError:
                continue
            if pid != os.getpid() and not _pid_alive(pid):
                shutil.rmtree(path, ignore_errors=True)

    def lock_present(self, job_id: str) -> bool:
        """Whether the job's lock file exists (held by a run, or left by one killed with SIGKILL).

        Only looks: taking the lock to test it could make a concurrent run skip the job.
        """
        return self._lock_path(job_id).exists()

    def lock_state(self, job_id: str) -> str | None:
        """``"held"`` (a live process holds the job's lock), ``"stale"`` (the file is there but no
        process holds it: a run killed with SIGKILL, or a machine that stopped, left it; the next
        run takes the job) or None (no lock file). Only looks, like :meth:`lock_present`: on Linux
        it reads the kernel's lock table (/proc/locks); where that cannot be read a file counts as held."""
        path = self._lock_path(job_id)
        try:
            st = path.stat()
        except OSError:
            return None
        try:
            table = Path("/proc/locks").read_text()
        except OSError:
            return "held"
        ident = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}"
        return "held" if any(ident in line.split() for line in table.splitlines()) else "stale"

    def _lock_path(self, job_id: str) -> Path:
        return self.jobs_dir / f".lock-{job_id}"

    def job_ids(self) -> list[str]:
        if not self.jobs_dir.is_dir():
            return []
        candidates = sorted(p.name for p in self.jobs_dir.iterdir() if not p.name.startswith(".") and p.is_dir())
        return [j for j in candidates if self._validated(j)]

    def record(self, job_id: str) -> dict:
        path = self.jobs_dir / job_id / "record.json"
        try:
            return redact(json.loads(path.read_text()))
        except (OSError, ValueError) as exc:
            raise StoreError(f"cannot read job record {path}: {exc}") from None

    def records(self) -> list[dict]:
        return [self.record(j) for j in self.job_ids()]

    def predictions(self, job_id: str) -> pd.DataFrame:
        path = self.jobs_dir / job_id / "predictions.parquet"
        try:
            return pd.read_parquet(path)
        except Exception as exc:  # ArrowInvalid, OSError: a file damaged after it was validated
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise StoreError(f"cannot read predictions {path}: {first}") from None

    def metrics_frame(self) -> pd.DataFrame:
        """Tidy metrics: one row per job x metric, with the job's identifying columns."""
        from .leaderboard import method_of
        rows = []
        for rec in self.records():
            job = rec["job"]
            model, featurizers, profile, protocol = method_of(job)
            for metric, value in rec["metrics"].items():
                rows.append({
                    "job_id": rec["job_id"], "dataset": job["dataset"], "target": job["target"], "task": rec["task"],
                    "model": model, "featurizers": featurizers, "profile": profile, "protocol": protocol,
                    "split": job["split"], "n_folds": job.get("n_folds"), "fold": job["fold"], "seed": job.get("seed"),
                    "metric": metric, "value": value,
                    "fit_seconds": (rec.get("timing") or {}).get("fit_seconds", float("nan")),
                    "predict_seconds": (rec.get("timing") or {}).get("predict_seconds", float("nan")),
                    "peak_memory_mb": (rec.get("resources") or {}).get("peak_memory_mb", float("nan")),
                })
        columns = ["job_id", "dataset", "target", "task", "model", "featurizers", "profile", "protocol", "split", "n_folds", "fold", "seed",
                   "metric", "value", "fit_seconds", "predict_seconds", "peak_memory_mb"]
        return pd.DataFrame(rows, columns=columns)

    # -- splits -------------------------------------------------------------------------------
    def split_path(self, dataset: str, scheme: str, n_folds: int, seed: int) -> Path:
        return self.splits_dir / f"{dataset}--{_file_safe(scheme)}--k{n_folds}--seed{seed}.parquet"

    def save_splits(self, path: Path, table: pd.DataFrame) -> None:
        """Store a split table once; a second run must produce exactly the same one."""
        stored = self._read_splits(path) if path.exists() else None  # an unreadable one is set aside: recomputed
        if stored is not None:
            same = stored.shape == table.shape and (stored.astype(str).to_numpy() == table.astype(str).to_numpy()).all()
            if not same:
                raise StoreError(f"{path.name} in the store differs from the split computed now (the dataset changed?); use a new --out")
            return
        atomic_write(path, table.to_parquet)

    def _read_splits(self, path: Path) -> pd.DataFrame | None:
        """The stored split table, or None after setting aside one that cannot be read."""
        try:
            table = pd.read_parquet(path)
        except Exception as exc:  # ArrowInvalid, OSError: truncated or empty
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            self._quarantine(path, f"split table {path.name} is unreadable ({first})", "it is recomputed by the next run")
            return None
        if not {"fold", "row_id", "role"} <= set(table.columns):
            self._quarantine(path, f"split table {path.name} lacks its fold, row_id and role columns",
                             "it is recomputed by the next run")
            return None
        return table

    def test_folds(self, dataset: str, scheme: str, n_folds: int, seed: int) -> dict[int, pd.Index] | None:
        """Each fold's test row ids from the stored split table (as text), or None when the table
        is missing or unreadable. Only looks: nothing is set aside (``synbench verify``, reports)."""
        try:
            table = pd.read_parquet(self.split_path(dataset, scheme, n_folds, seed), columns=["fold", "row_id", "role"])
        except Exception:  # noqa: BLE001 (pyarrow raises several kinds for a missing or damaged file)
            return None
        test = table[table["role"] == "test"]
        return {int(fold): pd.Index(rows["row_id"].astype(str)) for fold, rows in test.groupby("fold")}

    def load_splits(self, path: Path) -> pd.DataFrame:
        table = self._read_splits(path) if path.is_file() else None
        if table is None:
            raise StoreError(f"split table {path} is missing from the store; run `synbench run` again to recompute it")
        return table

    # -- invocations --------------------------------------------------------------------------
    def invocations(self) -> list[dict]:
        """The logged invocations; a line that is not a complete JSON object (a torn append after
        a full disk or SIGKILL) is reported and skipped, never fatal: the log never blocks results."""
        path = self.root / "invocations.jsonl"
        if not path.is_file():
            return []
        try:
            text = path.read_text(encoding="utf-8", errors="replace")
        except OSError as exc:
            warn(f"cannot read {path} ({exc.strerror or exc}); commands are not listed")
            return []
        entries, bad = [], []
        for number, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                entry = json.loads(line)
            except ValueError:
                entry = None
            if isinstance(entry, dict):
                entries.append(redact(entry))
            else:
                bad.append(number)
        if bad:
            where = "its last line" if bad == [len(text.splitlines())] else f"line(s) {', '.join(map(str, bad))}"
            warn(f"{path}: {where} is incomplete or not a JSON object (an interrupted write?); skipped")
        return entries

    def log_invocation(self, entry: dict) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        path = self.root / "invocations.jsonl"
        line = json.dumps(redact(entry), sort_keys=True, default=str) + "\n"
        with FileLock(str(self.root / ".invocations.lock")), open(path, "a+b") as fh:
            fh.seek(0, os.SEEK_END)
            if fh.tell() > 0:
                fh.seek(-1, os.SEEK_END)
                if fh.read(1) != b"\n":
                    line = "\n" + line  # end a torn line first, so this entry stays whole
            fh.write(line.encode("utf-8"))
