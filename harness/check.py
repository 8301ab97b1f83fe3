"""`synbench check PACKAGE`: every conformance check for every plugin a package registers.

The checks are those of :mod:`synbench.testing` (the ones every built-in passes); each plugin
gets one outcome, passed, failed (with the first line of the reason) or skipped (a dataset
whose files are not here), so an author sees everything that is wrong in one run.
"""

from __future__ import annotations

import os
import time
import traceback
from dataclasses import dataclass

from .errors import DataUnavailableError, SynbenchError


@dataclass(frozen=True)
class Outcome:
    kind: str
    name: str
    origin: str
    status: str  # passed, failed or skipped
    seconds: float
    reason: str = ""


def _reason(exc: BaseException) -> str:
    if isinstance(exc, AssertionError) and not str(exc).strip():
        frame = traceback.extract_tb(exc.__traceback__)[-1]
        return f"assertion failed at {os.path.basename(frame.filename)}:{frame.lineno}: {frame.line}"
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    if isinstance(exc, (AssertionError, SynbenchError)):
        return text
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def check_package(package: str, data_dir=None, registry=None, on_start=None) -> list[Outcome]:
    """Run the checks of every plugin registered by ``package`` (a distribution or module name)."""
    from .registry import get_registry
    from .testing import run_check

    registry = registry or get_registry()
    outcomes, seen = [], set()
    for entry in registry.plugins_of(package):
        if (entry.kind, entry.name) in seen:
            continue
        seen.add((entry.kind, entry.name))
        if on_start:
            on_start(entry)
        started = time.perf_counter()
        try:
            run_check(entry.kind, entry.name, registry=registry, data_dir=data_dir)
            status, reason = "passed", ""
        except DataUnavailableError as exc:
            status, reason = "skipped", f"data not available here: {exc}"
        except Exception as exc:  # a failing check is a result to report, whatever it raised
            status, reason = "failed", _reason(exc)
            if os.environ.get("SYNBENCH_DEBUG"):
                traceback.print_exc()
        outcomes.append(Outcome(entry.kind, entry.name, entry.origin, status, time.perf_counter() - started, reason))
    return outcomes
