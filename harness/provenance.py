"""What a record needs to be reproduced: package versions, the git commit, the machine."""

from __future__ import annotations

import platform
import subprocess
import sys
import threading
import time
from functools import lru_cache
from importlib import metadata
from pathlib import Path

TRACKED_PACKAGES = ("synbench", "numpy", "pandas", "scipy", "scikit-learn", "xgboost", "rdkit", "torch",
                    "torch-geometric", "pytorch-tabnet", "transformers", "pyarrow", "pluggy")


@lru_cache(maxsize=1)
def package_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in TRACKED_PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return versions


# What decides a result: the package's code and data (pyproject.toml maps them to harness/, plugins/,
# datasets/). Result stores under the checkout (results/) change while runs write to them, so they
# must not mark a run '+dirty'.
SOURCE_PATHS = ("harness", "plugins", "datasets", "pyproject.toml")


def source_commit(root: Path) -> str | None:
    """HEAD of the git checkout at `root`, with '+dirty' if SOURCE_PATHS have uncommitted changes."""
    try:
        sha = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10)
        if sha.returncode != 0:
            return None
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no", "--", *SOURCE_PATHS],
                               capture_output=True, text=True, timeout=10)
        return sha.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return None


# Written into an installed (non-editable) copy of the package by whoever built it from a checkout
# (benchmarks/streams.sh freezes one for its long runs): the copy has no .git to ask.
REVISION_FILE = "SOURCE_REVISION"


@lru_cache(maxsize=1)
def git_commit() -> str | None:
    """The commit of the synbench source tree this process runs from: HEAD of its git checkout, else
    the revision stamped into an installed copy (:data:`REVISION_FILE`), else None."""
    here = Path(__file__).resolve().parent
    commit = source_commit(here.parent)
    if commit is None:
        try:
            commit = (here / REVISION_FILE).read_text().strip() or None
        except OSError:
            pass
    return commit


def machine() -> dict:
    import os

    from .blas import status as blas_status

    return {"platform": platform.platform(), "processor": platform.machine(), "cpus": os.cpu_count(), "python": sys.version.split()[0],
            "blas": blas_status()}


def _rss_mb() -> float:
    try:
        with open("/proc/self/statm") as fh:
            pages = int(fh.read().split()[1])
        import os

        return pages * os.sysconf("SC_PAGE_SIZE") / 2**20
    except OSError:
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class PeakMemory:
    """Samples this process's resident memory while a block runs (the peak, in MiB)."""

    def __init__(self, interval: float = 0.05):
        self.interval = interval
        self.peak_mb = 0.0
        self.start_mb = 0.0
        self._stop = threading.Event()

    def _sample(self):
        while not self._stop.is_set():
            self.peak_mb = max(self.peak_mb, _rss_mb())
            self._stop.wait(self.interval)  # returns at once when the block ends

    def __enter__(self):
        self.start_mb = self.peak_mb = _rss_mb()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak_mb = max(self.peak_mb, _rss_mb())
        return False
