"""BAITSAO: multi-task loss, pre-training checkpoints, fine-tuning, zero-shot, MC dropout, queries.

Everything runs on the mock dataset in the smoke profile. The checkpoint fixture is pre-trained
on the mock rows outside published fold 0, so fold 0's test rows are new to it.
"""

import json

import numpy as np
import pytest

from synbench.data import Batch
from synbench.errors import ConfigError, DataError
from synbench.features import featurize
from synbench.plugins.models.baitsao import BaitsaoFineTune, BaitsaoModel, BaitsaoZeroShot, uncertainty_weighted
from synbench.pretrain import combination_set_keys, load_checkpoint, pretrain
from synbench.splits import fold_ids, make_splits
from synbench.testing import mock_data

SMOKE = BaitsaoModel.profiles["smoke"].params
FEATURES = BaitsaoModel.featurizers


@pytest.fixture(scope="module")
def fold0():
    """Inner train / valid (with the other target as ``aux``, as the runner gives) and test of fold 0."""
    data = mock_data()
    ids = fold_ids(make_splits(data, "published", seed=0), 0)
    features = {spec: featurize(data, spec) for spec in FEATURES}
    aux = {"synergistic": data.labels("synergistic").to_numpy(dtype=float)}
    full = Batch(data.entity_rows(), features, "regression", data.labels("score").to_numpy(dtype=float), "score", aux,
                 {"synergistic": "classification"})
    test = full.subset(ids["test"])
    y_test = test.y
    test.y, test.aux = None, None
    return full.subset(ids["train"]), full.subset(ids["valid"]), test, y_test


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    path = tmp_path_factory.mktemp("ckpt") / "mock-without-fold0.pt"
    summary = pretrain(["mock"], path, profile="smoke", exclude=["mock:0"])
    assert summary["dropped"] > 0 and set(summary["tasks"]) == {"score", "synergistic"}
    return path


@pytest.fixture(scope="module")
def leaky_checkpoint(tmp_path_factory):
    path = tmp_path_factory.mktemp("ckpt") / "mock-all.pt"
    pretrain(["mock"], path, profile="smoke")
    return path


def test_uncertainty_weighting_formula_is_stable():
    import torch

    s = torch.tensor([0.5, -1.0], requires_grad=True)
    losses = {0: torch.tensor(2.0), 1: torch.tensor(0.7)}
    total = uncertainty_weighted(losses, s, {0: "regression", 1: "classification"})
    # 1/(2 sigma^2) L + log sigma (regression), 1/sigma^2 L + log sigma (classification), s = log sigma^2
    expected = 0.5 * np.exp(-0.5) * 2.0 + 0.25 + np.exp(1.0) * 0.7 - 0.5
    assert float(total.detach()) == pytest.approx(expected, rel=1e-6)
    huge = torch.tensor([60.0, -60.0], requires_grad=True)
    uncertainty_weighted(losses, huge, {0: "regression", 1: "classification"}).backward()
    assert torch.isfinite(huge.grad).all()


def test_multitask_log_variances_move_and_single_task_ablation(fold0):
    train, valid, test, y_test = fold0
    model = BaitsaoModel(seed=0, **SMOKE).fit(train, valid)
    log = model.training_log_
    assert log["tasks"] == {"score": "regression", "synergistic": "classification"}
    assert all(abs(v) > 1e-3 for v in log["log_variances"].values()), log["log_variances"]
    assert log["best_valid_criterion"] == pytest.approx(max(log["valid_losses"].values()))
    assert 1 <= log["best_epoch"] <= log["epochs"] <= SMOKE["max_epochs"]
    # each task normalises the shared trunk with its own BatchNorm statistics
    norms = model.net_.trunk.norm1
    assert len(norms) == 2 and not np.allclose(norms[0].running_mean.numpy(), norms[1].running_mean.numpy())
    assert np.corrcoef(model.predict(test), y_test)[0, 1] > 0.5  # it learns the mock signal
    single = BaitsaoModel(seed=0, task_mode="single", **SMOKE).fit(train, valid)
    assert single.training_log_["tasks"] == {"score": "regression"} and single.training_log_["log_variances"] is None


def test_training_without_validation_rows_shows_each_epoch(fold0):
    from synbench.progress import listening

    train, _, _, _ = fold0
    messages = []
    with listening(messages.append):
        model = BaitsaoModel(seed=0, **{**SMOKE, "max_epochs": 3}).fit(train, None)
    assert model.training_log_["epochs"] == 3
    assert messages == [f"epoch {e}/3 (no validation rows: trains to the cap)" for e in (1, 2, 3)]


def test_bf16_autocast_trains_the_same_network_to_a_similar_fit(fold0, monkeypatch):
    import synbench.neural

    monkeypatch.setattr(synbench.neural, "native_bf16", lambda device: True)  # a CPU with bf16 units
    train, valid, test, y_test = fold0
    fp32 = BaitsaoModel(seed=0, **SMOKE).fit(train, valid)
    bf16 = BaitsaoModel(seed=0, bf16=True, **SMOKE).fit(train, valid)
    assert bf16.training_log_["precision"].startswith("bf16") and fp32.training_log_["precision"] == "fp32"
    # weights stay fp32; the low-precision forward passes change the path a little, not the fit
    assert all(p.dtype.is_floating_point and p.dtype.itemsize == 4 for p in bf16.net_.parameters())
    assert not np.allclose(bf16.predict(test), fp32.predict(test))
    assert np.corrcoef(bf16.predict(test), y_test)[0, 1] > 0.5
    assert BaitsaoModel.profiles["cpu"].params["bf16"] is True


@pytest.mark.parametrize("rule", ["sum", "stack"])
def test_combination_rules_and_triples(fold0, rule):
    train, valid, test, _ = fold0
    assert (test.rows["n_drugs"] == 3).any() and (train.rows["n_drugs"] == 3).any()
    pred = BaitsaoModel(seed=0, combine=rule, **SMOKE).fit(train, valid).predict(test)
    assert pred.shape == (len(test),) and np.isfinite(pred).all()


def test_mc_dropout_spread_and_deterministic_point_predictions(fold0):
    train, valid, test, _ = fold0
    model = BaitsaoModel(seed=0, **SMOKE).fit(train, valid)
    extra = model.extra_outputs(test)
    assert extra["y_std"].shape == (len(test),) and (extra["y_std"] > 0).all()
    np.testing.assert_array_equal(model.predict(test), model.predict(test))  # dropout off: no randomness
    np.testing.assert_array_equal(model.extra_outputs(test)["y_std"], extra["y_std"])  # seeded passes
    assert BaitsaoModel(seed=0, **{**SMOKE, "mc_passes": 0}).fit(train, valid).extra_outputs(test) == {}


def test_checkpoint_records_its_training_data(checkpoint):
    ckpt = load_checkpoint(checkpoint)
    assert ckpt["datasets"] == ["mock"] and ckpt["featurizers"] == list(FEATURES)
    assert len(ckpt["training_checksum"]) == 64 and "mock" in ckpt["data_checksums"]
    assert ckpt["encoders"]["llm-description"].startswith("encoder=minilm,model=sentence-transformers/all-MiniLM-L6-v2")
    assert ckpt["k_seen"] == [2, 3]
    data = mock_data()
    fold0_keys = set(combination_set_keys(data.combinations[data.combinations["fold"] == 0]))
    assert fold0_keys and not fold0_keys & set(ckpt["seen"])
    assert len(ckpt["seen"]) == len(data.combinations) - len(fold0_keys)


def test_fine_tuning_keeps_the_trunk_frozen(fold0, checkpoint):
    import torch

    train, valid, test, _ = fold0
    ckpt = load_checkpoint(checkpoint)
    before = {k[len("trunk."):]: v for k, v in ckpt["model_state"]["state_dict"].items() if k.startswith("trunk.")}
    assert any("running_mean" in k for k in before)  # BatchNorm statistics are part of the check
    model = BaitsaoFineTune(seed=0, checkpoint=str(checkpoint), lr=1e-2, batch_size=64, max_epochs=5, patience=5, mc_passes=4)
    model.fit(train, valid)
    after = model.net_.trunk.state_dict()
    for key, value in before.items():
        assert torch.equal(after[key], value), f"trunk {key} changed"
    head_before = ckpt["model_state"]["state_dict"]["heads.0.weight"]
    assert not torch.equal(model.net_.heads[0].weight.detach(), head_before)  # the heads did train
    assert model.training_log_["trainable_parameters"] < model.training_log_["parameters"]
    assert model.training_log_["initialised_from"] == {"score": "score", "synergistic": "synergistic"}
    assert np.isfinite(model.predict(test)).all() and (model.extra_outputs(test)["y_std"] > 0).all()


def test_zero_shot_applies_the_checkpoint_unchanged(fold0, checkpoint):
    import torch

    train, valid, test, _ = fold0
    ckpt = load_checkpoint(checkpoint)
    model = BaitsaoZeroShot(seed=0, checkpoint=str(checkpoint), mc_passes=4).fit(train)
    for key, value in ckpt["model_state"]["state_dict"].items():
        assert torch.equal(model.net_.state_dict()[key], value), key
    # the rows given to fit do not matter: nothing is learned from the evaluation dataset
    other = BaitsaoZeroShot(seed=0, checkpoint=str(checkpoint), mc_passes=4).fit(valid)
    np.testing.assert_array_equal(model.predict(test), other.predict(test))
    assert model.training_log_["head"] == "score" and model.training_log_["epochs"] == 0
    other_features = Batch(train.rows, {"llm-description:source=chebi": train.features["llm-description"]}, "regression", train.y)
    with pytest.raises(ConfigError, match="was pre-trained on features llm-description, not llm-description:source=chebi"):
        BaitsaoZeroShot(seed=0, checkpoint=str(checkpoint)).fit(other_features)
    with pytest.raises(ConfigError, match="does not exist"):
        BaitsaoZeroShot(seed=0, checkpoint=str(checkpoint) + ".missing").fit(train)
    cls_test = Batch(test.rows, test.features, "classification", target="synergistic")
    probs = BaitsaoZeroShot(task="classification", seed=0, checkpoint=str(checkpoint)).fit(train).predict(cls_test)
    assert ((probs >= 0) & (probs <= 1)).all()


@pytest.mark.parametrize("model_cls", [BaitsaoZeroShot, BaitsaoFineTune])
def test_checkpoint_that_saw_test_combinations_is_refused(fold0, leaky_checkpoint, model_cls):
    train, valid, test, _ = fold0
    params = {"max_epochs": 1} if model_cls is BaitsaoFineTune else {}
    model = model_cls(seed=0, checkpoint=str(leaky_checkpoint), **params).fit(train, valid)
    with pytest.raises(DataError, match=r"was pre-trained on \d+ combination\(s\) of the rows to score") as err:
        model.predict(test)
    assert "\n" not in str(err.value)
    with pytest.raises(DataError):
        model.extra_outputs(test)


def test_runner_gives_other_targets_for_training_rows_only(tmp_path, monkeypatch):
    from synbench import runner
    from synbench.store import Store

    seen = []
    original = BaitsaoModel.predict

    def spy(self, batch):
        seen.append((batch.y is None, batch.aux))
        return original(self, batch)

    monkeypatch.setattr(BaitsaoModel, "predict", spy)
    store = Store(tmp_path / "store")
    jobs = runner.plan(["mock"], ["baitsao"], targets=["synergistic"], profile="smoke", folds=[0])
    runner.run(jobs, store, runner.RunSettings(isolate=False))  # in this process, where the spy is
    (record,) = store.records()
    assert record["training"]["tasks"] == {"synergistic": "classification", "score": "regression"}
    assert seen == [(True, None)]  # the test rows came without labels of either target
    assert (store.predictions(record["job_id"])["y_std"] > 0).all()


def test_pretrain_and_predict_commands(tmp_path, checkpoint):
    from typer.testing import CliRunner

    from synbench.cli import app

    cli = CliRunner()
    res = cli.invoke(app, ["predict", "--model-checkpoint", str(checkpoint), "--drugs", "aspirin,CAFFEINE,Zorbamycin",
                           "--cell-line", "CELL-A", "--describe", "Zorbamycin=an experimental topoisomerase II poison",
                           "--passes", "20", "--json"])
    assert res.exit_code == 0, res.output
    result = json.loads(res.stdout)
    assert result["k"] == 3 and result["entities"]["Zorbamycin"] == "described (--describe)"
    assert result["entities"]["aspirin"] == "checkpoint (ASPIRIN)"
    score, prob = result["heads"]["score"], result["heads"]["synergistic"]
    assert score["low"] <= score["mc_mean"] <= score["high"] and score["mc_std"] > 0
    assert 0 <= prob["low"] <= prob["prediction"] <= 1 and prob["task"] == "classification"
    missing = cli.invoke(app, ["predict", "--model-checkpoint", str(checkpoint), "--drugs", "ASPIRIN,Zorbamycin",
                               "--cell-line", "CELL-Q"])
    assert missing.exit_code == 2
    assert "no description for Zorbamycin, CELL-Q" in missing.output and "--describe" in missing.output
    out = tmp_path / "leak.pt"
    refused = cli.invoke(app, ["pretrain", "-d", "mock", "--exclude-overlap", "mock", "--profile", "smoke", "--out", str(out)])
    assert refused.exit_code == 2 and "no rows of mock are left" in refused.output and not out.exists()


def test_bf16_falls_back_to_fp32_where_it_is_the_slower_path(fold0, monkeypatch):
    """On a CPU with AVX2 alone bf16 autocast is several times slower than fp32: bf16=True then
    trains in fp32, computes what fp32 computes and says why in the record."""
    import synbench.neural

    monkeypatch.setattr(synbench.neural, "native_bf16", lambda device: False)
    train, valid, test, _ = fold0
    fp32 = BaitsaoModel(seed=0, **SMOKE).fit(train, valid)
    asked = BaitsaoModel(seed=0, bf16=True, **SMOKE).fit(train, valid)
    assert asked.training_log_["precision"] == "fp32" and "no native bf16" in asked.training_log_["precision_note"]
    assert "precision_note" not in fp32.training_log_
    assert np.array_equal(asked.predict(test), fp32.predict(test))
