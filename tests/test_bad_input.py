"""Bad input gets a one-line error naming the problem, a non-zero exit, and leaves results as they were."""

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from synbench.errors import DataError
from synbench.tabular_io import read_table
from synbench.testing import mock_data


def _cli(*args, env=None):
    import os

    return subprocess.run([sys.executable, "-m", "synbench.cli", *args], capture_output=True, text=True, timeout=300,
                          env={**os.environ, **(env or {})})


# -- the dataset table ----------------------------------------------------------------------------
def _broken(mutate):
    data = mock_data()
    mutate(data)
    return data


@pytest.mark.parametrize("mutate, message", [
    (lambda d: d.combinations.__setitem__("score", d.combinations["score"].where(d.combinations.index != "mock-0003")), "NaN"),
    (lambda d: d.combinations.__setitem__("drug_1", d.combinations["drug_1"].replace("ASPIRIN", "ASPIRINE")), "drugs not in the drug table: ASPIRINE"),
    (lambda d: d.combinations.__setitem__("cell_line", d.combinations["cell_line"].replace("CELL-A", "CELL-Z")), "cell lines not in the cell-line table: CELL-Z"),
    (lambda d: setattr(d, "combinations", d.combinations.drop(columns=["cell_line"])), "missing column 'cell_line'"),
    (lambda d: setattr(d, "combinations", d.combinations.rename(index={"mock-0001": "mock-0000"})), "duplicate row ids"),
    (lambda d: d.combinations.__setitem__("score", "high"), "not numeric"),
    (lambda d: setattr(d, "fold_column", "folds"), "missing fold column"),
    (lambda d: d.combinations.__setitem__("drug_2", None), "fewer than two drugs"),
    (lambda d: d.omics["expression"].iloc.__setitem__((0, 0), np.nan), "omics matrix 'expression' contains NaN"),
    (lambda d: setattr(d, "targets", {}), "declares no target"),
])
def test_invalid_dataset_tables(mutate, message):
    with pytest.raises(DataError, match=message):
        _broken(mutate).validate()


def test_malformed_and_missing_files(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text('a,b\n1,2\n"unterminated,3\n')
    with pytest.raises(DataError, match="malformed table"):
        read_table(bad)
    with pytest.raises(DataError, match="file not found"):
        read_table(tmp_path / "none.csv")
    ok = tmp_path / "ok.csv"
    ok.write_text("a,b\n1,2\n")
    with pytest.raises(DataError, match="missing column"):
        read_table(ok, required=["a", "synergy"])
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(DataError, match="malformed table"):
        read_table(tmp_path / "empty.csv")


# -- the command line -----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def store(tmp_path_factory):
    out = tmp_path_factory.mktemp("store") / "s"
    res = _cli("run", "-d", "mock", "-m", "constant", "-t", "score", "--profile", "smoke", "--out", str(out), "--folds", "0")
    assert res.returncode == 0, res.stderr
    return out


def _snapshot(root):
    return {p.relative_to(root): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file() and p.name != "invocations.jsonl"}


@pytest.mark.parametrize("args, message", [
    (["-d", "mock", "-m", "lasoo"], "unknown model 'lasoo'; did you mean 'lasso'"),
    (["-d", "mok", "-m", "lasso"], "unknown dataset 'mok'; did you mean 'mock'"),
    (["-d", "mock", "-m", "lasso", "-t", "scor"], "has no target 'scor'; did you mean 'score'"),
    (["-d", "mock", "-m", "lasso", "--profile", "fast"], "has no profile 'fast'"),
    (["-d", "mock", "-m", "lasso", "-p", "alpah=2"], "no parameter 'alpah'; did you mean 'alpha'"),
    (["-d", "mock", "-m", "lasso", "-p", "alpha"], "expects NAME=VALUE"),
    (["-d", "mock", "-m", "lasso", "--split", "leave-one-out"], "unknown split scheme"),
    (["-d", "mock", "-m", "lasso", "--folds", "7"], "fold 7 is out of range"),
    (["-d", "mock", "-m", "lasso", "--folds", "a"], "expects integers"),
    (["-d", "mock", "-m", "lasso", "-f", "chemm"], "unknown featurizer 'chemm'; did you mean 'chem'"),
    (["-d", "mock", "-m", "lasso", "-f", "chem:radius"], "must be NAME=VALUE"),
    (["-d", "mock", "-m", "lasso", "-f", "chem:colour=1", "--folds", "0"], "rejected its options"),
    (["-d", "mock", "-m", "lasso", "-p", "alpha=-1", "--folds", "0", "-t", "score"], "model 'lasso' failed"),
    (["-d", "mock", "-m", "lasso", "--executor", "slurm", "--jobs", "2"], "unknown executor 'slurm'"),
])
def test_cli_errors_leave_the_store_as_it_was(store, args, message):
    before = _snapshot(store)
    res = _cli("run", *args, "--profile" if "--profile" not in args else "--seed", "smoke" if "--profile" not in args else "0",
               "--out", str(store))
    assert res.returncode != 0
    assert message in res.stderr, res.stderr
    error_lines = [l for l in res.stderr.splitlines() if l.startswith("error:")]
    assert len(error_lines) == 1 and "Traceback" not in res.stderr
    assert _snapshot(store) == before


def test_missing_data_is_a_clear_error(tmp_path):
    res = _cli("run", "-d", "d1-oneil", "-m", "constant", "--out", str(tmp_path / "s"), "--data-dir", str(tmp_path),
               env={"SYNBENCH_OFFLINE": "1", "SYNBENCH_CACHE_DIR": str(tmp_path / "cache")})
    assert res.returncode == 2
    assert "D1_deepsynergy_oneil/labels.csv not found" in res.stderr and "--data-dir" in res.stderr
    assert not (tmp_path / "s").exists(), "a run that cannot start creates no store"


def test_leaderboard_of_a_non_store(tmp_path):
    res = _cli("leaderboard", str(tmp_path))
    assert res.returncode == 2 and "not a synbench result store" in res.stderr


# -- third-party plugins that misbehave -----------------------------------------------------------
_PLUGIN_HEAD = """
import numpy as np
from synbench import hookimpl
from synbench.base import Model
"""
_GOOD_MODEL = """
class Shape(Model):
    name = "shape-model"
    def __init__(self, task="regression", seed=0):
        self.task, self.seed = task, seed
    def fit(self, train, valid=None):
        return self
    def predict(self, batch):
        return np.zeros(len(batch) - {missing})
"""


@pytest.mark.parametrize("body, message", [
    ("@hookimpl\ndef synbench_register_models():\n    raise RuntimeError('boom')\n",
     "plugin module 'badplugin' failed in synbench_register_models: boom"),
    ("@hookimpl\ndef synbench_register_models():\n    return Model\n", "synbench_register_models must return a list"),
    ("@hookimpl\ndef synbench_register_modells():\n    return []\n", "plugin module 'badplugin'"),
    ("import not_a_module_anywhere\n", "failed to import: ModuleNotFoundError"),
    ("from synbench.plugins.models.lasso import LassoModel\n@hookimpl\ndef synbench_register_models():\n    return [LassoModel]\n",
     "model 'lasso' is registered twice"),
    (_GOOD_MODEL.format(missing=1) + "@hookimpl\ndef synbench_register_models():\n    return [Shape]\n",
     "model 'shape-model' returned"),
    (_GOOD_MODEL.format(missing=0).replace("return self", "raise ValueError('singular matrix')")
     + "@hookimpl\ndef synbench_register_models():\n    return [Shape]\n",
     "model 'shape-model' failed on mock/score shape-model fold 0: ValueError: singular matrix"),
])
def test_misbehaving_plugins_are_named_and_leave_the_store_as_it_was(tmp_path, store, body, message):
    (tmp_path / "badplugin.py").write_text(_PLUGIN_HEAD + body)
    import os

    env = {"SYNBENCH_PLUGINS": "badplugin", "PYTHONPATH": os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")])}
    before = _snapshot(store)
    res = _cli("run", "-d", "mock", "-t", "score", "-m", "shape-model", "--folds", "0", "--profile", "smoke",
               "--out", str(store), env=env)
    assert res.returncode == 2, res.stderr
    assert message in res.stderr, res.stderr
    assert len([l for l in res.stderr.splitlines() if l.startswith("error:")]) == 1 and "Traceback" not in res.stderr
    assert _snapshot(store) == before
