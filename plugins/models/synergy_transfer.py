"""Synergy Transfer (Kim et al. 2021): pre-train on data-rich tissues, fine-tune on the target tissue.

Read from the authors' released notebook (github.com/yejinjkim/synergy-transfer, ``Main.ipynb``;
the paper's text was not available here) and implemented as far as this harness's inputs allow:

- Network: a drug encoder shared by both drugs and a cell-line encoder, each a dense ReLU layer on
  the entity's features (the authors' fingerprint branch has 32 units, their expression branch 64)
  followed by their two-layer block ``FC2`` (batch norm, dropout, a linear layer of half the input
  width, ReLU, dropout, a linear layer) to a 64-wide embedding; the synergy head is another
  ``FC2`` on drug 1 || drug 2 || cell. Dropout 0.3; Adagrad at torch's default rate 0.01; batch 128;
  10 epochs per stage; binary cross-entropy for classification (their task: Loewe > 30) and mean
  squared error for regression (the paper reports both).
- Transfer, as published: train the whole network on the source tissues' rows, then freeze the
  drug and cell encoders and train only the synergy head on the target tissue's rows (the
  authors' ``release_after = 46`` is the first parameter of the synergy head), continuing the
  same optimiser with its accumulated state. The network stays in training mode while
  fine-tuning, so the frozen encoders' batch-norm statistics follow the target tissue, as in
  their code.

Here, in the harness: the target tissue is the fold's held-out group (``Batch.group``) and each
row's tissue is ``Batch.tissue``. Stage 1 trains on the source-tissue rows of the inner training
split and stops on the source-tissue rows of the inner validation split (the harness's
validation split mixes tissues under ``tissue-few-shot``; its target-tissue rows are kept for
stage 2). Stage 2 fine-tunes on the target tissue's inner-training rows and stops on its
inner-validation rows when there are at least ``fine_tune_min_valid`` of them; otherwise those
rows join the fine-tuning rows and stage 2 runs ``fine_tune_fixed_epochs`` (10, the published
count). No target-tissue rows (``leave-tissue-out``, ``fraction=0``) skips stage 2, and a split
with no target tissue (the published folds, a dataset without tissues) trains stage 1 on every
row; ``training_log_`` says which. ``fine_tune=False`` (also registered as
``synergy-transfer-joint``) is the control without a separate fine-tuning stage: the same network
trained once on every training row, stopping on every validation row.

Differences from the paper, and why:

- Inputs: the harness's chemistry features (Morgan bits + RDKit descriptors) stand in for the
  fingerprint, SMILES-transformer and target-gene branches of the drug encoder, and the cell
  line's expression enters the dense layer directly instead of through the authors' denoising
  autoencoder (128 codes); their disease embedding and the auxiliary single-drug sensitivity head
  (relative inhibition > 50) are left out, since the datasets here record neither. Features are
  standardised with the training rows' entities (descriptors have wide scales).
- Epochs: the authors ran 10 fixed epochs per stage and kept the last weights; here each stage
  keeps the weights of its best validation epoch, and ``patience`` (None in ``paper``: every
  epoch runs) may end it early.
- Drug order: training rows are augmented with the swapped drug order and predictions averaged
  over both orders, so they do not depend on how a pair is written (the head itself is ordered).
  Rows with k > 2 drugs use k zero-filled slots and all k! orders.
- ``cpu`` profile: batch 256 and Adam at 1e-3 with patience 8 per stage (caps 100), so that a
  stage ends by early stopping rather than at a cap; this is a budget choice, not compared here
  with the published Adagrad. On D1 (tissue-few-shot:fraction=0.1, breast fold) the validation
  loss was still falling slowly after 11 epochs; a pre-training epoch (17,467 source rows in both
  orders) takes about 2.3 s on one thread of the 2-core machine with three other jobs beside it,
  so a whole job costs minutes. ``paper`` keeps Adagrad 0.01 and 10 epochs per stage.
"""

from __future__ import annotations

import time

import numpy as np
import pandas as pd

from synbench.base import DEFAULT_PROFILES, PRUNE_WARMUP_EPOCHS, SEARCH_TRIALS, Model, Profile, Real
from synbench.errors import ConfigError, DataError
from synbench.hookspecs import hookimpl
from synbench.reference import CHEM_EXPR

OPTIMISERS = ("adagrad", "adam")


def _flag(value, name: str) -> bool:
    """A boolean parameter, also as ``-p name=false`` gives it (the string 'false')."""
    if isinstance(value, (bool, np.bool_)) or value in (0, 1):
        return bool(value)
    text = str(value).strip().lower()
    if text in ("true", "yes", "1"):
        return True
    if text in ("false", "no", "0"):
        return False
    raise ConfigError(f"synergy-transfer: {name} must be true or false, got {value!r}")


def _entity_table(features, attr: str, what: str) -> pd.DataFrame:
    """All tabular features of one kind of entity side by side (one row per entity)."""
    parts = [getattr(fs, attr) for fs in features.values() if fs.kind == "tabular" and getattr(fs, attr) is not None]
    if not parts:
        raise DataError(f"synergy-transfer needs tabular {what} features (default featurizers: {', '.join(CHEM_EXPR)})")
    index = parts[0].index
    for part in parts[1:]:
        index = index.union(part.index)
    return pd.DataFrame(np.hstack([p.reindex(index).to_numpy(dtype=np.float32) for p in parts]), index=index).fillna(0.0)


def _modules():
    """The network's torch modules (torch is imported only when a model is fitted)."""
    import torch
    from torch import nn

    class FC2(nn.Module):
        """The authors' two-layer block: batch norm, dropout, linear to half the width, ReLU, dropout, linear."""

        def __init__(self, n_in: int, n_out: int, dropout: float):
            super().__init__()
            self.bn, self.drop = nn.BatchNorm1d(n_in), nn.Dropout(dropout)
            self.fc1, self.fc2 = nn.Linear(n_in, max(1, n_in // 2)), nn.Linear(max(1, n_in // 2), n_out)

        def forward(self, x):
            return self.fc2(self.drop(torch.relu(self.fc1(self.drop(self.bn(x))))))

    class Encoder(nn.Module):
        def __init__(self, n_in: int, width: int, n_out: int, dropout: float):
            super().__init__()
            self.dense, self.fc = nn.Linear(n_in, width), FC2(width, n_out, dropout)

        def forward(self, x):
            return self.fc(torch.relu(self.dense(x)))

    class SynergyNet(nn.Module):
        """Drug slots (entity positions, -1 empty) and a cell position -> one synergy output.
        The entity feature tables are set as plain attributes (``tables``), not weights."""

        def __init__(self, n_drug: int, n_cell: int, n_slots: int, drug_width: int, cell_width: int, embed: int,
                     dropout: float):
            super().__init__()
            self.embed = embed
            self.drug = Encoder(n_drug, drug_width, embed, dropout)
            self.cell = Encoder(n_cell, cell_width, embed, dropout)
            self.head = FC2(n_slots * embed + embed, 1, dropout)
            self.tables = None

        def forward(self, slots, cells):
            drug_table, cell_table = self.tables
            present = slots >= 0
            drugs = torch.zeros(slots.shape[0], slots.shape[1], self.embed, device=slots.device)
            drugs[present] = self.drug(drug_table[slots[present]])  # an empty slot stays zero
            return self.head(torch.cat([drugs.flatten(1), self.cell(cell_table[cells])], dim=1))

    return SynergyNet


class SynergyTransferModel(Model):
    name = "synergy-transfer"
    description = "drug + cell encoders and a synergy head pre-trained on source tissues, head fine-tuned on the target tissue"
    reference = "Kim et al. 2021, JAMIA 28(1):42-51 (Synergy Transfer; github.com/yejinjkim/synergy-transfer)"
    featurizers = CHEM_EXPR
    search_space = {}  # the authors report one configuration, no search
    # table1: no search, as for the other published networks; strong: the learning rate and dropout,
    # with the same trial budget as every model of the run (the architecture is never searched)
    search_spaces = {"table1": {},
                     "strong": {"lr": Real(1e-4, 3e-2, log=True), "dropout": Real(0.0, 0.5, limits=("low",))}}
    prune_warmup_steps = PRUNE_WARMUP_EPOCHS
    uses_validation = True
    profiles = {
        "paper": Profile(search_trials=SEARCH_TRIALS["paper"], description="published: Adagrad 0.01, batch 128, 10 epochs per stage (best validation epoch kept)"),
        # Adam with patience so that each stage ends by early stopping, not at its cap (see the
        # module docstring for what was measured on D1)
        "cpu": DEFAULT_PROFILES["cpu"].with_params(
            optimizer="adam", lr=1e-3, batch_size=256, max_epochs=100, patience=8, fine_tune_epochs=100,
            fine_tune_patience=8, note="published network, Adam 1e-3 (unless searched), batch 256, patience 8 per stage (caps 100)"),
        "quick": DEFAULT_PROFILES["quick"].with_params(
            optimizer="adam", lr=1e-3, batch_size=256, max_epochs=40, patience=5, fine_tune_epochs=40,
            fine_tune_patience=5, note="as cpu with patience 5 (caps 40)"),
        "smoke": Profile(params={"drug_width": 8, "cell_width": 8, "embed_size": 8, "batch_size": 64, "max_epochs": 4,
                                 "patience": 2, "fine_tune_epochs": 3, "fine_tune_patience": 2, "fine_tune_min_valid": 4,
                                 "fine_tune_fixed_epochs": 2},
                         description="tiny network, a few epochs per stage, for tests"),
    }

    def __init__(self, task="regression", seed=0, fine_tune=True, drug_width=32, cell_width=64, embed_size=64,
                 dropout=0.3, optimizer="adagrad", lr=0.01, batch_size=128, max_epochs=10, patience=None,
                 fine_tune_epochs=10, fine_tune_patience=None, fine_tune_min_valid=20, fine_tune_fixed_epochs=10):
        self.task, self.seed, self.fine_tune = task, seed, fine_tune
        self.drug_width, self.cell_width, self.embed_size, self.dropout = drug_width, cell_width, embed_size, dropout
        self.optimizer, self.lr, self.batch_size = optimizer, lr, batch_size
        self.max_epochs, self.patience = max_epochs, patience
        self.fine_tune_epochs, self.fine_tune_patience = fine_tune_epochs, fine_tune_patience
        self.fine_tune_min_valid, self.fine_tune_fixed_epochs = fine_tune_min_valid, fine_tune_fixed_epochs

    # -- data -------------------------------------------------------------------------------------
    def _tables(self, batch, fitting: bool = False):
        """Standardised drug and cell tables as tensors, with each entity's position."""
        import torch
        from sklearn.preprocessing import StandardScaler

        drugs = _entity_table(batch.features, "drugs", "drug")
        cells = _entity_table(batch.features, "cell_lines", "cell-line")
        if fitting:  # statistics of the training rows' entities only
            from synbench.data import CELL, drug_columns

            used = pd.unique(batch.rows[drug_columns(batch.rows)].to_numpy().ravel())
            used = drugs.index.intersection([d for d in used if isinstance(d, str)])
            self.scalers_ = (StandardScaler().fit(drugs.loc[used].to_numpy()),
                             StandardScaler().fit(cells.loc[cells.index.intersection(batch.rows[CELL].unique())].to_numpy()))
            self.widths_ = (drugs.shape[1], cells.shape[1])
        if (drugs.shape[1], cells.shape[1]) != self.widths_:
            raise DataError(f"synergy-transfer was fitted on drug/cell features of widths {self.widths_} but this batch "
                            f"gives {(drugs.shape[1], cells.shape[1])} (different featurizers)")
        tensors = tuple(torch.from_numpy(s.transform(t.to_numpy()).astype(np.float32)).to(self._device())
                        for s, t in zip(self.scalers_, (drugs, cells)))
        return tensors, pd.Series(np.arange(len(drugs)), index=drugs.index), pd.Series(np.arange(len(cells)), index=cells.index)

    def _device(self):
        import torch

        return torch.device(self.device_)

    def _design(self, batch, drug_pos, cell_pos, fitting: bool = False):
        """(drug slot positions, cell positions, batch position) for every drug order of every row
        (when fitting, an order the batch lists as a row of its own is not added twice)."""
        from synbench.data import CELL, drug_columns
        from synbench.neural import drug_orderings

        dcols = drug_columns(batch.rows)
        if len(dcols) > self.n_slots_:
            raise DataError(f"synergy-transfer was fitted with {self.n_slots_} drug slots but this batch has {len(dcols)}")
        slots, cells, positions = [], [], []
        for pos, _, ordered in drug_orderings(batch, skip_listed=fitting):
            block = np.full((len(pos), self.n_slots_), -1, dtype=np.int64)
            for j, col in enumerate(dcols):
                names = ordered.rows[col]
                found = names.map(drug_pos)
                if (names.notna() & found.isna()).any():
                    raise DataError(f"synergy-transfer: no features for drugs {sorted(set(names[names.notna() & found.isna()]))[:5]}")
                block[:, j] = found.fillna(-1).to_numpy(dtype=np.int64)
            found = ordered.rows[CELL].map(cell_pos)
            if found.isna().any():
                raise DataError(f"synergy-transfer: no features for cell lines {sorted(set(ordered.rows[CELL][found.isna()]))[:5]}")
            slots.append(block)
            cells.append(found.to_numpy(dtype=np.int64))
            positions.append(pos)
        return np.vstack(slots), np.concatenate(cells), np.concatenate(positions)

    def _samples(self, batch, drug_pos, cell_pos):
        """Training tensors (slots, cells) and labels for every drug order of ``batch``'s rows."""
        import torch

        from synbench.neural import training_labels

        y = training_labels(batch, self.task, "synergy-transfer")
        slots, cells, pos = self._design(batch, drug_pos, cell_pos, fitting=True)
        dev = self._device()
        return (torch.from_numpy(slots).to(dev), torch.from_numpy(cells).to(dev)), torch.from_numpy(y[pos]).reshape(-1, 1).to(dev)

    # -- training ---------------------------------------------------------------------------------
    def _epoch(self, net, optimiser, loss_fn, inputs, target, generator) -> float:
        import torch

        net.train()  # also while fine-tuning: the frozen encoders' batch norms follow the new rows, as published
        n, total, seen = len(target), 0.0, 0
        order = torch.randperm(n, generator=generator).to(target.device)
        for start in range(0, n, int(self.batch_size)):
            idx = order[start:start + int(self.batch_size)]
            if len(idx) < 2:  # batch norm cannot train on a single sample
                continue
            loss = loss_fn(net(*(x[idx] for x in inputs)), target[idx])
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            total, seen = total + float(loss.detach()) * len(idx), seen + len(idx)
        return total / max(seen, 1)

    def _stage(self, stage: str, net, optimiser, train, valid, max_epochs: int, patience, generator, monitor: str) -> dict:
        """Train for up to ``max_epochs``; with ``valid`` stop on ``patience`` and keep the best epoch."""
        from synbench.neural import EarlyStopping, predict_tensor, stop_reason
        from synbench.progress import report

        loss_fn = self._loss()
        check = EarlyStopping(int(patience) if patience else 10**9, monitor=f"{stage} {monitor}") if valid else None
        train_loss, diverged, t0 = [], False, time.perf_counter()
        for epoch in range(1, int(max_epochs) + 1):
            train_loss.append(self._epoch(net, optimiser, loss_fn, *train, generator))
            if check is None:
                report(f"{stage} epoch {epoch}/{max_epochs}")
                if not np.isfinite(train_loss[-1]):
                    diverged = True
                    break
                continue
            value = float(loss_fn(predict_tensor(net, valid[0]), valid[1]))
            if not np.isfinite(value):
                diverged = True  # later epochs cannot recover the best weights already kept
                break
            stop = check.step(epoch, value, net)
            if stage == "pretrain":
                self.report_validation(epoch, value)  # lets a search prune a hopeless trial
            if stop:
                break
        if check is not None:
            check.restore(net)
            best = max(check.best_epoch, 0)
        else:
            best = len(train_loss) if not diverged else 0
        record = stop_reason(len(train_loss), int(max_epochs), best, patience if check else None, monitor if check else None,
                             stopped_early=bool(check and check.stopped), diverged=diverged, optimiser=optimiser)
        record.update(train_loss=train_loss, val_loss=[] if check is None else list(check.history),
                      n_samples=int(len(train[1])), n_valid_samples=0 if valid is None else int(len(valid[1])),
                      seconds=round(time.perf_counter() - t0, 2))
        return record

    def _loss(self):
        from torch import nn

        return nn.MSELoss() if self.task == "regression" else nn.BCEWithLogitsLoss()

    def _optimiser(self, net):
        from synbench.neural import optimiser as make_optimiser

        if self.optimizer == "adagrad":
            return make_optimiser("Adagrad", net.parameters(), lr=float(self.lr))
        return make_optimiser("Adam", net.parameters(), lr=float(self.lr))

    # -- estimator API ----------------------------------------------------------------------------
    def fit(self, train, valid=None) -> "SynergyTransferModel":
        import torch

        from synbench.data import drug_columns
        from synbench.neural import device, seed_everything

        if self.task not in ("regression", "classification"):
            raise ConfigError(f"synergy-transfer: unknown task '{self.task}'")
        if self.optimizer not in OPTIMISERS:
            raise ConfigError(f"synergy-transfer: unknown optimizer '{self.optimizer}' (choose from {', '.join(OPTIMISERS)})")
        if min(int(self.max_epochs), int(self.fine_tune_epochs), int(self.fine_tune_fixed_epochs)) < 1:
            raise ConfigError("synergy-transfer: max_epochs, fine_tune_epochs and fine_tune_fixed_epochs must be at least 1")
        fine_tune = _flag(self.fine_tune, "fine_tune")
        seed_everything(self.seed)
        self.device_ = str(device())
        self.validation_rows_learnt_ = 0  # validation rows only stop training, unless too few to (below)
        generator = torch.Generator().manual_seed(int(self.seed))
        self.n_slots_ = len(drug_columns(train.rows))
        tables, drug_pos, cell_pos = self._tables(train, fitting=True)
        valid = valid if valid is not None and len(valid) else None

        # which rows are the target tissue's: the fold's held-out group, where rows carry tissues
        target = train.group if train.tissue is not None else None
        in_target = np.zeros(len(train), dtype=bool) if target is None else np.asarray(train.tissue == target, dtype=bool)
        v_target = (np.zeros(len(valid), dtype=bool) if valid is None or target is None or valid.tissue is None
                    else np.asarray(valid.tissue == target, dtype=bool))
        if target is None:
            plan = "no target tissue (not a tissue-transfer split): one stage on every row"
        elif not fine_tune:
            plan = "joint control: one stage on every training row, source and target tissue"
        else:
            plan = "pre-train on the source tissues, fine-tune the synergy head on the target tissue"
        joint = target is None or not fine_tune
        pre_rows = train if joint else train.subset(train.rows.index[~in_target])
        pre_valid = valid if joint or valid is None else valid.subset(valid.rows.index[~v_target])
        pre_valid = pre_valid if pre_valid is not None and len(pre_valid) else None

        net = _modules()(*self.widths_, self.n_slots_, int(self.drug_width), int(self.cell_width), int(self.embed_size),
                         float(self.dropout)).to(self._device())
        net.tables = tables
        optimiser = self._optimiser(net)
        monitor = "validation loss" if self.task == "regression" else "validation log-loss"
        pre = self._stage("pretrain", net, optimiser, self._samples(pre_rows, drug_pos, cell_pos),
                          None if pre_valid is None else self._samples(pre_valid, drug_pos, cell_pos),
                          self.max_epochs, self.patience, generator, monitor)
        pre.update(n_rows=len(pre_rows), n_valid_rows=0 if pre_valid is None else len(pre_valid))

        tune_rows = train.subset(train.rows.index[in_target])
        tune_valid = None if valid is None else valid.subset(valid.rows.index[v_target])
        if joint:
            tune = {"skipped": True, "reason": "no target tissue" if target is None else "fine_tune=False (joint control)"}
        elif len(tune_rows) == 0 and (tune_valid is None or len(tune_valid) == 0):
            tune = {"skipped": True, "reason": "no target-tissue training rows (leave-tissue-out or fraction 0)"}
            plan = "pre-train on the source tissues; no target-tissue rows to fine-tune on"
        else:
            if len(tune_rows) and tune_valid is not None and len(tune_valid) >= int(self.fine_tune_min_valid):
                epochs, patience, rule = self.fine_tune_epochs, self.fine_tune_patience, "target-tissue validation rows"
            else:  # too few rows to stop on: they train too, for the published fixed number of epochs
                if tune_valid is not None and len(tune_valid):
                    tune_rows = _concat(tune_rows, tune_valid)
                    self.validation_rows_learnt_ = len(tune_valid)  # the record's final_fit_rows counts them
                tune_valid, epochs, patience = None, self.fine_tune_fixed_epochs, None
                rule = f"fixed {int(epochs)} epochs (fewer than {int(self.fine_tune_min_valid)} target validation rows)"
            for module in (net.drug, net.cell):  # the encoders are frozen: only the synergy head learns
                for p in module.parameters():
                    p.requires_grad_(False)
            tune = self._stage("fine-tune", net, optimiser, self._samples(tune_rows, drug_pos, cell_pos),
                               None if tune_valid is None else self._samples(tune_valid, drug_pos, cell_pos),
                               epochs, patience, generator, monitor)
            tune.update(skipped=False, stopping=rule, n_rows=len(tune_rows),
                        n_valid_rows=0 if tune_valid is None else len(tune_valid), trained="synergy head (encoders frozen)")
        net.tables = None  # the tables are rebuilt from each batch's features
        self.net_ = net
        log = {"plan": plan, "target_tissue": target, "fine_tune": fine_tune,
               "n_source_rows": int(len(train) - in_target.sum()), "n_target_rows": int(in_target.sum()),
               "n_source_valid_rows": int(0 if valid is None else len(valid) - v_target.sum()),
               "n_target_valid_rows": int(v_target.sum()),
               "pretrain": pre, "fine_tune_stage": tune,
               "epochs": pre["epochs_run"] + (0 if tune.get("skipped") else tune["epochs_run"])}
        # the top-level stop record (synbench.neural.stop_reason) is the pre-training stage's
        log.update({k: pre[k] for k in ("stopped", "best_epoch", "epochs_run", "max_epochs", "patience", "monitor",
                                        "improving_at_cap")})
        self.training_log_ = log
        return self

    def predict(self, batch) -> np.ndarray:
        import torch

        from synbench.neural import mean_over_orders, predict_tensor

        tables, drug_pos, cell_pos = self._tables(batch)
        slots, cells, positions = self._design(batch, drug_pos, cell_pos)
        dev = self._device()
        self.net_.tables = tables
        try:
            out = predict_tensor(self.net_, (torch.from_numpy(slots).to(dev), torch.from_numpy(cells).to(dev))).reshape(-1)
        finally:
            self.net_.tables = None
        return mean_over_orders(out, positions, len(batch), self.task)


def _concat(a, b):
    """Two batches of the same dataset as one (rows, labels and tissues)."""
    from synbench.data import Batch

    tissue = None if a.tissue is None else np.concatenate([a.tissue, b.tissue])
    return Batch(pd.concat([a.rows, b.rows]), a.features, a.task, np.concatenate([a.y, b.y]), a.target, None, None, tissue, a.group)


class SynergyTransferJoint(SynergyTransferModel):
    """The control without a separate fine-tuning stage, as its own method on the board."""

    name = "synergy-transfer-joint"
    description = "synergy-transfer's network trained once on every training row (no fine-tuning stage): the control"

    def __init__(self, task="regression", seed=0, fine_tune=False, drug_width=32, cell_width=64, embed_size=64,
                 dropout=0.3, optimizer="adagrad", lr=0.01, batch_size=128, max_epochs=10, patience=None,
                 fine_tune_epochs=10, fine_tune_patience=None, fine_tune_min_valid=20, fine_tune_fixed_epochs=10):
        super().__init__(task, seed, fine_tune, drug_width, cell_width, embed_size, dropout, optimizer, lr, batch_size,
                         max_epochs, patience, fine_tune_epochs, fine_tune_patience, fine_tune_min_valid,
                         fine_tune_fixed_epochs)


@hookimpl
def synbench_register_models():
    return [SynergyTransferModel, SynergyTransferJoint]
