"""DeepSynergy (Preuer et al. 2018): a feed-forward network on drug A || drug B || cell-line features.

The published method, as implemented here:

- Input: chemistry features of both drugs and the cell line's gene expression (default featurizers
  ``chem`` and ``expression``), built with ``tabular_design(batch, "stack")`` as
  drug_1 || drug_2 || cell || k. Training rows are augmented with the swapped drug order (an
  order the dataset already lists as a row of its own is not added twice); predictions are the
  mean over both orders (so they do not depend on how a pair is written).
- Normalisation ``tanh_norm`` (standardise, tanh, standardise), fitted on the training rows only,
  after dropping features that are constant on them, as in the authors' ``normalize`` script
  (``norm`` also offers their ``tanh`` and ``norm``; their released example file uses ``tanh``).
- Network: ReLU layers [8182, 4096] and a linear output, He-normal initialisation; dropout 0.2
  after the first hidden layer and 0.5 after the second, where the authors' Keras code places them
  (the paper calls the first one input dropout). SGD, learning rate 1e-5, momentum 0.5, batch 64,
  mean squared error.
- Epochs: train on the inner training split for up to 1000 epochs watching the validation loss,
  smooth that curve with a centred moving average over 15 epochs (edge-padded), take its minimum,
  then train a fresh network on training + validation rows for that many epochs (normalisation
  refitted on those rows). The authors pass the argmin's 0-based index as the epoch count; here
  the refit runs ``best_epoch`` = index + 1 epochs, the epoch count at the minimum.
  ``patience`` (None = published: run every epoch) stops the first phase early. With
  ``stop_on="smoothed-minimum"`` (the ``cpu`` profile) it watches the very curve the refit length
  is read from: training stops once that smoothed curve's minimum lies ``patience`` epochs back,
  so the chosen epoch is never the last one run. ``"trailing-mean"`` (the rule before, kept so
  older records stay reproducible) waited for the trailing ``smoothing_window``-epoch mean to stop
  improving; on D1 Loewe fold 0 it stopped at epoch 27 although the centred curve's minimum was
  epoch 27 itself (the last validation loss, 328.7, was the lowest yet). The training log's stop record
  (``synbench.neural.stop_reason``) describes this first phase: without patience it ends at its
  cap, and ``improving_at_cap`` says whether the smoothed minimum was at its end.

Search (``strong`` protocol; BAITSAO ran DeepSynergy with its published settings, so ``table1``
searches nothing): the learning rate, the two dropout rates and the normalisation, which the
authors tuned (lr 1e-2 to 1e-5, dropout none or 0.2/0.5, norm / tanh / tanh_norm), over the
published layers. A search trial runs the first phase with the profile's epoch cap and patience
and is scored on the validation rows by that network at its best validation epoch (the refit
would train on the same rows again, doubling the trial's cost). The first phase hands its
validation loss to the search every epoch, so a hopeless trial is pruned after
``prune_warmup_steps`` epochs.

The ``cpu`` profile (a documented deviation, for a CPU budget): Adam (``optimizer="adam"``,
learning rate 1e-4, searched over 1e-5 to 1e-3 under ``strong``) instead of SGD at 1e-5, whose
~1,000 epochs of about 4 CPU-minutes each cannot run here (at SGD 1e-4 the validation loss was
still falling after 5 epochs on 4 of 5 D1 folds); the first phase stops when the 3-epoch trailing
average of the validation loss has not improved for 5 epochs (cap 100), and the published refit
follows. ``paper`` keeps SGD and every epoch.

Extensions, not in the paper: classification trains the same network with a sigmoid output and
binary cross-entropy (the paper scored classification from the regression output); rows with
k > 2 drugs use k zero-padded drug slots and all k! drug orders (for pairs this is exactly the
published input and augmentation).
"""

from __future__ import annotations

import time

import numpy as np

from synbench.base import DEFAULT_PROFILES, PRUNE_WARMUP_EPOCHS, SEARCH_TRIALS, Categorical, Model, Profile, Real
from synbench.errors import ConfigError, DataError
from synbench.features import tabular_design
from synbench.hookspecs import hookimpl
from synbench.neural import TrainingState, data_digest, rng_states, set_rng_states
from synbench.reference import CHEM_EXPR

NORMS = ("tanh_norm", "tanh", "norm")
OPTIMIZERS = ("sgd", "adam")  # published: SGD with momentum
STOP_RULES = ("smoothed-minimum", "trailing-mean")  # what the patience watches (see the module docstring)


def make_normaliser(norm: str):
    """The authors' normalisation as a scikit-learn pipeline, to be fitted on training rows only:
    drop constant features, standardise, then (``tanh``) tanh, then (``tanh_norm``) standardise again."""
    from sklearn.feature_selection import VarianceThreshold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer, StandardScaler

    if norm not in NORMS:
        raise ConfigError(f"deepsynergy: unknown normalisation '{norm}' (choose from {', '.join(NORMS)})")
    steps = [VarianceThreshold(0.0), StandardScaler()]
    if norm in ("tanh", "tanh_norm"):
        steps.append(FunctionTransformer(np.tanh))
    if norm == "tanh_norm":
        steps.append(StandardScaler())
    return make_pipeline(*steps)


def smoothed_curve(losses, window: int) -> np.ndarray:
    """The authors' smoothing: a centred moving average over ``window`` epochs. At the edges the
    window is cut to the epochs that exist (padding the edges with the nearest full average made a
    still-falling curve tie its last two epochs, and the first of a tie won, so the refit always
    ran one epoch short). Shorter histories use the largest odd window that fits."""
    losses = np.asarray(losses, dtype=float)
    w = max(1, min(window, len(losses)))
    w -= 1 - w % 2  # odd, so the window is centred on its epoch
    kernel = np.ones(w)
    return np.convolve(losses, kernel, mode="same") / np.convolve(np.ones_like(losses), kernel, mode="same")


class DeepSynergyModel(Model):
    name = "deepsynergy"
    description = "feed-forward net on both drugs' chemistry + cell expression, both drug orders, tanh-normalised"
    reference = "Preuer et al. 2018, Bioinformatics 34(9):1538-1546 (DeepSynergy); BAITSAO baseline"
    featurizers = CHEM_EXPR  # the inputs of the reference results
    search_space = {}  # BAITSAO ran DeepSynergy with its published settings
    search_spaces = {
        "table1": {},
        # the authors' tuned ranges, continuous; the strong protocol's standardised target makes the
        # gradients smaller than on raw Loewe scores, so the published lr 1e-5 sits at the low end
        "strong": {"lr": Real(1e-5, 1e-2, log=True), "input_dropout": Real(0.0, 0.5, limits=("low",)), "dropout": Real(0.0, 0.7, limits=("low",)),
                   "norm": Categorical(NORMS)},
    }
    uses_validation = True
    prune_warmup_steps = PRUNE_WARMUP_EPOCHS
    profiles = {
        "paper": Profile(search_trials=SEARCH_TRIALS["paper"],
                         description="published: [8182, 4096], SGD lr 1e-5, all 1000 epochs, 15-epoch smoothing, "
                                     "refit on train+valid (for a GPU)"),
        # One epoch over D1's ~33,000 augmented inner-training rows costs about 4 CPU-minutes on one
        # thread with 256-bit fingerprints and 500 genes: the published SGD at 1e-5 (hundreds of
        # epochs; at 1e-4 the validation loss still fell after 5) cannot finish on a CPU. Adam ends the
        # first phase by its own patience within tens of epochs; the cap only bounds a runaway.
        "cpu": DEFAULT_PROFILES["cpu"].with_params(
            optimizer="adam", lr=1e-4, max_epochs=100, patience=5, smoothing_window=3, stop_on="smoothed-minimum",
            note="published network, Adam lr 1e-4 (unless searched), patience 5 on the 3-epoch moving average's minimum, "
                 "at most 100 epochs, then the published refit").with_ranges(lr=Real(1e-5, 1e-3, log=True)),
        "smoke": Profile(params={"hidden": (64, 32), "max_epochs": 4, "smoothing_window": 3, "lr": 1e-3},
                         description="tiny network, 4 epochs, for tests"),
    }

    def __init__(self, task="regression", seed=0, hidden=(8182, 4096), input_dropout=0.2, dropout=0.5, lr=1e-5,
                 momentum=0.5, batch_size=64, max_epochs=1000, patience=None, smoothing_window=15, norm="tanh_norm",
                 optimizer="sgd", stop_on="trailing-mean"):
        self.task, self.seed = task, seed
        self.hidden, self.input_dropout, self.dropout = hidden, input_dropout, dropout
        self.lr, self.momentum, self.batch_size, self.optimizer = lr, momentum, batch_size, optimizer
        self.max_epochs, self.patience, self.smoothing_window, self.norm = max_epochs, patience, smoothing_window, norm
        self.stop_on = stop_on

    # -- data -------------------------------------------------------------------------------------
    def _design(self, batch, fitting: bool = False):
        """Design matrix with every drug order of every row, and each design row's batch position
        (when fitting, orders the batch lists as rows of their own are not repeated)."""
        from synbench.neural import drug_orderings

        parts, positions = [], []
        for pos, _, ordered in drug_orderings(batch, skip_listed=fitting):
            parts.append(tabular_design(ordered, "stack"))
            positions.append(pos)
        X = np.vstack(parts).astype(np.float32, copy=False)
        if hasattr(self, "n_features_in_") and X.shape[1] != self.n_features_in_:
            raise DataError(f"deepsynergy was fitted on {self.n_features_in_} input features but this batch gives "
                            f"{X.shape[1]} (different featurizers or number of drug slots)")
        return X, np.concatenate(positions)

    def _labels(self, batch) -> np.ndarray:
        from synbench.neural import training_labels

        return training_labels(batch, self.task, "deepsynergy")

    # -- network ----------------------------------------------------------------------------------
    def _network(self, n_in: int, dev):
        from torch import nn

        from synbench.neural import keras_linear

        sizes = [n_in, *self.hidden]
        layers = []
        for i in range(len(self.hidden)):
            layers += [keras_linear(sizes[i], sizes[i + 1], "he_normal"), nn.ReLU(),
                       nn.Dropout(self.input_dropout if i == 0 else self.dropout)]
        layers.append(keras_linear(sizes[-1], 1, "he_normal"))
        return nn.Sequential(*layers).to(dev)

    def _loss(self):
        from torch import nn

        return nn.MSELoss() if self.task == "regression" else nn.BCEWithLogitsLoss()

    def _train(self, X, y, epochs: int, dev, generator, valid=None, keep_best=False, state=None,
               phase="refit") -> tuple[object, dict]:
        """Train a fresh network for ``epochs`` (first phase: with ``valid`` = (X, y), stopping on
        ``patience``); returns it with its loss history. ``keep_best`` returns the network with the
        weights of its lowest validation loss (a search trial's). ``state`` (a
        :class:`synbench.neural.TrainingState`) is saved after every epoch under ``phase`` and, when
        it holds that phase, training continues from its last epoch."""
        import torch

        from synbench.neural import loop_state, optimiser as make_optimiser, optimiser_kernel, predict_tensor, restore_loop, train_epoch
        from synbench.progress import report

        net = self._network(X.shape[1], dev)
        if self.optimizer == "adam":  # the CPU profile's faster optimiser (defaults: betas 0.9/0.999)
            optimiser = make_optimiser("Adam", net.parameters(), lr=self.lr)
        else:  # published
            optimiser = make_optimiser("SGD", net.parameters(), lr=self.lr, momentum=self.momentum)
        loss_fn = self._loss()
        inputs = (torch.from_numpy(X).to(dev),)
        target = torch.from_numpy(y).reshape(-1, 1).to(dev)
        if valid is not None:
            v_inputs = (torch.from_numpy(valid[0]).to(dev),)
            v_target = torch.from_numpy(valid[1]).reshape(-1, 1).to(dev)
        history = {"train_loss": [], "val_loss": [], "stopped_early": False, "diverged": False}
        best_trailing, since_best = np.inf, 0
        best_raw, best_state = np.inf, None
        seconds_before = 0.0
        saved = state.get(phase) if state is not None else None
        if saved is not None:  # a job stopped part-way: continue after its last finished epoch
            restore_loop(saved, net, optimiser, generator)
            history = {**history, "train_loss": list(saved["train_loss"]), "val_loss": list(saved["val_loss"]),
                       "resumed_at_epoch": len(saved["train_loss"])}
            seconds_before = float(saved.get("seconds", 0.0))  # the epochs a stopped run had done
            best_trailing, since_best = float(saved["best_trailing"]), int(saved["since_best"])
            report(f"{phase}: resumed after epoch {len(history['train_loss'])} of {epochs}")
        t0 = time.perf_counter()
        for _ in range(len(history["train_loss"]), epochs):
            history["train_loss"].append(train_epoch(net, optimiser, loss_fn, inputs, target, self.batch_size, generator))
            if valid is None:
                report(f"refit epoch {len(history['train_loss'])}/{epochs}")
                if state is not None:
                    state.put(phase, loop_state(net, optimiser, generator, train_loss=history["train_loss"], val_loss=[],
                                                best_trailing=best_trailing, since_best=since_best,
                                                seconds=seconds_before + time.perf_counter() - t0))
                continue
            history["val_loss"].append(float(loss_fn(predict_tensor(net, v_inputs), v_target)))
            report(f"epoch {len(history['val_loss'])}/{epochs}: validation loss {history['val_loss'][-1]:.4g}")
            self.report_validation(len(history["val_loss"]), history["val_loss"][-1])
            if not np.isfinite(history["val_loss"][-1]):
                history["diverged"] = True
                break  # diverged: later epochs cannot recover the minimum already recorded
            if keep_best and history["val_loss"][-1] < best_raw:
                best_raw = history["val_loss"][-1]
                best_state = {k: v.detach().clone() for k, v in net.state_dict().items()}
            if self.stop_on == "smoothed-minimum":  # epochs since the minimum of the curve the refit reads
                since_best = len(history["val_loss"]) - 1 - int(np.argmin(smoothed_curve(history["val_loss"], int(self.smoothing_window))))
            else:
                trailing = float(np.mean(history["val_loss"][-self.smoothing_window:]))
                if trailing < best_trailing:
                    best_trailing, since_best = trailing, 0
                else:
                    since_best += 1
            if self.patience is not None and since_best >= self.patience:
                history["stopped_early"] = True
                break
            if state is not None:
                state.put(phase, loop_state(net, optimiser, generator, train_loss=history["train_loss"],
                                            val_loss=history["val_loss"], best_trailing=best_trailing, since_best=since_best,
                                            seconds=seconds_before + time.perf_counter() - t0))
        # every epoch's time, those of a stopped run included (the record's fit_seconds is this process's)
        history["seconds"] = round(seconds_before + time.perf_counter() - t0, 2)
        history["optimiser"] = optimiser_kernel(optimiser)
        if best_state is not None:
            net.load_state_dict(best_state)
            history["kept_epoch"] = int(np.argmin(history["val_loss"])) + 1
        return net, history

    # -- estimator API ----------------------------------------------------------------------------
    def trains_on_validation_rows(self) -> bool:
        return True  # the published refit trains on training + validation rows

    def fit(self, train, valid=None) -> "DeepSynergyModel":
        import torch

        from synbench.neural import device, seed_everything, stop_reason

        if self.task not in ("regression", "classification"):
            raise ConfigError(f"deepsynergy: unknown task '{self.task}'")
        if self.optimizer not in OPTIMIZERS:
            raise ConfigError(f"deepsynergy: unknown optimizer '{self.optimizer}' (choose from {', '.join(OPTIMIZERS)})")
        if self.stop_on not in STOP_RULES:
            raise ConfigError(f"deepsynergy: unknown stop_on '{self.stop_on}' (choose from {', '.join(STOP_RULES)})")
        make_normaliser(self.norm)  # validates ``norm`` before any work
        if int(self.max_epochs) < 1:
            raise ConfigError("deepsynergy: max_epochs must be at least 1")
        seed_everything(self.seed)
        dev = device()
        self.device_ = str(dev)
        generator = torch.Generator().manual_seed(int(self.seed))
        self.__dict__.pop("n_features_in_", None)  # a refit may change the inputs

        X_tr, pos_tr = self._design(train, fitting=True)
        y_tr = self._labels(train)[pos_tr]
        self.n_features_in_ = X_tr.shape[1]
        log = {}
        if valid is not None and len(valid):
            X_va, pos_va = self._design(valid, fitting=True)
            y_va = self._labels(valid)[pos_va]
            normaliser = make_normaliser(self.norm).fit(X_tr)  # statistics of the inner training rows only
            searching = getattr(self, "report_progress_", None) is not None
            state = None if searching else TrainingState.of(self, {"train": X_tr.shape, "valid": X_va.shape,
                                                                   "data": data_digest(X_tr, y_tr, X_va, y_va)})
            done = state.get("select-done") if state is not None else None
            if done is not None:  # the first phase had finished before the job was stopped
                net, hist = None, {k: v for k, v in done.items() if k not in ("generator", "torch_rng", "cuda_rng")}
                generator.set_state(done["generator"])  # where the uninterrupted run's refit starts
                set_rng_states(done)
            else:
                net, hist = self._train(normaliser.transform(X_tr).astype(np.float32, copy=False), y_tr, int(self.max_epochs),
                                        dev, generator, valid=(normaliser.transform(X_va).astype(np.float32, copy=False), y_va),
                                        keep_best=searching, state=state, phase="select")
                if state is not None:
                    # durable: the curve and RNG states are a few kB, and the refit needs nothing else,
                    # so a job whose first phase took a whole session starts its refit on a new machine
                    state.put("select-done", {**hist, "generator": generator.get_state(), **rng_states()},
                              drop=("select",), durable=True)
            curve = smoothed_curve(hist["val_loss"], int(self.smoothing_window))
            finite = np.where(np.isfinite(curve), curve, np.inf)
            best_epoch = int(np.argmin(finite)) + 1
            log["selection"] = {"epochs_run": len(hist["train_loss"]), "best_epoch": best_epoch,
                                "best_smoothed_val_loss": float(finite[best_epoch - 1]),
                                "train_loss": hist["train_loss"], "val_loss": hist["val_loss"],
                                "smoothed_val_loss": curve.tolist(), "n_combinations": len(train),
                                "n_samples": len(y_tr), "seconds": hist["seconds"],
                                **({"resumed_at_epoch": hist["resumed_at_epoch"]} if "resumed_at_epoch" in hist else {})}
            stop = stop_reason(len(hist["train_loss"]), int(self.max_epochs), best_epoch, self.patience,
                               f"validation loss, centred {int(self.smoothing_window)}-epoch moving average",
                               stopped_early=hist["stopped_early"], diverged=hist["diverged"])
            if searching:
                # a search trial is scored on ``valid`` by the first phase's network at its best
                # validation epoch: a refit on the same training rows would only repeat that phase
                # at twice the trial's cost (the final fit keeps the published refit)
                self.normaliser_, self.net_ = normaliser, net
                log.update(epochs=len(hist["train_loss"]), best_epoch=best_epoch, kept_epoch=hist.get("kept_epoch"),
                           final_train_loss=hist["train_loss"][-1], refit=None)
                log.update(stop, optimiser=hist["optimiser"])
                self.training_log_ = log
                return self
            del net  # only its validation curve is kept: the refit starts from fresh weights
            # the published refit: train + validation rows, the chosen number of epochs, fresh weights
            X_fit, y_fit = np.vstack([X_tr, X_va]), np.concatenate([y_tr, y_va])
            n_combinations = len(train) + len(valid)
            del X_tr, X_va
        else:  # no validation split: no epoch selection, train for max_epochs
            state = TrainingState.of(self, {"train": X_tr.shape, "valid": None, "data": data_digest(X_tr, y_tr)})
            best_epoch = int(self.max_epochs)
            stop = stop_reason(best_epoch, best_epoch, best_epoch, self.patience, None, stopped_early=False)
            X_fit, y_fit, n_combinations = X_tr, y_tr, len(train)
        self.normaliser_ = make_normaliser(self.norm).fit(X_fit)
        self.net_, hist = self._train(self.normaliser_.transform(X_fit).astype(np.float32, copy=False), y_fit, best_epoch,
                                      dev, generator, state=state, phase="refit")
        log["refit"] = {"epochs": best_epoch, "train_loss": hist["train_loss"], "n_combinations": n_combinations,
                        "n_samples": len(y_fit), "seconds": hist["seconds"],
                        **({"resumed_at_epoch": hist["resumed_at_epoch"]} if "resumed_at_epoch" in hist else {})}
        log["epochs"] = log.get("selection", {}).get("epochs_run", 0) + best_epoch
        log["best_epoch"] = best_epoch
        log["final_train_loss"] = hist["train_loss"][-1]
        # why the epoch-selection phase ended; ``epochs`` above counts both phases
        log.update(stop, optimiser=hist["optimiser"])
        self.training_log_ = log
        return self

    def predict(self, batch) -> np.ndarray:
        import torch

        from synbench.neural import mean_over_orders, predict_tensor

        X, positions = self._design(batch)
        dev = next(self.net_.parameters()).device
        X = self.normaliser_.transform(X).astype(np.float32, copy=False)
        out = predict_tensor(self.net_, (torch.from_numpy(X).to(dev),)).reshape(-1)
        return mean_over_orders(out, positions, len(batch), self.task)


@hookimpl
def synbench_register_models():
    return [DeepSynergyModel]
