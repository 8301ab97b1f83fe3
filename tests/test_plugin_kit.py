"""The plugin author's kit: registration-time checks, clashes, unpackaged plugins, featurizer options,
coverage, `synbench check`, `synbench new` scaffolds and the worked example of docs/plugins.md."""

import json
import os
import re
import shlex
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from synbench.errors import ConfigError, DataError, DataUnavailableError, PluginError
from synbench.registry import get_registry

REPO = Path(__file__).resolve().parent.parent
GUIDE = REPO / "docs" / "plugins.md"

GOOD_MODEL = '''
import numpy as np
from synbench import hookimpl
from synbench.base import Model, Profile


class {cls}(Model):
    name = "{name}"
    description = "training median"
    tasks = ("regression",)
    profiles = {{p: Profile() for p in ("paper", "cpu", "smoke")}}

    def fit(self, train, valid=None):
        self.median_ = float(np.median(train.y))
        return self

    def predict(self, batch):
        return np.full({size}, self.median_)
'''


@pytest.fixture
def plugins(tmp_path, monkeypatch):
    """Write plugin modules and load them through SYNBENCH_PLUGINS into a fresh registry."""
    written = []
    monkeypatch.syspath_prepend(str(tmp_path))

    def load(modules: dict, choose: str = ""):
        for name, source in modules.items():
            (tmp_path / f"{name}.py").write_text(textwrap.dedent(source))
            sys.modules.pop(name, None)
            written.append(name)
        monkeypatch.setenv("SYNBENCH_PLUGINS", ",".join(modules))
        monkeypatch.setenv("SYNBENCH_CHOOSE", choose)
        get_registry.cache_clear()
        return get_registry()

    yield load
    for name in written:
        sys.modules.pop(name, None)
    get_registry.cache_clear()


def _cli(*args, env=None):
    from typer.testing import CliRunner

    from synbench.cli import app

    return CliRunner().invoke(app, [str(a) for a in args], env={"SYNBENCH_OFFLINE": "1", **(env or {})})


# -- defect 1: check_dataset passes broken datasets ------------------------------------------------
BROKEN_DATASETS = '''
from synbench import hookimpl
from synbench.base import Dataset
from synbench.errors import DataUnavailableError
from synbench.plugins.datasets.mock import make_mock


class DuplicateRows(Dataset):
    name = "kit-duplicate-rows"

    def load(self, data_dir=None):
        data = make_mock()
        data.name = self.name
        data.combinations.index = data.combinations.index.where(data.combinations.index != "mock-0001", "mock-0000")
        data.combinations.index.name = "row_id"
        return data.validate()  # raises in load(), where the old check took any error for missing data


class UnknownDrug(Dataset):
    name = "kit-unknown-drug"

    def load(self, data_dir=None):
        data = make_mock()
        data.name = self.name
        data.drugs = data.drugs.drop(index="ASPIRIN")
        return data.validate()


class NotHere(Dataset):
    name = "kit-not-here"

    def load(self, data_dir=None):
        raise DataUnavailableError("kit.csv not found in the data directory")


@hookimpl
def synbench_register_datasets():
    return [DuplicateRows, UnknownDrug, NotHere]
'''


def test_check_dataset_fails_broken_data_and_skips_only_unavailable_files(plugins):
    from synbench.testing import check_dataset, check_plugin

    registry = plugins({"kit_datasets": BROKEN_DATASETS})
    with pytest.raises(DataError, match="duplicate row ids mock-0000"):
        check_dataset(registry.dataset("kit-duplicate-rows"))
    with pytest.raises(DataError, match="drugs not in the drug table: ASPIRIN"):
        check_dataset(registry.dataset("kit-unknown-drug"))
    with pytest.raises(DataUnavailableError):
        check_dataset(registry.dataset("kit-not-here"))
    with pytest.raises(pytest.skip.Exception, match="kit.csv not found"):  # a visible skip, with its reason
        check_plugin("dataset:kit-not-here")
    with pytest.raises(DataError):  # the pytest helper fails the broken ones
        check_plugin("dataset:kit-duplicate-rows")


# -- defect 3: unpackaged plugins ------------------------------------------------------------------
def test_unpackaged_plugin_is_recorded_with_its_file_and_source_hash(plugins, tmp_path):
    import hashlib

    registry = plugins({"kit_loose": GOOD_MODEL.format(cls="Loose", name="kit-loose", size="len(batch)")
                        + "\n@hookimpl\ndef synbench_register_models():\n    return [Loose]\n"})
    entry = registry.entry("model", "kit-loose")
    source = tmp_path / "kit_loose.py"
    assert entry.package == "(unpackaged)" and entry.file == str(source)
    assert entry.version == "sha256:" + hashlib.sha256(b"kit_loose.py\0" + source.read_bytes() + b"\0").hexdigest()[:16]
    listing = _cli("plugins", "--kind", "model")
    line = next(l for l in listing.stdout.splitlines() if "kit-loose" in l)
    assert "(unpackaged)" in line and entry.version in line and " 0.1.0 " not in line

    store = tmp_path / "store"
    res = _cli("run", "-d", "mock", "-m", "kit-loose", "-t", "score", "--folds", "0", "--profile", "smoke",
               "--no-constant", "--out", store)
    assert res.exit_code == 0, res.output
    record = json.loads(next(store.glob("jobs/*/record.json")).read_text())
    prov = record["provenance"]
    assert prov["plugin_package"] == "(unpackaged)" and prov["plugin_file"] == str(source)
    assert prov["plugin_version"] == entry.version
    board = _cli("leaderboard", store)
    assert board.exit_code == 0, board.output
    provenance = (store / "PROVENANCE.md").read_text()  # the report's provenance section is the same text
    assert f"plugins from (unpackaged) {entry.version} (kit_loose, {source}): model kit-loose" in provenance
    assert "plugins from synbench " in provenance and "dataset mock" in provenance


# -- defect 4: name clashes ------------------------------------------------------------------------
def _clashing(owner: str) -> str:
    return GOOD_MODEL.format(cls="Dup", name="kit-dup", size="len(batch)") + f'''

from synbench.base import Featurizer


class DupFeatures(Featurizer):
    name = "kit-dup-features"

    def featurize(self, data):
        raise NotImplementedError


Dup.description = "from {owner}"


@hookimpl
def synbench_register_models():
    return [Dup]


@hookimpl
def synbench_register_featurizers():
    return [DupFeatures]
'''


def test_name_clashes_are_all_listed_and_leave_other_commands_working(plugins):
    registry = plugins({"kit_first": _clashing("first"), "kit_second": _clashing("second")})
    assert set(registry.clashes) == {("model", "kit-dup"), ("featurizer", "kit-dup-features")}
    with pytest.raises(PluginError) as err:
        registry.model("kit-dup")
    message = str(err.value)
    assert "\n" not in message
    for part in ("model 'kit-dup' is registered by kit_first", "featurizer 'kit-dup-features' is registered by kit_first",
                 "(unpackaged", "pip uninstall", "SYNBENCH_CHOOSE=featurizer:kit-dup-features=kit_first"):
        assert part in message
    assert registry.model("lasso").name == "lasso"  # everything else still resolves

    listing = _cli("plugins")
    assert listing.exit_code == 0, listing.output
    assert sum("kit-dup " in l and "CLASH" in l for l in listing.stdout.splitlines()) == 2
    assert "uninstall one of each" in listing.stderr
    store = REPO / "results" / "d3-deepdds-cpu"
    if store.is_dir():
        board = _cli("leaderboard", store, "--no-write")
        assert board.exit_code == 0, board.output
    run = _cli("run", "-d", "mock", "-m", "kit-dup", "--dry-run")
    assert run.exit_code == 2 and "plugin name clashes" in run.stderr

    chosen = plugins({"kit_first": _clashing("first"), "kit_second": _clashing("second")},
                     choose="model:kit-dup=kit_second,featurizer:kit-dup-features=kit_first")
    assert not chosen.clashes and chosen.model("kit-dup").description == "from second"
    with pytest.raises(ConfigError, match="SYNBENCH_CHOOSE: model:kit-dup=nobody matches 0"):
        plugins({"kit_first": _clashing("first"), "kit_second": _clashing("second")}, choose="model:kit-dup=nobody")


# -- defect 5 and featurizer options: declarations checked at registration -------------------------
BAD_DECLARATIONS = GOOD_MODEL.format(cls="Typos", name="kit-typos", size="len(batch)") + '''
from synbench.base import Categorical, Featurizer, Integer, Real


class Typos(Typos):  # the same model with mistakes in every declaration
    featurizers = ("chem", "chemm", "expression:n_gene=5")
    search_space = {"alpah": Real(0.1, 1.0)}
    search_spaces = {"table1": {"betta": Integer(1, 3)}, "strnog": {}}
    profiles = {"paper": Profile(), "cpu": Profile(params={"epoch": 3}), "smoke": Profile()}


class BadOptions(Featurizer):
    name = "kit-bad-options"
    options = {"size": Integer(1, 10), "mode": Categorical(("a", "b"))}

    def __init__(self, size=50, mode="a"):
        super().__init__(size=size, mode=mode)


class Fine(Featurizer):
    name = "kit-fine"
    needs = ()
    options = {"size": Integer(1, 10)}

    def __init__(self, size=2):
        super().__init__(size=size)


@hookimpl
def synbench_register_models():
    return [Typos]


@hookimpl
def synbench_register_featurizers():
    return [BadOptions, Fine]
'''


def test_declaration_mistakes_fail_at_registration_not_in_a_job(plugins):
    from synbench import runner

    registry = plugins({"kit_typos": BAD_DECLARATIONS})
    problems = " | ".join(registry._entries["model"]["kit-typos"].problems)
    for part in ("search_space names 'alpah'", "search_spaces['table1'] names 'betta'", "key 'strnog'",
                 "profile 'cpu' sets 'epoch'", "featurizer 'chemm' is not registered; did you mean 'chem'?",
                 "featurizer 'expression' has no option 'n_gene'; did you mean 'n_genes'?"):
        assert part in problems
    with pytest.raises(PluginError, match="model 'kit-typos' from kit_typos .* is not usable: search_space names 'alpah'"):
        runner.plan(["mock"], ["kit-typos"], profile="smoke")  # before any job, whatever the profile
    assert "default size=50 is outside its declared range" in registry._entries["featurizer"]["kit-bad-options"].problems[0]
    assert registry.featurizer("kit-fine").name == "kit-fine"
    listing = _cli("plugins", "--kind", "model")
    assert listing.exit_code == 0 and "BROKEN: search_space names 'alpah'" in listing.stdout


def test_featurizer_options_are_declared_and_checked(plugins):
    from synbench import runner
    from synbench.features import featurize
    from synbench.testing import mock_data

    plugins({"kit_typos": BAD_DECLARATIONS})
    data = mock_data()
    with pytest.raises(ConfigError, match=r"option n_genes=-3 is invalid; n_genes must be an integer in \[1, 1000000\] or None"):
        featurize(data, "expression:n_genes=-3", use_cache=False)
    with pytest.raises(ConfigError, match="featurizer 'chem' has no option 'nbits'; did you mean 'n_bits'?"):
        featurize(data, "chem:nbits=64", use_cache=False)
    with pytest.raises(ConfigError, match="normalise must be one of zscore, tanh, none"):
        featurize(data, "expression:normalise=tan", use_cache=False)
    with pytest.raises(ConfigError, match=r"featurizer 'kit-fine': option size=11 is invalid; size must be an integer in \[1, 10\]"):
        featurize(data, "kit-fine:size=11", use_cache=False)  # a plugin's options are checked like the built-ins'
    with pytest.raises(ConfigError, match="featurizer 'kit-fine' has no option 'colour'"):
        featurize(data, "kit-fine:colour=1", use_cache=False)
    with pytest.raises(ConfigError, match="n_genes must be"):  # a run fails while planning, before any job
        runner.plan(["mock"], ["lasso"], featurizers=["chem", "expression:n_genes=0"], profile="smoke")
    assert featurize(data, "expression:n_genes=5", use_cache=False).cell_lines.shape[1] == 5
    assert featurize(data, "expression:n_genes=None", use_cache=False).cell_lines.shape[1] == 24


# -- defect 7: coverage by a featurizer that needs no entity data ----------------------------------
ONEHOT_AND_GAPPY = '''
import numpy as np
import pandas as pd
from synbench import hookimpl
from synbench.base import Dataset, Featurizer
from synbench.data import FeatureSet
from synbench.plugins.datasets.mock import make_mock


class OneHot(Featurizer):
    name = "kit-onehot"
    needs = ()

    def featurize(self, data):
        eye = lambda names: pd.DataFrame(np.eye(len(names)), index=list(names))
        return FeatureSet(self.name, "tabular", drugs=eye(data.drugs.index), cell_lines=eye(data.cell_lines.index))


class Gappy(Dataset):
    name = "kit-gappy"

    def load(self, data_dir=None):
        data = make_mock()
        data.name = self.name
        data.cell_lines = data.cell_lines.drop(columns=["description"])
        data.omics = {"expression": data.omics["expression"].drop(index="CELL-F")}
        return data


@hookimpl
def synbench_register_featurizers():
    return [OneHot]


@hookimpl
def synbench_register_datasets():
    return [Gappy]
'''


def test_a_featurizer_that_needs_no_entity_data_covers_every_entity(plugins, tmp_path):
    from synbench.entities import coverage
    from synbench.runner import load_dataset

    registry = plugins({"kit_onehot": ONEHOT_AND_GAPPY})
    data = load_dataset("kit-gappy")
    builtin = [registry.featurizer(n) for n in ("chem", "expression", "description")]
    (_, cells), _ = coverage(data, descriptions=tmp_path, featurizers=builtin)
    assert cells.uncovered == ["CELL-F"]
    (drugs, cells), _ = coverage(data, descriptions=tmp_path, featurizers=builtin + [registry.featurizer("kit-onehot")])
    assert cells.uncovered == [] and drugs.uncovered == []
    assert cells.featurizers["kit-onehot"] == set(cells.names) and cells.featurizers["chem"] == set()
    shown = _cli("datasets", "show", "kit-gappy")
    assert shown.exit_code == 0, shown.output
    assert "cell lines without expression (1): CELL-F" in shown.stdout
    assert "no featurizer can cover" not in shown.stdout
    load_dataset.cache_clear()


# -- synbench check --------------------------------------------------------------------------------
def test_check_reports_every_plugin_of_a_module_with_reasons(plugins):
    source = (GOOD_MODEL.format(cls="Good", name="kit-good", size="len(batch)")
              + GOOD_MODEL.format(cls="Short", name="kit-short", size="len(batch) - 1")
              + BROKEN_DATASETS.replace("from synbench import hookimpl", "")
              + "\n@hookimpl\ndef synbench_register_models():\n    return [Good, Short]\n")
    plugins({"kit_mixed": source})
    res = _cli("check", "kit_mixed")
    assert res.exit_code == 1, res.output
    rows = {line.split()[1]: line for line in res.stdout.splitlines() if line.startswith((" model", " dataset"))}
    assert "passed" in rows["kit-good"]
    assert re.search(r"failed .*predict\(\) returned \(\d+,\) for \d+ rows", rows["kit-short"])
    assert "failed" in rows["kit-duplicate-rows"] and "duplicate row ids" in rows["kit-duplicate-rows"]
    assert "skipped" in rows["kit-not-here"] and "kit.csv not found" in rows["kit-not-here"]
    assert "1 passed, 3 failed, 1 skipped" in res.stderr
    unknown = _cli("check", "kit_mixd")
    assert unknown.exit_code == 2 and "did you mean 'kit_mixed'" in unknown.stderr


# -- synbench new ----------------------------------------------------------------------------------
def _install(site: Path, *packages: Path) -> None:
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                    "--target", str(site), *map(str, packages)], check=True, capture_output=True)


def _env(site: Path, **extra) -> dict:
    env = {**os.environ, "PYTHONPATH": str(site) + os.pathsep + os.environ.get("PYTHONPATH", ""), "SYNBENCH_OFFLINE": "1"}
    env.pop("SYNBENCH_PLUGINS", None)
    return {**env, **extra}


@pytest.mark.slow
def test_scaffolds_install_and_pass_their_checks_as_generated(tmp_path):
    for kind in ("model", "featurizer", "dataset"):
        res = _cli("new", kind, f"kit-{kind}", "--out", tmp_path)
        assert res.exit_code == 0, res.output
    packages = [tmp_path / f"synbench-kit-{kind}" for kind in ("model", "featurizer", "dataset")]
    assert (packages[2] / "synbench_kit_dataset" / "data" / "combinations.csv").is_file()
    site = tmp_path / "site"
    _install(site, *packages)
    check = subprocess.run([sys.executable, "-m", "synbench.cli", "check", *[p.name for p in packages]],
                           capture_output=True, text=True, env=_env(site), timeout=600)
    assert check.returncode == 0, check.stdout + check.stderr
    assert "3 passed, 0 failed, 0 skipped" in check.stderr
    tests = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *[str(p / "tests") for p in packages]],
                           capture_output=True, text=True, env=_env(site), timeout=600, cwd=tmp_path)
    assert tests.returncode == 0 and "3 passed" in tests.stdout, tests.stdout + tests.stderr

    again = _cli("new", "model", "kit-model", "--out", tmp_path)
    assert again.exit_code == 2 and "already exists" in again.stderr
    taken = _cli("new", "model", "lasso", "--out", tmp_path)
    assert taken.exit_code == 2 and "model 'lasso' is already registered by synbench.plugins.models.lasso" in taken.stderr
    spelled = _cli("new", "model", "elastic_net", "--out", tmp_path)  # `-m elastic_net` runs elastic-net
    assert spelled.exit_code == 2 and "model 'elastic_net' is already registered by synbench.plugins.models.elastic_net" in spelled.stderr
    assert "(as 'elastic-net': names match ignoring case and '-' vs '_'); choose another name" in spelled.stderr
    assert not (tmp_path / "synbench-elastic_net").exists() and not (tmp_path / "synbench-elastic-net").exists()
    assert _cli("new", "model", "My Model").exit_code == 2
    assert "did you mean 'model'" in _cli("new", "modle", "x").stderr


# -- the guide's worked example --------------------------------------------------------------------
def _guide():
    text = GUIDE.read_text(encoding="utf-8")
    files = dict(re.findall(r"<!-- file: (\S+) -->\n```\w*\n(.*?)```", text, flags=re.S))
    commands = re.search(r"Install, check and run it:\n\n```bash\n(.*?)```", text, flags=re.S).group(1)
    lines = [line.split("  #")[0].strip() for line in commands.splitlines()]
    return files, [c.strip() for line in lines if line for c in line.split("&&")]


@pytest.mark.slow
def test_the_guides_worked_example_runs(tmp_path):
    files, commands = _guide()
    assert {"synbench-toy/pyproject.toml", "synbench-toy/synbench_toy/plugin.py", "make_toy_data.py"} <= set(files)
    for rel, text in files.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text, encoding="utf-8")
    site = tmp_path / "site"
    env = _env(site, SYNBENCH_DATA_DIR=str(tmp_path / "data"))
    outputs = {}
    for command in commands:
        args = shlex.split(command)
        if args[:3] == ["pip", "install", "-e"]:
            _install(site, tmp_path / args[3])
            continue
        if args[0] == "synbench":
            args = [sys.executable, "-m", "synbench.cli", *args[1:]]
            if args[3] == "run":
                args += ["--folds", "0", "-t", "synergy"]  # one cell of the documented grid keeps the test short
        elif args[0] == "python":
            args[0] = sys.executable
            if args[1:3] == ["-m", "pytest"]:
                args.insert(3, "-pno:cacheprovider")
        res = subprocess.run(args, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=600)
        assert res.returncode == 0, f"{command}\n{res.stdout}\n{res.stderr}"
        outputs[" ".join(args[3:5]) if "synbench.cli" in args else command] = res.stdout + res.stderr
    listing = outputs["plugins"]
    assert all(re.search(rf"{name}\s.*synbench-toy\s+0\.1\.0", listing) for name in ("toy-csv", "onehot", "knn"))
    assert "3 passed, 0 failed, 0 skipped" in outputs["check synbench-toy"]
    assert "no featurizer can cover" not in outputs["datasets show"]
    assert "knn" in outputs["leaderboard toy-store"] and "onehot:scale=2" in outputs["leaderboard toy-store"]
    bad = subprocess.run([sys.executable, "-m", "synbench.cli", "run", "-d", "toy-csv", "-m", "knn", "-f", "onehot:scale=-1",
                          "--out", "toy-store"], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=600)
    assert bad.returncode == 2 and "featurizer 'onehot': option scale=-1 is invalid; scale must be a number in [0, 100]" in bad.stderr
