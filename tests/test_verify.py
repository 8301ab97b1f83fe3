"""`synbench verify`: a store's numbers recomputed from what it holds; any disagreement is named."""

import json

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from synbench import runner
from synbench.cli import app
from synbench.store import Store
from synbench.verify import verify_store


@pytest.fixture()
def store(tmp_path):
    store = Store(tmp_path / "s")
    runner.run(runner.plan(["mock"], ["lasso", "constant"], targets=["score", "synergistic"], profile="smoke", folds=[0, 1]), store)
    board = CliRunner().invoke(app, ["leaderboard", str(store.root)])
    assert board.exit_code == 0, board.output
    return store


def _job(store, model="lasso", target="score", fold=0):
    return next(r for r in store.records() if r["job"]["model"] == model and r["job"]["target"] == target
                and r["job"]["fold"] == fold)


def test_an_untouched_store_agrees_with_itself_and_with_the_data(store):
    result = verify_store(store.root)
    assert result.problems == [] and result.jobs == 8 and result.leaderboard == "matches"
    assert result.metric_values == sum(len(r["metrics"]) for r in store.records())
    assert result.data_checked == ["mock"]
    cli = CliRunner().invoke(app, ["verify", str(store.root)])
    assert cli.exit_code == 0 and "all agree" in cli.stdout


def test_an_edited_metric_a_lost_row_and_a_changed_label_are_each_named(store):
    record = _job(store)
    path = store.jobs_dir / record["job_id"] / "record.json"
    edited = {**record, "metrics": {**record["metrics"], "pcc": record["metrics"]["pcc"] + 0.01}}
    path.write_text(json.dumps(edited))
    other = _job(store, fold=1)
    preds_path = store.jobs_dir / other["job_id"] / "predictions.parquet"
    predictions = pd.read_parquet(preds_path)
    lost = predictions.index[0]
    predictions = predictions.drop(index=lost)
    flipped = predictions.index[0]
    predictions.loc[flipped, "y_true"] += 1.0
    predictions.to_parquet(preds_path)

    problems = verify_store(store.root).problems
    assert any(record["job_id"] in p and "pcc stored" in p for p in problems)
    assert any(other["job_id"] in p and "1 rows of test fold 1 have no prediction" in p and str(lost) in p for p in problems)
    assert any(other["job_id"] in p and "stored labels differ" in p and str(flipped) in p for p in problems)
    assert any("the record counts" in p for p in problems)
    cli = CliRunner().invoke(app, ["verify", str(store.root)])
    assert cli.exit_code == 1 and "problem:" in cli.stdout and "problem(s)" in cli.stderr
    # without the data only what the store holds is compared: the changed label is not seen
    offline = verify_store(store.root, check_data=False).problems
    assert not any("stored labels differ" in p for p in offline) and any("pcc stored" in p for p in offline)


def test_a_label_read_with_its_last_bit_rounded_otherwise_is_not_a_changed_label(store):
    """Another pandas may parse a number of the same file into the neighbouring float (a ZIP score
    of -1.9e-16 did on a GPU machine): the file's checksum matches and the label has not changed."""
    other = _job(store, fold=1)
    preds_path = store.jobs_dir / other["job_id"] / "predictions.parquet"
    predictions = pd.read_parquet(preds_path)
    row = predictions.index[0]
    predictions.loc[row, "y_true"] = np.nextafter(predictions.loc[row, "y_true"], np.inf)
    predictions.to_parquet(preds_path)
    assert not any("stored labels differ" in p for p in verify_store(store.root).problems)
    predictions.loc[row, "y_true"] *= 1 + 1e-9  # a real change, however small, is still one
    predictions.to_parquet(preds_path)
    assert any("stored labels differ" in p and str(row) in p for p in verify_store(store.root).problems)


def test_a_board_left_behind_by_newer_records_is_stale(store):
    runner.run(runner.plan(["mock"], ["lasso"], targets=["score"], profile="smoke", folds=[2]), store)
    result = verify_store(store.root, check_data=False)
    assert result.leaderboard == "differs" and any("leaderboard.csv differs" in p for p in result.problems)


def test_a_constant_prediction_stored_as_undefined_by_the_former_rule_is_read_as_zero(store):
    record = _job(store, model="constant")
    predictions = pd.read_parquet(store.jobs_dir / record["job_id"] / "predictions.parquet")
    assert np.ptp(predictions["y_pred"]) == 0 and record["metrics"]["pcc"] == 0.0
    path = store.jobs_dir / record["job_id"] / "record.json"
    path.write_text(json.dumps({**record, "metrics": {**record["metrics"], "pcc": float("nan"), "spearman": float("nan")}}))
    result = verify_store(store.root, check_data=False)
    assert result.former_constant_encoding == 2 and not any(record["job_id"] in p for p in result.problems)
    # a real model's undefined correlation is not excused
    lasso = _job(store)
    path = store.jobs_dir / lasso["job_id"] / "record.json"
    path.write_text(json.dumps({**lasso, "metrics": {**lasso["metrics"], "pcc": float("nan")}}))
    assert any(lasso["job_id"] in p for p in verify_store(store.root, check_data=False).problems)


def test_a_damaged_job_is_reported_not_skipped_silently(store):
    record = _job(store, target="synergistic")
    (store.jobs_dir / record["job_id"] / "record.json").write_text('{"job_id": ')
    result = verify_store(store.root, check_data=False)
    assert result.jobs == 7 and any(p.startswith("not counted:") and record["job_id"] in p for p in result.problems)
    assert (store.jobs_dir / record["job_id"] / "record.json").read_text() == '{"job_id": '  # nothing moved
