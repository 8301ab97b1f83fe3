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
    # published folds are 0..k-1 integers, never renumbered silently
    (lambda d: d.combinations.__setitem__("fold", d.combinations["fold"].astype(object).where(d.combinations.index != "mock-0003", "a")),
     r"fold column 'fold' must hold integers; found a \(rows mock-0003\)"),
    (lambda d: d.combinations.__setitem__("fold", d.combinations["fold"].where(d.combinations.index != "mock-0003", -1)),
     r"fold column 'fold' must number its 6 folds 0\.\.5; found -1, 0"),
    (lambda d: d.combinations.__setitem__("fold", d.combinations["fold"] + 1), r"must number its 5 folds 0\.\.4; found 1, 2"),
    (lambda d: d.combinations.__setitem__("fold", d.combinations["fold"] + 0.5), "must hold integers"),
    # finite but absurd: its square overflows every error metric
    (lambda d: d.combinations.__setitem__("score", d.combinations["score"].where(d.combinations.index != "mock-0003", 1e200)),
     "target 'score' has 1 values beyond ±1e\\+09 \\(e.g. 1e\\+200 in row mock-0003\\)"),
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
    (["-d", "mock", "-m", "lasso", "--folds", "0,2,0"], "--folds lists 0 more than once"),
    (["-d", "mock", "-m", "lasso", "--seeds", "1,1"], "--seeds lists 1 more than once"),
    (["-d", "mock", "-m", "lasso", "--data-dir", "/nonexistent"], "data directory '/nonexistent' (from --data-dir) does not exist"),
    (["-d", "mock", "-m", "lasso", "--seeds", ""], "--seeds is empty; give integers like 0,1,2 or leave the option out"),
    (["-d", "mock", "-m", "lasso", "--folds", ","], "--folds is empty"),
    (["-d", "mock", "-m", "constant,Constant"], "--model lists constant more than once"),
    (["-d", "mock,MOCK", "-m", "lasso"], "--dataset lists mock more than once"),
    (["-d", "mock", "-m", "lasso", "-p", "task=classification"],
     "-p task is not a hyperparameter: the harness sets it for every job (from the target's task; choose the target with -t)"),
    (["-d", "mock", "-m", "lasso", "-p", "seed=3"], "-p seed is not a hyperparameter: the harness sets it for every job (choose it with --seed or --seeds)"),
    (["-d", "mock", "-m", "lasso", "--protocol", "table2"], "unknown protocol 'table2'; did you mean 'table1'? (valid: strong, table1)"),
    (["-d", "mock", "-m", "lasso", "-f", "chemm"], "unknown featurizer 'chemm'; did you mean 'chem'"),
    (["-d", "mock", "-m", "lasso", "-f", "chem:radius"], "must be NAME=VALUE"),
    (["-d", "mock", "-m", "lasso", "-f", "chem:colour=1", "--folds", "0"], "featurizer 'chem' has no option 'colour'"),
    (["-d", "mock", "-m", "lasso", "-p", "alpha=-1", "--folds", "0", "-t", "score"], "model 'lasso' failed"),
    (["-d", "mock", "-m", "lasso", "--executor", "slurm", "--jobs", "2"], "unknown executor 'slurm'"),
    (["-d", "mock", "-m", "lasso", "--seed", "-1"], "--seed must be between 0 and 42949671, got -1"),
    (["-d", "mock", "-m", "lasso", "--seed", str(2**32)], "--seed must be between 0 and 42949671"),
    (["-d", "mock", "-m", "lasso", "-p", "alpha=True"], "-p alpha=True: model 'lasso' expects a number for 'alpha'"),
    (["-d", "mock", "-m", "lasso", "-p", "alpha=2", "-p", "alpha=3"], "--param alpha is given twice (2 and 3)"),
    (["-d", "mock", "-m", "treecomb", "-p", "max_depth=2.5"], "model 'treecomb' expects an integer for 'max_depth'"),
    (["-d", "mock", "-m", "lasso", "--jobs", "2"], "--jobs 2 has no effect with the inline executor"),
    (["-d", "mock", "-m", "lasso", "--ray-address", "auto"], "--ray-address applies to --executor ray only"),
    # an unreachable cluster is one line at once (ray.init retried it for minutes, ignoring signals)
    (["-d", "mock", "-m", "lasso", "--executor", "ray", "--ray-address", "127.0.0.1:1"], "cannot reach Ray at 127.0.0.1:1: "),
    (["-d", "mock", "-m", "lasso", "--executor", "ray", "--ray-address", "head"], "--ray-address 'head' is not HOST:PORT"),
    (["-d", "mock", "-m", "lasso", "--split", "random", "--n-folds", "0"], "--n-folds must be at least 2"),
    (["-d", "mock", "-m", "lasso", "--split", "random", "--n-folds", "100000"], "--n-folds 100000 is more than the 576 rows"),
    # a split whose folds the data fixes refuses another count instead of ignoring it
    (["-d", "mock", "-m", "lasso", "--n-folds", "3"],
     "--n-folds 3 does not apply to split 'published' of dataset 'mock', whose 5 folds the data fixes; for 3 generated "
     "folds add --split random"),
    (["-d", "mock", "-m", "lasso", "--split", "leave-tissue-out", "--n-folds", "2"],
     "--n-folds 2 does not apply to split 'leave-tissue-out' of dataset 'mock', whose 3 folds"),
    # unknown names: matched ignoring case, and the valid ones listed where there are few
    (["-d", "mock", "-m", "SVMM"], "unknown model 'SVMM'; did you mean 'svm'"),
    (["-d", "mock", "-m", "lasso", "--profile", "fast"], "has no profile 'fast' (valid: paper, cpu,"),
    (["-d", "mock", "-m", "lasso", "--split", "leave-one-out"], "(valid: published, random, leave-combination-out"),
    (["-d", "mock", "-m", "lasso", "-t", "SCOR"], "has no target 'SCOR'; did you mean 'score'"),
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


def test_a_run_the_data_refuses_creates_no_store(tmp_path):
    """Defect: a run refused for a single-class fold left a new --out holding store.json, split
    tables and an invocation line."""
    out = tmp_path / "new-store"
    res = _cli("run", "-d", "mock", "-m", "constant", "-t", "synergistic", "--split", "random", "--n-folds", "200",
               "--profile", "smoke", "--out", str(out))
    assert res.returncode == 2 and "has a single class" in res.stderr and len(res.stderr.strip().splitlines()) == 1
    assert not out.exists()


def test_n_folds_sets_generated_splits_and_may_repeat_a_fixed_count():
    from synbench import runner
    def folds(**kw):
        return sorted({j.fold for j in runner.plan(["mock"], ["lasso"], targets=["score"], profile="smoke", **kw)})
    assert folds() == folds(split="published", n_folds=5) == [0, 1, 2, 3, 4]  # the published count, given or not
    assert folds(split="random", n_folds=3) == [0, 1, 2]
    assert folds(split="leave-tissue-out") == folds(split="leave-tissue-out", n_folds=3) == [0, 1, 2]


def test_names_are_matched_ignoring_case_and_usual_aliases(store):
    res = _cli("run", "-d", "MOCK", "-m", "LASSO", "-f", "CHEM:n_bits=64", "-t", "score", "--folds", "0",
               "--profile", "smoke", "--dry-run", "--out", str(store))
    assert res.returncode == 0, res.stderr
    assert " lasso " in res.stdout and "chem:n_bits=64" in res.stdout and "LASSO" not in res.stdout
    board = _cli("leaderboard", str(store), "--metric", "pearson", "--metric", "AUC", "--no-write")
    assert board.returncode == 0, board.stderr
    assert "pcc" in board.stdout
    wrong = _cli("leaderboard", str(store), "--metric", "pearsonn", "--no-write")
    assert wrong.returncode == 2 and "did you mean 'pcc'" in wrong.stderr


def test_a_fixed_parameter_outside_every_searched_range_is_warned_about(store):
    res = _cli("run", "-d", "mock", "-m", "lasso", "-p", "alpha=5000", "-t", "score", "--folds", "0", "--profile", "smoke",
               "--dry-run", "--out", str(store))
    assert res.returncode == 0, res.stderr
    assert "warning: -p alpha=5000 is outside the range model 'lasso' searches" in res.stderr and "under strong" in res.stderr
    # a value the run's protocol does not search (XGBoost's tree cap is fixed under strong) is no
    # ablation of a range: only the protocols that run are compared
    trees = ["run", "-d", "mock", "-m", "treecomb", "-p", "n_estimators=500", "-t", "score", "--folds", "0", "--profile",
             "smoke", "--dry-run", "--out", str(store)]
    assert "outside the range" not in _cli(*trees).stderr
    table1 = _cli(*trees, "--protocol", "table1")
    assert "-p n_estimators=500 is outside the range model 'treecomb' searches ([10, 50] under table1)" in table1.stderr
    # the type follows the protocol too: strong searches min_child_weight as a real, table1 as an integer
    weight = ["run", "-d", "mock", "-m", "treecomb", "-p", "min_child_weight=2.5", "-t", "score", "--folds", "0", "--profile",
              "smoke", "--dry-run", "--out", str(store)]
    assert _cli(*weight).returncode == 0
    refused = _cli(*weight, "--protocol", "table1")
    assert refused.returncode == 2 and "expects an integer for 'min_child_weight'" in refused.stderr


def test_files_the_user_names_that_cannot_be_written_are_one_line_errors(store, tmp_path):
    before = _snapshot(store)
    afile = tmp_path / "notes.txt"
    afile.write_text("mine")
    for args, named in [(["--csv", str(tmp_path), "--markdown", str(tmp_path / "board.md")], str(tmp_path)),
                        (["--markdown", str(afile / "board.md"), "--csv", str(tmp_path / "board.csv")], str(afile))]:
        res = _cli("leaderboard", str(store), *args)
        assert res.returncode == 2, res.stderr
        (line,) = [l for l in res.stderr.splitlines() if l.startswith("error:")]
        assert named in line and "Traceback" not in res.stderr
    assert _snapshot(store) == before
    res = _cli("run", "-d", "mock", "-m", "constant", "-t", "score", "--folds", "0", "--profile", "smoke", "--out", str(afile))
    assert res.returncode == 2 and str(afile) in res.stderr and "Traceback" not in res.stderr
    assert afile.read_text() == "mine"


def test_the_error_boundary_names_the_file_and_keeps_tracebacks_on_request(monkeypatch, capsys):
    import typer

    from synbench.cli import user_errors

    for exc, expected in [(PermissionError(13, "Permission denied", "/data/D1/labels.csv"), "/data/D1/labels.csv: Permission denied"),
                          (IsADirectoryError(21, "Is a directory", "out/board.csv"), "out/board.csv: Is a directory")]:
        with pytest.raises(typer.Exit) as stopped:
            with user_errors():
                raise exc
        assert stopped.value.exit_code == 2
        assert capsys.readouterr().err.strip() == f"error: {expected}"
    pa = pytest.importorskip("pyarrow")
    with pytest.raises(typer.Exit) as stopped:
        with user_errors():
            raise pa.lib.ArrowInvalid("Parquet magic bytes not found in footer")
    assert stopped.value.exit_code == 2 and "Parquet magic bytes" in capsys.readouterr().err
    with pytest.raises(KeyError):  # a bug keeps its traceback
        with user_errors():
            raise KeyError("x")
    monkeypatch.setenv("SYNBENCH_DEBUG", "1")
    with pytest.raises(PermissionError):
        with user_errors():
            raise PermissionError(13, "Permission denied", "/data/D1/labels.csv")


def test_conflicting_replicate_labels_are_kept_and_reported_once(monkeypatch, capsys):
    from synbench import data as data_module
    from synbench.data import Target

    monkeypatch.setattr(data_module, "_warned", set())
    data = mock_data()
    c = data.combinations
    c["label"] = (c["score"] > c["score"].median()).astype(float)
    # the same pair in the other drug order, on the same cell line, with the other label
    first = c.iloc[[0]].copy()
    first.index = pd.Index(["mock-replicate"], name="row_id")
    first[["drug_1", "drug_2"]] = first[["drug_2", "drug_1"]].to_numpy()
    first["label"] = 1.0 - first["label"]
    data.combinations = pd.concat([c, first])
    data.combinations.index.name = "row_id"
    data.targets["label"] = Target("label", "classification", "label")
    data.validate()
    data.validate()
    lines = [l for l in capsys.readouterr().err.splitlines() if l.startswith("warning:")]
    pair = " + ".join(sorted([c.iloc[0]["drug_1"], c.iloc[0]["drug_2"]]))
    assert lines == [f"warning: dataset 'mock': 1 of 1 replicate groups (same drugs in any order, same cell line) have "
                     f"conflicting 'label' labels, e.g. {pair} on {c.iloc[0]['cell_line']}; they are kept"]


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
    # a name clash leaves the other plugins usable: tests/test_plugin_kit.py covers it
    (_GOOD_MODEL.format(missing=1) + "@hookimpl\ndef synbench_register_models():\n    return [Shape]\n",
     "model 'shape-model' returned"),
    (_GOOD_MODEL.format(missing=0).replace("return self", "raise ValueError('singular matrix')")
     + "@hookimpl\ndef synbench_register_models():\n    return [Shape]\n",
     "model 'shape-model' failed on mock/score shape-model [strong] fold 0: ValueError: singular matrix"),
    # the runner refuses what synbench.testing.check_model refuses
    (_GOOD_MODEL.format(missing=0).replace("np.zeros(len(batch) - 0)", "np.zeros((len(batch), 2))")
     + "@hookimpl\ndef synbench_register_models():\n    return [Shape]\n",
     "model 'shape-model' returned predictions of shape ("),
    (_GOOD_MODEL.format(missing=0).replace("np.zeros(len(batch) - 0)", "np.full(len(batch), np.nan)")
     + "@hookimpl\ndef synbench_register_models():\n    return [Shape]\n",
     "NaN or infinite predictions of"),
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


def test_classification_scores_outside_0_1_are_refused(tmp_path, store):
    body = (_GOOD_MODEL.format(missing=0).replace("np.zeros(len(batch) - 0)", "np.full(len(batch), 2.0)")
            + "@hookimpl\ndef synbench_register_models():\n    return [Shape]\n")
    (tmp_path / "badplugin.py").write_text(_PLUGIN_HEAD + body)
    import os

    env = {"SYNBENCH_PLUGINS": "badplugin", "PYTHONPATH": os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")])}
    before = _snapshot(store)
    res = _cli("run", "-d", "mock", "-t", "synergistic", "-m", "shape-model", "--folds", "0", "--profile", "smoke",
               "--no-constant", "--out", str(store), env=env)
    assert res.returncode == 2, res.stderr
    assert "model 'shape-model' returned classification scores from 2 to 2 on mock/synergistic shape-model" in res.stderr
    assert "class-1 probabilities in [0, 1]" in res.stderr
    assert len([l for l in res.stderr.splitlines() if l.startswith("error:")]) == 1 and "Traceback" not in res.stderr
    assert _snapshot(store) == before
