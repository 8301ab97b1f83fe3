"""Fair by construction: search protocols, equal trials, target scaling, pair-aware designs,
failed folds, seeds, replicate-aware splits and the baseline-strength table."""

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from synbench.base import Integer, Real
from synbench.runner import Job, RunSettings, SharedInputs, compute, edge_params, plan
from synbench.splits import fold_ids, make_splits, replicate_keys
from synbench.store import Store

CLASSICAL = ["lasso", "elastic-net", "svm", "treecomb", "random-forest"]


def _cli(*args, env=None):
    import os

    return subprocess.run([sys.executable, "-m", "synbench.cli", *args], capture_output=True, text=True, timeout=600,
                          env={**os.environ, **(env or {})})


def test_protocol_is_part_of_job_identity_and_of_the_method():
    from synbench.leaderboard import method_of

    jobs = plan(["mock"], ["svm"], targets=["score"], profile="quick", folds=[0], protocols=("strong", "table1"))
    by_protocol = {j.protocol: j for j in jobs}
    assert set(by_protocol) == {"strong", "table1"}
    assert by_protocol["strong"].job_id != by_protocol["table1"].job_id
    assert method_of(by_protocol["strong"].to_dict()) != method_of(by_protocol["table1"].to_dict())
    # the protocol decides the space searched: Table 1's C in [1, 5], the strong one log-uniform and wider
    from synbench.registry import get_registry

    svm = get_registry().model("svm")
    assert svm.space_for("table1", "regression")["C"] == Real(1.0, 5.0)
    assert svm.space_for("strong", "regression")["C"].log and svm.space_for("strong", "regression")["C"].high >= 100


def test_a_record_written_before_protocols_keeps_its_id():
    # the reference stores hold records written without the protocol fields: their ids must not move,
    # or a resumed run would recompute them and the dry run would count them as pending
    from pathlib import Path

    records = sorted((Path(__file__).parent.parent / "results" / "d1-oneil-cpu" / "jobs").glob("*/record.json"))
    legacy = [json.loads(p.read_text()) for p in records[:50]]
    legacy = [r for r in legacy if "protocol" not in r["job"]]
    assert legacy
    for record in legacy:
        assert Job.from_dict(record["job"]).job_id == record["job_id"]


def test_every_model_of_a_run_gets_the_same_number_of_trials():
    jobs = plan(["mock"], CLASSICAL + ["constant"], targets=["score"], profile="cpu", folds=[0])
    trials = {j.model: j.trials for j in jobs}
    assert {trials[m] for m in CLASSICAL} == {12} and trials["constant"] == 0
    assert {j.trials for j in plan(["mock"], CLASSICAL, targets=["score"], profile="cpu", folds=[0], trials=5)} == {5}
    # a parameter fixed with -p is not searched; with nothing left to search a model runs no trials
    assert plan(["mock"], ["svm"], targets=["score"], profile="cpu", folds=[0], params={"C": 1.0, "gamma_factor": 1.0})[0].trials == 0


def test_edge_of_range_is_flagged():
    space = {"C": Real(0.1, 100.0, log=True), "depth": Integer(4, 12), "lr": Real(0.0, 1.0)}
    assert edge_params({"C": 99.0, "depth": 4, "lr": 0.5}, space) == {"C": "high", "depth": "low"}
    assert edge_params({"C": 3.0, "depth": 8, "lr": 0.01}, space) == {"lr": "low"}


def test_a_parameters_own_limit_is_not_an_edge():
    from synbench.leaderboard import method_flags

    # a leaf size of 1 or a subsample of 1.0 cannot be widened: only the other side is an edge
    space = {"leaf": Integer(1, 20, limits=("low",)), "subsample": Real(0.5, 1.0, limits=("high",))}
    assert edge_params({"leaf": 1, "subsample": 1.0}, space) == {}
    assert edge_params({"leaf": 20, "subsample": 0.5}, space) == {"leaf": "high", "subsample": "low"}
    # records stored before the space declared its limits lose the flag on the board too
    record = {"job": {"model": "random-forest", "featurizers": ["chem"], "profile": "cpu", "protocol": "strong", "params": {}},
              "task": "regression", "params": {}, "target_scaling": {"method": "standardise"},
              "search_summary": {"n_trials": 12, "edge_params": {"min_samples_leaf": "low", "max_features": "high"}}}
    flags = method_flags([record]).iloc[0]["flags"]
    assert "max_features high" in flags and "min_samples_leaf" not in flags


def _mock_job(model, protocol="strong", params=(), target="score", fold=0, trials=0):
    return Job("mock", target, model, ("chem:n_bits=256", "expression:n_genes=500") if model != "constant" else (), "smoke",
               "published", 5, fold, 0, tuple(params), protocol, trials)


def _compute(job):
    from synbench.runner import load_job_data

    data = load_job_data(job.dataset, job.split)
    splits = make_splits(data, job.split, job.n_folds, job.seed)
    return compute(job, RunSettings(), SharedInputs(splits={job.split_key: splits})), data, splits


def test_strong_protocol_standardises_the_target_and_inverts_the_predictions():
    (record, predictions), data, splits = _compute(_mock_job("constant"))
    ids = fold_ids(splits, 0)
    train_labels = data.labels("score").loc[ids["train"].append(ids["valid"])]
    scaling = record["target_scaling"]
    assert scaling["mean"] == pytest.approx(train_labels.mean()) and scaling["std"] == pytest.approx(train_labels.std(ddof=0))
    # the constant learns 0 on the standardised target; inverted, that is the raw training mean
    assert np.allclose(predictions["y_pred"], train_labels.mean())
    (raw_record, _), _, _ = _compute(_mock_job("constant", protocol="table1"))
    assert raw_record["target_scaling"] is None
    # classification targets are never scaled
    (clf, _), _, _ = _compute(_mock_job("lasso", target="synergistic"))
    assert clf["target_scaling"] is None


def test_a_zero_shot_head_is_neither_scaled_nor_mapped_back():
    from synbench.leaderboard import method_flags

    # the head predicts in its pre-training data's units: mapping it "back" from a standardised
    # target it never saw multiplied D1 Loewe predictions by the training sd (MSE 76,905 for 562)
    jobs = [Job("mock", "score", "baitsao-zs", ("llm-description",), "smoke", "published", 5, 0, 0, (), protocol, 0)
            for protocol in ("strong", "table1")]
    (strong, strong_predictions), _, _ = _compute(jobs[0])
    (raw, raw_predictions), _, _ = _compute(jobs[1])
    np.testing.assert_allclose(strong_predictions["y_pred"], raw_predictions["y_pred"])
    np.testing.assert_allclose(strong_predictions["y_std"], raw_predictions["y_std"])
    assert strong["metrics"]["mse"] == pytest.approx(raw["metrics"]["mse"])
    assert strong["target_scaling"]["method"] == "none" and raw["target_scaling"] is None
    # the board owes a model that learns nothing from the labels no scaling flag
    assert "target" not in method_flags([strong]).iloc[0]["flags"]


def test_xgboost_refits_on_every_training_row_after_early_stopping_but_never_in_a_trial(monkeypatch, tmp_path):
    from synbench.plugins.models.treecomb import TreeCombModel

    calls = []
    original = TreeCombModel.refit_all
    monkeypatch.setattr(TreeCombModel, "refit_all", lambda self, rows: calls.append(len(rows)) or original(self, rows))
    job = _mock_job("treecomb", trials=3, params=(("n_estimators", 60),))
    (record, predictions), data, splits = _compute(job)
    ids = fold_ids(splits, 0)
    log = record["training"]
    # one refit, in the final fit, on the inner-training and validation rows together
    assert calls == [len(ids["train"]) + len(ids["valid"])] and record["params"]["refit"] is True
    assert log["refit"]["rows"] == len(ids["train"]) + len(ids["valid"]) and log["design_rows"] > 0
    assert log["refit"]["trees"] == max(1, round(log["best_trees"] * log["refit"]["design_rows"] / log["design_rows"]))
    assert log["refit"]["design_rows"] > log["design_rows"]  # the validation rows train now
    # the quick profile (the README's main job) keeps its minutes: no second forest
    from synbench.runner import job_space, resolve_profile

    quick = _mock_job("treecomb")
    _, fixed = job_space(TreeCombModel, resolve_profile(TreeCombModel, "quick"), quick, "regression")
    assert fixed["refit"] is False and fixed["early_stopping_rounds"] == 50
    # table1 never early-stops, so there is nothing to refit
    calls.clear()
    (table1, _), _, _ = _compute(_mock_job("treecomb", protocol="table1"))
    assert calls == [] and "refit" not in (table1["training"] or {})

    # a strong XGBoost job stored before the refit existed is recomputed by the next run that plans it
    from synbench.runner import run, stored

    store = Store(tmp_path / "s")
    jobs = plan(["mock"], ["treecomb"], targets=["score"], profile="smoke", folds=[0])
    run(jobs, store)
    path = store.jobs_dir / jobs[0].job_id / "record.json"
    old = json.loads(path.read_text())
    del old["params"]["refit"]
    path.write_text(json.dumps(old))
    assert not stored(Store(store.root), jobs[0])
    assert (store.jobs_dir / ".superseded").is_dir()


def test_concatenated_design_predicts_the_same_for_both_drug_orders():
    from synbench.data import Batch
    from synbench.plugins.models.treecomb import TreeCombModel
    from synbench.testing import mock_batches

    train, valid, test, _ = mock_batches(TreeCombModel, "regression")
    model = TreeCombModel(n_estimators=20, combine="concat").fit(train)
    swapped_rows = test.rows.copy()
    pairs = swapped_rows["n_drugs"] == 2
    swapped_rows.loc[pairs, ["drug_1", "drug_2"]] = swapped_rows.loc[pairs, ["drug_2", "drug_1"]].to_numpy()
    swapped = Batch(swapped_rows, test.features, test.task)
    assert np.allclose(model.predict(test), model.predict(swapped))
    # trained on every order of each row: twice the rows of a pair-only design
    X, y = model._design_xy(train)
    k = train.rows["n_drugs"].to_numpy()
    assert len(X) == int(sum(2 if n == 2 else 6 for n in k))


def test_a_failed_fold_counts_and_the_constant_is_never_named_best():
    from synbench.leaderboard import build
    from synbench.report import Labels, paired_tests

    rows = []
    for model, pccs in (("constant", [0.0] * 5), ("lasso", [0.4, 0.0, 0.5, 0.45, 0.0]), ("svm", [0.6, 0.62, 0.58, 0.61, 0.63])):
        rows += [{"model": model, "featurizers": "", "profile": "cpu", "protocol": "strong", "dataset": "d", "target": "t",
                  "split": "published", "fold": f, "seed": 0, "metric": "pcc", "value": v} for f, v in enumerate(pccs)]
    board = build(pd.DataFrame(rows), ["pcc"])
    summary = board.summary.set_index("model")
    assert summary.loc["lasso", "mean"] == pytest.approx(np.mean([0.4, 0.0, 0.5, 0.45, 0.0]))
    assert summary.loc["lasso", "rank"] < summary.loc["constant", "rank"]
    # even where the constant ranks first, the paired tests compare against the best real method
    frame = pd.DataFrame(rows)
    frame.loc[frame["model"] == "constant", "value"] = 0.9
    board = build(frame, ["pcc"])
    summary = board.summary.assign(method=[tuple(map(str, k)) for k in board.summary[["model", "featurizers", "profile", "protocol"]].to_numpy()])
    tests = paired_tests(frame, summary, Labels(frame))
    assert set(tests["best"]) == {"svm"}


def test_seeds_repeat_every_job_and_the_board_counts_seed_fold_pairs(tmp_path):
    jobs = plan(["mock"], ["lasso"], targets=["score"], profile="smoke", folds=[0, 1], seeds=[0, 1, 2])
    assert len(jobs) == 6 and len({j.job_id for j in jobs}) == 6 and {j.seed for j in jobs} == {0, 1, 2}
    from synbench.leaderboard import build

    rows = [{"model": "m", "featurizers": "", "profile": "cpu", "protocol": "strong", "dataset": "d", "target": "t",
             "split": "published", "fold": f, "seed": s, "metric": "pcc", "value": 0.5 + 0.01 * s + 0.001 * f}
            for s in range(3) for f in range(5)]
    cell = build(pd.DataFrame(rows), ["pcc"]).wide().iloc[0]["d/t pcc"]
    assert "folds)" not in cell  # 15 of 15 (seed, fold) values: complete
    partial = build(pd.DataFrame(rows[:-1]), ["pcc"]).wide().iloc[0]["d/t pcc"]
    assert partial.endswith("(14/15 folds)")


def test_random_folds_keep_replicates_and_both_drug_orders_together():
    from synbench.plugins.datasets.mock import make_mock

    data = make_mock()
    rows = data.combinations
    pairs = rows[rows["n_drugs"] == 2]
    # add a replicate of every pair, in the other drug order, with its own row id
    twins = pairs.copy()
    twins[["drug_1", "drug_2"]] = twins[["drug_2", "drug_1"]].to_numpy()
    twins.index = [f"{i}-twin" for i in twins.index]
    from dataclasses import replace

    combined = pd.concat([rows, twins])
    combined.index.name = rows.index.name
    data = replace(data, combinations=combined, fold_column=None)
    keys = replicate_keys(combined, data.drug_columns)
    table = make_splits(data, "random", n_folds=5, seed=3)
    for fold in range(5):
        ids = fold_ids(table, fold)
        test_keys = set(keys.loc[ids["test"]])
        assert not test_keys & set(keys.loc[ids["train"].append(ids["valid"])])
        assert not set(keys.loc[ids["valid"]]) & set(keys.loc[ids["train"]])


def test_corrected_resampled_t_test_is_wider_than_the_naive_one():
    from scipy.stats import ttest_1samp

    from synbench.report import corrected_resampled_t

    d = np.array([0.02, 0.03, 0.01, 0.025, 0.015])
    naive = ttest_1samp(d, 0).pvalue
    corrected = corrected_resampled_t(d, 1 / 4)
    var = np.var(d, ddof=1)
    t = d.mean() / np.sqrt((1 / 5 + 1 / 4) * var)
    from scipy.stats import t as student_t

    assert corrected == pytest.approx(2 * student_t.sf(t, 4)) and corrected > naive


def test_baseline_strength_flags_a_shortfall():
    from synbench.published import PublishedFigure, baseline_strength

    fig = PublishedFigure("P", "", "", "treecomb", "d1-oneil", "loewe", "pcc", 0.69, "published", "")
    summary = pd.DataFrame([
        {"model": "treecomb", "featurizers": "f", "protocol": p, "dataset": "d1-oneil", "target": "loewe", "metric": "pcc",
         "mean": m, "std": 0.01, "n_folds": 5, "expected": 5} for p, m in (("strong", 0.686), ("table1", 0.45))])
    table = baseline_strength([fig], summary).set_index("protocol")
    assert not table.loc["strong", "short"] and table.loc["table1", "short"]
    assert table.loc["table1", "difference"] == pytest.approx(0.45 - 0.69)
    # the best variant of a model stands for it, and the table says which one it is
    variants = summary.assign(profile=["cpu", "cpu"])
    variants = pd.concat([variants, variants.iloc[[0]].assign(mean=0.70, profile="cpu max_epochs=200")])
    best = baseline_strength([fig], variants).set_index("protocol").loc["strong"]
    assert best["ours"] == 0.70 and best["profile"] == "cpu max_epochs=200"


@pytest.mark.slow
def test_strong_and_table1_reach_the_board_side_by_side(tmp_path):
    out = tmp_path / "store"
    res = _cli("run", "-d", "mock", "-t", "score", "-m", "lasso,treecomb", "--profile", "quick", "--trials", "2",
               "--protocol", "strong,table1", "--folds", "0", "--out", str(out))
    assert res.returncode == 0, res.stderr
    assert "eta" in res.stderr or "left" in res.stderr
    records = Store(out, create=False).records()
    assert {(r["job"]["model"], r["protocol"]) for r in records} == {
        ("lasso", "strong"), ("lasso", "table1"), ("treecomb", "strong"), ("treecomb", "table1"), ("constant", "strong")}
    for r in records:
        if r["job"]["model"] != "constant":
            assert r["search_summary"]["n_trials"] == 2 and len(r["search"]) == 2
            assert r["search_summary"]["sampler"].startswith("optuna TPE")
    strong_tree = [r for r in records if r["job"]["model"] == "treecomb" and r["protocol"] == "strong"]
    assert all(r["training"]["stopped"] in ("early stopping", "cap") for r in strong_tree)
    board = _cli("leaderboard", str(out), "--no-write")
    assert board.returncode == 0, board.stderr
    lines = [l for l in board.stdout.splitlines() if l.strip().startswith(("lasso", "treecomb"))]
    assert len(lines) == 4 and sum("table1" in l for l in lines) == 2 and all("raw target" in l for l in lines if "table1" in l)


def test_config_sets_the_data_directory_once(tmp_path):
    config = tmp_path / "config.toml"
    data = tmp_path / "data"
    data.mkdir()
    env = {"SYNBENCH_CONFIG": str(config), "SYNBENCH_DATA_DIR": ""}
    res = _cli("config", "data-dir", str(data), env=env)
    assert res.returncode == 0, res.stderr
    shown = _cli("config", env=env)
    assert str(data) in shown.stdout and "config file" in shown.stdout
    listing = _cli("datasets", env=env)
    assert f"data directory: {data}" in listing.stdout
    bad = _cli("config", "data-dir", str(tmp_path / "missing"), env=env)
    assert bad.returncode == 2 and "does not exist" in bad.stderr and len(bad.stderr.strip().splitlines()) == 1
    for value, message in (("", "synbench config data-dir needs a directory"),  # '' is not the current directory
                           (str(config), f"data directory '{config}' is a file, not a directory")):
        bad = _cli("config", "data-dir", value, env=env)
        assert bad.returncode == 2 and bad.stderr.strip() == f"error: {message}" + (": synbench config data-dir PATH" if not value else "")
    assert str(data) in _cli("config", env=env).stdout  # the setting is as it was


def test_the_rows_a_final_fit_learnt_from_are_stored_and_a_fit_without_the_validation_rows_is_flagged():
    from synbench.leaderboard import method_flags
    from synbench.plugins.models.deepsynergy import DeepSynergyModel

    def stored(model, params=()):
        (record, _), _, splits = _compute(_mock_job(model, params=params))
        ids = fold_ids(splits, 0)
        return record, len(ids["train"]), len(ids["valid"])

    # early stopping on the validation rows, no refit: the final forest never learnt from them
    stopped, n_train, n_valid = stored("treecomb", (("n_estimators", 30), ("refit", False)))
    assert stopped["final_fit_rows"] == n_train and n_valid > 0
    # early stopping, then a forest grown on every row; a model without early stopping gets every row
    for record, n_train, n_valid in (stored("treecomb", (("n_estimators", 30),)), stored("lasso")):
        assert record["final_fit_rows"] == n_train + n_valid
    assert DeepSynergyModel().trains_on_validation_rows()  # its published refit on training + validation rows

    flags = method_flags([stopped]).iloc[0]["flags"]
    assert f"final fit on inner-training rows only ({n_train / (n_train + n_valid):.0%} of training rows)" in flags
    # a record from before the field is judged by what its model does with its stored parameters
    legacy = {k: v for k, v in stopped.items() if k != "final_fit_rows"}
    assert method_flags([legacy]).iloc[0]["flags"] == flags
    refit = {**legacy, "params": {**legacy["params"], "refit": True}}
    assert "final fit" not in method_flags([refit]).iloc[0]["flags"]


def test_a_tabular_baseline_that_pools_the_drugs_is_flagged():
    from synbench.leaderboard import method_flags

    def record(model, combine):
        return {"job": {"model": model, "featurizers": ["chem"], "profile": "cpu", "protocol": "strong", "params": {}},
                "task": "classification", "params": {"combine": combine}, "search_summary": {"n_trials": 12}}

    flags = method_flags([record("svm", "mean"), record("treecomb", "concat"), record("baitsao", "mean")]).set_index("model")["flags"]
    assert "drugs pooled (mean)" in flags["svm"]
    assert "pooled" not in flags["treecomb"] and "pooled" not in flags["baitsao"]  # BAITSAO's pooling is its method


def test_a_frozen_or_lora_encoder_is_flagged():
    from synbench.leaderboard import method_flags

    def record(strategy):
        return {"job": {"model": "bert", "featurizers": ["description"], "profile": "cpu", "protocol": "strong",
                        "params": {} if strategy == "frozen" else {"strategy": strategy}},
                "task": "classification", "params": {"strategy": strategy}, "search_summary": {"n_trials": 12}}

    flags = method_flags([record("frozen"), record("lora"), record("full")])["flags"].tolist()
    assert flags[0] == "encoder frozen (head only)" and flags[1] == "encoder lora" and "encoder" not in flags[2]


def test_folds_computed_on_a_gpu_are_flagged():
    from synbench.leaderboard import method_flags

    def record(fold, device):
        return {"job": {"model": "marsy", "featurizers": ["chem"], "profile": "cpu", "protocol": "table1", "params": {}, "fold": fold},
                "task": "regression", "params": {}, "target_scaling": None, "search_summary": {"n_trials": 0},
                "resources": {"device": device}}

    mixed = method_flags([record(0, "cuda"), record(1, "cuda:0"), record(2, "cpu"), record(3, None)])["flags"].tolist()
    assert "computed on a GPU (2/4)" in mixed[0]
    assert "computed on" not in method_flags([record(0, "cpu"), record(1, "cpu")])["flags"].tolist()[0]


def test_a_method_searched_less_than_others_on_the_board_is_flagged():
    from synbench.leaderboard import method_flags

    def record(model, trials, protocol="strong"):
        return {"job": {"model": model, "featurizers": ["chem"], "profile": "cpu", "protocol": protocol, "params": {}},
                "task": "classification", "params": {}, "search_summary": {"n_trials": trials}}

    flags = method_flags([record("treecomb", 12), record("deepsynergy", 0, "table1"), record("tabnet", 4),
                          record("constant", 0)]).set_index("model")["flags"]
    assert flags["treecomb"] == ""
    assert flags["deepsynergy"] == "not searched (others up to 12)"
    assert flags["tabnet"] == "4 search trials (others up to 12)"
    assert flags["constant"] == ""  # nothing to search
    alone = method_flags([record("deepsynergy", 0, "table1")])["flags"].tolist()
    assert alone == [""]  # nothing searched more beside it


def test_a_method_run_with_fewer_seeds_than_others_is_flagged():
    from synbench.leaderboard import method_flags

    def record(model, seed, target="loewe"):
        return {"job": {"model": model, "featurizers": ["chem"], "profile": "cpu", "protocol": "strong", "params": {},
                        "dataset": "d1-oneil", "target": target, "seed": seed},
                "task": "regression", "params": {}, "search_summary": {"n_trials": 12}, "target_scaling": {}}

    flags = method_flags([record("treecomb", s) for s in (0, 1, 2)] + [record("treecomb", 0, "loewe_gt30")]
                         + [record("baitsao", 0), record("svm", 0), record("svm", 1), record("constant", 0)]
                         ).set_index("model")["flags"]
    assert flags["baitsao"] == "1 seed (others up to 3)"
    assert flags["svm"] == "2 seeds (others up to 3)"
    assert flags["treecomb"] == "seeds 3 on d1-oneil/loewe, 1 on d1-oneil/loewe_gt30 (others up to 3)"
    assert flags["constant"] == ""
    assert method_flags([record("baitsao", 0), record("svm", 0)])["flags"].tolist() == ["", ""]
