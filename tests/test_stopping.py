"""A run stops when told: SIGTERM/SIGINT end it within seconds with every executor, even inside a
long C-level fit; no lock file is left; workers whose parent dies exit; --keep-going runs the rest.

Real `synbench run` processes and real signals. The `stuck` model's fit spends minutes inside one
C call (PBKDF2) that Python cannot interrupt, as libsvm does on a large fold.
"""

import os
import signal
import subprocess
import sys
import time

import pytest

from synbench.store import Store

PLUGIN = """
import hashlib
import numpy as np
from synbench import hookimpl
from synbench.base import Model


class Stuck(Model):
    name = "stuck"
    def fit(self, train, valid=None):
        hashlib.pbkdf2_hmac("sha256", b"x", b"y", 10**9)  # minutes in C; Python's signal handlers wait
        return self
    def predict(self, batch):
        return np.zeros(len(batch))


class Flaky(Model):
    name = "flaky"
    def fit(self, train, valid=None):
        if self.task == "regression":
            raise ValueError("singular matrix")
        return self
    def predict(self, batch):
        return np.full(len(batch), 0.5)


@hookimpl
def synbench_register_models():
    return [Stuck, Flaky]
"""

STOP_SECONDS = 20  # generous for a loaded machine; the stuck fit alone lasts minutes


@pytest.fixture
def plugin_env(tmp_path):
    (tmp_path / "stoppable.py").write_text(PLUGIN)
    return {**os.environ, "SYNBENCH_PLUGINS": "stoppable",
            "PYTHONPATH": os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")])}


def _cmd(out, *extra):
    return [sys.executable, "-m", "synbench.cli", "run", "-d", "mock", "-t", "score", "--profile", "smoke",
            "--no-constant", "--out", str(out), *extra]


def _children(pid: int) -> list[int]:
    kids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as fh:
                    fields = fh.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                kids.append(int(entry))
    return kids


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _workers(pid: int) -> list[int]:
    """Pool workers of a run (its resource tracker left out)."""
    found = []
    for child in _children(pid):
        try:
            cmdline = open(f"/proc/{child}/cmdline").read()
        except OSError:
            continue
        if "resource_tracker" not in cmdline:
            found.append(child)
    return found


def _locks(out) -> list[str]:
    jobs = out / "jobs"
    return [p.name for p in jobs.iterdir() if p.name.startswith(".lock-")] if jobs.is_dir() else []


def _start(cmd, env, ready, **popen):
    """Start a run and return it once ``ready(process)`` holds."""
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, **popen)
    deadline = time.time() + 180
    while time.time() < deadline and proc.poll() is None and not ready(proc):
        time.sleep(0.05)
    assert proc.poll() is None, proc.stderr.read()[-2000:]
    assert ready(proc), "the run never reached the state to interrupt"
    return proc


def _wait_gone(pids, seconds) -> list[int]:
    deadline = time.time() + seconds
    while time.time() < deadline and any(_alive(p) for p in pids):
        time.sleep(0.1)
    return [p for p in pids if _alive(p)]


def _cleanup(proc, pids):
    for pid in [proc.pid, *pids]:
        if _alive(pid):
            os.kill(pid, signal.SIGKILL)
    proc.wait()


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_inline_run_stops_within_seconds_inside_a_c_level_fit(tmp_path, plugin_env, signum):
    out = tmp_path / "s"
    proc = _start(_cmd(out, "-m", "stuck", "--folds", "0,1"), plugin_env,
                  lambda p: _locks(out) and _children(p.pid))
    job_process = _children(proc.pid)
    try:
        time.sleep(1)  # well inside the fit
        sent = time.time()
        proc.send_signal(signum)
        assert proc.wait(timeout=STOP_SECONDS) == 128 + signum
        assert time.time() - sent < STOP_SECONDS
        assert _wait_gone(job_process, 5) == [], "the process computing the job outlived the run"
        assert _locks(out) == [] and Store(out, create=False).job_ids() == []
    finally:
        _cleanup(proc, job_process)


def _pool_cmd(out):
    return _cmd(out, "-m", "stuck", "--folds", "0,1,2,3", "--executor", "process", "--jobs", "2")


@pytest.mark.parametrize("how", ["SIGTERM", "SIGINT", "SIGTERM to the process group"])
def test_process_pool_stops_within_seconds_and_leaves_no_locks(tmp_path, plugin_env, how):
    out = tmp_path / "s"
    proc = _start(_pool_cmd(out), plugin_env, lambda p: len(_locks(out)) == 2 and len(_workers(p.pid)) == 2,
                  start_new_session=True)
    workers = _workers(proc.pid)
    try:
        sent = time.time()
        if how == "SIGTERM to the process group":
            os.killpg(proc.pid, signal.SIGTERM)
        else:
            proc.send_signal(getattr(signal, how))
        code = proc.wait(timeout=STOP_SECONDS)
        assert code == (130 if how == "SIGINT" else 143)
        assert time.time() - sent < STOP_SECONDS, "queued jobs must not run after a signal"
        assert _wait_gone(workers, 5) == []
        assert _locks(out) == [] and Store(out, create=False).job_ids() == []
    finally:
        _cleanup(proc, workers)


# The CLI's handler without its exception: what is left of it when Python swallows the exception
# (a signal landing inside a fork hook or a finalizer, "Exception ignored in ..."); a stream
# restarted right after a job ended once ran its next job to the end that way.
SWALLOWING_RUN = """
import signal, sys
from synbench import runner
from synbench.store import Store
if __name__ == "__main__":  # the process executor's workers are spawned: they import this file
    signal.signal(signal.SIGTERM, lambda signum, frame: runner.request_stop(signum))
    jobs = runner.plan(["mock"], ["stuck"], targets=["score"], profile="smoke", folds=[0, 1, 2, 3])
    runner.run(jobs, Store(sys.argv[1]), executor=sys.argv[2], n_jobs=int(sys.argv[3]))
"""


@pytest.mark.parametrize("executor, n_jobs", [("inline", 1), ("process", 2)])
def test_a_signal_whose_exception_was_swallowed_still_stops_the_job_in_flight(tmp_path, plugin_env, executor, n_jobs):
    out = tmp_path / "s"
    script = tmp_path / "swallowing_run.py"
    script.write_text(SWALLOWING_RUN)
    computing = _children if executor == "inline" else _workers
    proc = _start([sys.executable, str(script), str(out), executor, str(n_jobs)], plugin_env,
                  lambda p: len(_locks(out)) == n_jobs and len(computing(p.pid)) >= n_jobs)
    busy = computing(proc.pid)
    try:
        time.sleep(1)  # well inside the fit
        sent = time.time()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=STOP_SECONDS) == 143, "the run went on after the signal"
        assert time.time() - sent < STOP_SECONDS
        assert _wait_gone(busy, 5) == [], "the process computing a job outlived the run"
        assert _locks(out) == [] and Store(out, create=False).job_ids() == []
    finally:
        _cleanup(proc, busy)


def test_workers_exit_when_the_run_is_killed(tmp_path, plugin_env):
    out = tmp_path / "s"
    proc = _start(_pool_cmd(out), plugin_env, lambda p: len(_locks(out)) == 2 and len(_workers(p.pid)) == 2)
    workers = _workers(proc.pid)
    try:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        assert _wait_gone(workers, STOP_SECONDS) == [], "orphaned workers must notice and exit"
        assert _locks(out) == [], "an orphaned worker removes the lock of the job it held"
    finally:
        _cleanup(proc, workers)


@pytest.mark.parametrize("executor", [[], ["--executor", "process", "--jobs", "2"]], ids=["inline", "process"])
def test_keep_going_runs_the_rest_and_lists_the_failures(tmp_path, plugin_env, executor):
    out = tmp_path / "s"
    base = [sys.executable, "-m", "synbench.cli", "run", "-d", "mock", "-m", "flaky", "--profile", "smoke",
            "--folds", "0", "--out", str(out), *executor]
    stopped = subprocess.run(base, env=plugin_env, capture_output=True, text=True, timeout=300)
    assert stopped.returncode == 2
    assert "model 'flaky' failed on mock/score flaky" in stopped.stderr and "singular matrix" in stopped.stderr
    kept = subprocess.run([*base, "--keep-going"], env=plugin_env, capture_output=True, text=True, timeout=300)
    assert kept.returncode == 2, kept.stderr
    # mock/score flaky failed; the classification job and both constant jobs ran and were stored
    records = [Store(out, create=False).record(j)["job"] for j in Store(out, create=False).job_ids()]
    assert sorted((r["target"], r["model"]) for r in records) == [
        ("score", "constant"), ("synergistic", "constant"), ("synergistic", "flaky")]
    assert "1 job(s) failed" in kept.stderr
    summary = kept.stderr[kept.stderr.index("1 job(s) failed:"):]
    assert "mock/score flaky" in summary and "ValueError: singular matrix" in summary
    error_lines = [line for line in kept.stderr.splitlines() if line.startswith("error:")]
    assert len(error_lines) == 1 and "Traceback" not in kept.stderr
    assert _locks(out) == []
