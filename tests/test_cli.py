import json
import subprocess
import sys
from pathlib import Path

import pytest

from synbench import runner


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "synbench.cli", *args], capture_output=True, text=True, timeout=300)


def test_help_explains_every_command():
    res = _cli("--help")
    assert res.returncode == 0
    for cmd in ("plugins", "datasets", "run", "leaderboard", "report", "verify"):
        assert cmd in res.stdout
    run_help = _cli("run", "--help").stdout
    for option in ("--dataset", "--model", "--target", "--profile", "--executor", "--out", "--data-dir", "--split",
                   "--no-constant", "--no-feature-cache"):
        assert option in run_help
    # on/off flags are single switches, as the README writes them, not "--x / --no-x" pairs
    for cmd in ("run", "leaderboard", "report", "verify"):
        assert "--no-no-" not in _cli(cmd, "--help").stdout
    assert "--no-all-metrics" not in _cli("leaderboard", "--help").stdout


def test_plugins_lists_every_kind_with_origin():
    res = _cli("plugins")
    assert res.returncode == 0
    for name in ("d1-oneil", "mock", "chem", "expression", "constant", "lasso", "svm", "treecomb", "pcc", "roc_auc"):
        assert any(name in line and "synbench" in line for line in res.stdout.splitlines()), name
    assert _cli("plugins", "--kind", "modle").returncode == 2


def test_run_then_leaderboard(tmp_path):
    out = tmp_path / "store"
    res = _cli("run", "-d", "mock", "-m", "lasso", "--profile", "smoke", "--out", str(out))  # constant is added
    assert res.returncode == 0, res.stderr
    assert "20 jobs planned" in res.stderr and "finished: 20 run" in res.stderr
    again = _cli("run", "-d", "mock", "-m", "constant,lasso", "--profile", "smoke", "--out", str(out))
    assert "20 already in" in again.stderr and "finished: 0 run, 20 skipped" in again.stderr
    invocations = (out / "invocations.jsonl").read_text().splitlines()
    assert len(invocations) == 2 and json.loads(invocations[0])["command"].startswith("synbench run")
    board = _cli("leaderboard", str(out))
    assert board.returncode == 0, board.stderr
    md = (out / "leaderboard.md").read_text()
    assert "lasso" in md and "constant" in md and "mock/score pcc" in md and "avg rank roc_auc" in md
    assert (out / "leaderboard.csv").read_text().startswith("model,featurizers,profile,protocol,dataset,target")
    provenance = (out / "PROVENANCE.md").read_text()
    assert "synbench run -d mock" in provenance and "20 finished jobs" in provenance and "scikit-learn" in provenance
    everything = _cli("leaderboard", str(out), "--all-metrics", "--no-write")
    assert "spearman" in everything.stdout and "kappa" in everything.stdout


def test_process_executor_gives_the_same_metrics(tmp_path):
    args = ["-d", "mock", "-m", "treecomb", "-t", "score", "--profile", "smoke", "--folds", "0,1", "--no-constant"]
    a = _cli("run", *args, "--out", str(tmp_path / "a"))
    b = _cli("run", *args, "--out", str(tmp_path / "b"), "--executor", "process", "--jobs", "2")
    assert a.returncode == 0 and b.returncode == 0, b.stderr
    from synbench.store import Store

    fa = Store(tmp_path / "a", create=False).metrics_frame().set_index(["job_id", "metric"])["value"].sort_index()
    fb = Store(tmp_path / "b", create=False).metrics_frame().set_index(["job_id", "metric"])["value"].sort_index()
    assert fa.to_dict() == pytest.approx(fb.to_dict())


def test_leaderboard_counts_a_constant_fold_as_zero_not_as_missing():
    import numpy as np
    import pandas as pd

    from synbench.leaderboard import build

    rows = []
    for model, pccs, mses in (("good", [0.8, 0.7], [1.0, 2.0]), ("flat", [0.5, np.nan], [3.0, 3.0]), ("bad", [0.1, 0.2], [9.0, 9.0])):
        for fold, (pcc, mse) in enumerate(zip(pccs, mses)):
            for metric, value in (("pcc", pcc), ("mse", mse)):
                rows.append({"model": model, "featurizers": "", "profile": "cpu", "dataset": "d", "target": "t",
                             "split": "published", "fold": fold, "metric": metric, "value": value})
    board = build(pd.DataFrame(rows), ["pcc", "mse"])
    ranks = board.ranks.set_index(["model", "metric"])["avg_rank"]
    # flat's undefined fold (a constant prediction in an old record) scores 0: mean 0.25, not 0.5
    assert ranks[("good", "pcc")] == 1 and ranks[("flat", "pcc")] == 2 and ranks[("bad", "pcc")] == 3
    assert ranks[("good", "mse")] == 1 and ranks[("flat", "mse")] == 2 and ranks[("bad", "mse")] == 3
    wide = board.wide().set_index("model")
    assert wide.loc["flat", "d/t pcc"] == f"0.250 ± {np.std([0.5, 0.0], ddof=1):.3f} (1/2 folds constant, scored 0)"
    assert wide.loc["good", "d/t pcc"] == f"0.750 ± {np.std([0.8, 0.7], ddof=1):.3f}"


def test_leaderboard_orders_methods_by_their_ranks_so_far():
    # a method still running the folds of one target is placed by the cells it has finished
    import pandas as pd

    from synbench.leaderboard import build

    rows = []
    for model, t1, t2 in (("old", [0.5, 0.6], [0.80, 0.82]), ("new", [0.7, 0.8], [0.90])):
        for target, metric, values in (("t1", "pcc", t1), ("t2", "accuracy", t2)):
            rows += [{"model": model, "featurizers": "", "profile": "cpu", "dataset": "d", "target": target,
                      "split": "published", "fold": fold, "metric": metric, "value": v} for fold, v in enumerate(values)]
    wide = build(pd.DataFrame(rows), ["pcc", "accuracy"]).wide()
    assert list(wide["model"]) == ["new", "old"]
    assert wide.set_index("model").loc["new", "d/t2 accuracy"] == "0.900 (1/2 folds)"


def test_a_method_ranked_in_some_cells_of_a_metric_is_not_placed_above_those_ranked_in_all():
    # 'early' has finished one target of three and is best there; its average over that one cell
    # (1.00) must not put it above methods ranked in all three, and the board says it is partial
    import pandas as pd

    from synbench.leaderboard import build, rank_order

    rows = []
    for model, per_target in (("early", {"t1": 0.9}), ("steady", {"t1": 0.7, "t2": 0.7, "t3": 0.7}),
                              ("weak", {"t1": 0.5, "t2": 0.5, "t3": 0.5})):
        for target, value in per_target.items():
            rows += [{"model": model, "featurizers": "", "profile": "cpu", "dataset": "d", "target": target,
                      "split": "published", "fold": fold, "metric": "pcc", "value": value + 0.01 * fold} for fold in (0, 1)]
    board = build(pd.DataFrame(rows), ["pcc"])
    wide = board.wide().set_index("model")
    assert list(wide.index) == ["steady", "weak", "early"]
    assert wide.loc["early", "avg rank pcc"] == "1.00 (1/3 cells)" and wide.loc["steady", "avg rank pcc"] == 4 / 3
    ranks = board.ranks.assign(method=board.ranks["model"])
    table, order = rank_order(ranks, "method")
    assert order == ["steady", "weak", "early"] and table.loc["weak", "pcc"] == 7 / 3


def test_a_grid_stored_half_way_is_partial_for_every_method():
    # every method has folds 0-1 of a 5-fold split (a run still going, or --folds 0,1): the board
    # must not call two folds a complete mean, nor rank methods on them
    import numpy as np
    import pandas as pd

    from synbench.leaderboard import build

    rows = [{"model": model, "featurizers": "", "profile": "cpu", "dataset": "d", "target": "t", "split": "random",
             "n_folds": 5, "fold": fold, "metric": "pcc", "value": v}
            for model, values in (("a", [0.5, 0.6]), ("b", [0.7, 0.8])) for fold, v in enumerate(values)]
    board = build(pd.DataFrame(rows), ["pcc"])
    wide = board.wide().set_index("model")
    assert wide.loc["b", "d/t pcc"] == f"0.750 ± {np.std([0.7, 0.8], ddof=1):.3f} (2/5 folds)"
    assert board.ranks["avg_rank"].isna().all()
    # once both have every declared fold, they are complete and ranked
    rows += [{**rows[0], "model": model, "fold": fold, "value": 0.5} for model in ("a", "b") for fold in (2, 3, 4)]
    board = build(pd.DataFrame(rows), ["pcc"])
    assert "folds)" not in board.wide().set_index("model").loc["b", "d/t pcc"]
    assert board.ranks.set_index("model")["avg_rank"].to_dict() == {"b": 1.0, "a": 2.0}


def test_leaderboard_keeps_split_schemes_apart():
    import pandas as pd

    from synbench.leaderboard import build

    rows = [{"model": "m", "featurizers": "", "profile": "cpu", "dataset": "d", "target": "t", "split": split,
             "fold": fold, "metric": "pcc", "value": value}
            for split, value in (("random", 0.8), ("leave-drug-out", 0.2)) for fold in range(2)]
    wide = build(pd.DataFrame(rows), ["pcc"]).wide().set_index("model")
    assert wide.loc["m", "d [random]/t pcc"].startswith("0.800")
    assert wide.loc["m", "d [leave-drug-out]/t pcc"].startswith("0.200")


def test_featurizer_options_with_commas_stay_one_spec():
    from synbench.cli import _split_featurizers

    assert _split_featurizers(["chem:radius=2,n_bits=256,expression", "llm-description:encoder=openai,model=m"]) == [
        "chem:radius=2,n_bits=256", "expression", "llm-description:encoder=openai,model=m"]
    assert _split_featurizers(["chem,expression:n_genes=5"]) == ["chem", "expression:n_genes=5"]


def test_fixed_parameters_keep_ablations_apart(tmp_path):
    from synbench.leaderboard import method_of

    job = {"model": "baitsao", "featurizers": ["llm-description"], "profile": "cpu", "params": {"combine": "sum"}}
    assert method_of(job)[:3] == ("baitsao", "llm-description", "cpu combine=sum")
    assert method_of({**job, "params": {}})[2] == "cpu"
    # the search protocol is part of a method: the same model under table1 and strong are two rows
    assert method_of({**job, "protocol": "strong"})[3] == "strong"
    assert method_of({**job, "protocol": "table1"}) != method_of({**job, "protocol": "strong"})


def test_long_jobs_report_their_progress(tmp_path):
    # `synbench run` shows these beside the job's name (and prints one a minute into a log file)
    from synbench import runner
    from synbench.progress import listening
    from synbench.store import Store

    messages = []
    jobs = runner.plan(["mock"], ["baitsao"], targets=["score"], folds=[0], profile="smoke")
    with listening(messages.append):
        runner.run(jobs, Store(tmp_path / "s"))
    after_search = messages[messages.index("final fit"):]
    epochs = [m for m in after_search if m.startswith("epoch ")]
    assert epochs and all("validation loss" in m for m in epochs)


def test_dry_run_reports_where_a_long_run_stands_and_writes_nothing(tmp_path):
    out = tmp_path / "store"
    args = ["run", "-d", "mock", "-m", "lasso", "-t", "score", "--profile", "smoke", "--no-constant", "--out", str(out)]
    assert _cli(*args, "--folds", "0,1").returncode == 0
    invocations = (out / "invocations.jsonl").read_text()
    (out / "jobs" / ".lock-someone-else").touch()  # unrelated lock files are not counted
    jobs_before = sorted(p.name for p in (out / "jobs").iterdir())
    res = _cli(*args, "--dry-run")
    assert res.returncode == 0, res.stderr
    row = next(line for line in res.stdout.splitlines() if "lasso" in line)
    assert "3 (2,3,4)" in row and "min" in row  # folds 2-4 pending, timed from the two finished ones
    assert "5 jobs planned: 2 done, 0 locked" in res.stdout and "nothing was run" in res.stdout
    assert (out / "invocations.jsonl").read_text() == invocations
    assert sorted(p.name for p in (out / "jobs").iterdir()) == jobs_before
    assert "kept from a stopped run" not in res.stdout  # the column shows only when there is something
    # a run stopped during fold 2's search left 4 of its 12 trials: the dry run says so
    fold2 = next(j for j in runner.plan(["mock"], ["lasso"], targets=["score"], profile="smoke") if j.fold == 2)
    search = runner.search_progress_path(runner.RunSettings(checkpoint_dir=str(out / "jobs")), fold2)
    search.write_text(json.dumps({"fingerprint": {"n_trials": 12}, "trials": [{}] * 4}))
    res = _cli(*args, "--dry-run")
    assert "kept from a stopped run" in res.stdout and "fold 2: 4/12 trials" in res.stdout
    fresh = _cli("run", "-d", "mock", "-m", "lasso", "--profile", "smoke", "--out", str(tmp_path / "new"), "--dry-run")
    assert fresh.returncode == 0 and "20 pending" in fresh.stdout and not (tmp_path / "new").exists()


def test_plan_status_scales_a_rough_estimate_by_the_trials_its_own_unfinished_jobs_kept(tmp_path):
    from synbench import runner
    from synbench.store import Store

    store = Store(tmp_path / "s")
    runner.run(runner.plan(["mock"], ["lasso"], targets=["score"], profile="smoke", folds=[0], trials=2), store)
    (record,) = list(store.records())
    trial = runner._mean_trial_seconds(record["search"])
    assert trial > 0
    # a variant whose search has kept trials 10 times as slow as the stored run's (both drug orders
    # make an SVM's trials some 12 times slower) is estimated at 10 times that run's cost, not at it
    variant = runner.plan(["mock"], ["lasso"], targets=["score"], profile="smoke", folds=[0, 1], trials=2,
                          params={"combine": "concat"})
    rough = runner.plan_status(variant, store)
    assert rough["est_basis"].tolist() == ["other settings"] * 2
    kept = {"fingerprint": {"n_trials": 2}, "trials": [
        {"state": "complete", "seconds": 10 * trial, "value": 1.0, "proposal": {}, "reports": []},
        {"state": "pruned", "seconds": 0.001, "value": None, "proposal": {}, "reports": []}]}  # pruned: not a full trial's cost
    runner.search_progress_path(runner.RunSettings(checkpoint_dir=str(store.jobs_dir)), variant[0]).write_text(json.dumps(kept))
    scaled = runner.plan_status(variant, store)
    assert scaled["est_basis"].tolist() == ["other settings, scaled"] * 2  # fold 1 too: the settings, not the fold, set the cost
    assert scaled["est_seconds"].tolist() == pytest.approx([10 * runner.compute_seconds(record)] * 2)
    res = _cli("run", "-d", "mock", "-m", "lasso", "-t", "score", "--profile", "smoke", "--folds", "0,1", "--trials", "2",
               "-p", "combine=concat", "--out", str(store.root), "--dry-run")
    assert res.returncode == 0, res.stderr
    assert "2 scaled by the search trials their settings' unfinished jobs kept" in res.stdout


def test_plan_status_says_when_a_rough_estimate_leaves_out_the_search_its_job_will_run(tmp_path):
    """A searched job estimated from unsearched runs (DeepSynergy's ``strong`` folds from its ``table1``
    ones) would be promised the fit's time alone: the dry run marks the estimate a floor."""
    from synbench import runner
    from synbench.store import Store

    store = Store(tmp_path / "s")
    runner.run(runner.plan(["mock"], ["lasso"], targets=["score"], profile="smoke", folds=[0]), store)  # smoke: no search
    (record,) = list(store.records())
    assert not record["search"]
    searched = runner.plan(["mock"], ["lasso"], targets=["score"], profile="smoke", folds=[0, 1], trials=2)
    status = runner.plan_status(searched, store)
    assert status["est_basis"].tolist() == ["other settings, search not counted"] * 2
    assert status["est_seconds"].tolist() == pytest.approx([runner.compute_seconds(record)] * 2)
    res = _cli("run", "-d", "mock", "-m", "lasso", "-t", "score", "--profile", "smoke", "--folds", "0,1", "--trials", "2",
               "--out", str(store.root), "--dry-run")
    assert res.returncode == 0, res.stderr
    row = next(line for line in res.stdout.splitlines() if "lasso" in line)
    assert "~" in row and "+ search" in row
    assert "at least" in res.stdout and "2 of them (+ search) will search but were estimated from runs that did not" in res.stdout
    # an unsearched variant of the same run is estimated as before, and once a searched run of the
    # model is stored, the model's searched cost is in the pool and nothing is left out
    unsearched = runner.plan(["mock"], ["lasso"], targets=["score"], profile="smoke", folds=[0], params={"alpha": 0.5})
    assert runner.plan_status(unsearched, store)["est_basis"].tolist() == ["other settings"]
    runner.run(searched[:1], store)
    variant = runner.plan(["mock"], ["lasso"], targets=["score"], profile="smoke", folds=[0], trials=3)
    assert runner.plan_status(variant, store)["est_basis"].tolist() == ["other settings"]


def test_plan_status_adds_the_search_its_settings_unfinished_jobs_timed_to_an_unsearched_estimate(tmp_path):
    """Once fold 0 of DeepSynergy's ``strong`` ZIP run has kept trials, its pending folds are estimated
    at the unsearched ``table1`` folds' cost plus their trial count times the kept trials' mean cost
    (pruned ones included: they are part of what a search spends), not left a floor."""
    from synbench import runner
    from synbench.store import Store

    store = Store(tmp_path / "s")
    runner.run(runner.plan(["mock"], ["lasso"], targets=["score"], profile="smoke", folds=[0]), store)  # no search
    (record,) = list(store.records())
    searched = runner.plan(["mock"], ["lasso"], targets=["score"], profile="smoke", folds=[0, 1], trials=4)
    kept = {"fingerprint": {"n_trials": 4}, "trials": [
        {"state": "complete", "seconds": 30.0, "value": 1.0, "proposal": {}, "reports": []},
        {"state": "pruned", "seconds": 10.0, "value": None, "proposal": {}, "reports": []}]}
    runner.search_progress_path(runner.RunSettings(checkpoint_dir=str(store.jobs_dir)), searched[0]).write_text(json.dumps(kept))
    status = runner.plan_status(searched, store)
    assert status["est_basis"].tolist() == ["other settings, search from kept trials"] * 2
    assert status["est_seconds"].tolist() == pytest.approx([runner.compute_seconds(record) + 4 * 20.0] * 2)
    # fold 0's next run resumes from its two kept trials: the 40 seconds they spent are not left to do
    estimate = status["est_seconds"].iloc[0]
    assert status["est_remaining_seconds"].tolist() == pytest.approx([estimate - 40.0, estimate])
    res = _cli("run", "-d", "mock", "-m", "lasso", "-t", "score", "--profile", "smoke", "--folds", "0,1", "--trials", "4",
               "--out", str(store.root), "--dry-run")
    assert res.returncode == 0, res.stderr
    row = next(line for line in res.stdout.splitlines() if "lasso" in line)
    assert "~" in row and "+ search" not in row and "fold 0: 2/4 trials" in row
    assert "at least" not in res.stdout
    assert "(less 1 min of work that the trials and training phases kept by 1 of them already did)" in res.stdout
    assert "2 with their search added from the trials their settings' unfinished jobs kept" in res.stdout
    # a finished training phase kept in the durable progress file (DeepSynergy's selection run) is
    # work done too: fold 1's next run skips it
    import torch

    state = runner.training_state_path(runner.RunSettings(checkpoint_dir=str(store.jobs_dir)), searched[1])
    torch.save({"fingerprint": "{}", "phases": {"select-done": {"seconds": 25.0, "train_loss": [1.0]}}},
               runner.progress_path(state))
    status = runner.plan_status(searched, store)
    assert status["est_remaining_seconds"].tolist() == pytest.approx([estimate - 40.0, estimate - 25.0])
    runner.progress_path(state).write_bytes(b"not a torch file")  # damaged: the run ignores it, so does the estimate
    assert runner.plan_status(searched, store)["est_remaining_seconds"].iloc[1] == pytest.approx(estimate)
    # a job another run is computing is not pending, but what its estimate leaves (less the trials it
    # kept so far) is how long until that run is done
    with store.claim(searched[0].job_id):
        res = _cli("run", "-d", "mock", "-m", "lasso", "-t", "score", "--profile", "smoke", "--folds", "0,1",
                   "--trials", "4", "--out", str(store.root), "--dry-run")
    assert res.returncode == 0, res.stderr
    from synbench.cli import _duration

    assert f"1 locked (another run is computing them; about {_duration(estimate - 40.0)} of it left by the estimate)" in res.stdout
    assert "estimated compute for the pending jobs: " + _duration(estimate) in res.stdout  # fold 1 alone
    # what other code kept (the model's module or the training code was edited since) is done again by
    # the next run, which ignores it: marked, and left in the estimate
    from synbench.neural import model_code
    from synbench.registry import get_registry

    kept["fingerprint"]["code"] = "0" * 16
    runner.search_progress_path(runner.RunSettings(checkpoint_dir=str(store.jobs_dir)), searched[0]).write_text(json.dumps(kept))
    torch.save({"fingerprint": json.dumps({"code": "0" * 16}), "phases": {"select-done": {"seconds": 25.0}}}, runner.progress_path(state))
    status = runner.plan_status(searched, store)
    assert status["est_remaining_seconds"].tolist() == pytest.approx([estimate, estimate])
    assert status["foreign_seconds"].tolist() == pytest.approx([40.0, 25.0])
    res = _cli("run", "-d", "mock", "-m", "lasso", "-t", "score", "--profile", "smoke", "--folds", "0,1", "--trials", "4",
               "--out", str(store.root), "--dry-run")
    assert res.returncode == 0, res.stderr
    assert "fold 0: 2/4 trials (other code); fold 1: a finished training phase (other code)" in res.stdout
    assert f"2 of the pending jobs kept work ({_duration(65.0)}) that this checkout would not reuse" in res.stdout
    assert "already did" not in res.stdout
    kept["fingerprint"]["code"] = model_code(get_registry().model("lasso")())  # this checkout's: its next run reuses them
    runner.search_progress_path(runner.RunSettings(checkpoint_dir=str(store.jobs_dir)), searched[0]).write_text(json.dumps(kept))
    status = runner.plan_status(searched, store)
    assert status["est_remaining_seconds"].tolist() == pytest.approx([estimate - 40.0, estimate])
    assert status["kept"].iloc[0] == "2/4 trials"


def test_plan_status_estimates_other_seeds_from_stored_folds_with_their_resumed_work(tmp_path):
    from synbench import runner
    from synbench.store import Store

    store = Store(tmp_path / "s")
    runner.run(runner.plan(["mock"], ["lasso"], targets=["score"], profile="smoke", folds=[0]), store)
    (record,) = list(store.records())
    later_seeds = runner.plan(["mock"], ["lasso"], targets=["score"], profile="smoke", folds=[1], seeds=[1, 2])
    status = runner.plan_status(later_seeds, store)
    assert (status["status"] == "pending").all()
    assert status["est_seconds"].tolist() == pytest.approx([runner.compute_seconds(record)] * 2)
    # a variant (-p) with no finished fold of its own is estimated, roughly, from the model's other runs
    variant = runner.plan(["mock"], ["lasso"], targets=["score"], profile="smoke", folds=[0], params={"alpha": 0.5})
    rough = runner.plan_status(variant, store)
    assert rough["est_basis"].tolist() == ["other settings"] and status["est_basis"].tolist() == ["same configuration"] * 2
    assert rough["est_seconds"].tolist() == pytest.approx([runner.compute_seconds(record)])
    other_split = runner.plan(["mock"], ["lasso"], targets=["score"], profile="smoke", folds=[0], split="leave-tissue-out")
    rougher = runner.plan_status(other_split, store)
    assert rougher["est_basis"].tolist() == ["other split"] and rougher["est_seconds"].tolist() == rough["est_seconds"].tolist()
    other_model = runner.plan(["mock"], ["svm"], targets=["score"], profile="smoke", folds=[0])
    assert runner.plan_status(other_model, store)["est_seconds"].isna().all()
    # a job whose search resumed from kept trials and whose fit resumed at a kept epoch cost the
    # seconds of the earlier processes too, not only those of the process that stored it
    resumed = {"timing": {"featurize_seconds": 1.0, "search_seconds": 2.0, "fit_seconds": 3.0, "predict_seconds": 0.5},
               "search_summary": {"resumed_seconds": 40.0}, "training": {"selection": {"seconds": 30.0}, "refit": {"seconds": 20.0}}}
    assert runner.compute_seconds(resumed) == pytest.approx(1.0 + 2.0 + 50.0 + 0.5 + 40.0)
    assert runner.compute_seconds({"timing": {"fit_seconds": 3.0}}) == 3.0


def test_plan_status_estimates_only_from_jobs_computed_on_this_machines_kind_of_device(tmp_path, monkeypatch):
    """A GPU's record (MARSY's ZIP folds: 72-90 s there, about an hour on one CPU thread) never
    estimates a CPU's pending job: the estimate falls back to the CPU's own records."""
    from synbench import runner
    from synbench.store import Store

    monkeypatch.setenv("SYNBENCH_DEVICE", "cpu")
    store = Store(tmp_path / "s")
    runner.run(runner.plan(["mock"], ["lasso"], targets=["score"], profile="smoke", folds=[0, 1]), store)
    records = {r["job"]["fold"]: r for r in store.records()}
    gpu = store.jobs_dir / records[0]["job_id"] / "record.json"
    on_gpu = json.loads(gpu.read_text())
    on_gpu["resources"]["device"] = "cuda:0"
    on_gpu["timing"]["fit_seconds"] = 1e6
    gpu.write_text(json.dumps(on_gpu))
    later = runner.plan(["mock"], ["lasso"], targets=["score"], profile="smoke", folds=[2])
    status = runner.plan_status(later, store)
    assert status["est_basis"].tolist() == ["same configuration"]
    assert status["est_seconds"].tolist() == pytest.approx([runner.compute_seconds(records[1])])
    assert runner.record_device(on_gpu) == "cuda" and runner.record_device({}) == "cpu"


def test_plan_status_marks_jobs_another_run_holds(tmp_path):
    from synbench import runner
    from synbench.store import Store

    store = Store(tmp_path / "s")
    plan = runner.plan(["mock"], ["lasso"], targets=["score"], profile="smoke", folds=[0, 1, 2])
    runner.run(plan[:1], store)
    with store.claim(plan[1].job_id):
        status = runner.plan_status(plan, store).set_index("fold")["status"]
    assert status.to_dict() == {0: "done", 1: "locked", 2: "pending"}
    assert runner.plan_status(plan, store).set_index("fold")["status"].to_dict() == {0: "done", 1: "pending", 2: "pending"}
    # a lock file no process holds (a run killed with SIGKILL, a machine that stopped) is not a run
    # in progress: the job is pending, and the next run takes it over
    store._lock_path(plan[2].job_id).touch()
    if Path("/proc/locks").is_file():
        status = runner.plan_status(plan, store).set_index("fold")
        assert status["status"].to_dict() == {0: "done", 1: "pending", 2: "pending"}
        assert status["stale_lock"].to_dict() == {0: False, 1: False, 2: True}
        with store.claim(plan[1].job_id):
            assert store.lock_state(plan[1].job_id) == "held" and store.lock_state(plan[2].job_id) == "stale"
    assert store.lock_state(plan[0].job_id) is None
    runner.run(plan[2:], store)  # the stale file does not stop a run
    assert runner.plan_status(plan, store).set_index("fold")["status"].to_dict() == {0: "done", 1: "pending", 2: "done"}
