"""A long final fit stopped part-way (a session's end, a machine going down) continues at the epoch
where it stopped, and computes exactly what the uninterrupted fit computes."""

import numpy as np
import pytest

pytest.importorskip("torch")
from synbench import neural  # noqa: E402
from synbench import runner  # noqa: E402
from synbench.registry import get_registry  # noqa: E402
from synbench.store import Store  # noqa: E402
from synbench.testing import mock_batches  # noqa: E402

SMALL = {"hidden": (16, 8), "max_epochs": 6, "smoothing_window": 3, "optimizer": "adam", "lr": 1e-3}
MARSY = {"triple_layers": (32, 64), "pair_layers": (16, 32), "decoder_layers": (64, 16), "max_epochs": 8, "patience": 2}


class Stop(Exception):
    pass


def _fit(cls, train, valid, path, stop_after=None, monkeypatch=None):
    model = cls(task="regression", seed=0, **(MARSY if cls.name == "marsy" else SMALL))
    model.checkpoint_path_ = path
    if stop_after is not None:
        calls, real = [0], neural.train_epoch

        def stopping(*args, **kwargs):
            calls[0] += 1
            if calls[0] > stop_after:
                raise Stop
            return real(*args, **kwargs)

        monkeypatch.setattr(neural, "train_epoch", stopping)
        with pytest.raises(Stop):
            model.fit(train, valid)
        monkeypatch.setattr(neural, "train_epoch", real)
        return None
    return model.fit(train, valid)


@pytest.mark.parametrize("stop_after", [3, 8])  # in the epoch-selection phase; in the refit
def test_a_stopped_deepsynergy_fit_resumes_where_it_stopped(tmp_path, monkeypatch, stop_after):
    cls = get_registry().model("deepsynergy")
    train, valid, test, _ = mock_batches(cls, "regression")
    whole = _fit(cls, train, valid, tmp_path / "whole.pt")
    epochs_first = whole.training_log_["selection"]["epochs_run"]
    assert stop_after < epochs_first + whole.training_log_["best_epoch"]  # it does stop part-way
    path = tmp_path / "stopped.pt"
    _fit(cls, train, valid, path, stop_after=stop_after, monkeypatch=monkeypatch)
    assert path.is_file()
    resumed = _fit(cls, train, valid, path)
    np.testing.assert_array_equal(resumed.predict(test), whole.predict(test))
    assert resumed.training_log_["selection"]["val_loss"] == whole.training_log_["selection"]["val_loss"]
    assert resumed.training_log_["refit"]["train_loss"] == whole.training_log_["refit"]["train_loss"]
    phase = "selection" if stop_after <= epochs_first else "refit"
    assert resumed.training_log_[phase]["resumed_at_epoch"] == (stop_after if phase == "selection" else stop_after - epochs_first)


@pytest.mark.parametrize("restore_best", [False, True])
def test_a_stopped_marsy_fit_resumes_where_it_stopped(tmp_path, monkeypatch, restore_best):
    cls = get_registry().model("marsy")
    MARSY["restore_best"] = restore_best
    try:
        train, valid, test, _ = mock_batches(cls, "regression")
        whole = _fit(cls, train, valid, tmp_path / "whole.pt")
        assert whole.training_log_["epochs"] > 3
        path = tmp_path / "stopped.pt"
        _fit(cls, train, valid, path, stop_after=3, monkeypatch=monkeypatch)
        resumed = _fit(cls, train, valid, path)
    finally:
        MARSY.pop("restore_best")
    np.testing.assert_array_equal(resumed.predict(test), whole.predict(test))
    for key in ("val_loss", "train_loss", "best_epoch", "stopped"):
        assert resumed.training_log_[key] == whole.training_log_[key]
    assert resumed.training_log_["resumed_at_epoch"] == 3 and "resumed_at_epoch" not in whole.training_log_


@pytest.mark.parametrize("machine", ["same", "new"])  # the state file and its companion; the companion alone
def test_a_state_of_other_parameters_is_ignored(tmp_path, machine):
    cls = get_registry().model("deepsynergy")
    train, valid, test, _ = mock_batches(cls, "regression")
    path = tmp_path / ".training-job.pt"
    other = cls(task="regression", seed=0, **{**SMALL, "lr": 1e-2})
    other.checkpoint_path_ = path
    other.fit(train, valid)
    assert neural.progress_path(path).is_file()
    if machine == "new":
        path.unlink()
    fresh = cls(task="regression", seed=0, **SMALL).fit(train, valid)  # no state at all
    model = _fit(cls, train, valid, path)  # finds lr 1e-2's files: runs both phases afresh
    np.testing.assert_array_equal(model.predict(test), fresh.predict(test))
    assert model.training_log_["selection"]["val_loss"] == fresh.training_log_["selection"]["val_loss"]


def test_the_state_file_is_removed_once_the_job_is_stored(tmp_path):
    store = Store(tmp_path / "store")
    (job,) = runner.plan(["mock"], ["deepsynergy"], targets=["score"], profile="smoke", folds=[0])
    settings = runner.RunSettings(isolate=False)
    state = runner.training_state_path(runner.RunSettings(checkpoint_dir=str(store.jobs_dir)), job)
    seen, durable_seen = [], []
    real_put = neural.TrainingState.put

    def watching(self, phase, state_, drop=(), durable=False):
        real_put(self, phase, state_, drop, durable)
        seen.append(self.path)
        if durable:
            durable_seen.append(self.durable_path)

    import unittest.mock as um

    with um.patch.object(neural.TrainingState, "put", watching):
        summary = runner.run([job], store, settings)
    assert summary["done"] == 1
    assert seen and set(seen) == {state}  # saved in the store's jobs folder while training ...
    assert store.has_job(job.job_id) and not state.exists()  # ... and gone once the job is stored
    assert durable_seen == [neural.progress_path(state)] and not durable_seen[0].exists()  # its companion too


def test_a_state_saved_under_the_default_optimiser_kernel_resumes_under_the_fused_one(tmp_path, monkeypatch):
    """A job stopped before the fused kernels (or run with SYNBENCH_FUSED_OPTIMISER=0) continues with
    the kernel of the process that resumes it, names that kernel, and computes the same fit to
    float32 rounding."""
    cls = get_registry().model("deepsynergy")
    train, valid, test, _ = mock_batches(cls, "regression")
    monkeypatch.setenv(neural.FUSED_ENV, "0")
    whole = _fit(cls, train, valid, tmp_path / "whole.pt")
    assert whole.training_log_["optimiser"] == "Adam"
    path = tmp_path / "stopped.pt"
    _fit(cls, train, valid, path, stop_after=3, monkeypatch=monkeypatch)
    monkeypatch.delenv(neural.FUSED_ENV)
    resumed = _fit(cls, train, valid, path)
    assert resumed.training_log_["selection"]["resumed_at_epoch"] == 3
    assert resumed.training_log_["optimiser"] == "Adam (fused)"
    np.testing.assert_allclose(resumed.predict(test), whole.predict(test), rtol=1e-4, atol=1e-4)


def test_a_finished_first_phase_outlives_the_machine(tmp_path, monkeypatch):
    """The state file (weights) is not kept across machines; the small companion file is. A job
    whose epoch-selection phase had finished skips it on a machine that has only the companion,
    and its refit computes what the uninterrupted fit computes."""
    cls = get_registry().model("deepsynergy")
    train, valid, test, _ = mock_batches(cls, "regression")
    whole = _fit(cls, train, valid, tmp_path / ".training-whole.pt")
    epochs_first = whole.training_log_["selection"]["epochs_run"]
    path = tmp_path / ".training-job.pt"
    _fit(cls, train, valid, path, stop_after=epochs_first + 1, monkeypatch=monkeypatch)  # in the refit
    companion = neural.progress_path(path)
    assert companion.name == ".progress-job.pt" and companion.is_file()
    import torch

    kept = torch.load(companion, weights_only=True)["phases"]
    assert set(kept) == {"select-done"} and "net" not in kept["select-done"]  # no weights: small enough to commit
    path.unlink()  # a new machine: only what the repository carried
    trained = []
    real = neural.train_epoch
    monkeypatch.setattr(neural, "train_epoch", lambda *a, **k: trained.append(1) or real(*a, **k))
    resumed = _fit(cls, train, valid, path)
    assert len(trained) == whole.training_log_["best_epoch"]  # the refit alone, from its first epoch
    np.testing.assert_array_equal(resumed.predict(test), whole.predict(test))
    assert resumed.training_log_["selection"]["val_loss"] == whole.training_log_["selection"]["val_loss"]
    assert "resumed_at_epoch" not in resumed.training_log_["refit"]


def test_a_dropped_durable_phase_does_not_come_back(tmp_path):
    path = tmp_path / ".training-job.pt"
    state = neural.TrainingState(path, {"x": 1})
    state.put("first-done", {"epochs": 3}, durable=True)
    state.put("second", {"epochs": 1}, drop=("first-done",))
    path.unlink()  # a new machine: the companion alone
    assert neural.TrainingState(path, {"x": 1}).get("first-done") is None
    assert not list(tmp_path.glob(".part-*"))  # every write went through its own temporary file


@pytest.mark.parametrize("epoch_selection", ["validation", "last"])
def test_a_stopped_deepdds_fit_resumes_where_it_stopped(tmp_path, monkeypatch, epoch_selection):
    """DeepDDS runs its own epoch loop (graph minibatches); stopped after three epochs it continues at
    the fourth and ends with what the uninterrupted fit computes, its early-stopping decisions included."""
    pytest.importorskip("torch_geometric")
    cls = get_registry().model("deepdds")
    train, valid, test, _ = mock_batches(cls, "classification")
    params = {**cls.profiles["smoke"].params, "max_epochs": 6, "patience": 2, "epoch_selection": epoch_selection}

    def fit(path):
        model = cls(seed=0, **params)
        model.checkpoint_path_ = path
        return model.fit(train, valid)

    whole = fit(tmp_path / ".training-whole.pt")
    path = tmp_path / ".training-job.pt"
    epochs, real = [0], cls._logits if epoch_selection == "validation" else None
    from synbench.plugins.models import deepdds

    class Stopped(Exception):
        pass

    def stop_in_epoch_four(*args, **kwargs):  # the fourth epoch's validation pass (or its progress line) never comes
        epochs[0] += 1
        if epochs[0] > 3:
            raise Stopped
        return real(*args, **kwargs) if real else None

    if real:
        monkeypatch.setattr(cls, "_logits", stop_in_epoch_four)
    else:
        monkeypatch.setattr(deepdds, "report", stop_in_epoch_four)
    with pytest.raises(Stopped):
        fit(path)
    monkeypatch.undo()
    assert path.is_file()
    resumed = fit(path)
    np.testing.assert_array_equal(resumed.predict(test), whole.predict(test))
    for key in ("history", "best_epoch", "epochs_run", "stopped"):
        assert resumed.training_log_[key] == whole.training_log_[key]
    assert resumed.training_log_["resumed_at_epoch"] == 3 and "resumed_at_epoch" not in whole.training_log_
