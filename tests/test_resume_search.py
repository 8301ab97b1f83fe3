"""A job stopped during its hyperparameter search (a session's end, a machine going away) keeps the
trials it finished: the next run replays them from the store's small progress file and continues
with the trial where it stopped, and chooses what the uninterrupted search chooses."""

import json

import numpy as np
import pytest

from synbench import runner
from synbench.base import PRUNE_WARMUP_EPOCHS, Model, Profile, Real
from synbench.registry import get_registry
from synbench.runner import _select, search_progress_path
from synbench.store import Store
from synbench.testing import mock_batches


class Stop(Exception):
    pass


class _Curve(Model):
    """Reports 12 steps of a validation loss that depends on ``x`` (bad values get pruned) and
    predicts a curve whose correlation with the labels depends on ``x``."""

    name = "curve"
    prune_warmup_steps = PRUNE_WARMUP_EPOCHS
    fits: list = []
    stop_at = None

    def __init__(self, task="regression", seed=0, x=0.5):
        self.task, self.seed, self.x = task, seed, x

    def fit(self, train, valid=None):
        if self.stop_at is not None and len(self.fits) >= self.stop_at:
            raise Stop
        self.fits.append(self.x)
        for step in range(1, 13):
            self.report_validation(step, (self.x - 0.3) ** 2 + 1.0 / step)
        return self

    def predict(self, batch):
        return np.sin(np.arange(len(batch)) * (0.1 + self.x))


def _model(**attrs):
    return type("Curve", (_Curve,), {"fits": [], **attrs})()


def _search(model, path, n_trials=9):
    train, valid, _, _ = mock_batches(get_registry().model("lasso"), "regression")
    return _select(model, Profile(), train, valid, 0, {"x": Real(0.0, 1.0)}, n_trials=n_trials, progress_file=path)


def _without_seconds(trials):
    return [{k: v for k, v in t.items() if k != "seconds"} for t in trials]


def test_a_stopped_search_replays_its_finished_trials_and_chooses_the_same(tmp_path):
    whole = _model()
    chosen, trials, summary = _search(whole, None)
    assert {t["state"] for t in trials} >= {"complete", "pruned"}  # the pruner's history is part of the replay
    path = tmp_path / ".search-job.json"
    with pytest.raises(Stop):
        _search(_model(stop_at=5), path)
    saved = json.loads(path.read_text())["trials"]
    assert len(saved) == 5 and all("proposal" in t and "reports" in t for t in saved)
    resumed = _model()
    chosen_r, trials_r, summary_r = _search(resumed, path)
    assert chosen_r == chosen and _without_seconds(trials_r) == _without_seconds(trials)
    assert type(resumed).fits == type(whole).fits[5:]  # only the trials the stopped run had not finished
    assert summary_r["resumed_trials"] == 5 and "resumed_trials" not in summary
    assert summary_r["resumed_seconds"] == round(sum(t["seconds"] for t in saved), 2)  # counted in the job's compute
    assert [t["seconds"] for t in trials_r[:5]] == [t["seconds"] for t in saved]


def test_a_progress_file_of_another_search_is_ignored(tmp_path):
    path = tmp_path / ".search-job.json"
    with pytest.raises(Stop):
        _search(_model(stop_at=4), path, n_trials=8)  # another budget: another fingerprint
    model = _model()
    chosen, trials, summary = _search(model, path)
    assert "resumed_trials" not in summary and len(type(model).fits) == 9
    assert chosen == _search(_model(), None)[0]
    path.write_text("{not json")  # damaged: the search runs afresh and replaces it
    model = _model()
    _search(model, path)
    assert len(type(model).fits) == 9 and len(json.loads(path.read_text())["trials"]) == 9


def test_the_search_file_lives_in_the_jobs_folder_until_the_job_is_stored(tmp_path, monkeypatch):
    store = Store(tmp_path / "store")
    (job,) = runner.plan(["mock"], ["lasso"], targets=["score"], profile="cpu", folds=[0], trials=3)
    path = search_progress_path(runner.RunSettings(checkpoint_dir=str(store.jobs_dir)), job)
    assert path.parent == store.jobs_dir and path.name.startswith(".")  # a store's listing skips it
    seen = []
    real_add = runner.SearchProgress.add

    def watching(self, *args):
        real_add(self, *args)
        seen.append((self.path, len(json.loads(self.path.read_text())["trials"])))

    monkeypatch.setattr(runner.SearchProgress, "add", watching)
    summary = runner.run([job], store, runner.RunSettings(isolate=False))
    assert summary["done"] == 1 and seen == [(path, 1), (path, 2), (path, 3)]
    assert store.has_job(job.job_id) and not path.exists()


def test_kept_trials_of_other_model_code_are_not_replayed(tmp_path, monkeypatch):
    from synbench import neural

    path = tmp_path / ".search-job.json"
    with pytest.raises(Stop):
        _search(_model(stop_at=4), path)
    monkeypatch.setattr(runner, "model_code", lambda model: "edited")  # the plugin's module changed since
    model = _model()
    _, _, summary = _search(model, path)
    assert "resumed_trials" not in summary and len(type(model).fits) == 9
    assert neural.model_code(_model()) == neural.model_code(_model()) != "edited"


def test_a_malformed_kept_trial_ends_the_replay_there(tmp_path):
    path = tmp_path / ".search-job.json"
    with pytest.raises(Stop):
        _search(_model(stop_at=5), path)
    kept = json.loads(path.read_text())
    complete = next(i for i, t in enumerate(kept["trials"]) if t["state"] == "complete" and i > 0)
    kept["trials"][complete]["value"] = None  # a finished trial without its score (a hand-edited file)
    path.write_text(json.dumps(kept))
    model = _model()
    chosen, trials, summary = _search(model, path)
    assert summary["resumed_trials"] == complete and len(type(model).fits) == 9 - complete
    assert chosen == _search(_model(), None)[0]


def test_a_stored_job_leaves_no_kept_progress_behind(tmp_path):
    store = Store(tmp_path / "store")
    (job,) = runner.plan(["mock"], ["lasso"], targets=["score"], profile="smoke", folds=[0])
    runner.run([job], store, runner.RunSettings(isolate=False))
    settings = runner.RunSettings(checkpoint_dir=str(store.jobs_dir))
    stale = search_progress_path(settings, job)  # a racing run stored the job first; this one had kept trials
    stale.write_text("{}")
    assert runner.execute(job, store, runner.RunSettings(isolate=False)) is None
    assert not stale.exists()


def test_a_search_that_cannot_reuse_its_kept_trials_says_why(tmp_path, caplog):
    """Hours of kept trials go when the model's code is edited (it is part of their fingerprint): the
    run's output says which part of the fingerprint changed, so the loss is seen when it happens."""
    path = tmp_path / ".search-job.json"
    with pytest.raises(Stop):
        _search(_model(stop_at=4), path, n_trials=8)
    with caplog.at_level("WARNING", logger="synbench.runner"):
        _search(_model(), path)
    assert "the 4 search trials kept in .search-job.json are not reused, as the trial budget changed" in caplog.text
    caplog.clear()
    saved = json.loads(path.read_text())
    assert len(saved["trials"]) == 9
    now, saved["fingerprint"]["code"] = saved["fingerprint"]["code"], "0" * 16
    path.write_text(json.dumps(saved))
    with caplog.at_level("WARNING", logger="synbench.runner"):
        model = _model()
        _search(model, path)
    assert len(type(model).fits) == 9
    assert (f"the 9 search trials kept in .search-job.json are not reused, as the code of the model or of the harness's "
            f"training modules (digest {'0' * 16} then, {now} now) changed: the search starts afresh") in caplog.text
    caplog.clear()
    with caplog.at_level("WARNING", logger="synbench.runner"):
        model = _model()
        _search(model, path)  # its own trials again: replayed without a word
    assert type(model).fits == [] and "not reused" not in caplog.text


def test_kept_work_this_code_would_not_reuse_is_listed_with_its_cost(tmp_path):
    """``benchmarks/streams.sh start`` refuses code that would redo hours of the stores' kept work:
    it asks for the kept trials and finished phases whose code digest is not this checkout's."""
    import optuna
    import torch

    from synbench.neural import model_code

    jobs = tmp_path / "jobs"
    jobs.mkdir()
    this_code, other_code = model_code(get_registry().model("lasso")()), "0" * 16

    def search(job_id, code, seconds):
        kept = {"fingerprint": {"code": code, "n_trials": 12}, "trials": [{"seconds": s} for s in seconds]}
        (jobs / f".search-{job_id}.json").write_text(json.dumps(kept))

    def phase(job_id, code, seconds):
        torch.save({"fingerprint": json.dumps({"code": code}), "phases": {"select-done": {"seconds": seconds}}},
                   jobs / f".progress-{job_id}.pt")

    search("mock.score.lasso.f0.aaaaaaaaaaaa", this_code, [10.0])  # this checkout's: reused
    search("mock.score.lasso.f1.bbbbbbbbbbbb", other_code, [30.0, 20.0])
    phase("mock.score.lasso.f2.cccccccccccc", other_code, 25.0)
    phase("mock.score.lasso.f3.dddddddddddd", this_code, 5.0)
    (jobs / ".search-mock.score.lasso.f4.eeeeeeeeeeee.json").write_text("{damaged")  # reused by nobody: not counted
    # trials another optuna proposed: the run's fingerprint names the version, so they are not replayed
    kept = {"fingerprint": {"code": this_code, "optuna": "0.0.1", "n_trials": 12}, "trials": [{"seconds": 7.0}]}
    (jobs / ".search-mock.score.lasso.f5.ffffffffffff.json").write_text(json.dumps(kept))
    assert runner.foreign_kept_work(jobs) == [(".search-mock.score.lasso.f1.bbbbbbbbbbbb.json", 50.0, "other code"),
                                              (".search-mock.score.lasso.f5.ffffffffffff.json", 7.0, "optuna 0.0.1"),
                                              (".progress-mock.score.lasso.f2.cccccccccccc.pt", 25.0, "other code")]
    kept["fingerprint"]["optuna"] = optuna.__version__
    (jobs / ".search-mock.score.lasso.f5.ffffffffffff.json").write_text(json.dumps(kept))
    assert [name for name, _, _ in runner.foreign_kept_work(jobs)] == [".search-mock.score.lasso.f1.bbbbbbbbbbbb.json",
                                                                        ".progress-mock.score.lasso.f2.cccccccccccc.pt"]
