"""Shared pieces for torch models: device choice, seeding, early stopping, drug-order
augmentation, Keras-initialised layers and the mini-batch epoch loop.

torch is imported lazily so that the harness and the tabular baselines work without it.
Device: ``SYNBENCH_DEVICE`` when set (``cpu``, ``cuda``, ``cuda:1``), else CUDA when present.
"""

from __future__ import annotations

import copy
import json
import logging
import os
import random

import numpy as np

from .errors import ConfigError
from .progress import report

log = logging.getLogger(__name__)


def device():
    import torch

    wanted = os.environ.get("SYNBENCH_DEVICE")
    if wanted:
        if wanted.startswith("cuda") and not torch.cuda.is_available():
            raise ConfigError(f"SYNBENCH_DEVICE={wanted} but CUDA is not available")
        return torch.device(wanted)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def native_bf16(device) -> bool:
    """Whether bf16 autocast computes faster than fp32 on ``device``: on an accelerator yes; on the
    CPU only where torch hands bf16 matrix products to oneDNN (its own check: AVX-512 or AMX).
    On a CPU with AVX2 alone torch falls back to a reference kernel, several times slower than
    fp32 (a 512 x 384 x 1,536 product on one thread: 179 ms against 23 ms), so the models' bf16
    speed settings (BAITSAO's ``bf16``, BERT's ``encode_bf16``) then run in fp32 and say so."""
    import torch

    if torch.device(device).type != "cpu":
        return True
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):  # a torch without the check: assume no native bf16
        return False


# what a record says when a model's bf16 speed setting ran in fp32 (:func:`native_bf16`)
NO_NATIVE_BF16 = "bf16 autocast was asked for; this CPU has no native bf16 matrix products (torch's oneDNN check), where bf16 is slower, so fp32"


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
    (DeepSynergy stops on a smoothed validation curve). ``monitor`` names the tracked quantity in
    the progress line, for models that minimise something other than a loss (1 - ROC-AUC).
    """

    def __init__(self, patience: int, min_delta: float = 0.0, smoothing: float = 0.0,
                 monitor: str = "validation loss"):
        self.patience, self.min_delta, self.smoothing = patience, min_delta, smoothing
        self.monitor = monitor
        self.best_loss = float("inf")
        self.best_epoch = -1
        self.best_state = None
        self.history: list[float] = []
        self.stopped = False  # True once ``step`` has said stop (the patience ran out)
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
        report(f"epoch {len(self.history)}: {self.monitor} {loss:.4g} (best {self.best_loss:.4g})")
        self.stopped = self._bad >= self.patience
        return self.stopped

    def restore(self, model) -> None:
        if self.best_state is not None:
            model.load_state_dict(self.best_state)

    _FIELDS = ("best_loss", "best_epoch", "best_state", "history", "stopped", "_smoothed", "_bad")

    def state_dict(self) -> dict:
        """What a resumed training run needs to continue the same early-stopping decisions."""
        return {name.lstrip("_"): getattr(self, name) for name in self._FIELDS}

    def load_state_dict(self, state: dict) -> None:
        for name in self._FIELDS:
            setattr(self, name, state[name.lstrip("_")])


STOPPED = ("early stopping", "cap", "diverged")


FUSED_ENV = "SYNBENCH_FUSED_OPTIMISER"  # 0: torch's default (per-tensor, multi-pass) optimiser kernels
_FUSED = ("Adam", "AdamW", "SGD", "Adagrad")  # the torch optimisers with a fused kernel
# Adagrad's fused kernel is the CPU's alone, and torch finds out at the first step, not when the
# optimiser is made: on a GPU that step failed (synergy-transfer's published Adagrad)
_FUSED_DEVICES = {"Adagrad": ("cpu",)}
# below this many weights an optimiser without a fused kernel keeps the eager one: compiling its step
# costs ~20 s once per fit, more than it saves on a small network
COMPILE_MIN_WEIGHTS = 1_000_000


def optimiser(name: str, params, **options):
    """``torch.optim.<name>(params, **options)`` with a single-pass kernel for its step.

    torch's default CPU kernel makes a pass over the weights per arithmetic step of the update. For
    a 45-million-weight network on one core (DeepSynergy's published size) Adam's step takes 699 ms
    that way and 89 ms with torch's fused kernel, and the weights after 20 steps agree to float32
    rounding (``benchmarks/optimiser_step.py``). Where torch has a fused kernel (Adam, AdamW, SGD,
    Adagrad) it is used; otherwise (MARSY's Adamax) the step of a network of
    :data:`COMPILE_MIN_WEIGHTS` or more is compiled with ``torch.compile`` (Adamax on MARSY's 44
    million weights: 306 -> 80 ms a step, ~25 s to compile once), falling back to the eager step
    if compilation fails. ``SYNBENCH_FUSED_OPTIMISER=0`` keeps torch's default kernels throughout.
    :func:`optimiser_kernel` names what ran; every torch model's record stores it.
    """
    import torch

    cls = getattr(torch.optim, name)
    params = list(params)
    if os.environ.get(FUSED_ENV, "1") == "0":
        return cls(params, **options)
    weights_on = {p.device.type for item in params for p in (item["params"] if isinstance(item, dict) else [item])}
    if name in _FUSED and weights_on <= set(_FUSED_DEVICES.get(name, weights_on)):
        try:
            return cls(params, fused=True, **options)
        except (RuntimeError, TypeError, ValueError):  # a device or dtype without the fused kernel
            return cls(params, **options)
    made = cls(params, **options)
    weights = sum(p.numel() for group in made.param_groups for p in group["params"])
    if weights >= COMPILE_MIN_WEIGHTS:
        _compile_step(made)
    return made


class _NoProfilerNotice(logging.Filter):
    def filter(self, record) -> bool:
        return not str(record.msg).startswith("Profiler record function")


def _compile_step(made) -> None:
    """Replace ``made.step`` by a ``torch.compile``d call of it; the eager step if compiling fails."""
    import torch

    # the optimiser's profiler annotation cannot be traced; torch says so once per compilation, to
    # every progress line of the run. It changes nothing in the step
    quiet = logging.getLogger("torch._dynamo.variables.ctx_manager")
    if not any(isinstance(f, _NoProfilerNotice) for f in quiet.filters):
        quiet.addFilter(_NoProfilerNotice())
    eager = made.step
    compiled = torch.compile(lambda: eager(), fullgraph=False)

    def step(closure=None):
        if closure is None and made.compiled_step_ is not False:
            try:
                result = compiled()
                made.compiled_step_ = True
                return result
            except Exception as exc:  # noqa: BLE001  no C++ compiler, an unsupported build: the eager kernel
                made.compiled_step_ = False
                log.warning("optimiser %s: compiling its step failed (%s); the eager step runs", type(made).__name__,
                            str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__)
        return eager(closure)

    made.compiled_step_ = None  # None until the first step has compiled (True) or failed (False)
    made.step = step


def optimiser_kernel(optimiser) -> str:
    """'Adam (fused)', 'Adamax (compiled)' or 'Adamax': the optimiser and the kernel that ran its step."""
    fused = all(group.get("fused") for group in optimiser.param_groups)
    kernel = " (fused)" if fused else " (compiled)" if getattr(optimiser, "compiled_step_", None) else ""
    return type(optimiser).__name__ + kernel


def improving_window(patience: int | None, max_epochs: int) -> int:
    """How recent the best epoch of a capped run must be for the run to count as still improving:
    the last ``max(1, patience // 2)`` epochs (half-way to what the patience would have waited), or
    without patience the last ``max(2, max_epochs // 10)`` epochs."""
    if patience:
        return max(1, int(patience) // 2)
    return max(2, int(max_epochs) // 10)


def stop_reason(epochs_run: int, max_epochs: int, best_epoch: int, patience: int | None, monitor: str | None,
                stopped_early: bool, diverged: bool = False, optimiser=None) -> dict:
    """Why a training run ended, in the one format every torch model adds to its ``training_log_``.

    - ``stopped``: ``"early stopping"`` when the model's own rule ended it (the patience ran out,
      at the cap or before), ``"diverged"`` when the validation value became NaN or infinite and
      training broke off before the cap, else ``"cap"`` (all ``max_epochs`` epochs ran; also a
      profile that runs every epoch on purpose, without patience);
    - ``best_epoch``: 1-based epoch of the best validation value (0: none was finite); without a
      validation curve (``monitor`` None), the last epoch;
    - ``epochs_run``, ``max_epochs``, ``patience`` (None: no patience), ``monitor`` (the quantity
      watched; None when there was no validation split);
    - ``improving_at_cap``: True when the run stopped at its cap and its best validation value was
      at one of the last :func:`improving_window` epochs, so more epochs would probably have helped.
      Always False without a validation curve (nothing says whether it was improving);
    - ``optimiser`` (when given the optimiser): its class and kernel, see :func:`optimiser_kernel`.
    """
    epochs_run, max_epochs, best_epoch = int(epochs_run), int(max_epochs), int(best_epoch)
    if not 0 <= best_epoch <= epochs_run <= max_epochs:
        raise ValueError(f"inconsistent training record: best epoch {best_epoch}, {epochs_run} of {max_epochs} epochs run")
    if stopped_early:
        stopped = "early stopping"
    elif diverged and epochs_run < max_epochs:
        stopped = "diverged"
    elif epochs_run == max_epochs:
        stopped = "cap"
    else:
        raise ValueError(f"training ran {epochs_run} of {max_epochs} epochs but neither stopped early nor diverged")
    improving = (stopped == "cap" and monitor is not None and best_epoch > 0
                 and epochs_run - best_epoch < improving_window(patience, max_epochs))
    record = {"stopped": stopped, "best_epoch": best_epoch, "epochs_run": epochs_run, "max_epochs": max_epochs,
              "patience": int(patience) if patience else None, "monitor": monitor, "improving_at_cap": bool(improving)}
    if optimiser is not None:
        record["optimiser"] = optimiser_kernel(optimiser)
    return record


def training_labels(batch, task: str, model: str, dtype=np.float32) -> np.ndarray:
    """The labels of rows a model fits on, checked once for every network: present, finite, and 0/1
    for classification (one-line errors naming the model)."""
    from .errors import DataError

    if batch.y is None:
        raise DataError(f"{model}: rows to fit carry no labels")
    y = np.asarray(batch.y, dtype=dtype).reshape(-1)
    if not np.isfinite(y).all():
        raise DataError(f"{model}: labels contain NaN or infinite values")
    if task == "classification" and not np.isin(y, (0.0, 1.0)).all():
        raise DataError(f"{model}: classification labels must be 0 or 1")
    return y


def mean_over_orders(out, positions: np.ndarray, n_rows: int, task: str) -> np.ndarray:
    """A network's outputs for every drug order (a tensor, logits for classification) as one value
    per row: the mean over the orders of each row, of probabilities for classification."""
    import torch

    if task == "classification":
        out = torch.sigmoid(out)
    out = out.detach().cpu().numpy().astype(float).reshape(-1)
    total = np.bincount(positions, weights=out, minlength=n_rows)
    return total / np.maximum(np.bincount(positions, minlength=n_rows), 1)


def drug_orderings(batch, skip_listed: bool = False):
    """Yield ``(positions, order, batch)``: every row once per ordering of its own drugs.

    Models with an ordered input (drug_1 block, drug_2 block, ...) such as DeepSynergy and MARSY
    train on both orders of a pair and can average predictions over them. A row with k drugs
    comes in all k! orders (k = 2: the pair and its swap); ``order`` is the permutation applied
    to the first k drug columns, empty slots stay in place. Labels are not copied: index them
    with ``positions``. ``skip_listed`` leaves out a reordered row when the batch already lists
    that order as a row of its own (datasets such as MARSY's ship both orders), so training does
    not count it twice.
    """
    import itertools

    from .data import CELL, N_DRUGS, Batch, drug_columns

    rows = batch.rows
    dcols = drug_columns(rows)
    listed = set(zip(*(rows[c] for c in dcols + [CELL]))) if skip_listed else set()
    k = rows[N_DRUGS].to_numpy(dtype=int)
    for kk in sorted(set(k.tolist())):
        positions = np.flatnonzero(k == kk)
        sub = rows.iloc[positions]
        drugs = sub[dcols[:kk]].to_numpy(dtype=object)
        for order in itertools.permutations(range(kk)):
            permuted = sub.copy()
            permuted[dcols[:kk]] = drugs[:, list(order)]
            keep = np.ones(len(sub), dtype=bool)
            if listed and order != tuple(range(kk)):
                keep = np.array([key not in listed for key in zip(*(permuted[c] for c in dcols + [CELL]))], dtype=bool)
            if keep.any():
                yield positions[keep], order, Batch(permuted[keep], batch.features, batch.task)


def keras_linear(n_in: int, n_out: int, init: str = "glorot_uniform"):
    """``nn.Linear`` initialised as a Keras ``Dense`` layer (zero bias), as the published Keras
    models (DeepSynergy, MARSY) were; torch's own default initialisation differs."""
    import math

    import torch

    layer = torch.nn.Linear(n_in, n_out)
    if init == "he_normal":  # Keras: truncated normal at 2 sd, sd corrected for the truncation
        std = math.sqrt(2.0 / n_in) / 0.87962566103423978
        torch.nn.init.trunc_normal_(layer.weight, std=std, a=-2 * std, b=2 * std)
    elif init == "glorot_uniform":
        torch.nn.init.xavier_uniform_(layer.weight)
    else:
        raise ConfigError(f"unknown initialisation '{init}' (choose from he_normal, glorot_uniform)")
    torch.nn.init.zeros_(layer.bias)
    return layer


def train_epoch(net, optimiser, loss_fn, inputs, target, batch_size: int, generator) -> float:
    """One pass over shuffled mini-batches; returns the mean training loss per sample.

    ``inputs`` is a tuple of tensors passed to ``net`` positionally, all on the net's device.
    """
    import torch

    net.train()
    n = len(target)
    order = torch.randperm(n, generator=generator).to(target.device)
    total = 0.0
    for start in range(0, n, batch_size):
        idx = order[start:start + batch_size]
        loss = loss_fn(net(*(x[idx] for x in inputs)), target[idx])
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        total += float(loss.detach()) * len(idx)
    return total / max(n, 1)


def predict_tensor(net, inputs, batch_size: int = 2048):
    """Outputs of ``net`` in evaluation mode (dropout off), in chunks, without gradients."""
    import torch

    net.eval()
    n = len(inputs[0])
    with torch.no_grad():
        parts = [net(*(x[start:start + batch_size] for x in inputs)) for start in range(0, n, batch_size)]
    return torch.cat(parts) if parts else torch.empty(0)


class TrainingState:
    """A final fit's training state on disk, so that a job stopped part-way (the session ended, the
    machine went down) continues at the epoch where it stopped instead of starting again.

    The harness sets ``model.checkpoint_path_`` before a job's final fit (never for a search
    trial) and deletes the file once the job is stored. A model saves after every epoch: the
    weights, the optimiser, both random-number states (the shuffling generator and torch's global
    one, which drives dropout) and its loop's own bookkeeping, so the resumed run computes exactly
    what the uninterrupted one would. ``fingerprint`` (the model's parameters, the training
    data's shape and the source of the model's module) must match, else the file is ignored and
    training starts afresh. Files hold only
    tensors and plain values and are read with ``torch.load(weights_only=True)``.

    The state file holds weights (hundreds of MB for the dense networks), so it stays out of version
    control and does not outlive the machine. A phase saved with ``durable=True`` (small: a finished
    phase's loss history and random-number states, no weights) is also written to the companion
    file :func:`progress_path`, which a store's commit carries to the next machine: there a job
    whose state file is gone still skips the phases it had finished.
    """

    def __init__(self, path, fingerprint: dict):
        from pathlib import Path

        self.path = Path(path)
        self.durable_path = progress_path(self.path)
        self.fingerprint = json.dumps(fingerprint, sort_keys=True, default=str)
        self._durable = self._read(self.durable_path)
        self._phases: dict = {**self._durable, **self._read(self.path)}

    def _read(self, path) -> dict:
        if not path.is_file():
            return {}
        import torch

        try:
            saved = torch.load(path, map_location="cpu", weights_only=True)
        except Exception:  # damaged or foreign: start afresh (the file is replaced on the first save)
            return {}
        if isinstance(saved, dict) and saved.get("fingerprint") == self.fingerprint:
            return dict(saved.get("phases", {}))
        return {}

    @classmethod
    def of(cls, model, fingerprint: dict) -> "TrainingState | None":
        path = getattr(model, "checkpoint_path_", None)
        if path is None:
            return None
        return cls(path, {**fingerprint, "params": model.get_params(), "code": model_code(model),
                          "device": str(getattr(model, "device_", "cpu"))})

    def get(self, phase: str) -> dict | None:
        return self._phases.get(phase)

    def put(self, phase: str, state: dict, drop: tuple[str, ...] = (), durable: bool = False) -> None:
        """Store ``state`` as ``phase`` (dropping the phases in ``drop``) and write the file atomically;
        ``durable`` also writes it to the companion file that outlives the machine (keep it small)."""
        self._phases[phase] = state
        dropped_durable = False
        for name in drop:
            self._phases.pop(name, None)
            dropped_durable |= self._durable.pop(name, None) is not None
        if durable:
            self._durable[phase] = state
        if durable or dropped_durable:
            self._write(self.durable_path, self._durable)
        self._write(self.path, self._phases)

    def _write(self, path, phases: dict) -> None:
        import torch

        from .store import atomic_write  # a temporary file of its own: racing runs of one job never share one

        def write(tmp):
            with open(tmp, "wb") as fh:  # a file object: torch derives an archive name from a path, and `.part-x` has none
                torch.save({"fingerprint": self.fingerprint, "phases": phases}, fh)

        atomic_write(path, write)


_MODEL_CODE: dict = {}


def model_code(model) -> str:
    """A digest of the source of the module that defines ``model``'s class and of the harness code
    every model trains through (this module, the tabular design and the base classes): kept progress
    (a training state, finished search trials) is reused only by the code that computed it. Read
    once per class and process, so an edit to the files during a run is not stamped on its results."""
    cls = type(model)
    if cls not in _MODEL_CODE:
        import hashlib
        import inspect
        import sys

        digest = hashlib.sha256()
        for module in (inspect.getmodule(cls), sys.modules[__name__], sys.modules.get("synbench.tabular"),
                       sys.modules.get("synbench.features"), sys.modules.get("synbench.base")):
            try:
                digest.update(inspect.getsource(module).encode())
            except (OSError, TypeError):  # not loaded, or no source file (defined interactively)
                digest.update(getattr(module, "__name__", cls.__qualname__).encode())
        _MODEL_CODE[cls] = digest.hexdigest()[:16]
    return _MODEL_CODE[cls]


def data_digest(*arrays) -> str:
    """A digest of training arrays, for a kept training state: the same shapes with other values
    (another feature table, other labels) do not resume it."""
    import hashlib

    digest = hashlib.sha256()
    for array in arrays:
        array = np.ascontiguousarray(array)
        digest.update(f"{array.dtype}{array.shape}".encode())
        digest.update(memoryview(array).cast("B"))
    return digest.hexdigest()[:16]


def progress_path(state_path):
    """The companion of a training-state file ``.training-ID.pt`` that holds its durable phases:
    ``.progress-ID.pt`` beside it (not ignored by the repository, unlike the state file)."""
    from pathlib import Path

    state_path = Path(state_path)
    name = state_path.name
    stem = name[len(".training-"):] if name.startswith(".training-") else name
    return state_path.with_name(f".progress-{stem}")


def loop_state(net, optimiser, generator, **bookkeeping) -> dict:
    """Everything an epoch loop needs to continue exactly: weights, optimiser, RNG states."""
    import torch

    return {"net": {k: v.detach().clone() for k, v in net.state_dict().items()}, "optimiser": optimiser.state_dict(),
            "generator": generator.get_state(), **rng_states(), **bookkeeping}


def rng_states() -> dict:
    """torch's global random-number states (CPU, and CUDA's where it is in use: dropout on a GPU
    draws from CUDA's generator)."""
    import torch

    states = {"torch_rng": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        states["cuda_rng"] = torch.cuda.get_rng_state_all()
    return states


def set_rng_states(saved: dict) -> None:
    import torch

    torch.set_rng_state(saved["torch_rng"])
    if "cuda_rng" in saved and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(saved["cuda_rng"])


def restore_loop(saved: dict, net, optimiser, generator) -> None:
    import torch

    net.load_state_dict(saved["net"])
    kernel = {key: optimiser.defaults.get(key) for key in ("fused", "foreach")}
    optimiser.load_state_dict(saved["optimiser"])
    for group in optimiser.param_groups:  # the kernel is this process's choice, not part of the saved state
        group.update(kernel)
    generator.set_state(saved["generator"])
    set_rng_states(saved)
