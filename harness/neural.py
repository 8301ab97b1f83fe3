"""Shared pieces for torch models: device choice, seeding, early stopping.

torch is imported lazily so that the harness and the tabular baselines work without it.
Device: ``SYNBENCH_DEVICE`` when set (``cpu``, ``cuda``, ``cuda:1``), else CUDA when present.
"""

from __future__ import annotations

import copy
import os
import random

import numpy as np

from .errors import ConfigError


def device():
    import torch

    wanted = os.environ.get("SYNBENCH_DEVICE")
    if wanted:
        if wanted.startswith("cuda") and not torch.cuda.is_available():
            raise ConfigError(f"SYNBENCH_DEVICE={wanted} but CUDA is not available")
        return torch.device(wanted)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def seed_everything(seed: int) -> None:
    """Same seed, same predictions on CPU (CUDA kernels may still differ in the last bits)."""
    import torch

    from .runner import n_threads

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    torch.set_num_threads(n_threads())


class EarlyStopping:
    """Track a validation loss; keep the best weights; say when ``patience`` epochs brought no gain.

    ``smoothing`` > 0 applies an exponential moving average to the loss before comparing
    (DeepSynergy stops on a smoothed validation curve).
    """

    def __init__(self, patience: int, min_delta: float = 0.0, smoothing: float = 0.0):
        self.patience, self.min_delta, self.smoothing = patience, min_delta, smoothing
        self.best_loss = float("inf")
        self.best_epoch = -1
        self.best_state = None
        self.history: list[float] = []
        self._smoothed = None
        self._bad = 0

    def step(self, epoch: int, loss: float, model) -> bool:
        """Record one epoch; return True when training should stop."""
        loss = float(loss)
        self.history.append(loss)
        if self.smoothing and self._smoothed is not None:
            self._smoothed = self.smoothing * self._smoothed + (1 - self.smoothing) * loss
        else:
            self._smoothed = loss
        if self._smoothed < self.best_loss - self.min_delta:
            self.best_loss, self.best_epoch, self._bad = self._smoothed, epoch, 0
            self.best_state = copy.deepcopy(model.state_dict())
        else:
            self._bad += 1
        return self._bad >= self.patience

    def restore(self, model) -> None:
        if self.best_state is not None:
            model.load_state_dict(self.best_state)
