"""Executors, faults and concurrency, exercised for real with subprocesses.

Every executor runs the same serialisable jobs, so the same command gives identical metrics
whichever executor ran it; a worker killed with SIGKILL loses only its job; two runs on one store
share the work and never corrupt it.
"""

import os
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest

from synbench.store import Store

GRID = ["-d", "mock", "-m", "lasso,treecomb", "--profile", "smoke", "--split", "random", "--n-folds", "3"]


def _run(out, *extra, check=True, timeout=300):
    cmd = [sys.executable, "-m", "synbench.cli", "run", *GRID, "--out", str(out), *extra]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if check:
        assert res.returncode == 0, res.stderr[-2000:]
    return res


def _metrics(out) -> pd.Series:
    return Store(out, create=False).metrics_frame().set_index(["job_id", "metric"])["value"].sort_index()


def _assert_complete(out, n_jobs):
    store = Store(out, create=False)
    ids = store.job_ids()
    assert len(ids) == n_jobs == len(set(ids))
    for job_id in ids:
        rec = store.record(job_id)
        assert len(store.predictions(job_id)) == rec["n_rows"]["test"] and rec["metrics"]
    stray = [p.name for p in store.jobs_dir.iterdir() if p.name.startswith(".") and not p.name.startswith(".lock-")]
    assert stray == []


@pytest.fixture(scope="module")
def inline_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("inline")
    _run(out)
    return out


N_JOBS = 3 * 2 * 3  # models (with the constant) x targets x folds


def test_same_command_twice_gives_identical_metrics(inline_run, tmp_path):
    _run(tmp_path / "again")
    pd.testing.assert_series_equal(_metrics(inline_run), _metrics(tmp_path / "again"))
    seeds = {Store(inline_run, create=False).record(j)["params"]["seed"] for j in Store(inline_run, create=False).job_ids()}
    assert seeds == {0}


@pytest.mark.parametrize("executor", ["process", "ray"])
def test_parallel_executors_match_the_inline_executor(inline_run, tmp_path, executor):
    if executor == "ray":
        pytest.importorskip("ray")
    out = tmp_path / executor
    _run(out, "--executor", executor, "--jobs", "2")
    _assert_complete(out, N_JOBS)
    pd.testing.assert_series_equal(_metrics(inline_run), _metrics(out))


def _children(pid):
    try:
        out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split()
    except FileNotFoundError:
        pytest.skip("pgrep is not available")
    return [int(p) for p in out]


def _cmdline(pid) -> str:
    """A process's command line; empty once it has exited (a short-lived child can go between the calls)."""
    try:
        with open(f"/proc/{pid}/cmdline") as fh:
            return fh.read()
    except (FileNotFoundError, ProcessLookupError):
        return ""


def test_a_killed_worker_loses_only_its_job_and_the_run_resumes(inline_run, tmp_path):
    out = tmp_path / "killed"
    cmd = [sys.executable, "-m", "synbench.cli", "run", *GRID, "--out", str(out), "--executor", "process", "--jobs", "2"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    victim = None
    deadline = time.time() + 120
    while victim is None and time.time() < deadline and proc.poll() is None:
        workers = [c for c in _children(proc.pid) if "spawn_main" in _cmdline(c) and "resource_tracker" not in _cmdline(c)]
        if workers and (out / "jobs").is_dir() and any(not p.name.startswith(".") for p in (out / "jobs").iterdir()):
            victim = workers[0]
        time.sleep(0.02)
    if victim is None:
        proc.kill()
        pytest.skip("the run finished before a worker could be killed")
    os.kill(victim, signal.SIGKILL)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode != 0
    assert "a worker process died" in stderr and "run the same command again" in stderr
    partial = Store(out, create=False).job_ids()
    assert len(partial) < N_JOBS
    _run(out, "--executor", "process", "--jobs", "2")
    _assert_complete(out, N_JOBS)
    pd.testing.assert_series_equal(_metrics(inline_run), _metrics(out))


def test_two_runs_on_one_store_share_the_work(inline_run, tmp_path):
    out = tmp_path / "shared"
    cmd = [sys.executable, "-m", "synbench.cli", "run", *GRID, "--out", str(out)]
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outputs = [p.communicate(timeout=300) for p in procs]
    assert all(p.returncode == 0 for p in procs), [e[-1000:] for _, e in outputs]
    _assert_complete(out, N_JOBS)
    pd.testing.assert_series_equal(_metrics(inline_run), _metrics(out))
    assert len(Store(out, create=False).invocations()) == 2


def test_inline_jobs_limit_blas_to_the_job_thread_count(tmp_path, monkeypatch):
    # a multi-threaded BLAS splits its sums differently from the one-thread BLAS of a pool worker,
    # which made inline and process metrics differ in the last digits on D1
    from threadpoolctl import threadpool_info, threadpool_limits

    from synbench import runner

    monkeypatch.setenv("SYNBENCH_THREADS", "1")
    with threadpool_limits(2):
        jobs = runner.plan(["mock"], ["lasso"], targets=["score"], folds=[0], profile="smoke")
        runner.run(jobs, Store(tmp_path / "s"))
        blas = [p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"]
    assert blas and set(blas) == {1}
