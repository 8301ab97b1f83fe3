"""Progress from inside a job (search trials, training epochs) for whoever shows it.

Models call ``report("epoch 12: validation loss 0.81")``; ``synbench run`` listens and shows the
latest message beside the job's name. Nothing listens in pool or Ray workers, where a report
costs a function call.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Callable

_listeners: list[Callable[[str], None]] = []


def report(message: str) -> None:
    """Tell the listeners (if any) how far the current job has come."""
    for listener in list(_listeners):
        listener(message)


@contextmanager
def listening(callback: Callable[[str], None]):
    """Send every ``report`` made inside the block to ``callback``."""
    _listeners.append(callback)
    try:
        yield
    finally:
        _listeners.remove(callback)
