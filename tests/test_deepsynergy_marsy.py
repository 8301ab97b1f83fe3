"""DeepSynergy and MARSY: training statistics only, reproducibility, no test rows in training, drug-order
averaging, MARSY's auxiliary targets and DeepSynergy's published refit on train + valid."""

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("torch")

from synbench.errors import ConfigError  # noqa: E402
from synbench.plugins.models import deepsynergy as ds_module  # noqa: E402
from synbench.plugins.models import marsy as marsy_module  # noqa: E402
from synbench.plugins.models.deepsynergy import DeepSynergyModel, make_normaliser, smoothed_curve  # noqa: E402
from synbench.plugins.models.marsy import MarsyModel  # noqa: E402
from synbench.testing import mock_batches  # noqa: E402

MODELS = (DeepSynergyModel, MarsyModel)


def smoke(cls, **overrides):
    return cls(task="regression", seed=0, **{**cls.profiles["smoke"].params, **overrides})


@pytest.fixture(scope="module")
def batches():
    # both models read the same featurizers, so one set of mock batches serves both
    assert DeepSynergyModel.featurizers == MarsyModel.featurizers
    return mock_batches(DeepSynergyModel, "regression")


@pytest.fixture(scope="module")
def fitted(batches):
    train, valid, _, _ = batches
    return {cls: smoke(cls).fit(train, valid) for cls in MODELS}


def test_tanh_norm_is_the_published_formula_with_training_statistics():
    rng = np.random.default_rng(0)
    train = rng.normal(size=(50, 6)) * [1, 5, 0.1, 3, 1, 2] + [0, 1, 2, 3, 4, 5]
    train[:, 2] = 7.0  # constant on the training rows: dropped, as published
    test = rng.normal(size=(20, 6)) * 10  # different scale: must not move the statistics
    test[:, 2] = 7.0
    norm = make_normaliser("tanh_norm").fit(train)

    keep = train.std(axis=0) != 0
    mean1, std1 = train[:, keep].mean(axis=0), train[:, keep].std(axis=0)
    t = np.tanh((train[:, keep] - mean1) / std1)
    mean2, std2 = t.mean(axis=0), t.std(axis=0)
    expected = (np.tanh((test[:, keep] - mean1) / std1) - mean2) / std2
    np.testing.assert_allclose(norm.transform(test), expected, rtol=1e-6, atol=1e-8)
    assert norm.transform(test).shape[1] == 5
    # fitting with the test rows included would give other statistics, so the check above can fail
    assert not np.allclose(make_normaliser("tanh_norm").fit(np.vstack([train, test])).transform(test), expected)


def test_deepsynergy_normalisation_uses_training_rows_only(batches, fitted):
    train, valid, test, _ = batches
    model = fitted[DeepSynergyModel]
    # the final normaliser is fitted on the refit rows (train + valid, both drug orders) and nothing else
    X_fit = np.vstack([model._design(train, fitting=True)[0], model._design(valid, fitting=True)[0]])
    expected = make_normaliser(model.norm).fit(X_fit)
    with_test = make_normaliser(model.norm).fit(np.vstack([X_fit, model._design(test)[0]]))
    X_test = model._design(test)[0]
    np.testing.assert_allclose(model.normaliser_.transform(X_test), expected.transform(X_test), rtol=1e-5, atol=1e-6)
    assert not np.allclose(model.normaliser_.transform(X_test), with_test.transform(X_test), rtol=1e-5, atol=1e-6)
    # predicting fits nothing on the predicted rows: alone or among other rows, same predictions
    alone = model.predict(test)
    mixed = test.__class__(test.rows.iloc[::-1], test.features, test.task)
    np.testing.assert_allclose(model.predict(mixed)[::-1], alone, rtol=1e-6, atol=1e-6)


def test_smoothed_curve_is_the_published_moving_average():
    losses = np.random.default_rng(1).random(40)
    cumsum = np.cumsum(losses)
    cumsum[15:] = cumsum[15:] - cumsum[:-15]
    published = np.pad(cumsum[14:] / 15, 7, mode="edge")
    smoothed = smoothed_curve(losses, 15)
    np.testing.assert_allclose(smoothed[7:-7], published[7:-7])  # the full windows are the authors'
    # at the edges the window holds the epochs that exist, instead of repeating the nearest full one
    np.testing.assert_allclose(smoothed[-1], losses[-8:].mean())
    np.testing.assert_allclose(smoothed[0], losses[:8].mean())
    assert len(smoothed_curve(losses[:4], 15)) == 4  # short histories keep their length


def test_a_still_falling_curve_refits_for_every_epoch():
    # edge padding made the last two epochs tie and the first of them win: the refit ran 4 of 5
    falling = [383.0, 330.0, 300.0, 285.0, 273.0]
    assert int(np.argmin(smoothed_curve(falling, 3))) + 1 == 5
    dip = [10.0, 8.0, 6.0, 7.0, 9.0]
    assert int(np.argmin(smoothed_curve(dip, 3))) + 1 == 3


@pytest.mark.parametrize("cls", MODELS, ids=lambda c: c.name)
def test_same_seed_same_predictions_other_seed_differs(cls, batches, fitted):
    train, valid, test, _ = batches
    first = fitted[cls].predict(test)
    again = smoke(cls).fit(train, valid).predict(test)
    np.testing.assert_array_equal(first, again)
    other = cls(task="regression", seed=1, **cls.profiles["smoke"].params).fit(train, valid).predict(test)
    assert not np.allclose(first, other)


@pytest.mark.parametrize("cls", MODELS, ids=lambda c: c.name)
def test_training_never_sees_test_rows(cls, batches, fitted, monkeypatch):
    train, valid, test, _ = batches
    module = ds_module if cls is DeepSynergyModel else marsy_module
    seen = []
    real = module.tabular_design

    def recording(batch, rule="mean"):
        seen.extend(batch.rows.index)
        return real(batch, rule)

    monkeypatch.setattr(module, "tabular_design", recording)
    model = smoke(cls).fit(train, valid)
    assert set(seen) == set(train.rows.index) | set(valid.rows.index)
    assert not set(seen) & set(test.rows.index)
    # labels on the predicted rows are ignored
    clean = model.predict(test)
    noisy = test.__class__(test.rows, test.features, test.task, np.random.default_rng(0).normal(size=len(test)) * 1e3)
    np.testing.assert_array_equal(model.predict(noisy), clean)
    np.testing.assert_array_equal(clean, fitted[cls].predict(test))


def test_drug_orderings_add_each_missing_order_once(batches):
    from synbench.neural import drug_orderings

    _, _, test, _ = batches
    pairs = test.subset(test.rows.index[test.rows["n_drugs"] == 2][:3])
    both = pairs.rows.copy()
    both[["drug_1", "drug_2"]] = pairs.rows[["drug_2", "drug_1"]].to_numpy()
    both.index = [f"{i}-swapped" for i in both.index]
    listed_twice = pairs.__class__(pd.concat([pairs.rows, both]), pairs.features, pairs.task)  # as MARSY's data ships

    def count(batch, **kw):
        return sum(len(pos) for pos, _, _ in drug_orderings(batch, **kw))

    assert count(pairs) == count(pairs, skip_listed=True) == 6
    assert count(listed_twice) == 12 and count(listed_twice, skip_listed=True) == 6


@pytest.mark.parametrize("cls", MODELS, ids=lambda c: c.name)
def test_predictions_do_not_depend_on_drug_order(cls, batches, fitted):
    _, _, test, _ = batches
    pairs = test.subset(test.rows.index[test.rows["n_drugs"] == 2])
    swapped_rows = pairs.rows.copy()
    swapped_rows[["drug_1", "drug_2"]] = pairs.rows[["drug_2", "drug_1"]].to_numpy()
    swapped = pairs.__class__(swapped_rows, pairs.features, pairs.task)
    np.testing.assert_allclose(fitted[cls].predict(swapped), fitted[cls].predict(pairs), rtol=1e-5, atol=1e-5)


def test_deepsynergy_refits_on_train_and_valid_for_the_chosen_epochs(batches, monkeypatch):
    train, valid, _, _ = batches
    calls = []
    real = DeepSynergyModel._train

    def spy(self, X, y, epochs, dev, generator, valid=None, **kwargs):
        calls.append({"rows": len(X), "epochs": epochs, "with_valid": valid is not None})
        return real(self, X, y, epochs, dev, generator, valid=valid, **kwargs)

    monkeypatch.setattr(DeepSynergyModel, "_train", spy)
    model = smoke(DeepSynergyModel, max_epochs=6).fit(train, valid)
    log = model.training_log_

    def n_orders(batch):  # rows with k drugs come in k! orders
        return int(sum({2: 2, 3: 6}[k] for k in batch.rows["n_drugs"]))

    selection, refit = log["selection"], log["refit"]
    assert calls[0] == {"rows": n_orders(train), "epochs": 6, "with_valid": True}
    best = int(np.argmin(smoothed_curve(selection["val_loss"], model.smoothing_window))) + 1
    assert selection["best_epoch"] == refit["epochs"] == log["best_epoch"] == best
    assert calls[1] == {"rows": n_orders(train) + n_orders(valid), "epochs": best, "with_valid": False}
    assert refit["n_combinations"] == len(train) + len(valid) and len(refit["train_loss"]) == best
    assert log["epochs"] == selection["epochs_run"] + best


def test_marsy_auxiliary_responses_follow_the_drug_order(batches):
    train, valid, test, _ = batches
    rng = np.random.default_rng(0)
    slots = len([c for c in train.rows.columns if c.startswith("drug_")])
    aux = {f"response_{i + 1}": rng.normal(size=len(train)).astype(np.float32) for i in range(slots)}
    aux["unrelated"] = np.ones(len(train))  # another target of the dataset: not a single-drug response
    train_aux = train.__class__(train.rows, train.features, train.task, train.y, "score", aux,
                                {**{name: "regression" for name in aux}, "unrelated": "classification"})
    model = smoke(MarsyModel)
    _, _, positions, Y = model._inputs(train_aux, with_targets=True)
    pairs = np.flatnonzero(train.rows["n_drugs"].to_numpy() == 2)
    block = np.flatnonzero(np.isin(positions, pairs))  # pairs come first: original order, then swapped
    original, swapped = block[:len(pairs)], block[len(pairs):]
    np.testing.assert_array_equal(positions[original], positions[swapped])
    np.testing.assert_array_equal(Y[original, 1], aux["response_1"][positions[original]])
    np.testing.assert_array_equal(Y[swapped, 1], aux["response_2"][positions[swapped]])
    np.testing.assert_array_equal(Y[swapped, 2], aux["response_1"][positions[swapped]])
    assert np.isnan(Y[block, 3]).all()  # pairs have no third drug

    with_aux = model.fit(train_aux, valid)
    assert with_aux.training_log_["auxiliary_targets"] == [f"response_{i + 1}" for i in range(slots)]
    without = smoke(MarsyModel).fit(train, valid)
    assert without.training_log_["auxiliary_targets"] == []
    assert not np.allclose(with_aux.predict(test), without.predict(test))


def test_bad_settings_are_one_line_errors(batches):
    train, valid, _, _ = batches
    with pytest.raises(ConfigError, match="normalisation"):
        smoke(DeepSynergyModel, norm="minmax").fit(train, valid)
    with pytest.raises(ConfigError, match="regressor"):
        MarsyModel(task="classification", **MarsyModel.profiles["smoke"].params).fit(train, valid)


def test_patience_on_the_smoothed_minimum_never_stops_at_the_chosen_epoch(batches, monkeypatch):
    # the cpu profile's rule: stop once the minimum of the curve the refit length is read from lies
    # `patience` epochs back, so the chosen epoch always had `patience` epochs to be beaten. The
    # earlier trailing-mean rule ended D1 Loewe fold 0 (its validation curve below) at epoch 27 and
    # chose epoch 27 itself: whether later epochs would have been better was never looked at
    import torch

    fold0 = [467.3, 429.8, 402.6, 397.3, 384.9, 391.1, 370.4, 354.6, 363.3, 348.7, 355.5, 339.5, 342.3, 344.2,
             350.8, 340.3, 351.1, 333.6, 340.1, 343.4, 333.1, 332.8, 346.1, 341.5, 343.0, 343.7, 328.7]
    train, valid, _, _ = batches

    def run(stop_on, curve):
        losses = iter(curve)
        monkeypatch.setattr("synbench.neural.train_epoch", lambda *a, **k: 1.0)  # training is not the point
        monkeypatch.setattr("torch.nn.MSELoss.forward", lambda self, a, b: torch.tensor(next(losses)))
        return smoke(DeepSynergyModel, max_epochs=len(curve), patience=5, stop_on=stop_on).fit(train, valid).training_log_

    old = run("trailing-mean", fold0)
    assert old["selection"]["epochs_run"] == 27 == old["selection"]["best_epoch"]  # chose the last epoch run
    new = run("smoothed-minimum", fold0)
    best = int(np.argmin(smoothed_curve(fold0[:26], 3))) + 1
    assert new["selection"]["best_epoch"] == best == 21 and new["selection"]["epochs_run"] == 26 == best + 5
    assert new["stopped"] == "early stopping" and new["refit"]["epochs"] == best
    assert DeepSynergyModel.profiles["cpu"].params["stop_on"] == "smoothed-minimum"
    with pytest.raises(ConfigError, match="unknown stop_on 'never'"):
        smoke(DeepSynergyModel, stop_on="never").fit(train, valid)
