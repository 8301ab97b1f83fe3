"""BERT's training strategies (``-p strategy=frozen|lora|full``): each runs end to end through the
runner on the mock dataset, trains what it says it trains, records its cost, and is its own row on
the leaderboard."""

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("peft")

from synbench import runner  # noqa: E402
from synbench.errors import ConfigError  # noqa: E402
from synbench.leaderboard import build, method_of  # noqa: E402
from synbench.plugins.models.bert import LORA_TARGETS, STRATEGIES, BertBaseline, _load_encoder  # noqa: E402
from synbench.store import Store  # noqa: E402
from synbench.testing import mock_batches  # noqa: E402

SMOKE = BertBaseline.profiles["smoke"].params


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """One fold of each strategy on the mock dataset, through the runner, in the smoke profile."""
    store = Store(tmp_path_factory.mktemp("bert") / "s")
    for strategy in STRATEGIES:
        jobs = runner.plan(["mock"], ["bert"], targets=["score"], profile="smoke", folds=[0], params={"strategy": strategy})
        assert runner.run(jobs, store)["done"] == 1
    return store


@pytest.fixture(scope="module")
def fold():
    return mock_batches(BertBaseline, "regression")


def _fit(fold, **params):
    train, valid, test, _ = fold
    model = BertBaseline(**{**SMOKE, **params}).fit(train, valid)
    assert np.isfinite(model.predict(test)).all()
    return model


def _few(fold, n_train=48, n_other=16):
    """The fold's first rows: the frozen-encoding tests encode every row's texts, bf16 on an AVX2
    CPU about four times slower than fp32, and their assertions do not depend on the row count."""
    train, valid, test, y_test = fold
    few = [batch.subset(batch.rows.index[:n]) for batch, n in ((train, n_train), (valid, n_other), (test, n_other))]
    return (*few, y_test[:n_other])


def _encoder_changes(model) -> set[str]:
    """Names of the encoder tensors that differ from the pre-trained weights."""
    base = _load_encoder()[1].state_dict()
    tuned = model.net_.encoder.state_dict()
    assert set(tuned) == set(base)
    return {k for k in base if not np.array_equal(base[k].numpy(), tuned[k].numpy())}


def test_each_strategy_runs_and_records_its_cost(store):
    records = {r["job"]["params"]["strategy"]: r for r in store.records()}
    assert set(records) == set(STRATEGIES)
    logs = {s: r["training"] for s, r in records.items()}
    for strategy, log in logs.items():
        assert log["strategy"] == strategy and records[strategy]["params"]["strategy"] == strategy
        assert 0 < log["trainable_parameters"] <= log["total_parameters"]
        assert log["truncated_share"] == log["text"]["train"]["fraction_truncated"] > 0  # 40 tokens cut every mock row
        assert log["stopped"] in ("cap", "early stopping")
        assert records[strategy]["resources"]["peak_memory_mb"] > 0
    assert logs["frozen"]["trainable_parameters"] < logs["lora"]["trainable_parameters"] < logs["full"]["trainable_parameters"]
    assert logs["lora"]["lora"]["target_modules"] == list(LORA_TARGETS) and "encode_seconds" in logs["frozen"]


def test_strategies_are_separate_rows_on_the_board(store):
    records = store.records()
    methods = {method_of(r["job"]) for r in records}
    assert len(methods) == len(STRATEGIES)
    board = build(store.metrics_frame(), records=records)
    labels = set(board.summary["profile"])
    assert labels == {f"smoke strategy={s}" for s in STRATEGIES}


def test_frozen_leaves_the_encoder_unchanged(fold):
    model = _fit(fold, strategy="frozen")
    assert _encoder_changes(model) == set()
    assert model.training_log_["trainable_parameters"] == model.net_.head.weight.numel() + 1


def _frozen_cache(tmp_path, monkeypatch, native_bf16: bool):
    """A fresh embedding cache under tmp_path and a CPU with (or without) native bf16; returns a
    function counting the frozen encoder's cached vectors."""
    import synbench.plugins.models.bert as bert

    monkeypatch.setenv("SYNBENCH_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(bert, "native_bf16", lambda device: native_bf16)
    return lambda: len(list((tmp_path / "embeddings" / "bert-frozen").rglob("*.npy")))


def test_frozen_encoding_in_bf16_is_close_to_fp32_and_cached_apart(fold, tmp_path, monkeypatch):
    """The cpu profile encodes under bf16 autocast (measured in benchmarks/bert_frozen_precision.py);
    its vectors must stay close to fp32's and never be served for an fp32 run, or the reverse."""
    fold = _few(fold)
    import torch

    from synbench.plugins.models.bert import row_entities

    cached = _frozen_cache(tmp_path, monkeypatch, native_bf16=True)  # a CPU with bf16 units, whatever runs the test
    fp32 = _fit(fold, strategy="frozen")
    n_fp32 = cached()
    bf16 = _fit(fold, strategy="frozen", encode_bf16=True)
    assert n_fp32 > 0 and cached() == 2 * n_fp32  # nothing reused across precisions
    assert fp32.training_log_["encode_precision"] == "fp32"
    assert bf16.training_log_["encode_precision"] == "bf16 autocast"
    entities, cpu = row_entities(fold[2]), torch.device("cpu")
    a = fp32._pooled(fp32.net_, fp32.builder_, entities, cpu)
    b = bf16._pooled(bf16.net_, bf16.builder_, entities, cpu)
    assert cached() == 2 * n_fp32  # the test rows were encoded (and cached) by predict
    cosine = torch.nn.functional.cosine_similarity(a, b)
    assert not torch.equal(a, b) and cosine.min() > 0.999
    assert BertBaseline.profiles["cpu"].params["encode_bf16"] is True


def test_frozen_encoding_stays_fp32_where_bf16_is_slower(fold, tmp_path, monkeypatch):
    """On a CPU without native bf16 matrix products (AVX2 alone) bf16 autocast is several times
    slower than fp32: encode_bf16 then encodes in fp32, shares the fp32 cache and says why."""
    fold = _few(fold)
    cached = _frozen_cache(tmp_path, monkeypatch, native_bf16=False)
    fp32 = _fit(fold, strategy="frozen")
    n_fp32 = cached()
    asked = _fit(fold, strategy="frozen", encode_bf16=True)
    assert n_fp32 > 0 and cached() == n_fp32  # the fp32 vectors were reused: nothing encoded in bf16
    assert asked.training_log_["encode_precision"] == "fp32"
    assert "no native bf16" in asked.training_log_["encode_precision_note"]
    assert "encode_precision_note" not in fp32.training_log_
    assert asked.predict(fold[2]) == pytest.approx(fp32.predict(fold[2]))


def test_full_changes_the_encoder(fold):
    model = _fit(fold, strategy="full")
    changed = _encoder_changes(model)
    assert any(".attention.self.query." in k for k in changed) and any(".intermediate.dense." in k for k in changed)
    assert any(k.startswith("embeddings.") for k in changed)


def test_lora_trains_peft_adapters_and_the_head_only(fold, monkeypatch):
    import peft

    wrapped = {}
    original = peft.get_peft_model

    def spy(model, config, *args, **kwargs):
        out = original(model, config, *args, **kwargs)
        wrapped["trainable"] = {n: p.numel() for n, p in out.named_parameters() if p.requires_grad}
        wrapped["config"] = config
        return out

    monkeypatch.setattr(peft, "get_peft_model", spy)
    model = _fit(fold, strategy="lora")
    assert wrapped, "LoRA goes through peft.get_peft_model"
    assert wrapped["trainable"] and all(".lora_" in n for n in wrapped["trainable"])
    assert set(wrapped["config"].target_modules) == set(LORA_TARGETS)
    head = model.net_.head.weight.numel() + 1
    assert model.training_log_["trainable_parameters"] == sum(wrapped["trainable"].values()) + head
    # the adapters are merged after training: only the adapted projections moved
    changed = _encoder_changes(model)
    assert changed and all(any(f".attention.self.{t}.weight" in k for t in LORA_TARGETS) for k in changed)


def test_unknown_strategy_is_a_one_line_config_error(fold):
    with pytest.raises(ConfigError, match="unknown strategy 'lroa'; did you mean 'lora'") as err:
        BertBaseline(**{**SMOKE, "strategy": "lroa"}).fit(*fold[:2])
    assert "\n" not in str(err.value)
    with pytest.raises(ConfigError, match="freeze_layers applies to strategy=full only"):
        BertBaseline(**{**SMOKE, "strategy": "lora", "freeze_layers": 2}).fit(*fold[:2])


def test_the_report_gives_each_strategys_trainable_parameters_beside_its_cost(store, tmp_path):
    from synbench import report

    text = report.build([store.root]).to_markdown("figures")
    runtime = text.split("## Runtime and memory", 1)[1].split("\n## ", 1)[0]
    assert "| trainable parameters |" in runtime
    logs = {r["job"]["params"]["strategy"]: r["training"] for r in store.records()}
    for strategy, log in logs.items():
        share = 100 * log["trainable_parameters"] / log["total_parameters"]
        line = next(row for row in runtime.splitlines() if f"strategy={strategy}" in row)
        assert line.rstrip(" |").endswith(f"{log['trainable_parameters']:,} of {log['total_parameters'] / 1e6:.1f} M ({share:.2g}%)")
