"""A throwaway package with an entry point in the `synbench` group is installed, listed and run."""

import subprocess
import sys
import textwrap

import pytest

PYPROJECT = """
[build-system]
requires = ["setuptools>=61"]
build-backend = "setuptools.build_meta"

[project]
name = "synbench-median-plugin"
version = "9.8.7"

[project.entry-points.synbench]
median = "synbench_median_plugin"
"""

MODULE = '''
import numpy as np
from synbench import hookimpl
from synbench.base import Model, Profile


class MedianModel(Model):
    name = "median-baseline"
    description = "training median (a third-party test plugin)"
    tasks = ("regression",)
    profiles = {p: Profile() for p in ("paper", "cpu", "smoke")}

    def fit(self, train, valid=None):
        self.median_ = float(np.median(train.y))
        return self

    def predict(self, batch):
        return np.full(len(batch), self.median_)


@hookimpl
def synbench_register_models():
    return [MedianModel]
'''


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    src = tmp_path_factory.mktemp("pkg")
    (src / "pyproject.toml").write_text(PYPROJECT)
    (src / "synbench_median_plugin.py").write_text(MODULE)
    site = tmp_path_factory.mktemp("site")
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                    "--target", str(site), str(src)], check=True, capture_output=True)
    return site


def _synbench(site, *args, cwd=None):
    import os

    env = {**os.environ, "PYTHONPATH": str(site) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    return subprocess.run([sys.executable, "-m", "synbench.cli", *args], capture_output=True, text=True, env=env,
                          cwd=cwd, timeout=300)


def test_listed_with_origin_package_and_version(installed):
    res = _synbench(installed, "plugins", "--kind", "model")
    assert res.returncode == 0, res.stderr
    line = next(l for l in res.stdout.splitlines() if "median-baseline" in l)
    assert "synbench-median-plugin" in line and "9.8.7" in line


def test_runs_through_the_harness_and_reaches_the_leaderboard(installed, tmp_path):
    out = tmp_path / "store"
    res = _synbench(installed, "run", "-d", "mock", "-m", "median-baseline,constant", "-t", "score",
                    "--profile", "smoke", "--out", str(out))
    assert res.returncode == 0, res.stderr
    board = _synbench(installed, "leaderboard", str(out))
    assert board.returncode == 0, board.stderr
    assert "median-baseline" in board.stdout and "constant" in board.stdout
    import json

    records = [json.loads(p.read_text()) for p in (out / "jobs").glob("*/record.json")]
    mine = [r for r in records if r["job"]["model"] == "median-baseline"]
    assert len(mine) == 5 and all(r["provenance"]["plugin_package"] == "synbench-median-plugin" for r in mine)
