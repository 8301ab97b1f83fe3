"""BAITSAO: a multi-task network on LLM embeddings of drug and cell-line descriptions.

Liu et al., Nat Commun 2025. Input x = combine(emb(d1), ..., emb(dk)) || emb(cell) || E(k), with
the drug embeddings averaged (``combine="mean"``, so any k works) and E a learned embedding of the
number of drugs k. Every task t has its own input layer (to ``width``); all tasks share a trunk
Linear(width->trunk_width)-BatchNorm-ReLU-Dropout-Linear(trunk_width->width)-BatchNorm-ReLU-Dropout
(BatchNorm statistics kept per task, see ``_build_net``); each task has a linear head (logit for
classification). Tasks are the targets the training rows have (the job's target plus the
dataset's others, e.g. D1's Loewe score and Loewe > 30) with ``task_mode="multi"`` (the published
method, the default); ``task_mode="single"`` trains the job's target alone and never reads the other
targets (``Batch.aux``): the same network with one input layer and head, an ablation of the
training signal that the board shows as a method of its own (``-p task_mode=single``).

Search: ``table1`` searches BAITSAO's Table 1 (lr 1e-5 to 1e-4, dropout 0.1 to 0.3); ``strong`` a
wider log-uniform learning rate and dropout over the same widths. Search fits run the profile's
epoch cap and early stopping, and hand the job's target's validation loss to the search every
epoch, so a hopeless trial is pruned after ``prune_warmup_steps`` epochs.

Speed (not a change of method): ``bf16=True`` (the ``cpu`` profile) runs the training forward
passes under bf16 autocast with fp32 weights, losses and validation; on a CPU with bf16 units
(AVX-512 or AMX) it measured 1.36x faster per epoch at the same validation loss
(``benchmarks/neural_speed.py``). On a CPU with AVX2 alone bf16 is the slower path, so there it
trains in fp32 and the record says why (``training["precision_note"]``; :func:`synbench.neural.native_bf16`).

Loss: uncertainty weighting (Kendall et al. 2018) with a learnable s_t = log sigma_t^2 per task:
regression exp(-s)/2 * MSE + s/2, classification exp(-s) * BCE + s/2 (= 1/(2 sigma^2), 1/sigma^2,
+ log sigma; parameterising s keeps it finite without an epsilon). Early stopping and the
learning-rate schedule follow the largest single-task validation loss. Adam, ReduceLROnPlateau.

Three registered modes: ``baitsao`` trains from scratch in the shared CV; ``baitsao-ft`` starts
from a pre-trained checkpoint and fine-tunes input layers and heads with the shared trunk frozen;
``baitsao-zs`` applies a checkpoint's head unchanged. Uncertainty: MC dropout (dropout kept on,
BatchNorm in inference mode, ``mc_passes`` passes) gives ``y_std`` beside every prediction.

Deviations from the authors' code, and why: regression targets are standardised with training
statistics (predictions are mapped back), which only changes the first steps since the learned
log-variances absorb any scale; at inference BatchNorm uses running statistics kept per task
(their code switches to batch statistics, which makes a prediction depend on the other rows of
the batch).
"""

from __future__ import annotations

import numpy as np

from synbench.base import DEFAULT_PROFILES, PRUNE_WARMUP_EPOCHS, Model, Profile, Real
from synbench.data import Batch, drug_columns
from synbench.errors import ConfigError, DataError
from synbench.features import COMBINE_RULES, tabular_design
from synbench.hookspecs import hookimpl
from synbench.progress import report

MAX_K = 10  # rows of the k embedding (the authors' size); k = 1..9 drugs
REFERENCE = "Liu et al., Nat Commun 2025 (BAITSAO); Kendall et al. 2018 (uncertainty weighting); Gal & Ghahramani 2016 (MC dropout)"
PREDICT_CHUNK = 4096
TASK_MODES = ("multi", "single")  # the dataset's other targets as tasks too (published), or the job's alone


def _build_net(in_dim: int, tasks: list[tuple[str, str]], width: int, trunk_width: int, dropout: float, k_dim: int):
    """The network as plain torch containers (no torch import at module load).

    The trunk's BatchNorm layers share their affine weights across tasks but keep running
    statistics per task (``norm1[t]``, ``norm2[t]``): each task enters the trunk through its own
    input layer, so one set of running statistics would mix the tasks' activation distributions
    and inference would normalise every task wrongly (on D1 fold 0 the Loewe validation MSE was
    2.2 with shared statistics against 0.80 with per-task batch statistics). The authors'
    code avoids it by normalising with batch statistics at inference, which makes a prediction
    depend on the rest of the batch; per-task running statistics give the same normalisation
    for one row at a time.
    """
    import torch
    from torch import nn

    net = nn.Module()
    net.k_embedding = nn.Embedding(MAX_K, k_dim)
    net.inputs = nn.ModuleList([nn.Linear(in_dim - 1 + k_dim, width) for _ in tasks])
    trunk = nn.Module()
    trunk.linear1 = nn.Linear(width, trunk_width)
    trunk.norm1 = nn.ModuleList([nn.BatchNorm1d(trunk_width, affine=False) for _ in tasks])
    trunk.scale1, trunk.shift1 = nn.Parameter(torch.ones(trunk_width)), nn.Parameter(torch.zeros(trunk_width))
    trunk.linear2 = nn.Linear(trunk_width, width)
    trunk.norm2 = nn.ModuleList([nn.BatchNorm1d(width, affine=False) for _ in tasks])
    trunk.scale2, trunk.shift2 = nn.Parameter(torch.ones(width)), nn.Parameter(torch.zeros(width))
    trunk.dropout = nn.Dropout(dropout)
    net.trunk = trunk
    net.heads = nn.ModuleList([nn.Linear(width, 1) for _ in tasks])
    return net


def _trunk_head(net, h, t: int):
    """Linear-BatchNorm-ReLU: the deterministic part before the first dropout."""
    tr = net.trunk
    return (tr.norm1[t](tr.linear1(h)) * tr.scale1 + tr.shift1).relu()


def _trunk_tail(net, h, t: int):
    """Dropout-Linear-BatchNorm-ReLU-Dropout."""
    tr = net.trunk
    return tr.dropout((tr.norm2[t](tr.linear2(tr.dropout(h))) * tr.scale2 + tr.shift2).relu())


def _copy_trunk(dst, src, source_of: list[int | None]) -> None:
    """Shared trunk weights from ``src``; task t's statistics from src task ``source_of[t]`` (else 0)."""
    shared = {k: v for k, v in src.trunk.state_dict().items() if not k.startswith(("norm1.", "norm2."))}
    dst.trunk.load_state_dict(shared, strict=False)
    for t, s in enumerate(source_of):
        dst.trunk.norm1[t].load_state_dict(src.trunk.norm1[s or 0].state_dict())
        dst.trunk.norm2[t].load_state_dict(src.trunk.norm2[s or 0].state_dict())


def _embed(net, x):
    """Design row (features || k) -> features || E(k); the k column is the last of tabular_design."""
    import torch

    k = x[:, -1].round().long()
    return torch.cat([x[:, :-1], net.k_embedding(k)], dim=1)


def _forward(net, x, t: int):
    return net.heads[t](_trunk_tail(net, _trunk_head(net, net.inputs[t](_embed(net, x)), t), t)).squeeze(1)


def _task_loss(kind: str, out, y):
    import torch.nn.functional as F

    if kind == "regression":
        return F.mse_loss(out, y)
    return F.binary_cross_entropy_with_logits(out, y)  # the sigmoid head, in its stable form


def uncertainty_weighted(losses, log_vars, kinds):
    """sum_t w_t(s_t) * L_t + s_t / 2 with w = exp(-s)/2 (regression) or exp(-s) (classification)."""
    import torch

    terms = []
    for t, loss in losses.items():
        s = log_vars[t]
        scale = 0.5 if kinds[t] == "regression" else 1.0
        terms.append(scale * torch.exp(-s) * loss + 0.5 * s)
    return torch.stack(terms).sum()


class BaitsaoModel(Model):
    name = "baitsao"
    description = "BAITSAO multi-task network on LLM description embeddings (from scratch in the CV)"
    reference = REFERENCE
    featurizers = ("llm-description",)
    search_space = {"lr": Real(1e-5, 1e-4, log=True), "dropout": Real(0.1, 0.3)}  # BAITSAO Table 1
    search_spaces = {"table1": search_space,
                     "strong": {"lr": Real(1e-5, 3e-3, log=True), "dropout": Real(0.0, 0.5, limits=("low",))}}
    uses_validation = True
    prune_warmup_steps = PRUNE_WARMUP_EPOCHS
    # regression targets are standardised inside fit (a documented deviation); the board flags it
    # where the protocol does not scale every model's target
    scales_target_itself = True
    profiles = {
        **DEFAULT_PROFILES,
        # 4096/10240 is about 90M parameters: hours per fold on a CPU; the cpu profile keeps the
        # architecture and shrinks the width (the paper's scaling study varies it the same way).
        # the search budget is the profile's, as for every model; bf16 autocast measured 1.36x faster
        # per epoch at the same validation loss (benchmarks/neural_speed.py: 1.026 against fp32's 1.029)
        "cpu": DEFAULT_PROFILES["cpu"].with_params(
            width=512, trunk_width=1280, batch_size=256, max_epochs=150, patience=15, lr_patience=5, mc_passes=50,
            bf16=True, note="width 512/1280, at most 150 epochs, patience 15, bf16 autocast"),
        "smoke": Profile(params={"width": 32, "trunk_width": 48, "batch_size": 64, "max_epochs": 12, "patience": 4,
                                 "lr_patience": 2, "mc_passes": 8, "k_dim": 4, "lr": 1e-3},
                         description="tiny widths, a dozen epochs, no search"),
    }
    mode = "scratch"
    pretrainable = True  # `synbench pretrain` may fit it and save a checkpoint

    def __init__(self, task="regression", seed=0, width=4096, trunk_width=10240, dropout=0.2, lr=1e-4, batch_size=4096,
                 max_epochs=1000, patience=100, lr_patience=10, combine="mean", task_mode="multi", mc_passes=100, k_dim=16,
                 bf16=False):
        self.task, self.seed = task, seed
        self.width, self.trunk_width, self.dropout, self.lr = width, trunk_width, dropout, lr
        self.batch_size, self.max_epochs, self.patience, self.lr_patience = batch_size, max_epochs, patience, lr_patience
        self.combine, self.task_mode, self.mc_passes, self.k_dim = combine, task_mode, mc_passes, k_dim
        self.bf16 = bf16  # bf16 autocast of the training forward passes where it is faster (weights stay fp32)

    # -- inputs ---------------------------------------------------------------------------------
    def _design(self, batch: Batch) -> np.ndarray:
        rows = batch.rows
        if self.combine_ == "stack":  # stacked drug blocks: pad to the number of drug slots seen in training
            dcols = drug_columns(rows)
            if len(dcols) > self.n_slots_:
                extra = rows[dcols[self.n_slots_:]]
                if extra.notna().to_numpy().any():
                    raise DataError(f"the 'stack' rule was trained on at most {self.n_slots_} drugs per combination")
                rows = rows.drop(columns=dcols[self.n_slots_:])
            rows = rows.copy()
            for i in range(len(dcols) + 1, self.n_slots_ + 1):
                rows[f"drug_{i}"] = None
        k = rows["n_drugs"].to_numpy()
        if (k >= MAX_K).any() or (k < 1).any():
            raise DataError(f"BAITSAO embeds 1 to {MAX_K - 1} drugs per combination, got {int(k.max())}")
        X = tabular_design(Batch(rows, batch.features, batch.task), self.combine_)
        if self.in_dim_ is not None and X.shape[1] != self.in_dim_:
            raise DataError(f"input has {X.shape[1]} columns, the model was trained on {self.in_dim_} (other featurizers?)")
        return X

    def _tasks_of(self, batch: Batch) -> tuple[list[tuple[str, str]], dict[str, np.ndarray]]:
        if self.task_mode not in TASK_MODES:
            raise ConfigError(f"{self.name}: unknown task_mode '{self.task_mode}' (choose from {', '.join(TASK_MODES)})")
        primary = batch.target or "target"
        tasks, labels = [(primary, batch.task)], {primary: np.asarray(batch.y, dtype=float)}
        if self.task_mode == "multi" and batch.aux:  # single-task never reads the other targets
            for name, values in batch.aux.items():
                kind = (batch.aux_tasks or {}).get(name)
                if kind not in ("regression", "classification"):
                    raise DataError(f"auxiliary target '{name}' has no task type")
                values = np.asarray(values, dtype=float)
                if np.isfinite(values).any():
                    tasks.append((name, kind))
                    labels[name] = values
        return tasks, labels

    def _scaled(self, labels: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        out = {}
        for name, kind in self.tasks_:
            if name not in labels:
                continue
            y = labels[name]
            out[name] = (y - self.scaling_[name][0]) / self.scaling_[name][1] if kind == "regression" else y
        return out

    def _fit_scaling(self, labels):
        self.scaling_ = {}
        for name, kind in self.tasks_:
            y = labels[name][np.isfinite(labels[name])]
            if kind == "regression":
                std = float(y.std()) if len(y) > 1 else 1.0
                self.scaling_[name] = (float(y.mean()) if len(y) else 0.0, std if std > 1e-8 else 1.0)
            else:
                self.scaling_[name] = (0.0, 1.0)

    # -- training -------------------------------------------------------------------------------
    def fit(self, train: Batch, valid: Batch | None = None) -> "BaitsaoModel":
        from synbench.neural import device, seed_everything

        if self.combine not in COMBINE_RULES:
            raise ConfigError(f"unknown combination rule '{self.combine}' (choose from {', '.join(COMBINE_RULES)})")
        seed_everything(self.seed)
        self.device_ = str(device())
        self.combine_ = self.combine
        self.n_slots_ = len(drug_columns(train.rows))
        self.in_dim_ = None
        self.in_dim_ = self._design(train).shape[1]
        self.tasks_, labels = self._tasks_of(train)
        self._fit_scaling(labels)
        self.net_ = _build_net(self.in_dim_, self.tasks_, self.width, self.trunk_width, self.dropout, self.k_dim)
        self._train(train, valid, labels, trainable=list(self.net_.parameters()), mode="scratch")
        return self

    def _train(self, train: Batch, valid: Batch | None, labels, trainable, mode: str, frozen=None) -> None:
        import torch

        dev = torch.device(self.device_)
        net = self.net_.to(dev)
        kinds = {i: kind for i, (_, kind) in enumerate(self.tasks_)}
        X = torch.tensor(self._design(train), device=dev)
        Y = self._scaled(labels)
        Y = {i: torch.tensor(Y[name], dtype=torch.float32, device=dev) for i, (name, _) in enumerate(self.tasks_)}
        Xv = Yv = None
        if valid is not None and len(valid) and valid.y is not None:
            _, vlabels = self._tasks_of(valid)
            vs = self._scaled(vlabels)
            Xv = torch.tensor(self._design(valid), device=dev)
            Yv = {i: torch.tensor(vs[name], dtype=torch.float32, device=dev) for i, (name, _) in enumerate(self.tasks_) if name in vs}
        multitask = len(self.tasks_) > 1
        self.log_vars_ = torch.zeros(len(self.tasks_), device=dev, requires_grad=multitask)
        params = trainable + ([self.log_vars_] if multitask else [])
        from synbench.neural import NO_NATIVE_BF16, EarlyStopping, native_bf16, optimiser as make_optimiser, stop_reason

        asked_bf16 = bool(getattr(self, "bf16", False))  # checkpoints from before the setting lack it
        bf16 = asked_bf16 and native_bf16(dev)  # a speed setting: only where bf16 is faster

        optimizer = make_optimiser("Adam", params, lr=self.lr)
        scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, patience=self.lr_patience)

        stopper = EarlyStopping(self.patience, monitor="largest single-task validation loss")
        holder = _Holder(net, self.log_vars_)
        generator = torch.Generator().manual_seed(self.seed)
        n, bs = len(X), max(2, int(self.batch_size))
        epoch = -1
        for epoch in range(int(self.max_epochs)):
            net.train()
            if frozen is not None:  # a frozen trunk keeps its BatchNorm statistics too
                for m in frozen.modules():
                    if isinstance(m, torch.nn.BatchNorm1d):
                        m.eval()
            order = torch.randperm(n, generator=generator).to(dev)
            for start in range(0, n, bs):
                idx = order[start:start + bs]
                if len(idx) < 2:  # BatchNorm needs two rows
                    continue
                losses = {}
                for t in kinds:
                    y = Y[t][idx]
                    ok = torch.isfinite(y)
                    if ok.sum() < 2:  # rows without this target (pooled screens); BatchNorm needs two
                        continue
                    with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=bf16):
                        out = _forward(net, X[idx][ok], t)
                    losses[t] = _task_loss(kinds[t], out.float(), y[ok])
                if not losses:
                    continue
                loss = uncertainty_weighted(losses, self.log_vars_, kinds) if multitask else sum(losses.values())
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
            if Xv is None:  # no validation rows: nothing else tells a log that training is alive
                report(f"epoch {epoch + 1}/{int(self.max_epochs)} (no validation rows: trains to the cap)")
                continue
            task_losses = self._valid_losses(net, Xv, Yv, kinds)
            if not task_losses:  # no validation labels for any task: train for max_epochs
                Xv = None
                continue
            criterion = max(task_losses.values())  # the largest single-task loss (the authors' criterion)
            self.report_validation(epoch + 1, task_losses.get(0, criterion))  # the search scores the job's target
            scheduler.step(criterion)
            if stopper.step(epoch, criterion, holder):
                break
        if Xv is not None:
            stopper.restore(holder)
            best = self._valid_losses(net, Xv, Yv, kinds)
        net.eval()
        names = [name for name, _ in self.tasks_]
        self.training_log_ = {
            "mode": mode, "tasks": dict(self.tasks_), "epochs": epoch + 1,
            "best_epoch": (stopper.best_epoch + 1) if Xv is not None else epoch + 1,
            "best_valid_criterion": float(stopper.best_loss) if Xv is not None else None,
            "valid_curve": [float(v) for v in stopper.history] if Xv is not None else None,  # the criterion, every epoch
            "valid_losses": {names[t]: float(v) for t, v in best.items()} if Xv is not None else None,
            "log_variances": {names[t]: float(v) for t, v in enumerate(self.log_vars_.detach().cpu())} if multitask else None,
            "final_lr": float(optimizer.param_groups[0]["lr"]),
            "precision": "bf16 autocast (training)" if bf16 else "fp32",
            **({"precision_note": NO_NATIVE_BF16} if asked_bf16 and not bf16 else {}),
            "parameters": int(sum(p.numel() for p in net.parameters())),
            "trainable_parameters": int(sum(p.numel() for p in trainable)),
            **stop_reason(epoch + 1, int(self.max_epochs), (stopper.best_epoch + 1) if Xv is not None else epoch + 1,
                          self.patience, stopper.monitor if Xv is not None else None, stopped_early=stopper.stopped,
                          optimiser=optimizer),
        }

    @staticmethod
    def _valid_losses(net, Xv, Yv, kinds) -> dict[int, float]:
        import torch

        net.eval()
        out = {}
        with torch.no_grad():
            for t, y in Yv.items():
                ok = torch.isfinite(y)
                if ok.sum() == 0:
                    continue
                preds = torch.cat([_forward(net, Xv[s:s + PREDICT_CHUNK], t) for s in range(0, len(Xv), PREDICT_CHUNK)])
                out[t] = float(_task_loss(kinds[t], preds[ok], y[ok]))
        return out

    # -- prediction -----------------------------------------------------------------------------
    def _primary(self) -> int:
        return 0

    def _check_rows(self, batch: Batch) -> None:
        """Rows scored without their labels (test folds, queries) must be new to a checkpoint."""
        checkpoint = getattr(self, "checkpoint_", None)
        if checkpoint is not None and batch.y is None:
            from synbench.pretrain import check_unseen

            check_unseen(checkpoint, batch.rows, where=f"{self.name}: ")

    def _outputs(self, X, t: int, passes: int = 0):
        """Deterministic output (passes = 0) or MC-dropout samples (passes x rows), in target units."""
        import torch

        net = self.net_
        net.eval()
        dev = next(net.parameters()).device
        name, kind = self.tasks_[t]
        mean, std = self.scaling_[name]
        chunks = []
        with torch.no_grad():
            for s in range(0, len(X), PREDICT_CHUNK):
                xb = torch.tensor(X[s:s + PREDICT_CHUNK], device=dev)
                if passes <= 0:
                    out = _forward(net, xb, t)[None, :]
                else:
                    # dropout on, BatchNorm on its running statistics; the layers before the first
                    # dropout are deterministic, so they run once for all passes
                    hidden = _trunk_head(net, net.inputs[t](_embed(net, xb)), t)
                    net.trunk.dropout.train()
                    try:
                        out = torch.stack([net.heads[t](_trunk_tail(net, hidden, t)).squeeze(1) for _ in range(passes)])
                    finally:
                        net.eval()
                chunks.append(out.cpu().numpy())
        values = np.concatenate(chunks, axis=1).astype(float)
        return values * std + mean if kind == "regression" else 1.0 / (1.0 + np.exp(-values))

    def predict(self, batch: Batch) -> np.ndarray:
        self._check_rows(batch)
        return self._outputs(self._design(batch), self._primary())[0]

    def mc_samples(self, batch: Batch, t: int, passes: int) -> np.ndarray:
        import torch

        with torch.random.fork_rng(devices=[]):  # reproducible passes without disturbing global RNG
            torch.manual_seed(self.seed + 1)
            return self._outputs(self._design(batch), t, passes)

    def extra_outputs(self, batch: Batch) -> dict[str, np.ndarray]:
        if not self.mc_passes or self.mc_passes < 2:
            return {}
        self._check_rows(batch)
        samples = self.mc_samples(batch, self._primary(), int(self.mc_passes))
        return {"y_std": samples.std(axis=0, ddof=1), "y_mc_mean": samples.mean(axis=0)}

    def predict_heads(self, batch: Batch, passes: int) -> dict[str, dict]:
        """Every head's prediction with its MC-dropout spread (used by ``synbench predict``, which
        reports rather than refuses a combination the checkpoint has seen)."""
        X = self._design(batch)
        out = {}
        for t, (name, kind) in enumerate(self.tasks_):
            point = self._outputs(X, t)[0]
            entry = {"task": kind, "prediction": point}
            if passes and passes >= 2:
                samples = self.mc_samples(batch, t, passes)
                entry.update(mc_mean=samples.mean(axis=0), mc_std=samples.std(axis=0, ddof=1),
                             low=np.percentile(samples, 2.5, axis=0), high=np.percentile(samples, 97.5, axis=0))
            out[name] = entry
        return out

    # -- checkpoints ----------------------------------------------------------------------------
    def to_checkpoint(self) -> dict:
        state = {k: v.detach().cpu().clone() for k, v in self.net_.state_dict().items()}
        return {
            "config": {"in_dim": int(self.in_dim_), "width": int(self.net_.inputs[0].out_features),
                       "trunk_width": int(self.net_.trunk.linear1.out_features), "dropout": float(self.net_.trunk.dropout.p),
                       "k_dim": int(self.net_.k_embedding.embedding_dim), "combine": self.combine_, "n_slots": int(self.n_slots_)},
            "tasks": [[name, kind] for name, kind in self.tasks_],
            "scaling": {name: [float(m), float(s)] for name, (m, s) in self.scaling_.items()},
            "state_dict": state,
            "log_variances": [float(v) for v in self.log_vars_.detach().cpu()],
        }

    def _load_state(self, checkpoint: dict) -> None:
        """Rebuild the pre-trained network exactly as saved."""
        state = checkpoint["model_state"]
        cfg = state["config"]
        self.checkpoint_ = checkpoint
        self.combine_, self.n_slots_, self.in_dim_ = cfg["combine"], cfg["n_slots"], cfg["in_dim"]
        self.tasks_ = [(name, kind) for name, kind in state["tasks"]]
        self.scaling_ = {name: tuple(v) for name, v in state["scaling"].items()}
        self.net_ = _build_net(cfg["in_dim"], self.tasks_, cfg["width"], cfg["trunk_width"], cfg["dropout"], cfg["k_dim"])
        self.net_.load_state_dict(state["state_dict"])
        self.net_.eval()

    @classmethod
    def from_checkpoint(cls, checkpoint: dict, seed: int = 0) -> "BaitsaoModel":
        """A fitted model with every head of the checkpoint (for queries)."""
        import torch

        model = cls(task=checkpoint["model_state"]["tasks"][0][1], seed=seed)
        model._load_state(checkpoint)
        model.device_ = "cpu"
        model.log_vars_ = torch.tensor(checkpoint["model_state"].get("log_variances", [0.0] * len(model.tasks_)))
        return model


class _Holder:
    """What EarlyStopping snapshots: the network and the log-variances together."""

    def __init__(self, net, log_vars):
        self.net, self.log_vars = net, log_vars

    def state_dict(self):
        return {"net": self.net.state_dict(), "log_vars": self.log_vars.detach().clone()}

    def load_state_dict(self, state):
        import torch

        self.net.load_state_dict(state["net"])
        with torch.no_grad():
            self.log_vars.copy_(state["log_vars"])


class _CheckpointMixin:
    """Where the checkpoint comes from: a file made by ``synbench pretrain``, or ``dataset:NAME[+NAME]``
    to pre-train inside the fold on those datasets' rows whose combinations are among the rows
    being fitted (so no test combination can be in it)."""

    def _checkpoint_for(self, train: Batch, valid: Batch | None) -> dict:
        from synbench.pretrain import check_features, load_checkpoint, pretrain_in_fold

        if not self.checkpoint:
            raise ConfigError(f"model '{self.name}' needs -p checkpoint=PATH (made by `synbench pretrain`) or -p checkpoint=dataset:NAME")
        source = str(self.checkpoint)
        if source.startswith("dataset:"):
            names = [n for n in source[len("dataset:"):].replace("+", ",").split(",") if n]
            params = dict(BaitsaoModel.profiles[self.pretrain_profile].params) if self.pretrain_profile in BaitsaoModel.profiles else None
            if params is None:
                raise ConfigError(f"unknown pretrain_profile '{self.pretrain_profile}' (paper, cpu or smoke)")
            checkpoint = pretrain_in_fold(names, train, valid, BaitsaoModel, params, self.seed)
            checkpoint["path"] = source
        else:
            checkpoint = load_checkpoint(source)
        if checkpoint["model"] != BaitsaoModel.name:
            raise ConfigError(f"checkpoint {source} holds a '{checkpoint['model']}' model, not baitsao")
        check_features(checkpoint, train.features, where=f"{self.name}: ")
        return checkpoint


class BaitsaoFineTune(_CheckpointMixin, BaitsaoModel):
    name = "baitsao-ft"
    description = "BAITSAO fine-tuned from a pre-trained checkpoint, shared trunk frozen"
    profiles = {
        "paper": DEFAULT_PROFILES["paper"].with_params(
            max_epochs=100, patience=50, pretrain_profile="paper", note="the authors' fine-tuning: 100 epochs, patience 50"),
        "cpu": DEFAULT_PROFILES["cpu"].with_params(
            batch_size=256, max_epochs=100, patience=15, lr_patience=5, mc_passes=50, pretrain_profile="cpu",
            note="at most 100 epochs, patience 15"),
        "smoke": Profile(params={"batch_size": 64, "max_epochs": 12, "patience": 4, "lr_patience": 2, "mc_passes": 8, "lr": 1e-3,
                                 "checkpoint": "dataset:mock", "pretrain_profile": "smoke"},
                         description="pre-trains a tiny checkpoint in the fold on the mock rows being fitted"),
    }
    mode = "fine-tune"
    pretrainable = False

    def __init__(self, task="regression", seed=0, checkpoint=None, dropout=None, lr=1e-4, batch_size=4096, max_epochs=100,
                 patience=50, lr_patience=10, task_mode="multi", mc_passes=100, pretrain_profile="paper"):
        # widths, the k embedding and the combination rule come from the checkpoint
        self.task, self.seed, self.checkpoint, self.dropout, self.lr = task, seed, checkpoint, dropout, lr
        self.batch_size, self.max_epochs, self.patience, self.lr_patience = batch_size, max_epochs, patience, lr_patience
        self.task_mode, self.mc_passes, self.pretrain_profile = task_mode, mc_passes, pretrain_profile

    def fit(self, train: Batch, valid: Batch | None = None) -> "BaitsaoFineTune":
        from synbench.neural import device, seed_everything

        checkpoint = self._checkpoint_for(train, valid)
        seed_everything(self.seed)
        self.device_ = str(device())
        pre = BaitsaoModel.from_checkpoint(checkpoint, seed=self.seed)
        self.checkpoint_ = checkpoint
        self.combine_, self.n_slots_, self.in_dim_ = pre.combine_, pre.n_slots_, pre.in_dim_
        self.tasks_, labels = self._tasks_of(train)
        self._fit_scaling(labels)
        cfg = checkpoint["model_state"]["config"]
        dropout = cfg["dropout"] if self.dropout is None else self.dropout
        self.net_ = _build_net(self.in_dim_, self.tasks_, cfg["width"], cfg["trunk_width"], dropout, cfg["k_dim"])
        self.net_.k_embedding.load_state_dict(pre.net_.k_embedding.state_dict())
        # each task starts from the pre-trained task of the same name, else the first of its kind
        # (input layer, head and its trunk statistics); a task with neither keeps a fresh input
        # layer and head, and normalises with the first pre-trained task's statistics
        source, source_of = {}, []
        for t, (name, kind) in enumerate(self.tasks_):
            same = [i for i, (n, k) in enumerate(pre.tasks_) if n == name and k == kind]
            kind_match = [i for i, (_, k) in enumerate(pre.tasks_) if k == kind]
            src = (same or kind_match or [None])[0]
            source[name] = None if src is None else pre.tasks_[src][0]
            source_of.append(src)
            if src is not None:
                self.net_.inputs[t].load_state_dict(pre.net_.inputs[src].state_dict())
                self.net_.heads[t].load_state_dict(pre.net_.heads[src].state_dict())
        _copy_trunk(self.net_, pre.net_, source_of)
        for p in self.net_.trunk.parameters():
            p.requires_grad_(False)
        trainable = [p for p in self.net_.parameters() if p.requires_grad]
        self._train(train, valid, labels, trainable=trainable, mode="fine-tune", frozen=self.net_.trunk)
        self.training_log_["initialised_from"] = source
        self.training_log_["checkpoint"] = str(self.checkpoint)
        self.training_log_["checkpoint_training_checksum"] = checkpoint["training_checksum"]
        return self


class BaitsaoZeroShot(_CheckpointMixin, BaitsaoModel):
    name = "baitsao-zs"
    description = "BAITSAO pre-trained checkpoint applied zero-shot (no training on the evaluation data)"
    search_space = {}
    search_spaces = {}
    uses_validation = False
    learns_from_labels = False  # the checkpoint's head predicts in its pre-training data's units
    profiles = {
        "paper": Profile(params={"pretrain_profile": "paper"}, description="the checkpoint as is; 100 MC-dropout passes"),
        "cpu": Profile(params={"mc_passes": 50, "pretrain_profile": "cpu"}, description="the checkpoint as is; 50 MC-dropout passes"),
        "smoke": Profile(params={"checkpoint": "dataset:mock", "pretrain_profile": "smoke", "mc_passes": 8},
                         description="pre-trains a tiny checkpoint in the fold on the mock rows being fitted"),
    }
    mode = "zero-shot"
    pretrainable = False

    def __init__(self, task="regression", seed=0, checkpoint=None, head=None, mc_passes=100, pretrain_profile="paper"):
        self.task, self.seed, self.checkpoint, self.head = task, seed, checkpoint, head
        self.mc_passes, self.pretrain_profile = mc_passes, pretrain_profile

    def fit(self, train: Batch, valid: Batch | None = None) -> "BaitsaoZeroShot":
        # nothing is learned from the evaluation dataset: its rows serve only to check the inputs
        checkpoint = self._checkpoint_for(train, valid)
        self._load_state(checkpoint)
        self.device_ = "cpu"
        names = [n for n, _ in self.tasks_]
        if self.head is not None:
            if self.head not in names:
                raise ConfigError(f"checkpoint has no head '{self.head}' (heads: {', '.join(names)})")
            wanted = self.head
        elif train.target in names and dict(self.tasks_)[train.target] == self.task:
            wanted = train.target
        else:
            same = [n for n, k in self.tasks_ if k == self.task]
            if not same:
                raise ConfigError(f"checkpoint has no {self.task} head for this target "
                                  f"(heads: {', '.join(f'{n} ({k})' for n, k in self.tasks_)})")
            if len(same) != 1:
                raise ConfigError(f"choose a checkpoint head for this {self.task} target with -p head=NAME "
                                  f"(heads: {', '.join(f'{n} ({k})' for n, k in self.tasks_)})")
            wanted = same[0]
        self.head_ = names.index(wanted)
        if self.tasks_[self.head_][1] != self.task:
            raise ConfigError(f"head '{wanted}' is {self.tasks_[self.head_][1]}, the target is {self.task}")
        import torch

        self.log_vars_ = torch.tensor(checkpoint["model_state"].get("log_variances", [0.0] * len(names)))
        self.training_log_ = {"mode": "zero-shot", "head": wanted, "checkpoint": str(self.checkpoint),
                              "checkpoint_training_checksum": checkpoint["training_checksum"],
                              "checkpoint_tasks": dict(self.tasks_), "epochs": 0}
        return self

    def _primary(self) -> int:
        return self.head_


@hookimpl
def synbench_register_models():
    return [BaitsaoModel, BaitsaoFineTune, BaitsaoZeroShot]
