"""Caches that cannot run code, secrets that are never written, reports that render text as text,
and stores that heal: set damaged jobs aside, recompute them, and never overwrite a user's files
(issue 21, items 4 to 10)."""

import errno
import json
import os
import pickle
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from synbench import features as feat
from synbench import runner
from synbench.cli import app
from synbench.registry import get_registry
from synbench.store import Store
from synbench.testing import mock_data

SECRET = "s3cr3tKEY42"


def _invoke(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def _snapshot(root: Path) -> dict:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _all_text(root: Path) -> str:
    return "\n".join(p.read_bytes().decode("utf-8", "replace") for p in root.rglob("*") if p.is_file())


@pytest.fixture(scope="module")
def pristine(tmp_path_factory):
    """A small finished store (the constant baseline on two folds of the mock data)."""
    root = tmp_path_factory.mktemp("hardening") / "store"
    store = Store(root)
    summary = runner.run(runner.plan(["mock"], ["constant"], profile="smoke", folds=[0, 1]), store)
    assert summary["done"] == 4
    return root


@pytest.fixture
def store_dir(pristine, tmp_path):
    copy = tmp_path / "store"
    shutil.copytree(pristine, copy)
    return copy


def _plan():
    return runner.plan(["mock"], ["constant"], profile="smoke", folds=[0, 1])


# -- 4: caches and checkpoints hold nothing that runs code --------------------------------------------
class _RunsCode:
    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.mkdir, (self.marker,))


def test_feature_cache_never_unpickles_a_planted_file(tmp_path, monkeypatch):
    monkeypatch.setenv("SYNBENCH_CACHE_DIR", str(tmp_path / "cache"))
    data = mock_data()
    key = feat.feature_key(get_registry().featurizer("expression"), {}, data)
    marker = tmp_path / "code-ran"
    planted = tmp_path / "cache" / "features" / f"expression-{key}.pkl"  # where format 1 looked
    planted.parent.mkdir(parents=True)
    planted.write_bytes(pickle.dumps(_RunsCode(marker)))
    fs = feat.featurize(data, "expression")
    assert not marker.exists(), "a file in the feature cache ran code"
    assert fs.cell_lines.shape[0] == len(data.cell_lines)
    # the entry now cached is plain data: JSON metadata naming its key, and Parquet
    entry = planted.parent / f"expression-{key}"
    meta = json.loads((entry / "meta.json").read_text())
    assert meta["key"] == key and sorted(p.name for p in entry.iterdir()) == ["cell_lines.parquet", "meta.json"]
    again = feat.featurize(data, "expression")
    pd.testing.assert_frame_equal(again.cell_lines, fs.cell_lines)
    assert again.info == fs.info


def test_feature_cache_entry_is_used_only_for_its_own_key(tmp_path, monkeypatch):
    monkeypatch.setenv("SYNBENCH_CACHE_DIR", str(tmp_path / "cache"))
    data = mock_data()
    small = feat.featurize(data, "expression:n_genes=5")
    root = tmp_path / "cache" / "features"
    (entry,) = list(root.iterdir())
    # an entry copied (or crafted) under another key's name is not trusted
    other = root / f"expression-{feat.feature_key(get_registry().featurizer('expression'), {'n_genes': 7}, data)}"
    shutil.copytree(entry, other)
    seven = feat.featurize(data, "expression:n_genes=7")
    assert small.cell_lines.shape[1] == 5 and seven.cell_lines.shape[1] == 7


def test_graph_features_round_trip_through_the_cache(tmp_path, monkeypatch):
    torch = pytest.importorskip("torch")
    pytest.importorskip("torch_geometric")
    pytest.importorskip("rdkit")
    monkeypatch.setenv("SYNBENCH_CACHE_DIR", str(tmp_path / "cache"))
    data = mock_data()
    first = feat.featurize(data, "molecular-graph")
    cached = feat.featurize(data, "molecular-graph")
    assert list(cached.drugs.index) == list(first.drugs.index) and cached.info == first.info
    for a, b in zip(first.drugs, cached.drugs):
        assert a is not b and torch.equal(a.x, b.x) and torch.equal(a.edge_index, b.edge_index) and a.num_nodes == b.num_nodes


def test_a_damaged_embedding_cache_entry_is_re_encoded(tmp_path, monkeypatch):
    from synbench import text_encoders as te

    monkeypatch.setenv("SYNBENCH_CACHE_DIR", str(tmp_path / "cache"))

    class Fixed(te.TextEncoder):
        name = "fixed-test"

        def identity(self):
            return {"encoder": self.name}

        def encode(self, texts):
            return np.ones((len(texts), 3), dtype=np.float32)

    enc = Fixed()
    path = te._entry(enc.identity(), "aspirin")
    path.parent.mkdir(parents=True)
    np.save(path, np.zeros((2, 2)))  # not a vector of this encoder: a foreign or crafted file
    matrix, counts = te.embed(["aspirin", "cisplatin"], enc)
    assert matrix.shape == (2, 3) and (matrix == 1).all() and counts == {"encoded": 2, "cached": 0}


def test_a_checkpoint_that_would_run_code_is_refused_in_one_line(tmp_path):
    torch = pytest.importorskip("torch")
    from synbench.errors import DataError
    from synbench.pretrain import load_checkpoint

    marker = tmp_path / "code-ran"
    path = tmp_path / "evil.pt"
    torch.save({"format": 1, "x": _RunsCode(marker)}, path)
    with pytest.raises(DataError, match="holds objects other than tensors and plain values; refusing to load it") as err:
        load_checkpoint(path)
    assert "\n" not in str(err.value) and not marker.exists()


def test_a_file_that_is_no_checkpoint_is_named_as_such(tmp_path):
    torch = pytest.importorskip("torch")
    from synbench.errors import ConfigError, DataError
    from synbench.pretrain import load_checkpoint

    (tmp_path / "junk.pt").write_text("junk\n")  # torch said only "174812789"
    (tmp_path / "empty.pt").write_bytes(b"")
    torch.save([1, 2], tmp_path / "list.pt")
    for name, message in (("junk.pt", "is not a file `synbench pretrain` wrote, or it is damaged (5 bytes, not a torch archive)"),
                          ("empty.pt", "(0 bytes, not a torch archive)"), ("list.pt", "is not a synbench checkpoint")):
        with pytest.raises(DataError) as err:
            load_checkpoint(tmp_path / name)
        assert message in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(ConfigError, match="is a directory"):
        load_checkpoint(tmp_path)


# -- 5: secrets are redacted before anything is written or printed ----------------------------------
def test_secrets_in_options_and_urls_are_redacted():
    from synbench.redaction import redact

    assert redact(f"-f llm-description:encoder=openai,base_url=http://user:{SECRET}@host/v1") == \
        "-f llm-description:encoder=openai,base_url=http://***@host/v1"
    assert redact(f"-p api_key={SECRET} -p token='{SECRET}' --x https://h/?access_token={SECRET}&a=1") == \
        "-p api_key=*** -p token='***' --x https://h/?access_token=***&a=1"
    assert redact({"params": {"api_key": SECRET, "max_tokens": 5, "api_key_env": "MY_KEY"}}) == \
        {"params": {"api_key": "***", "max_tokens": 5, "api_key_env": "MY_KEY"}}


@pytest.mark.parametrize("option", [f"llm-description:encoder=openai,base_url=http://me:{SECRET}@127.0.0.1:9/v1",
                                    f"llm-description:api_key={SECRET}"])
def test_a_secret_option_is_neither_echoed_nor_logged(tmp_path, option):
    out = tmp_path / "s"
    # a real process: the command logged in invocations.jsonl is its argv
    res = subprocess.run([sys.executable, "-m", "synbench.cli", "run", "-d", "mock", "-m", "lasso", "--no-constant", "-t", "score",
                          "--profile", "smoke", "--folds", "0", "-f", option, "--out", str(out)],
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 2, res.stderr
    assert SECRET not in res.stdout + res.stderr and res.stderr.strip().splitlines()[-1].startswith("error: ")
    assert not out.exists() or SECRET not in _all_text(out)


def test_secrets_already_in_a_store_never_reach_leaderboard_provenance_or_report(store_dir):
    store = Store(store_dir, create=False)
    job_id = store.job_ids()[0]
    path = store.jobs_dir / job_id / "record.json"
    record = json.loads(path.read_text())
    record["job"]["featurizers"] = [f"chem:base_url=http://user:{SECRET}@host/v1"]
    record["params"]["api_key"] = SECRET
    path.write_text(json.dumps(record))
    with open(store_dir / "invocations.jsonl", "a") as fh:
        fh.write(json.dumps({"command": f"synbench run -p token={SECRET}", "jobs": 1, "pending": 1}) + "\n")
    assert SECRET not in json.dumps(store.records()) + json.dumps(store.invocations())
    board = _invoke("leaderboard", store_dir)
    assert board.exit_code == 0, board.output
    rep = _invoke("report", store_dir, "--out", store_dir / "r" / "report.html")
    assert rep.exit_code == 0, rep.output
    assert SECRET not in board.output + rep.output
    for name in ("leaderboard.md", "leaderboard.csv", "PROVENANCE.md", "r/report.md", "r/report.html"):
        assert SECRET not in (store_dir / name).read_text(), name
    # and a record written from now on never holds it
    preds = store.predictions(job_id)
    record["job_id"] = "fresh"
    store.write_job("fresh", record, preds)
    assert SECRET not in (store.jobs_dir / "fresh" / "record.json").read_text()


# -- 6: user-controlled text in the report is text ----------------------------------------------------
def test_a_crafted_command_and_title_cannot_inject_links_or_images(store_dir):
    evil = "synbench run -d mock --out `x` ![p](http://evil.example/p.png) [here](http://evil.example/) <img src=x>"
    with open(store_dir / "invocations.jsonl", "a") as fh:
        fh.write(json.dumps({"command": evil, "jobs": 4, "pending": 4}) + "\n")
    out = store_dir / "r" / "report.html"
    res = _invoke("report", store_dir, "--out", out, "--title", "T ![t](http://evil.example/t.png) <script>x</script>")
    assert res.exit_code == 0, res.output
    page = out.read_text()
    assert "evil.example/p.png\"" not in page and 'href="http' not in page and "<img src=\"http" not in page
    assert "<script>" not in page and "<img src=x>" not in page
    assert "<code>synbench run -d mock --out `x` ![p](http://evil.example/p.png)" in page  # shown, as text
    md = out.with_suffix(".md").read_text()
    assert "``synbench run -d mock --out `x` ![p](http://evil.example/p.png)" in md
    assert "# T !\\[t\\](http://evil.example/t.png) \\<script\\>x\\</script\\>" in md
    provenance = _invoke("leaderboard", store_dir)
    assert provenance.exit_code == 0
    assert "``synbench run -d mock --out `x`" in (store_dir / "PROVENANCE.md").read_text()


# -- 7: a torn last line of invocations.jsonl --------------------------------------------------------
def test_a_torn_invocation_line_is_reported_and_the_next_entry_stays_whole(store_dir):
    log = store_dir / "invocations.jsonl"
    with open(log, "a") as fh:
        fh.write('{"command": "synbench run -d mock", "jobs"')  # SIGKILL or a full disk mid-append
    res = _invoke("leaderboard", store_dir)  # PROVENANCE.md lists the logged commands
    assert res.exit_code == 0, res.output
    assert f"warning: {log}: its last line is incomplete or not a JSON object (an interrupted write?); skipped" in res.output
    store = Store(store_dir, create=False)
    before = len(store.invocations())
    store.log_invocation({"command": "synbench run again", "jobs": 0, "pending": 0})
    entries = store.invocations()
    assert len(entries) == before + 1 and entries[-1]["command"] == "synbench run again"


# -- 8: damaged jobs and split tables are set aside and recomputed ----------------------------------
@pytest.mark.parametrize("damage", ["truncated record", "empty record", "truncated predictions", "missing predictions"])
def test_a_damaged_job_is_set_aside_and_recomputed(store_dir, damage, capsys):
    store = Store(store_dir, create=False)
    job_id = store.job_ids()[0]
    folder = store.jobs_dir / job_id
    original_metrics = store.record(job_id)["metrics"]
    target = folder / ("record.json" if "record" in damage else "predictions.parquet")
    if damage.startswith("truncated"):
        target.write_bytes(target.read_bytes()[: len(target.read_bytes()) // 2])
    elif damage.startswith("empty"):
        target.write_bytes(b"")
    else:
        target.unlink()
    damaged = _snapshot(folder)
    # leaderboard, report and verify work on the valid jobs and say what is damaged, but move nothing:
    # a read command never erases the evidence that `verify` reports
    before = _snapshot(store_dir)
    res = _invoke("leaderboard", store_dir, "--no-write")
    assert res.exit_code == 0, res.output
    assert f"warning: job {job_id}:" in res.output and "left in place: only `synbench run` moves it aside" in res.output
    res = _invoke("report", store_dir, "--out", store_dir.parent / "r.html")
    assert res.exit_code == 0 and f"warning: job {job_id}:" in res.output
    assert _snapshot(store_dir) == before
    assert _invoke("verify", store_dir, "--no-data").exit_code == 1
    # the next run sets it aside (kept as it was, not deleted) and recomputes exactly that job
    store = Store(store_dir, create=False)
    summary = runner.run(_plan(), store)
    assert summary["done"] == 1 and summary["skipped"] == 3
    (aside,) = list((store_dir / "jobs" / ".quarantine").iterdir())
    assert aside.name.startswith(job_id) and _snapshot(aside) == damaged
    assert store.record(job_id)["metrics"] == pytest.approx(original_metrics, nan_ok=True)


@pytest.mark.parametrize("summary, superseded", [
    ({"pruned": 3, "pruner": "percentile 25 after 300 steps"}, True),  # the old pruner cut these trials
    ({"pruned": 0, "pruner": "percentile 25 after 300 steps"}, False),  # nothing pruned: same search either way
    ({"pruned": 3, "pruner_revision": 2}, False),  # the corrected pruner
])
def test_a_job_searched_with_the_old_pruner_is_set_aside_and_recomputed(store_dir, summary, superseded):
    store = Store(store_dir, create=False)
    job_id = store.job_ids()[0]
    path = store.jobs_dir / job_id / "record.json"
    record = json.loads(path.read_text())
    record["search_summary"] = {**record.get("search_summary", {}), **summary}
    path.write_text(json.dumps(record))
    res = _invoke("leaderboard", store_dir, "--no-write")
    assert res.exit_code == 0, res.output
    assert (f"warning: job {job_id}: superseded, its search pruned" in res.output) is superseded
    aside = store_dir / "jobs" / ".superseded"
    assert not aside.exists()  # the board leaves it in place; the next run sets it aside
    summary_of_run = runner.run(_plan(), Store(store_dir, create=False))
    assert summary_of_run["done"] == int(superseded) and summary_of_run["skipped"] == 4 - int(superseded)
    assert (aside.is_dir() and [p.name[:len(job_id)] for p in aside.iterdir()] == [job_id]) is superseded


def test_a_dry_run_reports_a_damaged_job_as_pending_and_moves_nothing(store_dir):
    store = Store(store_dir, create=False)
    job_id = store.job_ids()[0]
    (store.jobs_dir / job_id / "record.json").write_text('{"job_id": "')
    before = _snapshot(store_dir)
    res = _invoke("run", "-d", "mock", "-m", "constant", "--profile", "smoke", "--folds", "0,1", "--dry-run", "--out", store_dir)
    assert res.exit_code == 0, res.output
    assert f"warning: job {job_id}: record.json is truncated or not JSON; counted as not done" in res.output
    assert "3 done, 0 locked" in res.output and "1 pending" in res.output
    assert _snapshot(store_dir) == before


def test_a_truncated_split_table_is_set_aside_and_recomputed(store_dir):
    (table,) = list((store_dir / "splits").glob("*.parquet"))
    good = table.read_bytes()
    table.write_bytes(good[:100])
    store = Store(store_dir, create=False)
    job_id = store.job_ids()[0]
    shutil.rmtree(store.jobs_dir / job_id)  # a job left to run, which needs the split table
    summary = runner.run(_plan(), store)
    assert summary["done"] == 1
    pd.testing.assert_frame_equal(pd.read_parquet(table), pd.read_parquet(pd.io.common.BytesIO(good)))
    (aside,) = list((store_dir / "splits" / ".quarantine").iterdir())
    assert aside.read_bytes() == good[:100]


# -- 9: only a marked directory is a store; a user's files are never overwritten --------------------
@pytest.mark.parametrize("content", ["jobs", "README.md", ".hidden"])
def test_run_refuses_a_directory_that_is_not_a_store(tmp_path, content):
    out = tmp_path / "mine"
    (out / "jobs").mkdir(parents=True) if content == "jobs" else (out.mkdir(), (out / content).write_text("mine"))
    before = _snapshot(out)
    res = _invoke("run", "-d", "mock", "-m", "constant", "--profile", "smoke", "--folds", "0", "--out", out)
    assert res.exit_code == 2
    assert res.output.strip() == f"error: {out} exists, is not empty and is not a synbench store (no store.json); " \
                                 "choose another --out"
    assert _snapshot(out) == before and sorted(p.name for p in out.iterdir()) == [content]


def test_leaderboard_never_overwrites_a_file_it_did_not_write(store_dir, tmp_path):
    mine = store_dir / "leaderboard.md"
    mine.write_text("# my own notes\n")
    before = _snapshot(store_dir)
    res = _invoke("leaderboard", store_dir)
    assert res.exit_code == 2
    assert res.output.strip().splitlines()[-1] == (f"error: {mine} was not written by synbench; not overwriting it "
                                                   "(move it, or write elsewhere with --markdown/--csv, or use --no-write)")
    assert _snapshot(store_dir) == before  # nothing written, not even the CSV
    # a path the user names is theirs to write; its own files are rebuilt on the next call
    named = tmp_path / "board.md"
    named.write_text("old board\n")
    res = _invoke("leaderboard", store_dir, "--markdown", named)
    assert res.exit_code == 0, res.output
    assert "| constant |" in named.read_text() and mine.read_text() == "# my own notes\n"
    mine.unlink()
    assert _invoke("leaderboard", store_dir).exit_code == 0
    assert _invoke("leaderboard", store_dir).exit_code == 0  # its own files are overwritten
    assert "| constant |" in mine.read_text()


def test_a_board_that_is_not_one_whole_store_never_replaces_a_stores_board(store_dir, tmp_path):
    """Defect: `leaderboard A B` (or `-d`, or `--metric`) wrote its board over A's leaderboard.md and
    leaderboard.csv, so A's own board held another store's rows and `verify A` then failed."""
    assert _invoke("leaderboard", store_dir).exit_code == 0
    other = tmp_path / "other"
    shutil.copytree(store_dir, other)
    before = _snapshot(store_dir)
    for args, why in (([other], "combines 2 stores"), (["-d", "mock"], "shows some datasets only"),
                      (["--metric", "pcc"], "shows other metrics than the default")):
        res = _invoke("leaderboard", store_dir, *args)
        assert res.exit_code == 0, res.output
        assert res.output.strip().splitlines()[-1] == (f"not written: this board {why}, and a store's leaderboard "
                                                       "files hold its whole default board; name files with --markdown/--csv")
        assert _snapshot(store_dir) == before
    named = tmp_path / "both.md"
    res = _invoke("leaderboard", store_dir, other, "--markdown", named)
    assert res.exit_code == 0 and res.output.strip().splitlines()[-1] == f"wrote {named}"
    assert "| constant |" in named.read_text() and _snapshot(store_dir) == before  # no CSV into the first store


# -- 10: temporary files of failed writes are removed ----------------------------------------------
def test_a_failed_split_write_leaves_no_temporary_file(tmp_path, monkeypatch):
    store = Store(tmp_path / "s")
    table = pd.DataFrame({"fold": [0], "row_id": ["a"], "role": ["test"]})

    def disk_full(self, path, *args, **kwargs):
        Path(path).write_bytes(b"PAR1 partial")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(pd.DataFrame, "to_parquet", disk_full)
    with pytest.raises(OSError):
        store.save_splits(store.split_path("mock", "random", 5, 0), table)
    assert list(store.splits_dir.iterdir()) == []


def test_a_failed_feature_cache_write_leaves_no_temporary_file(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("SYNBENCH_CACHE_DIR", str(tmp_path / "cache"))
    data = mock_data()

    def disk_full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "replace", disk_full)
    monkeypatch.setattr(os, "rename", disk_full)
    fs = feat.featurize(data, "expression")  # features are still returned; the cache is only skipped
    assert fs.cell_lines.shape[0] == len(data.cell_lines)
    assert list((tmp_path / "cache" / "features").iterdir()) == []
    assert "could not cache features" in capsys.readouterr().err


def test_stale_temporary_files_are_removed_when_a_store_or_cache_is_opened(store_dir, tmp_path, monkeypatch):
    old = time.time() - 2 * 3600
    stale = [store_dir / "splits" / ".part-abc", store_dir / ".part-def", store_dir / "jobs" / ".staging-x-1"]
    fresh = store_dir / "splits" / ".part-live"  # a write in progress in another process
    for p in stale[:2] + [fresh]:
        p.write_bytes(b"partial")
    stale[2].mkdir()
    for p in stale:
        os.utime(p, (old, old))
    Store(store_dir, create=False)
    assert not any(p.exists() for p in stale) and fresh.exists()
    # the feature cache, once per process
    monkeypatch.setenv("SYNBENCH_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(feat, "_CLEANED", set())
    debris = tmp_path / "cache" / "features" / ".part-0123"
    debris.mkdir(parents=True)
    os.utime(debris, (old, old))
    feat.featurize(mock_data(), "expression")
    assert not debris.exists()


def test_a_job_whose_profile_changed_since_it_ran_is_recomputed(store_dir, tmp_path, monkeypatch):
    from synbench.base import Profile

    lasso = get_registry().model("lasso")
    plan = runner.plan(["mock"], ["lasso"], targets=["score"], profile="smoke", folds=[0], params={"alpha": 0.1})
    store = Store(tmp_path / "lasso")
    assert runner.run(plan, store)["done"] == 1
    assert runner.run(plan, Store(tmp_path / "lasso"))["skipped"] == 1  # unchanged: done
    # the smoke profile now fixes another solver budget: the stored job is not what the plan computes
    monkeypatch.setitem(lasso.profiles, "smoke", Profile(params={"max_iter": 50}))
    res = _invoke("run", "-d", "mock", "-m", "lasso", "-t", "score", "--profile", "smoke", "--folds", "0",
                  "-p", "alpha=0.1", "--no-constant", "--dry-run", "--out", tmp_path / "lasso")
    assert res.exit_code == 0, res.output
    assert "superseded, its profile 'smoke' now fixes max_iter 2000 -> 50" in res.output and "1 pending" in res.output
    summary = runner.run(plan, Store(tmp_path / "lasso"))
    assert summary["done"] == 1 and summary["skipped"] == 0
    (job_id,) = Store(tmp_path / "lasso").job_ids()
    assert Store(tmp_path / "lasso").record(job_id)["params"]["max_iter"] == 50
    assert len(list((tmp_path / "lasso" / "jobs" / ".superseded").iterdir())) == 1  # the old one, kept


def test_a_job_whose_search_ranges_changed_since_it_ran_is_recomputed(tmp_path, monkeypatch):
    # TabNet's strong n_steps went from {3..10} to {1..10} after every D1 fold chose 3: the stored
    # runs searched a narrower range than the plan now searches, so they do not stand for it
    from synbench.base import Real

    lasso = get_registry().model("lasso")
    plan = runner.plan(["mock"], ["lasso"], targets=["score"], profile="smoke", folds=[0], trials=2)
    store = Store(tmp_path / "lasso")
    assert runner.run(plan, store)["done"] == 1
    (job_id,) = store.job_ids()
    old = str(lasso.space_for("strong", "regression")["alpha"])
    assert store.record(job_id)["search_summary"]["space"]["alpha"] == old
    assert runner.run(plan, Store(tmp_path / "lasso"))["skipped"] == 1  # unchanged ranges: done
    monkeypatch.setitem(lasso.search_spaces, "strong:regression", {"alpha": Real(1e-6, 10.0, log=True)})
    res = _invoke("run", "-d", "mock", "-m", "lasso", "-t", "score", "--profile", "smoke", "--folds", "0",
                  "--trials", "2", "--no-constant", "--dry-run", "--out", tmp_path / "lasso")
    assert res.exit_code == 0, res.output
    assert f"its search under 'strong' now covers alpha {old} -> [1e-06, 10] log" in res.output and "1 pending" in res.output
    # until a run replaces it, the board shows the stored result and says it is superseded
    from synbench.leaderboard import method_flags

    (flags,) = method_flags(list(Store(tmp_path / "lasso").records()))["flags"]
    assert "superseded: earlier search ranges (1/1)" in flags
    summary = runner.run(plan, Store(tmp_path / "lasso"))
    assert summary["done"] == 1 and summary["skipped"] == 0
    (flags,) = method_flags(list(Store(tmp_path / "lasso").records()))["flags"]
    assert "superseded" not in flags
    assert Store(tmp_path / "lasso").record(job_id)["search_summary"]["space"]["alpha"] == "[1e-06, 10] log"
    assert len(list((tmp_path / "lasso" / "jobs" / ".superseded").iterdir())) == 1  # the old one, kept
    # a run that searched nothing (no trials) chose nothing from its ranges: it stands for any ranges
    (unsearched,) = runner.plan(["mock"], ["lasso"], targets=["score"], profile="smoke", folds=[0], trials=0)
    record = {"task": "regression", "params": {}, "selected_params": {}, "search": [],
              "search_summary": {"n_trials": 0, "space": {"alpha": old}}}
    assert runner.profile_drift(unsearched, record) is None
    # a range a -p value replaced is not searched: it is not compared
    (fixed,) = runner.plan(["mock"], ["lasso"], targets=["score"], profile="smoke", folds=[0], trials=2, params={"alpha": 0.1})
    record = {"task": "regression", "params": {"alpha": 0.1}, "selected_params": {}, "search": [{}],
              "search_summary": {"n_trials": 2, "space": {}}}
    assert runner.profile_drift(fixed, record) is None


def test_a_low_edge_chosen_before_the_range_was_widened_stays_flagged():
    # TabNet's strong n_steps went from {3..10} to {1..10}, whose low side (1 step) is the
    # parameter's own limit: a stored run that chose 3 chose the edge of the range it searched
    from synbench.leaderboard import method_flags

    space = {k: str(v) for k, v in get_registry().model("tabnet").space_for("strong", "regression").items()}

    def record(n_steps_range, chosen):
        job = {"dataset": "mock", "target": "score", "model": "tabnet", "featurizers": ["llm-description"], "profile": "cpu",
               "split": "random", "n_folds": 5, "fold": 0, "seed": 0, "params": {}, "protocol": "strong", "trials": None}
        return {"job": job, "task": "regression", "params": {}, "selected_params": {"n_steps": chosen}, "metrics": {},
                "target_scaling": {"method": "standardise"},
                "search_summary": {"n_trials": 12, "space": {**space, "n_steps": n_steps_range}, "edge_params": {"n_steps": "low"}}}

    (flags,) = method_flags([record("{3..10}", 3)])["flags"]
    assert "edge: n_steps low (1/1)" in flags and "superseded: earlier search ranges (1/1)" in flags
    (flags,) = method_flags([record("{1..10}", 1)])["flags"]
    assert "edge" not in flags and "superseded" not in flags  # one step: the limit, not an edge


def test_a_raised_cap_supersedes_only_the_runs_that_reached_the_old_one():
    # TreeComb's strong cap went from 2,000 to 5,000 trees: a run that stopped itself at 900 trees
    # computes the same under either; one that hit 2,000 does not
    (job,) = runner.plan(["mock"], ["treecomb"], targets=["score"], profile="cpu", folds=[0])

    def record(stopped, grown):
        return {"task": "regression", "params": {"n_estimators": 2000, "early_stopping_rounds": 50, "refit": True},
                "selected_params": {"learning_rate": 0.02},
                "training": {"stopped": stopped, "max_trees": 2000, "trees_grown": grown, "best_trees": grown - 50}}

    assert runner.profile_drift(job, record("early stopping", 900)) is None
    assert runner.profile_drift(job, record("cap", 2000)) == "its profile 'cpu' now fixes n_estimators 2000 -> 5000"
    lowered = record("early stopping", 900)
    lowered["params"]["early_stopping_rounds"] = 20  # not the cap: a changed patience always counts
    assert "early_stopping_rounds 20 -> 50" in runner.profile_drift(job, lowered)


def test_a_profile_setting_without_effect_on_a_runs_mode_does_not_supersede_it():
    # BERT's cpu profile came to fix encode_bf16 (the frozen strategy's encoding precision): the
    # frozen run it changes is recomputed; a LoRA or full fine-tuning run, which never reads it, stays
    def drift(strategy):
        (job,) = runner.plan(["mock"], ["bert"], targets=["score"], profile="cpu", folds=[0],
                             params={"strategy": strategy, "lr": 1e-3})
        params = {"strategy": strategy, "lr": 1e-3, "max_length": 512, "epochs": 200, "patience": 3,
                  "warmup": 0.005, "lora_r": 8}  # a record from before encode_bf16 existed
        return runner.profile_drift(job, {"task": "regression", "params": params, "selected_params": {}})

    assert drift("frozen") == "its profile 'cpu' now fixes encode_bf16 False -> True"
    assert drift("lora") is None and drift("full") is None
    bert = get_registry().model("bert")  # a misspelt name would silently exempt nothing
    assert bert.inert_params({"strategy": "full"}) <= set(bert.param_defaults())


def test_no_command_writes_its_output_over_a_stores_files(store_dir, tmp_path):
    """Defect: `leaderboard --csv STORE/store.json` (or `--markdown` on a job's record.json, or
    `splits export --out` on its predictions) replaced the store's own files."""
    job = Store(store_dir, create=False).job_ids()[0]
    before = _snapshot(store_dir)
    for args in (["leaderboard", store_dir, "--csv", store_dir / "store.json"],
                 ["leaderboard", store_dir, "--markdown", store_dir / "jobs" / job / "record.json"],
                 ["splits", "export", "-d", "mock", "--out", store_dir / "jobs" / job / "predictions.parquet"],
                 ["pretrain", "-d", "mock", "--profile", "smoke", "--out", store_dir / "ck.pt"]):
        res = _invoke(*args)
        assert res.exit_code == 2, (args, res.output)
        assert res.output.strip().splitlines()[-1].endswith(
            f"is inside the result store {store_dir.resolve()}, whose files hold its results; write it elsewhere"), res.output
        assert _snapshot(store_dir) == before
    # the store's own board files stay writable by name, with its own whole board only
    assert _invoke("leaderboard", store_dir, "--csv", store_dir / "leaderboard.csv").exit_code == 0
    other = tmp_path / "other"
    shutil.copytree(store_dir, other)
    before = _snapshot(store_dir)
    res = _invoke("leaderboard", other, "--csv", store_dir / "leaderboard.csv")
    assert res.exit_code == 2 and "is inside the result store" in res.output and _snapshot(store_dir) == before


def test_pretrain_and_predict_check_their_options_before_any_work(tmp_path):
    for args, message in ((["pretrain", "-d", "mock", "--out", tmp_path / "ck.pt", "--seed", "-1"], "--seed must be between 0 and"),
                          (["pretrain", "-d", "mock", "--out", tmp_path], f"--out {tmp_path} is a directory"),
                          (["predict", "--model-checkpoint", tmp_path / "none.pt", "--drugs", "A,B", "--cell-line", "C",
                            "--seed", "-5"], "--seed must be between 0 and")):
        res = _invoke(*args)
        assert res.exit_code == 2 and res.output.strip().splitlines()[-1].startswith(f"error: {message}"), res.output
    assert list(tmp_path.iterdir()) == []  # no checkpoint and no half-written temporary file


def test_leaderboard_of_a_dataset_the_store_lacks_names_it(store_dir):
    res = _invoke("leaderboard", store_dir, "-d", "mok", "--no-write")
    assert res.exit_code == 2
    assert res.output.strip().splitlines()[-1] == f"error: no dataset 'mok' in {store_dir}; did you mean 'mock'? (stored: mock)"
