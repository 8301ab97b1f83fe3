"""Neural models are tuned like the others: the same trials, epoch-by-epoch pruning after a short
warm-up, and a multi-task training signal that can be switched off (``-p task_mode=single``)."""

import dataclasses
import json

import numpy as np
import pytest

pytest.importorskip("torch")

from synbench.base import PRUNE_WARMUP_EPOCHS, PRUNE_WARMUP_STEPS, Model, Profile, Real  # noqa: E402
from synbench.data import Batch  # noqa: E402
from synbench.errors import ConfigError  # noqa: E402
from synbench.registry import get_registry  # noqa: E402
from synbench.runner import RunSettings, SharedInputs, _select, compute, load_job_data, plan  # noqa: E402
from synbench.splits import make_splits  # noqa: E402
from synbench.testing import mock_batches  # noqa: E402

NEURAL = ["deepsynergy", "marsy", "deepdds", "tabnet", "baitsao", "synergy-transfer"]


def _compute(job):
    data = load_job_data(job.dataset, job.split)
    splits = make_splits(data, job.split, job.n_folds, job.seed)
    return compute(job, RunSettings(), SharedInputs(splits={job.split_key: splits}))


def test_neural_models_get_the_trials_of_a_tabular_model():
    jobs = plan(["mock"], NEURAL + ["lasso"], profile="cpu", folds=[0])
    for target in ("score", "synergistic"):
        trials = {j.model: j.trials for j in jobs if j.target == target}
        assert set(trials.values()) == {12}, trials
    # Table 1 tuned nothing for DeepSynergy, MARSY and DeepDDS: what the paper did, no search
    table1 = {j.model: j.trials for j in plan(["mock"], NEURAL, profile="cpu", folds=[0], protocols=("table1",))}
    assert table1 == {"deepsynergy": 0, "marsy": 0, "deepdds": 0, "tabnet": 12, "baitsao": 12, "synergy-transfer": 0}


@pytest.mark.parametrize("model", NEURAL)
def test_a_search_runs_the_same_trials_in_the_smoke_profile(model):
    # the cpu plan, run at the smoke profile's size: every model of the run searches 2 trials
    jobs = plan(["mock"], [model, "lasso"], profile="cpu", folds=[0], trials=2)
    job = next(j for j in jobs if j.model == model)
    lasso = next(j for j in jobs if j.model == "lasso" and j.target == job.target)
    assert job.trials == lasso.trials == 2
    record, predictions = _compute(dataclasses.replace(job, profile="smoke"))
    summary = record["search_summary"]
    assert summary["n_trials"] == len(record["search"]) == 2
    assert summary["pruner"] == f"worst quarter at a step, after {PRUNE_WARMUP_EPOCHS} steps"
    assert set(record["selected_params"]) == {k for k, v in summary["space"].items()}
    # the final fit keeps the smoke profile's epoch cap: the search changed only the searched values
    smoke = get_registry().model(model).profiles["smoke"].params
    assert all(record["params"][k] == json.loads(json.dumps(v)) for k, v in smoke.items() if k not in record["selected_params"])
    assert np.isfinite(predictions["y_pred"]).all()


@pytest.mark.parametrize("model", NEURAL)
def test_a_search_fit_reports_every_epoch(model):
    cls = get_registry().model(model)
    task = cls.tasks[0]
    train, valid, _, _ = mock_batches(cls, task)
    net = cls(task=task, seed=0, **cls.profiles["smoke"].params)
    steps = []
    net.report_progress_ = lambda step, loss: steps.append((step, loss))
    net.fit(train, valid)
    epochs = len(steps)
    assert epochs >= 2 and [s for s, _ in steps] == list(range(1, epochs + 1))
    assert all(np.isfinite(loss) for _, loss in steps)
    assert cls.prune_warmup_steps == PRUNE_WARMUP_EPOCHS
    if model == "deepsynergy":  # a search trial is scored by its first phase's best epoch: no refit
        log = net.training_log_
        assert log["refit"] is None and log["epochs"] == epochs
        assert log["kept_epoch"] == int(np.argmin([loss for _, loss in steps])) + 1


class _Reporter(Model):
    """Reports 20 steps of a validation loss: good for the first four fits, then hopeless."""

    name = "reporter"
    fits: list = []

    def __init__(self, task="regression", seed=0, x=0.5):
        self.task, self.seed, self.x = task, seed, x

    def fit(self, train, valid=None):
        loss = 1.0 if len(self.fits) < 4 else 100.0
        self.fits.append(0)
        for step in range(1, 21):
            self.fits[-1] = step
            self.report_validation(step, loss + 0.01 * self.x)
        return self

    def predict(self, batch):
        return np.zeros(len(batch))


@pytest.mark.parametrize("warmup", [PRUNE_WARMUP_EPOCHS, PRUNE_WARMUP_STEPS])
def test_a_hopeless_trial_is_pruned_after_the_models_warm_up(warmup):
    train, valid, _, _ = mock_batches(get_registry().model("lasso"), "regression")
    model = type("Reporter", (_Reporter,), {"prune_warmup_steps": warmup, "fits": []})()
    _, trials, summary = _select(model, Profile(), train, valid, 0, {"x": Real(0.0, 1.0)}, n_trials=6)
    assert summary["pruner"] == f"worst quarter at a step, after {warmup} steps"
    if warmup == PRUNE_WARMUP_EPOCHS:  # pruned at the first step after the warm-up, not before
        assert [t["state"] for t in trials] == ["complete"] * 4 + ["pruned"] * 2
        assert type(model).fits == [20] * 4 + [warmup] * 2 and summary["pruned"] == 2
    else:  # boosting's long warm-up: 20 steps never reach it
        assert summary["pruned"] == 0 and type(model).fits == [20] * 6


class _Ranked(Model):
    """Reports 20 steps of a fixed validation loss per fit, from ``LOSSES`` in order."""

    name = "ranked"
    prune_warmup_steps = PRUNE_WARMUP_EPOCHS
    LOSSES = [1.0, 2.0, 3.0, 4.0, 2.5, 3.9, 4.5]
    fits: list = []

    def __init__(self, task="regression", seed=0, x=0.5):
        self.task, self.seed, self.x = task, seed, x

    def fit(self, train, valid=None):
        loss = self.LOSSES[len(self.fits)]
        self.fits.append(loss)
        for step in range(1, 21):
            self.report_validation(step, loss)
        return self

    def predict(self, batch):
        return np.zeros(len(batch))


def test_the_search_prunes_only_the_worst_quarter():
    # after four finished trials (losses 1-4), a trial at 2.5 or 3.9 is not in the worst quarter
    # (above the 75th percentile, 3.25 ... 4) only when it is above 3.25: 2.5 runs to its end, 3.9
    # and 4.5 are pruned; keeping only the best quarter would prune the 2.5 trial as well
    train, valid, _, _ = mock_batches(get_registry().model("lasso"), "regression")
    model = type("Ranked", (_Ranked,), {"fits": []})()
    _, trials, summary = _select(model, Profile(), train, valid, 0, {"x": Real(0.0, 1.0)}, n_trials=7)
    assert [t["state"] for t in trials] == ["complete"] * 5 + ["pruned"] * 2
    assert summary["pruner_revision"] == 2


def test_treecomb_keeps_the_boosting_warm_up():
    from synbench.plugins.models.treecomb import TreeCombModel

    assert PRUNE_WARMUP_STEPS == 300 and TreeCombModel.prune_warmup_steps == 300
    assert Model.prune_warmup_steps == 300  # the default for any model that does not set its own


# -- the training signal: multi-task as published, or single-task --------------------------------
class _Poisoned(dict):
    """Other targets that fail the moment anything reads them."""

    def _fail(self, *args, **kwargs):
        raise AssertionError("a single-task model read the other targets")

    __bool__ = __len__ = __iter__ = __getitem__ = items = values = keys = get = _fail


def _with_aux(batch, aux, aux_tasks):
    return Batch(batch.rows, batch.features, batch.task, batch.y, "score", aux, aux_tasks)


def test_single_task_baitsao_never_reads_the_other_targets():
    from synbench.plugins.models.baitsao import BaitsaoModel

    train, valid, test, _ = mock_batches(BaitsaoModel, "regression")
    data_aux = {"synergistic": (train.y > np.percentile(train.y, 60)).astype(float)}
    smoke = BaitsaoModel.profiles["smoke"].params
    multi = BaitsaoModel(seed=0, **smoke).fit(_with_aux(train, data_aux, {"synergistic": "classification"}),
                                              _with_aux(valid, {"synergistic": (valid.y > 0).astype(float)},
                                                        {"synergistic": "classification"}))
    assert set(multi.training_log_["tasks"]) == {"score", "synergistic"}
    single = BaitsaoModel(seed=0, task_mode="single", **smoke).fit(_with_aux(train, _Poisoned(), {}),
                                                                   _with_aux(valid, _Poisoned(), {}))
    assert single.training_log_["tasks"] == {"score": "regression"} and single.training_log_["log_variances"] is None
    assert not np.allclose(multi.predict(test), single.predict(test))
    with pytest.raises(AssertionError, match="read the other targets"):  # the poison works
        BaitsaoModel(seed=0, **smoke).fit(_with_aux(train, _Poisoned(), {}), valid)
    with pytest.raises(ConfigError, match="unknown task_mode 'solo'"):
        BaitsaoModel(seed=0, task_mode="solo", **smoke).fit(train, valid)


def test_marsy_trains_on_the_single_drug_responses_unless_single_task():
    from synbench.plugins.models.marsy import MarsyModel

    train, valid, test, _ = mock_batches(MarsyModel, "regression")
    rng = np.random.default_rng(0)
    aux = {f"response_{i}": rng.normal(size=len(train)) for i in (1, 2, 3)}
    smoke = MarsyModel.profiles["smoke"].params
    multi = MarsyModel(seed=0, **smoke).fit(_with_aux(train, aux, {n: "regression" for n in aux}), valid)
    assert multi.training_log_["auxiliary_targets"] == ["response_1", "response_2", "response_3"]
    single = MarsyModel(seed=0, task_mode="single", **smoke).fit(_with_aux(train, _Poisoned(), {}), valid)
    assert single.training_log_["auxiliary_targets"] == [] and single.training_log_["task_mode"] == "single"
    # single-task is the synergy target alone: exactly a fit without other targets
    alone = MarsyModel(seed=0, **smoke).fit(train, valid)
    np.testing.assert_array_equal(single.predict(test), alone.predict(test))
    assert not np.allclose(multi.predict(test), single.predict(test))
    with pytest.raises(ConfigError, match="unknown task_mode"):
        MarsyModel(seed=0, task_mode="both", **smoke).fit(train, valid)


def test_single_task_is_a_method_of_its_own_on_the_board(tmp_path):
    from synbench.leaderboard import build, method_of
    from synbench.store import Store

    store = Store(tmp_path / "store")
    jobs = plan(["mock"], ["baitsao"], targets=["score"], profile="smoke", folds=[0])
    jobs += plan(["mock"], ["baitsao"], targets=["score"], profile="smoke", folds=[0], params={"task_mode": "single"})
    assert len({method_of(j.to_dict()) for j in jobs}) == 2
    for job in jobs:
        data = load_job_data(job.dataset, job.split)
        splits = make_splits(data, job.split, job.n_folds, job.seed)
        record, predictions = compute(job, RunSettings(), SharedInputs(splits={job.split_key: splits}))
        store.write_job(job.job_id, record, predictions)
    board = build(store.metrics_frame(), ["pcc"]).summary
    profiles = sorted(board[board["model"] == "baitsao"]["profile"])
    assert profiles == ["smoke", "smoke task_mode=single"]


def test_a_profile_sets_its_own_range_only_for_what_the_protocol_searches():
    # DeepSynergy's cpu profile trains with Adam, so it searches Adam's learning rates under
    # strong; under table1 (nothing searched) the range changes nothing
    small = {"hidden": (16, 8), "max_epochs": 2, "smoothing_window": 1}
    for protocol in ("strong", "table1"):
        (job,) = plan(["mock"], ["deepsynergy"], targets=["score"], profile="cpu", folds=[0], trials=1,
                      params=small, protocols=(protocol,))
        record, _ = _compute(job)
        space = record["search_summary"].get("space", {})
        if protocol == "strong":
            assert space["lr"] == str(Real(1e-5, 1e-3, log=True)) and record["params"]["optimizer"] == "adam"
            assert 1e-5 <= record["selected_params"]["lr"] <= 1e-3
        else:
            assert space == {} and record["params"]["lr"] == 1e-4
    with pytest.raises(TypeError):
        Profile().with_ranges(lr=0.1)
