"""Where the torch models' training time goes on this CPU, and which cheap changes make it faster
without changing the validation quality (D1 fold 0, each model's ``cpu`` profile).

For each torch model plugin (DeepSynergy, MARSY, DeepDDS, TabNet, BAITSAO) the script builds the
real inputs of D1 fold 0 the way ``synbench.runner.compute`` does (the model's featurizers, the
published split, regression targets standardised with the training statistics as the default
``strong`` protocol does, the other target as the auxiliary one for BAITSAO) and the model's own
network, loss and optimiser from the plugin's own functions. It then trains one copy of the network
per variant, all from the same initial weights and on the same rows in the same order:

- ``fp32``: the plugin's own training step (the baseline), on ``--threads`` threads (default 1, as
  each job stream of the reference runs);
- ``bf16``: forward and loss under ``torch.autocast("cpu", dtype=torch.bfloat16)`` (weights,
  gradients and optimiser state stay fp32);
- ``threads2`` (or ``threads1`` with ``--threads 2``): the baseline on the other thread count;
- ``bs2x`` / ``bs4x``: batch size x2 / x4 with the learning rate scaled linearly;
- ``compile``: the baseline with ``torch.compile`` on the network (first-chunk compile time
  reported apart; a failure is reported in one line);
- ``bf16+bs4x``: both together (only reported, for the recommendation);
- a data-loading variant where the plugin does Python-level per-row or per-graph work: TabNet
  ``tensors`` (pre-stacked tensors indexed by a permutation instead of pytorch-tabnet's
  ``DataLoader`` over a per-row ``Dataset``), DeepDDS ``precollated`` (all drug graphs collated
  once and encoded each step, instead of ``Batch.from_data_list`` over the minibatch's drugs).

The variants run in lockstep: every round trains each variant on the same next chunk of rows
(A B C ... then the next chunk, the order rotating each round), so a slow spell of the shared
machine hits all of them alike. Seconds per epoch = median seconds per chunk (the first chunk,
warm-up and compilation, left out) x rows per epoch / rows per chunk; the ratio is the median over
rounds of (baseline chunk seconds / variant chunk seconds), >1 = faster. After the last round every
variant has seen the same rows (for TabNet and BAITSAO two full epochs; for the 45-million-weight
DeepSynergy and MARSY, whose epoch is minutes long, a few thousand rows) and its validation loss is
computed in fp32 on the inner validation split: the quality check. The data share is the part of
the step spent building the minibatch (indexing, collating, graph batching).

    SYNBENCH_DATA_DIR=../shared/data nice python benchmarks/neural_speed.py --out /tmp/neural_speed.json
    python benchmarks/neural_speed.py --models tabnet,baitsao --quick
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import time
import traceback

import numpy as np

MODELS = ("deepsynergy", "marsy", "deepdds", "tabnet", "baitsao")
BASE = "fp32"
THREADS = 1  # the baseline's threads (--threads); the other of 1 and 2 is a variant


# -- data ---------------------------------------------------------------------------------------------
def job_batches(dataset: str, target: str, featurizers, fold: int, data_dir):
    """(inner_train, inner_valid) Batches of one fold as ``runner.compute`` builds them (strong protocol)."""
    from synbench import runner
    from synbench.data import Batch
    from synbench.features import featurize
    from synbench.splits import fold_ids, make_splits

    data = runner.load_dataset(dataset, data_dir)
    t = data.target(target)
    ids = fold_ids(make_splits(data, "published" if data.fold_column else "random"), fold)
    labels = data.labels(target)
    y = labels.to_numpy(dtype=float)
    if t.task == "regression":  # strong protocol: standardised with the fold's training statistics
        fit = labels.loc[ids["train"].append(ids["valid"])].to_numpy(dtype=float)
        y = (y - fit.mean()) / (fit.std() or 1.0)
    others = [o for o in data.targets.values() if o.name != target]
    aux = {o.name: o.values(data.combinations).to_numpy(dtype=float) for o in others} or None
    aux_tasks = {o.name: o.task for o in others} or None
    features = {f: featurize(data, f) for f in featurizers}
    full = Batch(data.entity_rows(), features, t.task, y, target, aux, aux_tasks)
    return full.subset(ids["train"]), full.subset(ids["valid"])


def autocast(on: bool):
    import torch

    return torch.autocast("cpu", dtype=torch.bfloat16, enabled=on)


def _timed_gather(tensors, idx):
    t0 = time.perf_counter()
    out = [x[idx] for x in tensors]
    return out, time.perf_counter() - t0


# -- one class per model: state per variant, one training step, validation loss -----------------------
class Dense:
    """DeepSynergy and MARSY: pre-stacked tensors, ``synbench.neural.train_epoch``'s step."""

    def state(self, mult: int, compiled: bool):
        import torch

        torch.manual_seed(0)
        net = self.network()
        opt = self.optimiser(net, self.lr * mult)
        return {"net": net, "fwd": torch.compile(net) if compiled else net, "opt": opt}

    def step(self, st, idx, bf16: bool, variant: str) -> float:
        import torch

        (*xs, yb), data_s = _timed_gather((*self.inputs, self.target), torch.from_numpy(idx))
        st["net"].train()
        with autocast(bf16):
            loss = self.loss_fn(st["fwd"](*xs), yb)
        st["opt"].zero_grad()
        loss.backward()
        st["opt"].step()
        float(loss.detach())
        return data_s

    def val_loss(self, st) -> float:
        import torch

        from synbench.neural import predict_tensor

        with torch.no_grad():
            return float(self.loss_fn(predict_tensor(st["net"], self.v_inputs).float(), self.v_target))


class DeepSynergy(Dense):
    name, target_name = "deepsynergy", "loewe"
    featurizers = ("chem:n_bits=256", "expression:n_genes=500")

    def __init__(self, args):
        import torch

        from synbench.plugins.models.deepsynergy import DeepSynergyModel, make_normaliser
        from synbench.runner import resolve_profile

        train, valid = job_batches("d1-oneil", "loewe", self.featurizers, args.fold, args.data_dir)
        m = self.model = DeepSynergyModel(task="regression", **resolve_profile(DeepSynergyModel, "cpu").params)
        X, pos = m._design(train, fitting=True)
        y = m._labels(train)[pos]
        Xv, posv = m._design(valid, fitting=True)
        yv = m._labels(valid)[posv]
        norm = make_normaliser(m.norm).fit(X)
        self.inputs = (torch.from_numpy(norm.transform(X).astype(np.float32)),)
        self.target = torch.from_numpy(y).reshape(-1, 1)
        self.v_inputs = (torch.from_numpy(norm.transform(Xv).astype(np.float32)),)
        self.v_target = torch.from_numpy(yv).reshape(-1, 1)
        self.n_rows, self.batch_size, self.lr = len(y), m.batch_size, m.lr
        self.loss_fn = m._loss()
        self.info = f"input {X.shape[1]}, SGD lr {m.lr} momentum {m.momentum}, MSE, both drug orders"

    def network(self):
        return self.model._network(self.inputs[0].shape[1], "cpu")

    def optimiser(self, net, lr):
        import torch

        return torch.optim.SGD(net.parameters(), lr=lr, momentum=self.model.momentum)


class Marsy(Dense):
    name, target_name = "marsy", "loewe"
    featurizers = ("chem:n_bits=256", "expression:n_genes=500")

    def __init__(self, args):
        import torch
        from sklearn.preprocessing import StandardScaler

        from synbench.plugins.models.marsy import MarsyModel, _masked_mse
        from synbench.runner import resolve_profile

        train, valid = job_batches("d1-oneil", "loewe", self.featurizers, args.fold, args.data_dir)
        m = self.model = MarsyModel(task="regression", **resolve_profile(MarsyModel, "cpu").params)
        T, P, _, Y = m._inputs(train, with_targets=True)
        m.scalers_ = (StandardScaler().fit(T), StandardScaler().fit(P))
        self.inputs = m._tensors(T, P, "cpu")
        self.target = torch.from_numpy(Y)
        Tv, Pv, _, Yv = m._inputs(valid, with_targets=True)
        self.v_inputs, self.v_target = m._tensors(Tv, Pv, "cpu"), torch.from_numpy(Yv)
        self.n_rows, self.batch_size, self.lr = len(Y), m.batch_size, m.lr
        self.loss_fn = _masked_mse
        self.info = f"inputs {T.shape[1]} / {P.shape[1]}, Adamax lr {m.lr}, masked MSE, both drug orders"

    def network(self):
        from synbench.plugins.models.marsy import _marsy_network

        m = self.model
        return _marsy_network(self.inputs[0].shape[1], self.inputs[1].shape[1], self.target.shape[1], m.triple_layers,
                              m.pair_layers, m.decoder_layers, m.encoder_dropout, m.decoder_dropout)

    def optimiser(self, net, lr):
        import torch

        return torch.optim.Adamax(net.parameters(), lr=lr, betas=(0.9, 0.999), eps=1e-7)


class Baitsao:
    name, target_name = "baitsao", "loewe (+ loewe_gt30 auxiliary)"
    featurizers = ("llm-description",)

    def __init__(self, args):
        import torch

        from synbench.data import drug_columns
        from synbench.plugins.models.baitsao import BaitsaoModel
        from synbench.runner import resolve_profile

        train, valid = job_batches("d1-oneil", "loewe", self.featurizers, args.fold, args.data_dir)
        m = self.model = BaitsaoModel(task="regression", **resolve_profile(BaitsaoModel, "cpu").params)
        # BaitsaoModel.fit up to building the network
        m.combine_, m.n_slots_, m.in_dim_ = m.combine, len(drug_columns(train.rows)), None
        m.in_dim_ = m._design(train).shape[1]
        m.tasks_, labels = m._tasks_of(train)
        m._fit_scaling(labels)
        self.kinds = {i: kind for i, (_, kind) in enumerate(m.tasks_)}
        self.X = torch.tensor(m._design(train))
        ys = m._scaled(labels)
        self.Y = {i: torch.tensor(ys[name], dtype=torch.float32) for i, (name, _) in enumerate(m.tasks_)}
        _, vlabels = m._tasks_of(valid)
        vs = m._scaled(vlabels)
        self.Xv = torch.tensor(m._design(valid))
        self.Yv = {i: torch.tensor(vs[name], dtype=torch.float32) for i, (name, _) in enumerate(m.tasks_) if name in vs}
        self.n_rows, self.batch_size, self.lr = len(self.X), m.batch_size, m.lr
        self.info = (f"input {m.in_dim_}, width {m.width}/{m.trunk_width}, tasks {[t for t, _ in m.tasks_]}, "
                     f"Adam lr {m.lr}, uncertainty-weighted loss")

    def state(self, mult: int, compiled: bool):
        import torch

        from synbench.plugins.models.baitsao import _build_net, _forward

        m = self.model
        torch.manual_seed(0)
        net = _build_net(m.in_dim_, m.tasks_, m.width, m.trunk_width, m.dropout, m.k_dim)
        log_vars = torch.zeros(len(m.tasks_), requires_grad=len(m.tasks_) > 1)
        opt = torch.optim.Adam(list(net.parameters()) + ([log_vars] if len(m.tasks_) > 1 else []), lr=self.lr * mult)
        fwd = torch.compile(_forward) if compiled else _forward
        return {"net": net, "log_vars": log_vars, "opt": opt, "fwd": fwd}

    def step(self, st, idx, bf16: bool, variant: str) -> float:
        import torch

        from synbench.plugins.models.baitsao import _task_loss, uncertainty_weighted

        net, kinds = st["net"], self.kinds
        net.train()
        idx = torch.from_numpy(idx)
        data_s = 0.0
        losses = {}
        with autocast(bf16):
            for t in kinds:  # the plugin's loop body
                t0 = time.perf_counter()
                y = self.Y[t][idx]
                ok = torch.isfinite(y)
                xb = self.X[idx][ok]
                data_s += time.perf_counter() - t0
                if ok.sum() < 2:
                    continue
                losses[t] = _task_loss(kinds[t], st["fwd"](net, xb, t).float(), y[ok])
            loss = uncertainty_weighted(losses, st["log_vars"], kinds) if len(kinds) > 1 else sum(losses.values())
        st["opt"].zero_grad()
        loss.backward()
        st["opt"].step()
        return data_s

    def val_loss(self, st) -> float:
        return max(self.model._valid_losses(st["net"], self.Xv, self.Yv, self.kinds).values())


class TabNet:
    name, target_name = "tabnet", "loewe"
    featurizers = ("llm-description",)

    def __init__(self, args):
        import torch

        from synbench.plugins.models.tabnet import TabNetModel
        from synbench.runner import resolve_profile

        train, valid = job_batches("d1-oneil", "loewe", self.featurizers, args.fold, args.data_dir)
        m = self.model = TabNetModel(task="regression", **resolve_profile(TabNetModel, "cpu").params)
        X, y = m._design(train), m._labels(train)
        self.y_mean, self.y_scale = float(y.mean()), float(y.std()) or 1.0
        self.X = X.astype(np.float32)
        self.y = ((y - self.y_mean) / self.y_scale).reshape(-1, 1)
        self.Xt, self.yt = torch.from_numpy(self.X), torch.from_numpy(self.y).float()
        self.Xv = torch.from_numpy(m._design(valid).astype(np.float32))
        self.yv = torch.from_numpy(((m._labels(valid) - self.y_mean) / self.y_scale).reshape(-1, 1)).float()
        # drop_last=True: the plugin's epoch is whole batches only
        self.batch_size, self.lr = int(m.batch_size), float(m.lr)
        self.n_rows = len(y) // self.batch_size * self.batch_size
        self.info = (f"input {X.shape[1]}, n_d=n_a={m.n_d}, n_steps {m.n_steps} (library defaults; the cpu profile "
                     f"searches them), Adam lr {m.lr}, batch {m.batch_size} / virtual {m.virtual_batch_size}")

    def state(self, mult: int, compiled: bool):
        import contextlib
        import io
        import warnings

        import torch
        from pytorch_tabnet.tab_model import TabNetRegressor
        from torch.utils.data import DataLoader

        from pytorch_tabnet.utils import TorchDataset

        m = self.model
        est = TabNetRegressor(n_d=int(m.n_d), n_a=int(m.n_a), n_steps=int(m.n_steps), gamma=float(m.gamma),
                              lambda_sparse=float(m.lambda_sparse), optimizer_fn=torch.optim.Adam,
                              optimizer_params={"lr": self.lr * mult}, mask_type=m.mask_type, seed=int(m.seed),
                              verbose=0, device_name="cpu")
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")  # max_epochs=0: network, optimiser and loss set up, nothing trained
            est.fit(self.X, self.y, max_epochs=0, patience=0, batch_size=self.batch_size * mult,
                    virtual_batch_size=int(m.virtual_batch_size), drop_last=True, compute_importance=False)
        net = est.network
        return {"est": est, "net": net, "fwd": torch.compile(net) if compiled else net, "opt": est._optimizer,
                "dataset": TorchDataset(self.X, self.y), "DataLoader": DataLoader}

    def step(self, st, idx, bf16: bool, variant: str) -> float:
        import torch
        from torch.nn.utils import clip_grad_norm_

        est, net = st["est"], st["net"]
        t0 = time.perf_counter()
        if variant in ("tensors", "tensors+bf16"):  # pre-stacked tensors indexed by the permutation
            ti = torch.from_numpy(idx)
            X, y = self.Xt[ti], self.yt[ti]
        else:  # pytorch-tabnet's loader: Dataset.__getitem__ per row, then default_collate
            loader = st["DataLoader"](st["dataset"], batch_size=len(idx), sampler=idx.tolist())
            X, y = next(iter(loader))
            X, y = X.float(), y.float()
        data_s = time.perf_counter() - t0
        net.train()
        for p in net.parameters():  # AbstractModel._train_batch
            p.grad = None
        with autocast(bf16):
            output, m_loss = st["fwd"](X)
            loss = est.compute_loss(output.float(), y) - est.lambda_sparse * m_loss.float()
        loss.backward()
        if est.clip_value:
            clip_grad_norm_(net.parameters(), est.clip_value)
        st["opt"].step()
        loss.cpu().detach().numpy().item()
        return data_s

    def val_loss(self, st) -> float:
        import torch

        net = st["net"]
        net.eval()
        with torch.no_grad():
            out = torch.cat([net(self.Xv[s:s + 1024])[0] for s in range(0, len(self.Xv), 1024)])
        return float(torch.mean((out - self.yv) ** 2))  # validation MSE in target variances (its early-stopping metric)


class DeepDDS:
    name, target_name = "deepdds", "loewe_gt30"
    featurizers = ("molecular-graph", "expression:normalise=none")

    def __init__(self, args):
        import torch
        from torch_geometric.data import Batch as GraphBatch

        from synbench.plugins.models.deepdds import DeepDDSModel, _Inputs
        from synbench.runner import resolve_profile

        train, valid = job_batches("d1-oneil", "loewe_gt30", self.featurizers, args.fold, args.data_dir)
        m = self.model = DeepDDSModel(task="classification", **resolve_profile(DeepDDSModel, "cpu").params)
        self.inputs, self.v_inputs = _Inputs(train), _Inputs(valid)
        self.y = torch.as_tensor(np.asarray(train.y, dtype=float), dtype=torch.long)
        self.yv = np.asarray(valid.y, dtype=float)
        self.cell_matrix = torch.from_numpy(self.inputs.cell_matrix)
        self.all_graphs = GraphBatch.from_data_list(self.inputs.graphs)
        self.n_rows, self.batch_size, self.lr = self.inputs.n_rows, int(m.batch_size), float(m.lr)
        self.slot = np.empty(self.n_rows, dtype=np.int64)
        self.info = (f"{len(self.inputs.graphs)} drug graphs, {self.inputs.cell_matrix.shape[1]} genes, "
                     f"encode_distinct={m.encode_distinct}, Adam lr {m.lr}, cross-entropy")

    def state(self, mult: int, compiled: bool):
        import torch

        from synbench.plugins.models.deepdds import _network

        m = self.model
        torch.manual_seed(0)
        net = _network(self.inputs.graphs[0].num_node_features, self.inputs.cell_matrix.shape[1], int(m.hidden),
                       int(m.heads), float(m.dropout), int(m.width))
        opt = torch.optim.Adam(net.parameters(), lr=self.lr * mult)
        if compiled:  # the dense parts; the GAT encoder sees a new graph-batch shape every step
            net.forward = torch.compile(net.forward, dynamic=True)
            net.encode_cells = torch.compile(net.encode_cells, dynamic=True)
        return {"net": net, "opt": opt}

    def step(self, st, rows, bf16: bool, variant: str) -> float:
        import torch
        import torch.nn.functional as F
        from torch_geometric.data import Batch as GraphBatch

        net, inputs, n, slot = st["net"], self.inputs, self.n_rows, self.slot
        net.train()
        t0 = time.perf_counter()  # DeepDDSModel.fit's loop body, with encode_distinct (the cpu profile)
        member = np.zeros(n, dtype=bool)
        member[rows] = True
        slot[rows] = np.arange(len(rows))
        keep = member[inputs.pair_rows]
        pair_rows = torch.from_numpy(slot[inputs.pair_rows[keep]])
        n_pairs = int(keep.sum())
        occurrences = np.concatenate([inputs.left[keep], inputs.right[keep]])
        row_cells = inputs.cell_of_row[rows]
        precollated = variant.startswith("precollated")
        if precollated:  # every drug graph collated once up front; every drug and cell line encoded each step
            graphs, drug_at = self.all_graphs, torch.from_numpy(occurrences)
            cell_ids, cell_at = None, torch.from_numpy(row_cells)
        else:
            drug_ids, drug_at = np.unique(occurrences, return_inverse=True)
            cell_ids, cell_at = np.unique(row_cells, return_inverse=True)
            graphs = GraphBatch.from_data_list([inputs.graphs[i] for i in drug_ids])
            drug_at, cell_at, cell_ids = torch.from_numpy(drug_at), torch.from_numpy(cell_at), torch.from_numpy(cell_ids)
        rows_t = torch.from_numpy(rows)
        data_s = time.perf_counter() - t0
        with autocast(bf16):
            drugs = net.encode_drugs(graphs)[drug_at]
            left, right = drugs[:n_pairs], drugs[n_pairs:]
            cm = self.cell_matrix if cell_ids is None else self.cell_matrix[cell_ids]
            cells = net.encode_cells(cm)[cell_at]
            loss = F.cross_entropy(net(left, right, cells, pair_rows, len(rows)).float(), self.y[rows_t])
        st["opt"].zero_grad()
        loss.backward()
        st["opt"].step()
        loss.item()
        return data_s

    def val_loss(self, st) -> float:
        import torch
        import torch.nn.functional as F
        from sklearn.metrics import roc_auc_score

        m = self.model
        m.network_, m.device_ = st["net"], "cpu"
        logits = m._logits(self.v_inputs).float()
        st["auc"] = float(roc_auc_score(self.yv, torch.softmax(logits, 1)[:, 1].numpy()))
        return float(F.cross_entropy(logits, torch.as_tensor(self.yv, dtype=torch.long)))


BUILDERS = {"deepsynergy": DeepSynergy, "marsy": Marsy, "deepdds": DeepDDS, "tabnet": TabNet, "baitsao": Baitsao}

# rows per chunk and rounds (the last rows seen by every variant = chunk x rounds), default / --quick.
# DeepSynergy and MARSY: ~0.3 s per 64-row step here, an epoch of ~33,000 rows is minutes; the others
# train their two epochs within the budget
PLAN = {
    "deepsynergy": ((512, 4), (256, 3)),
    "marsy": ((512, 4), (256, 3)),
    "deepdds": ((512, 5), (512, 3)),
    "tabnet": ((2048, 6), (1024, 3)),
    "baitsao": ((2048, 6), (1024, 3)),
}


def variants_for(name: str, compile_: bool) -> dict:
    """variant -> (batch multiplier, bf16, threads, compiled)"""
    t, other = THREADS, 3 - THREADS
    v = {"fp32": (1, False, t, False), "bf16": (1, True, t, False), f"threads{other}": (1, False, other, False),
         "bs2x": (2, False, t, False), "bs4x": (4, False, t, False), "bf16+bs4x": (4, True, t, False)}
    if name == "tabnet":
        v["tensors"] = (1, False, t, False)
        v["tensors+bf16"] = (1, True, t, False)
    if name == "deepdds":
        v["precollated"] = (1, False, t, False)
        v["precollated+bf16"] = (1, True, t, False)
    if compile_:
        v["compile"] = (1, False, t, True)
    return v


def measure(spec, chunk_rows: int, rounds: int, compile_: bool, log) -> dict:
    import torch

    variants = variants_for(spec.name, compile_)
    rng = np.random.default_rng(0)
    n_needed = chunk_rows * rounds
    order = np.concatenate([rng.permutation(spec.n_rows) for _ in range(math.ceil(n_needed / spec.n_rows))])[:n_needed]
    states, errors, results = {}, {}, {}
    for v, (mult, _, _, compiled) in variants.items():
        try:
            states[v] = spec.state(mult, compiled)
        except Exception as exc:  # noqa: BLE001 - reported, the other variants go on
            errors[v] = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}"
    chunks = {v: [] for v in variants}
    data = {v: [] for v in variants}
    names = list(variants)
    for r in range(rounds):
        rows = order[r * chunk_rows:(r + 1) * chunk_rows]
        for v in names[r % len(names):] + names[:r % len(names)]:  # rotate the order each round
            if v not in states:
                continue
            mult, bf16, threads, _ = variants[v]
            bs = spec.batch_size * mult
            torch.set_num_threads(threads)
            try:
                t0 = time.perf_counter()
                d = 0.0
                for s in range(0, len(rows) - bs + 1, bs):
                    d += spec.step(states[v], rows[s:s + bs], bf16, v)
                chunks[v].append(time.perf_counter() - t0)
                data[v].append(d)
            except Exception as exc:  # noqa: BLE001
                first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
                errors[v] = f"{type(exc).__name__}: {first[:300]}"
                if os.environ.get("NEURAL_SPEED_DEBUG"):
                    traceback.print_exc()
                del states[v]
            finally:
                torch.set_num_threads(THREADS)
        log(f"  {spec.name} round {r + 1}/{rounds}: " + ", ".join(f"{v} {chunks[v][-1]:.1f}s" for v in names if v in states))
    base = chunks.get(BASE, [])
    for v in variants:
        if v in errors or not chunks[v]:
            results[v] = {"error": errors.get(v, "no chunk ran")}
            continue
        steady = chunks[v][1:] if len(chunks[v]) > 2 else chunks[v]
        ratios = [b / c for b, c in zip(base[1:], chunks[v][1:])] if len(base) > 2 else [base[0] / chunks[v][0]]
        sec = statistics.median(steady)
        rec = {"s_per_epoch": sec / chunk_rows * spec.n_rows, "speedup": statistics.median(ratios),
               "data_share": sum(data[v][1:] or data[v]) / sum(steady if len(chunks[v]) > 2 else chunks[v]),
               "chunk_seconds": [round(c, 3) for c in chunks[v]],
               "rows_seen": chunk_rows * len(chunks[v])}
        if variants[v][3]:  # compile: the first chunk minus a steady one
            rec["compile_s"] = chunks[v][0] - sec
        try:
            rec["val_loss"] = spec.val_loss(states[v])
            if "auc" in states[v]:
                rec["val_auc"] = states[v]["auc"]
        except Exception as exc:  # noqa: BLE001
            rec["val_error"] = f"{type(exc).__name__}: {exc}"
        results[v] = rec
    del states
    return results


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-dir", default=None, help="default: SYNBENCH_DATA_DIR")
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--fold", type=int, default=0)
    ap.add_argument("--quick", action="store_true", help="fewer rounds, smaller chunks, no torch.compile")
    ap.add_argument("--no-compile", action="store_true")
    ap.add_argument("--rounds", type=int, default=None, help="override the rounds of every model")
    ap.add_argument("--chunk-rows", type=int, default=None, help="override the rows per chunk of every model")
    ap.add_argument("--threads", type=int, default=1, choices=(1, 2),
                    help="threads of the baseline and the other variants (the reference runs use 1 per job stream); "
                         "the other count is the threads variant")
    ap.add_argument("--out", default=None, help="write the results as JSON here (rewritten after each model)")
    args = ap.parse_args()

    import torch

    global THREADS
    THREADS = args.threads
    torch.set_num_threads(THREADS)
    started = time.perf_counter()

    def log(msg):
        print(f"[{time.perf_counter() - started:6.0f}s] {msg}", flush=True)

    out = {"machine": {"cpu_count": os.cpu_count(), "cpu_capability": torch.backends.cpu.get_cpu_capability(),
                       "torch": torch.__version__, "python": platform.python_version(),
                       "load_average": os.getloadavg()},
           "args": vars(args), "models": {}}
    for name in [m.strip() for m in args.models.split(",") if m.strip()]:
        chunk_rows, rounds = PLAN[name][1 if args.quick else 0]
        chunk_rows, rounds = args.chunk_rows or chunk_rows, args.rounds or rounds
        t0 = time.perf_counter()
        try:
            spec = BUILDERS[name](args)
        except Exception as exc:  # noqa: BLE001
            out["models"][name] = {"error": f"{type(exc).__name__}: {exc}"}
            log(f"{name}: could not build inputs: {exc}")
            continue
        log(f"{name}: inputs built in {time.perf_counter() - t0:.0f}s; {spec.n_rows:,} training rows per epoch, "
            f"batch {spec.batch_size}; {spec.info}")
        res = measure(spec, chunk_rows, rounds, compile_=not (args.quick or args.no_compile), log=log)
        out["models"][name] = {"epoch_rows": spec.n_rows, "batch_size": spec.batch_size, "lr": spec.lr,
                               "target": spec.target_name, "info": spec.info, "chunk_rows": chunk_rows,
                               "rounds": rounds, "variants": res}
        del spec
        if args.out:
            with open(args.out, "w") as fh:
                json.dump(out, fh, indent=1)
    out["seconds"] = round(time.perf_counter() - started, 1)

    print("\n| model | variant | s / epoch | speed-up vs fp32 | val loss (fp32 val loss) | data share | note |")
    print("|---|---|---|---|---|---|---|")
    for name, m in out["models"].items():
        if "error" in m:
            print(f"| {name} | - | - | - | - | - | {m['error']} |")
            continue
        base_loss = m["variants"].get(BASE, {}).get("val_loss")
        for v, r in m["variants"].items():
            if "error" in r:
                print(f"| {name} | {v} | - | - | - | - | failed: {r['error'][:160]} |")
                continue
            note = [f"{r['rows_seen']:,} rows seen"]
            if "compile_s" in r:
                note.append(f"compile {r['compile_s']:.0f} s")
            if "val_auc" in r:
                note.append(f"val AUC {r['val_auc']:.3f}")
            vl = f"{r['val_loss']:.4f}" if "val_loss" in r else r.get("val_error", "-")
            if base_loss is not None and "val_loss" in r and v != BASE:
                vl += f" ({base_loss:.4f})"
            print(f"| {name} | {v} | {r['s_per_epoch']:.1f} | x{r['speedup']:.2f} | {vl} | {100 * r['data_share']:.0f} % | "
                  f"{'; '.join(note)} |")
    print(f"\n{out['seconds']:.0f} s in all; load average at start {out['machine']['load_average']}")
    if args.out:
        with open(args.out, "w") as fh:
            json.dump(out, fh, indent=1)
        print(f"written: {args.out}")


if __name__ == "__main__":
    main()
