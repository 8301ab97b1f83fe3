"""synergy-transfer (Kim et al.): pre-training on the source tissues, fine-tuning on the target tissue's
few-shot rows, through the runner on the mock dataset's tissue splits (smoke profile)."""

import dataclasses

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("torch")

from synbench import runner  # noqa: E402
from synbench.errors import ConfigError  # noqa: E402
from synbench.leaderboard import method_of  # noqa: E402
from synbench.plugins.models.synergy_transfer import SynergyTransferJoint, SynergyTransferModel  # noqa: E402
from synbench.splits import fold_groups, fold_ids  # noqa: E402
from synbench.store import Store  # noqa: E402
from synbench.testing import mock_batches, mock_data  # noqa: E402

FEW_SHOT = "tissue-few-shot:fraction=0.3"


def _run(tmp_path, monkeypatch, split, model="synergy-transfer", params=None):
    """One fold through the runner, in this process; returns the record, the fold's row ids by role,
    the fold's target tissue and what the model was given (its batches, by call)."""
    seen = {"fit": [], "predict": [], "samples": []}
    fit, predict, samples = SynergyTransferModel.fit, SynergyTransferModel.predict, SynergyTransferModel._samples

    def spy_fit(self, train, valid=None):
        seen["fit"].append((train, valid))
        return fit(self, train, valid)

    def spy_predict(self, batch):
        seen["predict"].append(batch)
        return predict(self, batch)

    def spy_samples(self, batch, *args):
        seen["samples"].append(batch)
        return samples(self, batch, *args)

    monkeypatch.setattr(SynergyTransferModel, "fit", spy_fit)
    monkeypatch.setattr(SynergyTransferModel, "predict", spy_predict)
    monkeypatch.setattr(SynergyTransferModel, "_samples", spy_samples)
    store = Store(tmp_path / "store")
    jobs = runner.plan(["mock"], [model], targets=["score"], profile="smoke", split=split, folds=[0], params=params)
    runner.prepare(jobs, store)
    runner.run(jobs, store, runner.RunSettings(isolate=False))
    (record,) = store.records()
    splits = store.load_splits(store.split_path(*jobs[0].split_key))
    return record, fold_ids(splits, 0), fold_groups(splits).get(0), seen


def _tissue(ids):
    data = mock_data()
    return data.combinations.loc[ids, "cell_line"].map(data.cell_lines["tissue"])


@pytest.mark.parametrize("split", ["leave-tissue-out", FEW_SHOT])
def test_transfer_runs_end_to_end_and_fine_tunes_on_target_rows_only(tmp_path, monkeypatch, split):
    record, ids, target, seen = _run(tmp_path, monkeypatch, split)
    log = record["training"]
    assert np.isfinite(record["metrics"]["mse"]) and target == "breast" == log["target_tissue"]
    train_target = int((_tissue(ids["train"]) == target).sum())
    valid_target = int((_tissue(ids["valid"]) == target).sum())
    assert log["n_target_rows"] == train_target and log["n_source_rows"] == len(ids["train"]) - train_target
    assert log["n_target_valid_rows"] == valid_target and log["n_source_valid_rows"] == len(ids["valid"]) - valid_target
    pre, tune = log["pretrain"], log["fine_tune_stage"]
    assert pre["n_rows"] == log["n_source_rows"] and pre["n_valid_rows"] == log["n_source_valid_rows"]
    assert pre["stopped"] in ("early stopping", "cap") and 1 <= pre["best_epoch"] <= pre["epochs_run"]
    # stage 1 sees source tissues only; stage 2 only the target tissue's training-side rows
    pre_batches, tune_batches = seen["samples"][:2], seen["samples"][2:]
    assert all(target not in set(b.tissue) for b in pre_batches)
    if split == "leave-tissue-out":
        assert train_target == valid_target == 0
        assert tune["skipped"] and "no target-tissue training rows" in tune["reason"] and not tune_batches
        assert log["epochs"] == pre["epochs_run"]
    else:
        assert train_target > 0 and not tune["skipped"]
        assert tune_batches and all(set(b.tissue) == {target} for b in tune_batches)
        assert tune["n_rows"] + tune["n_valid_rows"] == train_target + valid_target
        assert tune["trained"] == "synergy head (encoders frozen)" and tune["stopped"] in ("early stopping", "cap")
        assert log["epochs"] == pre["epochs_run"] + tune["epochs_run"]
    # the model never saw a test label, nor a test row while fitting
    (train, valid), (test,) = seen["fit"][0], seen["predict"]
    assert test.y is None and test.aux is None and set(test.rows.index) == set(ids["test"])
    assert not set(ids["test"]) & (set(train.rows.index) | set(valid.rows.index))
    assert train.group == valid.group == test.group == target and set(test.tissue) == {target}


def test_fraction_zero_skips_fine_tuning(tmp_path, monkeypatch):
    record, ids, target, _ = _run(tmp_path, monkeypatch, "tissue-few-shot:fraction=0")
    log = record["training"]
    assert log["n_target_rows"] == 0 and log["n_target_valid_rows"] == 0
    assert log["fine_tune_stage"]["skipped"] and "fraction 0" in log["fine_tune_stage"]["reason"]
    assert log["pretrain"]["n_rows"] == len(ids["train"])


def test_joint_control_trains_once_on_every_training_row(tmp_path, monkeypatch):
    record, ids, _, seen = _run(tmp_path, monkeypatch, FEW_SHOT, model="synergy-transfer-joint")
    log = record["training"]
    assert log["fine_tune_stage"] == {"skipped": True, "reason": "fine_tune=False (joint control)"}
    assert log["n_target_rows"] > 0 and log["pretrain"]["n_rows"] == len(ids["train"])
    assert log["pretrain"]["n_valid_rows"] == len(ids["valid"]) and len(seen["samples"]) == 2
    # -p fine_tune=false (a string from the command line) is the same control, as another board row
    other, _, _, _ = _run(tmp_path / "p", monkeypatch, FEW_SHOT, params={"fine_tune": "false"})
    assert other["training"]["fine_tune_stage"]["skipped"] and other["training"]["plan"] == log["plan"]
    assert other["metrics"]["mse"] == pytest.approx(record["metrics"]["mse"], rel=1e-6)
    names = {method_of(r["job"]) for r in (record, other)}
    assert len(names) == 2


def test_published_folds_train_one_stage_on_every_row(tmp_path, monkeypatch):
    record, ids, target, _ = _run(tmp_path, monkeypatch, "published")
    log = record["training"]
    assert target is None and log["target_tissue"] is None and log["plan"].startswith("no target tissue")
    assert log["fine_tune_stage"]["skipped"] and log["pretrain"]["n_rows"] == len(ids["train"])


@pytest.mark.parametrize("cls", [SynergyTransferModel, SynergyTransferJoint])
def test_predictions_do_not_depend_on_drug_order(cls):
    train, valid, test, _ = mock_batches(cls, "regression")
    model = cls(seed=0, **cls.profiles["smoke"].params).fit(train, valid)
    pairs = test.subset(test.rows.index[test.rows["n_drugs"] == 2])
    swapped = pairs.rows.copy()
    swapped["drug_1"], swapped["drug_2"] = pairs.rows["drug_2"].to_numpy(), pairs.rows["drug_1"].to_numpy()
    np.testing.assert_allclose(model.predict(dataclasses.replace(pairs, rows=swapped)), model.predict(pairs), rtol=1e-5)


def test_batches_carry_each_rows_tissue_and_the_folds_group():
    data = mock_data()
    tissue = data.row_tissues()
    assert list(tissue[:3]) == list(data.combinations["cell_line"].iloc[:3].map(data.cell_lines["tissue"]))
    train, _, _, _ = mock_batches(SynergyTransferModel, "regression")
    full = dataclasses.replace(train, tissue=np.array(["t"] * len(train), dtype=object), group="t")
    part = full.subset(full.rows.index[:5])
    assert list(part.tissue) == ["t"] * 5 and part.group == "t"
    no_tissue = dataclasses.replace(data, cell_lines=data.cell_lines.drop(columns=["tissue"]))
    assert no_tissue.row_tissues() is None


def test_bad_fine_tune_value_is_one_line():
    train, valid, _, _ = mock_batches(SynergyTransferModel, "regression")
    with pytest.raises(ConfigError, match="fine_tune must be true or false"):
        SynergyTransferModel(fine_tune="maybe", **SynergyTransferModel.profiles["smoke"].params).fit(train, valid)


def test_a_target_tissue_with_too_few_validation_rows_fine_tunes_for_fixed_epochs():
    train, valid, test, _ = mock_batches(SynergyTransferModel, "regression")
    data = mock_data()
    tissue = pd.Series(data.row_tissues(), index=data.combinations.index)
    with_tissue = [dataclasses.replace(b, tissue=tissue.loc[b.rows.index].to_numpy(), group="breast") for b in (train, valid)]
    params = {**SynergyTransferModel.profiles["smoke"].params, "fine_tune_min_valid": 10**6}
    model = SynergyTransferModel(seed=0, **params).fit(*with_tissue)
    tune = model.training_log_["fine_tune_stage"]
    assert tune["stopping"].startswith("fixed 2 epochs") and tune["epochs_run"] == 2 and tune["n_valid_rows"] == 0
    # the target's validation rows joined its training rows
    assert tune["n_rows"] == model.training_log_["n_target_rows"] + model.training_log_["n_target_valid_rows"]
    assert np.isfinite(model.predict(test)).all()
    # and the record counts them among the rows the final model learnt from
    from synbench.runner import validation_rows_learnt

    assert model.validation_rows_learnt_ == model.training_log_["n_target_valid_rows"] > 0
    assert validation_rows_learnt(model, len(valid)) == model.training_log_["n_target_valid_rows"]
    stopping = SynergyTransferModel(seed=0, **{**params, "fine_tune_min_valid": 1}).fit(*with_tissue)
    assert validation_rows_learnt(stopping, len(valid)) == 0  # validation rows it stops on are not learnt
