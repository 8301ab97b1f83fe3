"""Predictions made elsewhere: `synbench splits export` and `synbench score`, ranked beside the built-in
models in `leaderboard` and `report`; and several stores read as one (a job in two stores counts once)."""

import os
import shutil
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from conftest import real_data_dir, requires_real_data
from synbench import leaderboard as lb
from synbench.cli import app
from synbench.runner import load_dataset
from synbench.splits import make_splits
from synbench.store import Store


def _invoke(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def _drug_mean(folds: pd.DataFrame, target: str) -> pd.DataFrame:
    """A method written with plain pandas: per fold, the training mean of the first drug's rows."""
    parts = []
    for fold, rows in folds.groupby("fold"):
        train, test = rows[rows["role"] != "test"], rows[rows["role"] == "test"]
        y = test["drug_1"].map(train.groupby("drug_1")[target].mean()).fillna(train[target].mean())
        parts.append(pd.DataFrame({"row_id": test["row_id"], "fold": fold, "y_pred": y}))
    return pd.concat(parts, ignore_index=True)


@pytest.fixture(scope="module")
def scored(tmp_path_factory):
    """Folds exported from the mock dataset, predictions of both targets scored into a store, and the
    constant baseline run into the same store."""
    root = tmp_path_factory.mktemp("external")
    res = _invoke("splits", "export", "-d", "mock", "--out", root / "folds.csv")
    assert res.exit_code == 0, res.output
    folds = pd.read_csv(root / "folds.csv", dtype={"row_id": str})
    store = root / "store"
    _drug_mean(folds, "score").to_csv(root / "score.csv", index=False)
    _drug_mean(folds, "synergistic").to_parquet(root / "synergistic.parquet", index=False)
    for path, target in ((root / "score.csv", "score"), (root / "synergistic.parquet", "synergistic")):
        res = _invoke("score", path, "-d", "mock", "-t", target, "--method", "drugmean", "--out", store)
        assert res.exit_code == 0, res.output
    # a separate process, as a user runs it; it also checks the split table the scoring stored
    env = {**os.environ, "SYNBENCH_THREADS": "1"}
    run = subprocess.run([sys.executable, "-m", "synbench.cli", "run", "-d", "mock", "-t", "score", "-m", "constant", "--profile", "smoke",
                          "--out", str(store)], capture_output=True, text=True, timeout=600, env=env)
    assert run.returncode == 0, run.stderr
    return root, folds, store


def test_export_has_every_fold_and_hides_test_labels(scored, tmp_path):
    root, folds, _ = scored
    data = load_dataset("mock")
    split = make_splits(data, "published", 5, 0)
    assert list(folds.columns[:3]) == ["fold", "row_id", "role"]
    assert {"drug_1", "drug_2", "drug_3", "cell_line", "score", "synergistic"} <= set(folds.columns)
    # the same (fold, row, role) table a run stores
    assert sorted(map(tuple, folds[["fold", "row_id", "role"]].astype(str).to_numpy())) == \
        sorted(map(tuple, split[["fold", "row_id", "role"]].astype(str).to_numpy()))
    test = folds["role"] == "test"
    assert folds.loc[test, ["score", "synergistic"]].isna().all().all()
    known = folds[~test].set_index("row_id")["score"]
    assert np.allclose(known.to_numpy(), data.labels("score").loc[known.index].to_numpy())
    # parquet holds the same table
    res = _invoke("splits", "export", "-d", "mock", "--out", tmp_path / "folds.parquet")
    assert res.exit_code == 0, res.output
    pq = pd.read_parquet(tmp_path / "folds.parquet")
    pd.testing.assert_frame_equal(pq[["fold", "row_id", "role"]].astype(str), folds[["fold", "row_id", "role"]].astype(str))


def test_external_method_is_scored_on_the_same_folds_and_ranked(scored):
    root, folds, store = scored
    res = _invoke("leaderboard", store)
    assert res.exit_code == 0, res.output
    summary = pd.read_csv(store / "leaderboard.csv")
    mine = summary[(summary["model"] == "drugmean") & (summary["target"] == "score") & (summary["metric"] == "mse")].iloc[0]
    assert mine["profile"] == "external predictions" and mine["n_folds"] == 5 and np.isfinite(mine["rank"])
    # the same number a user computes from the exported folds and the true labels
    labels = load_dataset("mock").labels("score")
    preds = pd.read_csv(root / "score.csv", dtype={"row_id": str})
    per_fold = [np.mean((g["y_pred"].to_numpy() - labels.loc[g["row_id"]].to_numpy()) ** 2) for _, g in preds.groupby("fold")]
    assert mine["mean"] == pytest.approx(np.mean(per_fold), rel=1e-5)  # the CSV keeps 6 digits
    assert set(summary.loc[summary["target"] == "score", "model"]) == {"drugmean", "constant"}
    md = (store / "leaderboard.md").read_text()
    assert "| drugmean |  | external predictions |" in md
    # one record per fold, as the runner writes them, flagged external
    records = [r for r in Store(store, create=False).records() if r["job"]["model"] == "drugmean"]
    assert len(records) == 10 and all(r["external"] and r["job"]["featurizers"] == [] for r in records)
    assert all(r["n_rows"]["test"] == (folds[(folds["fold"] == r["job"]["fold"])]["role"] == "test").sum() for r in records)


def test_report_ranks_and_marks_the_external_method(scored, tmp_path):
    _, _, store = scored
    res = _invoke("report", store, "--out", tmp_path / "report.html")
    assert res.exit_code == 0, res.output
    md = (tmp_path / "report.md").read_text()
    board = md.split("## Leaderboard")[1].split("## Fold-level results")[0]
    assert "| drugmean (external predictions) |" in board and "| constant |" in board
    assert "scored on the same folds by `synbench score`" in md
    assert "synbench score" in md.split("## Provenance")[1]  # the command that stored them


def test_scoring_again_stores_nothing_and_different_predictions_are_refused(scored, tmp_path):
    root, _, store = scored
    copy = tmp_path / "store"
    shutil.copytree(store, copy)
    before = sorted(p.name for p in (copy / "jobs").iterdir())
    res = _invoke("score", root / "score.csv", "-d", "mock", "-t", "score", "--method", "drugmean", "--out", copy)
    assert res.exit_code == 0 and "0 jobs written, 5 already stored" in res.output
    changed = pd.read_csv(root / "score.csv", dtype={"row_id": str}).assign(y_pred=lambda f: f["y_pred"] + 1)
    changed.to_csv(tmp_path / "changed.csv", index=False)
    res = _invoke("score", tmp_path / "changed.csv", "-d", "mock", "-t", "score", "--method", "drugmean", "--out", copy)
    assert res.exit_code == 2 and "already holds different predictions for 'drugmean'" in res.output
    assert sorted(p.name for p in (copy / "jobs").iterdir()) == before


def _mutations():
    def drop_first(f):
        return f.iloc[1:]

    def duplicate(f):
        return pd.concat([f, f.iloc[:1]])

    def train_row(f, folds):
        extra = folds[(folds["fold"] == 0) & (folds["role"] == "train")].iloc[:1]
        return pd.concat([f, pd.DataFrame({"row_id": extra["row_id"], "fold": 0, "y_pred": 1.0})])

    return [
        ("score", lambda f, folds: f.drop(columns="y_pred"), "missing column(s) 'y_pred'"),
        ("score", lambda f, folds: drop_first(f), "1 test rows have no prediction"),
        ("score", lambda f, folds: duplicate(f), "appear more than once"),
        ("score", train_row, "is a train row there"),
        ("score", lambda f, folds: f.assign(row_id=f["row_id"].where(f.index != f.index[0], "nope")), "is not a row of the dataset"),
        ("score", lambda f, folds: f.assign(fold=f["fold"].replace(4, 7)), "fold 7 is not a fold of this split"),
        ("score", lambda f, folds: f.assign(fold=f["fold"].astype(float) + 0.5), "not an integer (e.g. 0.5)"),
        ("score", lambda f, folds: f.assign(y_pred=f["y_pred"].where(f.index != f.index[3], np.nan)), "missing, NaN or infinite"),
        ("score", lambda f, folds: f.assign(y_pred=f["y_pred"].astype(object).where(f.index != f.index[3], "high")), "not numbers"),
        ("synergistic", lambda f, folds: f.assign(y_pred=f["y_pred"] * 3), "outside [0, 1]"),
    ]


@pytest.mark.parametrize("target,mutate,message", _mutations(), ids=[m[2] for m in _mutations()])
def test_bad_predictions_are_one_line_errors_and_touch_nothing(scored, tmp_path, target, mutate, message):
    root, folds, _ = scored
    good = _drug_mean(folds, target)
    mutate(good, folds).to_csv(tmp_path / "bad.csv", index=False)
    res = _invoke("score", tmp_path / "bad.csv", "-d", "mock", "-t", target, "--method", "mine", "--out", tmp_path / "store")
    assert res.exit_code == 2, res.output
    assert res.output.startswith("error: ") and message in res.output and len(res.output.strip().splitlines()) == 1
    assert not (tmp_path / "store").exists()


@pytest.mark.parametrize("args,message", [
    (["--method", "lasso"], "is a registered model"),
    (["--method", "SVM"], "is a registered model"),
    (["--method", "mine", "--seed", "-1"], "--seed must be 0 or more"),
    (["--method", "../x"], "must start with a letter or digit"),
    (["--method", "mine", "--split", "randon"], "did you mean 'random'"),
    (["--method", "mine", "-t", "scor"], "no target 'scor'"),
    (["--method", "mine", "--n-folds", "3"], "--n-folds 3 does not apply to split 'published' of dataset 'mock'"),
])
def test_bad_options_are_one_line_errors(scored, tmp_path, args, message):
    root, _, _ = scored
    base = ["score", root / "score.csv", "-d", "mock", "--out", tmp_path / "store"]
    res = _invoke(*base, *(["-t", "score"] if "-t" not in args else []), *args)
    assert res.exit_code == 2 and message in res.output, res.output
    assert not (tmp_path / "store").exists()
    res = _invoke("splits", "export", "-d", "mock", "--out", tmp_path / "folds.xlsx")
    assert res.exit_code == 2 and ".csv, .csv.gz or .parquet" in res.output
    res = _invoke("splits", "export", "-d", "mock", "--split", "leave-tissue-out", "--n-folds", "5", "--out", tmp_path / "f.csv")
    assert res.exit_code == 2 and "whose 3 folds the data fixes" in res.output and not (tmp_path / "f.csv").exists()


def test_a_job_in_two_stores_counts_once(scored, tmp_path):
    """Defect: `leaderboard A B` counted a job present in both stores twice ("10/5 folds")."""
    _, _, store = scored
    copy = tmp_path / "copy"
    shutil.copytree(store, copy)
    res = _invoke("leaderboard", store, copy, "--csv", tmp_path / "both.csv", "--markdown", tmp_path / "both.md")
    assert res.exit_code == 0, res.output
    res = _invoke("leaderboard", store, "--csv", tmp_path / "one.csv", "--markdown", tmp_path / "one.md")
    assert res.exit_code == 0, res.output
    both, single = pd.read_csv(tmp_path / "both.csv"), pd.read_csv(tmp_path / "one.csv")
    assert (both["n_folds"] == 5).all() and both["rank"].notna().all()
    pd.testing.assert_frame_equal(both, single)
    combined = lb.combine([Store(store, create=False), Store(copy, create=False)])
    assert combined.duplicates == len(combined.records) == len(Store(store, create=False).job_ids())


def test_conflicting_copies_of_a_job_are_an_error_naming_both_stores(scored, tmp_path):
    _, _, store = scored
    copy = tmp_path / "copy"
    shutil.copytree(store, copy)
    job = next(j for j in Store(copy, create=False).job_ids() if ".constant." in j and ".score." in j)
    path = copy / "jobs" / job / "predictions.parquet"
    pred = pd.read_parquet(path)
    pred["y_pred"] += 1.0
    pred.to_parquet(path)
    for command in (["leaderboard", store, copy, "--no-write"], ["report", store, copy, "--out", tmp_path / "r.html"]):
        res = _invoke(*command)
        assert res.exit_code == 2, res.output
        assert f"job {job} is in both {store} and {copy} with different predictions" in res.output
        assert len(res.output.strip().splitlines()) == 1


@requires_real_data
@pytest.mark.realdata
def test_d1_folds_round_trip(tmp_path):
    """D1's published folds exported, predicted with a plain script, scored."""
    data_dir = str(real_data_dir())
    res = _invoke("splits", "export", "-d", "d1-oneil", "--out", tmp_path / "d1.parquet", "--data-dir", data_dir)
    assert res.exit_code == 0, res.output
    folds = pd.read_parquet(tmp_path / "d1.parquet")
    assert folds.loc[folds["role"] == "test", "loewe"].isna().all()
    assert folds[folds["role"] == "test"].groupby("fold").size().tolist() == [4554, 4614, 4599, 4599, 4686]
    _drug_mean(folds, "loewe").to_parquet(tmp_path / "pred.parquet", index=False)
    res = _invoke("score", tmp_path / "pred.parquet", "-d", "d1-oneil", "-t", "loewe", "--method", "drugmean",
                  "--out", tmp_path / "store", "--data-dir", data_dir)
    assert res.exit_code == 0 and "5 jobs written" in res.output, res.output


def test_the_same_predictions_under_another_seed_are_refused(scored, tmp_path):
    """Defect: scoring one file again with --seed 5 stored it as a second seed (10 folds on the board)."""
    root, _, store = scored
    copy = tmp_path / "copy"
    shutil.copytree(store, copy)
    before = {p: p.read_bytes() for p in copy.rglob("*") if p.is_file() and p.name != "invocations.jsonl"}
    res = _invoke("score", root / "score.csv", "-d", "mock", "-t", "score", "--method", "drugmean", "--out", copy, "--seed", "5")
    assert res.exit_code == 2
    assert res.output.strip().splitlines()[-1] == (
        f"error: {copy} already holds these same predictions for 'drugmean' under --seed 0; under --seed 5 they would "
        "count twice as two seeds (score predictions made on the folds `synbench splits export --seed 5` writes)")
    assert {p: p.read_bytes() for p in copy.rglob("*") if p.is_file() and p.name != "invocations.jsonl"} == before
    # other predictions under another seed are a second seed
    other = pd.read_csv(root / "score.csv", dtype={"row_id": str})
    other["y_pred"] += 1.0
    other.to_csv(tmp_path / "other.csv", index=False)
    res = _invoke("score", tmp_path / "other.csv", "-d", "mock", "-t", "score", "--method", "drugmean", "--out", copy, "--seed", "5")
    assert res.exit_code == 0, res.output
