"""The store: resume skips finished jobs; a job killed mid-write leaves nothing corrupt."""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pandas as pd
import pytest

from synbench import runner
from synbench.errors import StoreError
from synbench.store import Store


def _plan(**kw):
    return runner.plan(["mock"], ["constant", "lasso"], profile="smoke", **kw)


def test_resume_skips_finished_jobs(tmp_path):
    store = Store(tmp_path / "s")
    jobs = _plan(folds=[0, 1])
    first = runner.run(jobs, store)
    assert first["done"] == len(jobs) == 8
    mtimes = {j: (store.jobs_dir / j / "record.json").stat().st_mtime_ns for j in store.job_ids()}
    second = runner.run(jobs, store)
    assert second["done"] == 0 and second["skipped"] == len(jobs)
    assert mtimes == {j: (store.jobs_dir / j / "record.json").stat().st_mtime_ns for j in store.job_ids()}
    # a wider grid runs only what is new
    third = runner.run(_plan(folds=[0, 1, 2]), store)
    assert third["done"] == 4 and third["skipped"] == 8


def test_record_has_provenance_and_predictions_keyed_by_row_id(tmp_path):
    store = Store(tmp_path / "s")
    runner.run(runner.plan(["mock"], ["lasso"], targets=["score"], profile="smoke", folds=[0]), store)
    (job_id,) = store.job_ids()
    rec = store.record(job_id)
    for key in ("metrics", "params", "timing", "resources", "provenance", "job", "n_rows"):
        assert key in rec
    assert rec["job"]["profile"] == "smoke" and rec["job"]["seed"] == 0
    assert {"numpy", "scikit-learn", "python"} <= set(rec["provenance"]["versions"])
    assert rec["provenance"]["data_checksums"]
    assert rec["resources"]["peak_memory_mb"] > 0
    preds = store.predictions(job_id)
    assert preds.index.name == "row_id" and {"y_true", "y_pred"} <= set(preds.columns)
    assert len(preds) == rec["n_rows"]["test"]


def test_metrics_are_reproducible_from_stored_predictions(tmp_path):
    from synbench.metrics import score_predictions
    from synbench.testing import mock_data

    store = Store(tmp_path / "s")
    runner.run(runner.plan(["mock"], ["lasso"], profile="smoke", folds=[2]), store)
    data = mock_data()
    for job_id in store.job_ids():
        rec = store.record(job_id)
        again = score_predictions(store.predictions(job_id), data.labels(rec["job"]["target"]), rec["task"])
        assert again == pytest.approx(rec["metrics"], nan_ok=True)


def test_staging_leftovers_are_ignored(tmp_path):
    store = Store(tmp_path / "s")
    runner.run(_plan(folds=[0]), store)
    n = len(store.job_ids())
    (store.jobs_dir / ".staging-x-1234").mkdir()
    (store.jobs_dir / ".staging-x-1234" / "record.json").write_text("{trunc")
    assert len(store.job_ids()) == n
    assert len(store.metrics_frame()) > 0


def test_the_next_claim_of_a_job_removes_staging_left_by_a_dead_writer(tmp_path):
    """A worker killed mid-write leaves its staging directory; the run that takes the job next
    removes it at once, but never a live writer's, another job's or another host's."""
    from synbench.store import _host_tag

    store = Store(tmp_path / "s")
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    host = _host_tag()
    left = {
        "dead": store.jobs_dir / f".staging-j1-{host}-{dead.pid}-abcd1234",
        "live": store.jobs_dir / f".staging-j1-{host}-{os.getppid()}-abcd1234",
        "other job": store.jobs_dir / f".staging-j2-{host}-{dead.pid}-abcd1234",
        "other host": store.jobs_dir / f".staging-j1-zzzzzz-{dead.pid}-abcd1234",
    }
    for path in left.values():
        path.mkdir(parents=True)
        (path / "record.json").write_text("{trunc")
    with store.claim("j1") as claimed:
        assert claimed
        assert not left["dead"].exists()
        assert all(left[k].exists() for k in ("live", "other job", "other host"))
        preds = pd.DataFrame({"y_pred": [1.0]}, index=pd.Index(["a"], name="row_id"))
        assert store.write_job("j1", {"job_id": "j1", "n": 1}, preds)
    assert (store.jobs_dir / "j1" / "predictions.parquet").is_file()


def test_second_writer_of_a_job_does_not_overwrite(tmp_path):
    store = Store(tmp_path / "s")
    preds = pd.DataFrame({"y_pred": [1.0]}, index=pd.Index(["a"], name="row_id"))
    assert store.write_job("j1", {"job_id": "j1", "n": 1}, preds)
    assert not store.write_job("j1", {"job_id": "j1", "n": 2}, preds)
    assert store.record("j1")["n"] == 1
    assert [p.name for p in store.jobs_dir.iterdir()] == ["j1"]


def test_not_a_store_is_refused(tmp_path):
    (tmp_path / "data.txt").write_text("precious")
    with pytest.raises(StoreError, match="not a synbench store"):
        Store(tmp_path)
    with pytest.raises(StoreError, match="not a synbench result store"):
        Store(tmp_path / "missing", create=False)
    assert (tmp_path / "data.txt").read_text() == "precious"


def test_a_store_another_run_is_creating_is_not_foreign(tmp_path):
    # two runs started together on a new --out: the first one's half-written marker must not make
    # the second refuse the directory as someone else's
    creating = tmp_path / "new"
    creating.mkdir()
    (creating / ".part-abc123").write_bytes(b"")
    Store(creating)
    assert (creating / "store.json").is_file()
    # and once the marker is there, the store's own files are no reason to refuse it
    (creating / "jobs").mkdir(exist_ok=True)
    Store(creating)


def _start_run_until(out, ready):
    """Start a real `synbench run` on the mock data into ``out``; return (command, process) once
    ``ready(files in out/jobs)`` holds (or after two minutes)."""
    cmd = [sys.executable, "-m", "synbench.cli", "run", "-d", "mock", "-m", "constant,lasso", "--profile", "smoke",
           "--out", str(out)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline:
        jobs_dir = out / "jobs"
        if jobs_dir.is_dir() and ready(list(jobs_dir.iterdir())):
            break
        time.sleep(0.01)
    return cmd, proc


def test_killed_run_resumes_without_corrupt_or_duplicate_records(tmp_path):
    """SIGKILL a real `synbench run` mid-way, resume it, and compare with an uninterrupted run."""
    out = tmp_path / "killed"
    cmd, proc = _start_run_until(out, lambda files: len([p for p in files if not p.name.startswith(".")]) >= 3)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    store = Store(out, create=False)
    partial = store.job_ids()
    assert 0 < len(partial) < 20, "the kill should land mid-run"
    for job_id in partial:  # every record present is complete and readable
        rec = store.record(job_id)
        assert rec["metrics"] and len(store.predictions(job_id)) == rec["n_rows"]["test"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert f"{len(partial)} already in" in done.stderr
    final = Store(out, create=False)
    assert len(final.job_ids()) == 20
    leftovers = [p for p in final.jobs_dir.iterdir() if p.name.startswith(".")]
    assert all(p.name.startswith(".lock-") for p in leftovers)  # the dead run's staging is gone too
    # same metrics as a run that was never interrupted (deterministic on CPU)
    clean = tmp_path / "clean"
    subprocess.run(cmd[:-1] + [str(clean)], check=True, capture_output=True, timeout=300)
    a = final.metrics_frame().set_index(["job_id", "metric"])["value"].sort_index()
    b = Store(clean, create=False).metrics_frame().set_index(["job_id", "metric"])["value"].sort_index()
    pd.testing.assert_series_equal(a, b)


def test_sigterm_leaves_no_lock_files(tmp_path):
    """`kill`/`pkill` a running `synbench run`: it exits 143 and the jobs it held are unlocked."""
    out = tmp_path / "terminated"
    _, proc = _start_run_until(out, lambda files: any(p.name.startswith(".lock-") for p in files))
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 128 + signal.SIGTERM
    store = Store(out, create=False)
    assert not [p.name for p in store.jobs_dir.iterdir() if p.name.startswith(".lock-")]
    for job_id in store.job_ids():  # what was finished is intact
        assert len(store.predictions(job_id)) == store.record(job_id)["n_rows"]["test"]


def test_store_files_get_ordinary_permissions(tmp_path):
    # files are staged with mkstemp (0600); a shared store must stay readable by its other users
    import stat

    from synbench.store import atomic_write_bytes

    old = os.umask(0o022)
    try:
        atomic_write_bytes(tmp_path / "x.json", b"{}")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "x.json").stat().st_mode) == 0o644


def test_dirty_marks_code_changes_not_results_written_in_the_checkout(tmp_path):
    from synbench.provenance import source_commit

    def git(*args):
        subprocess.run(["git", "-C", str(tmp_path), *args], check=True, capture_output=True)

    (tmp_path / "harness").mkdir()
    (tmp_path / "results").mkdir()
    (tmp_path / "harness" / "runner.py").write_text("x = 1\n")
    (tmp_path / "results" / "invocations.jsonl").write_text("{}\n")
    git("init", "-q")
    git("add", ".")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "init")
    clean = source_commit(tmp_path)
    assert clean is not None and len(clean) == 40
    # a run appending to a store inside the checkout leaves the commit clean ...
    (tmp_path / "results" / "invocations.jsonl").write_text("{}\n{}\n")
    assert source_commit(tmp_path) == clean
    # ... an edit to the code that computes results does not
    (tmp_path / "harness" / "runner.py").write_text("x = 2\n")
    assert source_commit(tmp_path) == clean + "+dirty"
    assert source_commit(tmp_path / "not-a-checkout") is None


def test_an_installed_copy_without_git_names_the_revision_stamped_into_it(tmp_path):
    """Long runs use a frozen copy of the package (benchmarks/streams.sh); its records must still name
    the commit they were computed with."""
    import shutil

    import synbench
    from synbench.provenance import REVISION_FILE

    copy = tmp_path / "pkg" / "synbench"
    shutil.copytree(Path(synbench.__file__).parent, copy, ignore=shutil.ignore_patterns("__pycache__"))
    ask = [sys.executable, "-c", "from synbench.provenance import git_commit; print(git_commit())"]
    env = {**os.environ, "PYTHONPATH": str(tmp_path / "pkg")}
    assert subprocess.run(ask, env=env, cwd=tmp_path, capture_output=True, text=True).stdout.strip() == "None"
    (copy / REVISION_FILE).write_text("0123abcd+dirty\n")
    assert subprocess.run(ask, env=env, cwd=tmp_path, capture_output=True, text=True).stdout.strip() == "0123abcd+dirty"


def test_sigterm_swallowed_by_a_library_still_stops_the_run():
    """Python drops an exception raised in a finalizer or a C callback; the run must stop anyway."""
    from synbench.cli import _SigtermUnwinds

    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(SystemExit) as stopped:
        with _SigtermUnwinds() as sigterm:
            try:
                os.kill(os.getpid(), signal.SIGTERM)
                time.sleep(5)  # the handler interrupts this
            except SystemExit:
                pass  # what "Exception ignored in ..." amounts to
            with pytest.raises(SystemExit):
                sigterm.raise_if_stopped()  # the next job does not start
    assert stopped.value.code == 128 + signal.SIGTERM
    assert signal.getsignal(signal.SIGTERM) == before  # the handler is put back
