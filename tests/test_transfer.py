"""Transfer scenarios: tissue split schemes, cross-dataset evaluation and user embedding files."""

import dataclasses
import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pandas as pd
import pytest

from synbench.errors import ConfigError, DataError, SynbenchError
from synbench.features import featurize
from synbench.splits import (check_scheme, combination_keys, entity_coverage, fold_groups, fold_ids, make_splits,
                             n_folds_of, with_cross)
from synbench.store import Store
from synbench.testing import mock_data


@pytest.fixture(scope="module")
def data():
    return mock_data()


@pytest.fixture(scope="module")
def both_orders(data):
    """The mock screen with every row measured again in the reverse drug order (a replicate)."""
    rows = data.combinations
    flipped = rows.copy()
    flipped["drug_1"], flipped["drug_2"] = rows["drug_2"].to_numpy(), rows["drug_1"].to_numpy()
    flipped.index = pd.Index([f"{r}~rev" for r in rows.index], name="row_id")
    return dataclasses.replace(data, combinations=pd.concat([rows, flipped])).validate()


def _tissue(data):
    return data.combinations["cell_line"].map(data.cell_lines["tissue"])


def test_leave_tissue_out_tests_each_tissue_whole_and_trains_on_none_of_it(both_orders):
    data, tissue = both_orders, _tissue(both_orders)
    splits = make_splits(data, "leave-tissue-out", seed=0)
    assert n_folds_of(data, "leave-tissue-out", 5) == 3
    assert fold_groups(splits) == dict(enumerate(sorted(tissue.unique())))
    for fold, target in fold_groups(splits).items():
        ids = fold_ids(splits, fold)
        assert set(ids["test"]) == set(tissue.index[tissue == target])
        seen = ids["train"].append(ids["valid"])
        assert not (tissue.loc[seen] == target).any()
        assert set(seen) == set(tissue.index[tissue != target]), "every other tissue trains"
        # inner validation holds out a whole tissue, as the test fold does
        assert not set(tissue.loc[ids["valid"]]) & set(tissue.loc[ids["train"]])


@pytest.mark.parametrize("fraction", [0.0, 0.1, 0.3, 0.5])
def test_few_shot_never_splits_a_pair_of_the_target_tissue_and_takes_the_exact_fraction(both_orders, fraction):
    data, tissue = both_orders, _tissue(both_orders)
    rows = data.combinations
    keys = combination_keys(rows, data.drug_columns)
    scheme = check_scheme(data, f"tissue-few-shot:fraction={fraction}")
    splits = make_splits(data, scheme, seed=2)
    assert fold_groups(splits) == dict(enumerate(sorted(tissue.unique())))
    for fold, target in fold_groups(splits).items():
        ids = fold_ids(splits, fold)
        seen = ids["train"].append(ids["valid"])
        in_target = tissue == target
        test_pairs = set(keys.loc[ids["test"]])
        shot_pairs = set(keys.loc[seen][in_target.loc[seen]])
        assert (tissue.loc[ids["test"]] == target).all()
        # neither drug order of a tested pair is measured in the target tissue on the training side
        assert not test_pairs & shot_pairs
        flipped = {"|".join(reversed(k.split("|"))) for k in test_pairs}
        assert not flipped & shot_pairs
        # a training pair brings every one of its rows in the target tissue (both orders, all cell lines)
        assert set(seen[in_target.loc[seen].to_numpy()]) == set(rows.index[in_target & keys.isin(shot_pairs)])
        n_pairs = keys[in_target].nunique()
        assert len(shot_pairs) == int(np.floor(fraction * n_pairs + 0.5))
        assert len(test_pairs) == n_pairs - len(shot_pairs)
        assert set(seen[~in_target.loc[seen].to_numpy()]) == set(rows.index[~in_target]), "every other tissue trains"


def test_few_shot_names_are_canonical_and_safe_in_file_names(data, tmp_path):
    assert check_scheme(data, "tissue-few-shot:fraction=0.10") == "tissue-few-shot:fraction=0.1"
    assert check_scheme(data, " tissue-few-shot:fraction = 0 ") == "tissue-few-shot:fraction=0"
    store = Store(tmp_path / "store")
    for scheme in ("published", "random", "external:independent", "cross:d1-oneil"):  # kept as they were
        assert store.split_path("mock", scheme, 5, 0).name == f"mock--{scheme}--k5--seed0.parquet"
    a = store.split_path("mock", "tissue-few-shot:fraction=0.1", 3, 0).name
    b = store.split_path("mock", "tissue-few-shot:fraction_0.1", 3, 0).name
    assert "=" not in a and a != b


@pytest.mark.parametrize("scheme, message", [
    ("tissue-few-shot", "needs its fraction"),
    ("tissue-few-shot:frac=0.1", "needs its fraction"),
    ("tissue-few-shot:fraction=one", "is not a number"),
    ("tissue-few-shot:fraction=1", "out of range"),
    ("tissue-few-shot:fraction=-0.1", "out of range"),
    ("tissue-few-shot:fraction=nan", "out of range"),
    ("tissue-fewshot:fraction=0.1", "did you mean 'tissue-few-shot:fraction=F'"),
    ("cross:", "needs the training dataset"),
    ("cross:mock", "trains and tests on dataset 'mock'"),
    ("cross:mokc-train", "unknown dataset"),
])
def test_bad_transfer_schemes_are_one_line_errors(data, scheme, message):
    with pytest.raises(SynbenchError, match=message) as err:
        make_splits(data, scheme)
    assert "\n" not in str(err.value)


def test_tissue_schemes_need_a_tissue_for_every_cell_line(data):
    cells = data.cell_lines.copy()
    cells.loc["CELL-A", "tissue"] = None
    with pytest.raises(ConfigError, match="1 cell lines have no tissue .CELL-A."):
        make_splits(dataclasses.replace(data, cell_lines=cells), "leave-tissue-out")
    with pytest.raises(ConfigError, match="no 'tissue' column"):
        make_splits(dataclasses.replace(data, cell_lines=cells.drop(columns=["tissue"])), "tissue-few-shot:fraction=0.1")



def test_few_shot_runs_end_to_end_and_the_board_names_the_scenario(tmp_path):
    out = tmp_path / "store"
    res = subprocess.run([sys.executable, "-m", "synbench.cli", "run", "-d", "mock", "-m", "lasso", "-t", "score",
                          "--profile", "smoke", "--split", "tissue-few-shot:fraction=0.30", "--no-constant", "--out", str(out)],
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    records = [json.loads(p.read_text()) for p in (out / "jobs").glob("*/record.json")]
    assert sorted(r["job"]["fold"] for r in records) == [0, 1, 2]  # one fold per tissue
    assert {r["job"]["split"] for r in records} == {"tissue-few-shot:fraction=0.3"}
    (path,) = (out / "splits").glob("*.parquet")
    assert "=" not in path.name
    assert fold_groups(Store(out).load_splits(path)) == {0: "breast", 1: "colon", 2: "lung"}  # per-tissue reporting
    board = subprocess.run([sys.executable, "-m", "synbench.cli", "leaderboard", str(out), "--no-write"],
                           capture_output=True, text=True, timeout=300)
    assert board.returncode == 0 and "[tissue-few-shot:fraction=0.3]" in board.stdout
    # each record names its target tissue, and the report gives the score per tissue
    assert {r["job"]["fold"]: r["fold_group"] for r in records} == {0: "breast", 1: "colon", 2: "lung"}
    from synbench import report

    text = report.build([out]).to_markdown("figures")
    section = text.split("## Per held-out group", 1)[1].split("\n## ", 1)[0].split(" pcc\n", 1)[1]
    header = next(line for line in section.splitlines() if line.startswith("| method"))
    assert header.split("|")[2:6] == [" breast ", " colon ", " lung ", " mean over groups "]
    by_fold = {r["job"]["fold"]: r["metrics"]["pcc"] for r in records}
    lasso = next(line for line in section.splitlines() if line.startswith("| lasso"))
    assert [c.strip() for c in lasso.split("|")[2:5]] == [f"{by_fold[f]:.3f}" for f in (0, 1, 2)]
    # a run stopped after two tissues: its mean over them is marked, not passed off as the scenario's
    import shutil

    partial = tmp_path / "partial"
    shutil.copytree(out, partial)
    (last,) = [p.parent for p in (partial / "jobs").glob("*/record.json") if json.loads(p.read_text())["job"]["fold"] == 2]
    shutil.rmtree(last)
    text = report.build([partial]).to_markdown("figures")
    section = text.split("## Per held-out group", 1)[1].split("\n## ", 1)[0].split(" pcc\n", 1)[1]
    lasso = next(line for line in section.splitlines() if line.startswith("| lasso"))
    mean = (by_fold[0] + by_fold[1]) / 2
    assert lasso.split("|")[-2].strip() == f"{mean:.3f} (2/3 groups)"

# -- cross-dataset ---------------------------------------------------------------------------------
def _training_side(data):
    """Another screen: no CARBOPLATIN or DOPAMINE, no CELL-E or CELL-F, aspirin under another name
    (known by its alias) and only the regression target."""
    rows = data.combinations
    drop = rows[data.drug_columns].isin(["CARBOPLATIN", "DOPAMINE"]).any(axis=1) | rows["cell_line"].isin(["CELL-E", "CELL-F"])
    rows = rows.loc[~drop].drop(columns=["fold"]).replace({"ASPIRIN": "ACETYLSALICYLIC ACID"})
    drugs = data.drugs.rename(index={"ASPIRIN": "ACETYLSALICYLIC ACID"})
    drugs.at["ACETYLSALICYLIC ACID", "aliases"] = ["Aspirin"]
    drugs.index.name = "drug"
    return dataclasses.replace(data, name="mock-train", combinations=rows, drugs=drugs, fold_column=None,
                               targets={"score": data.targets["score"]}).validate()


def test_cross_dataset_joins_the_sides_and_reports_what_training_never_saw(data):
    train = _training_side(data)
    joined = with_cross(data, train).validate()
    assert joined.name == "mock" and set(joined.targets) == {"score"}
    assert "ACETYLSALICYLIC ACID" not in set(joined.drugs.index), "resolved through its alias to the test side's name"
    splits = make_splits(joined, "cross:mock-train")
    ids = fold_ids(splits, 0)
    assert set(ids["test"]) == set(data.combinations.index), "the test side keeps its own row ids"
    assert set(ids["train"]) | set(ids["valid"]) == {f"mock-train:{r}" for r in train.combinations.index}
    cov = entity_coverage(joined, ids["train"].append(ids["valid"]), ids["test"])
    assert cov["drugs"]["unseen"] == ["CARBOPLATIN", "DOPAMINE"] and cov["drugs"]["test"] == 12
    assert cov["cell_lines"]["unseen"] == ["CELL-E", "CELL-F"] and cov["cell_lines"]["test"] == 6
    rows = data.combinations
    with_new_drug = rows[data.drug_columns].isin(["CARBOPLATIN", "DOPAMINE"]).any(axis=1)
    assert cov["drugs"]["test_rows_with_unseen"] == int(with_new_drug.sum())
    with_new_cell = rows["cell_line"].isin(["CELL-E", "CELL-F"])
    assert cov["cell_lines"]["test_rows_with_unseen"] == int(with_new_cell.sum())
    assert cov["test_rows_with_unseen"] == int((with_new_drug | with_new_cell).sum()) and cov["test_rows"] == len(rows)
    # the training rows carry the training side's labels under the test side's column
    some = train.combinations.index[0]
    assert joined.labels("score").loc[f"mock-train:{some}"] == train.combinations.at[some, "score"]


def test_cross_dataset_run_stores_the_coverage(tmp_path):
    """`synbench run -d mock --split cross:mock-train`: one fold trained on the other screen."""
    (tmp_path / "mock_train_plugin.py").write_text(textwrap.dedent('''
        import dataclasses

        from synbench.base import Dataset
        from synbench.hookspecs import hookimpl
        from synbench.plugins.datasets.mock import make_mock


        class MockTrain(Dataset):
            name = "mock-train"
            split_schemes = ("random",)

            def load(self, data_dir=None):
                data = make_mock(seed=3)
                rows = data.combinations
                rows = rows.loc[~rows["cell_line"].isin(["CELL-E", "CELL-F"])].drop(columns=["fold"])
                return dataclasses.replace(data, name="mock-train", combinations=rows, fold_column=None)


        @hookimpl
        def synbench_register_datasets():
            return [MockTrain]
    '''))
    env = {**os.environ, "PYTHONPATH": f"{tmp_path}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
           "SYNBENCH_PLUGINS": "mock_train_plugin"}
    out = tmp_path / "store"
    res = subprocess.run([sys.executable, "-m", "synbench.cli", "run", "-d", "mock", "-m", "lasso", "-t", "score",
                          "--profile", "smoke", "--split", "cross:mock-train", "--no-constant", "--out", str(out)],
                         capture_output=True, text=True, timeout=300, env=env)
    assert res.returncode == 0, res.stderr
    assert "0 of 12 test drugs and 2 of 6 test cell lines never seen in training (CELL-E, CELL-F); 192 of 576 test rows" in res.stderr
    records = [json.loads(p.read_text()) for p in (out / "jobs").glob("*/record.json")]
    assert len(records) == 1 and records[0]["job"]["split"] == "cross:mock-train"
    assert records[0]["coverage"]["cell_lines"]["unseen"] == ["CELL-E", "CELL-F"]
    assert records[0]["n_rows"]["test"] == 576
    assert (out / "splits" / "mock--cross:mock-train--k1--seed0.parquet").is_file()
    # the report's coverage table, from the stored records
    res = subprocess.run([sys.executable, "-m", "synbench.cli", "report", str(out), "--out", str(tmp_path / "r" / "report.html")],
                         capture_output=True, text=True, timeout=300, env=env)
    assert res.returncode == 0, res.stderr
    text = (tmp_path / "r" / "report.md").read_text()
    assert "## Test-set coverage" in text
    assert "| mock | cross:mock-train | 576 | 192 | 0 of 12 | 2 of 6 | CELL-E, CELL-F |" in text


# -- embedding files -------------------------------------------------------------------------------
def _embedding(names, dim=3, seed=0):
    rng = np.random.default_rng(seed)
    return pd.DataFrame(rng.normal(size=(len(names), dim)), index=pd.Index(list(names), name="name"),
                        columns=[f"e{i}" for i in range(dim)])


def test_cell_embedding_reads_csv_and_parquet_and_resolves_aliases(data, tmp_path):
    frame = _embedding(data.cell_lines.index)
    frame.index = [n.lower().replace("-", " ") for n in frame.index]  # 'cell a': case and punctuation folded
    frame.loc["NOT-IN-MOCK"] = 1.0  # rows for other cell lines are ignored
    frame.to_csv(tmp_path / "cells.csv")
    frame.to_parquet(tmp_path / "cells.parquet")
    for name in ("cells.csv", "cells.parquet"):
        fs = featurize(data, f"cell-embedding:path={tmp_path / name}", use_cache=False)
        assert fs.drugs is None and list(fs.cell_lines.index) == list(data.cell_lines.index)
        np.testing.assert_allclose(fs.cell_lines.loc["CELL-B"].to_numpy(), frame.loc["cell b"].to_numpy(), rtol=1e-6)
        assert fs.info["entities_covered"] == 6 and fs.info["file_rows"] == 7 and fs.info["file_rows_matched"] == 6
        assert fs.info["dimension"] == 3 and len(fs.info["sha256"]) == 64


def test_drug_embedding_uses_the_drug_aliases(data, tmp_path):
    drugs = data.drugs.copy()
    drugs.at["5-FU", "aliases"] = ["fluorouracil"]
    aliased = dataclasses.replace(data, drugs=drugs)
    frame = _embedding([("FLUOROURACIL" if d == "5-FU" else d) for d in drugs.index])
    frame.to_csv(tmp_path / "drugs.csv")
    fs = featurize(aliased, f"drug-embedding:path={tmp_path / 'drugs.csv'}", use_cache=False)
    np.testing.assert_allclose(fs.drugs.loc["5-FU"].to_numpy(), frame.loc["FLUOROURACIL"].to_numpy(), rtol=1e-6)
    assert fs.info["matched_by_alias"] == 1


def test_an_edited_embedding_file_is_read_again(data, tmp_path):
    path = tmp_path / "cells.csv"
    _embedding(data.cell_lines.index, seed=1).to_csv(path)
    first = featurize(data, f"cell-embedding:path={path}")
    _embedding(data.cell_lines.index, seed=2).to_csv(path)
    second = featurize(data, f"cell-embedding:path={path}")
    assert not np.allclose(first.cell_lines.to_numpy(), second.cell_lines.to_numpy())


def _write(path, text):
    path.write_text(text)
    return path


CELLS = ["CELL-A", "CELL-B", "CELL-C", "CELL-D", "CELL-E", "CELL-F"]
GOOD = "name,e0,e1\n" + "".join(f"{c},{i},0.5\n" for i, c in enumerate(CELLS))


@pytest.mark.parametrize("name, content, message", [
    ("text.csv", GOOD.replace("CELL-C,2,0.5", "CELL-C,high,0.5"), "column 'e0' is not numeric .'high' for 'CELL-C'."),
    ("nan.csv", GOOD.replace("CELL-C,2,0.5", "CELL-C,,0.5"), "1 missing or infinite values .e.g. column 'e0' of 'CELL-C'."),
    ("inf.csv", GOOD.replace("CELL-C,2,0.5", "CELL-C,inf,0.5"), "missing or infinite values"),
    ("dup.csv", GOOD + "CELL-A,9,9\n", "duplicate names CELL-A"),
    ("alias-dup.csv", GOOD + "cell a,9,9\n", "rows 'CELL-A' and 'cell a' both name the cell line 'CELL-A'"),
    ("empty.csv", "", "the embedding file is empty"),
    ("header.csv", "name,e0,e1\n", "has no rows"),
    ("names.csv", "name\n" + "\n".join(CELLS) + "\n", "needs a name column and at least one numeric column"),
    ("blank.csv", GOOD.replace("CELL-C,", ",", 1), "1 rows have no name"),
    ("ragged.csv", GOOD + "CELL-X,1,2,3,4\n", "malformed embedding file"),
    ("broken.parquet", "this is not parquet", "malformed embedding file"),
    ("cells.txt", GOOD, "give an embedding file ending in .csv, .csv.gz or .parquet"),
    ("missing.csv", None, "embedding file not found"),
    ("few.csv", "name,e0\nCELL-A,1\nCELL-B,2\n", "lacks 4 of the 6 cell lines dataset 'mock' uses: CELL-C, CELL-D, CELL-E, CELL-F"),
    ("flags.csv", "name,e0,e1\n" + "".join(f"{c},True,1\n" for c in CELLS), "column 'e0' is not numeric"),
], ids=lambda v: v if isinstance(v, str) and v.count(".") == 1 and "\n" not in v and " " not in v else "")
def test_malformed_embedding_files_are_one_line_errors(data, tmp_path, name, content, message):
    path = tmp_path / name
    if content is not None:
        _write(path, content)
    with pytest.raises(DataError, match=message) as err:
        featurize(data, f"cell-embedding:path={path}", use_cache=False)
    assert "\n" not in str(err.value) and str(path) in str(err.value)


def test_embedding_featurizer_needs_a_path(data, tmp_path):
    with pytest.raises(ConfigError, match="needs the embedding file: -f drug-embedding:path=FILE"):
        featurize(data, "drug-embedding", use_cache=False)
    with pytest.raises(ConfigError, match="has no option 'file'"):
        featurize(data, f"drug-embedding:file={tmp_path / 'x.csv'}", use_cache=False)
    (tmp_path / "folder.csv").mkdir()
    with pytest.raises(DataError, match="it is a directory"):
        featurize(data, f"drug-embedding:path={tmp_path / 'folder.csv'}", use_cache=False)


def test_embedding_featurizers_run_end_to_end(data, tmp_path):
    _embedding(data.cell_lines.index).to_csv(tmp_path / "cells.csv")
    _embedding(data.drugs.index, dim=5).to_parquet(tmp_path / "drugs.parquet")
    out = tmp_path / "store"
    res = subprocess.run([sys.executable, "-m", "synbench.cli", "run", "-d", "mock", "-m", "lasso", "-t", "score",
                          "--profile", "smoke", "--folds", "0", "--no-constant", "--out", str(out),
                          "-f", f"cell-embedding:path={tmp_path / 'cells.csv'}",
                          "-f", f"drug-embedding:path={tmp_path / 'drugs.parquet'}"],
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    (record,) = [json.loads(p.read_text()) for p in (out / "jobs").glob("*/record.json")]
    info = {spec.partition(":")[0]: value for spec, value in record["feature_info"].items()}  # keyed by the spec
    assert info["cell-embedding"]["entities_covered"] == 6 and info["drug-embedding"]["dimension"] == 5
    assert np.isfinite(record["metrics"]["mse"])
    bad = subprocess.run([sys.executable, "-m", "synbench.cli", "run", "-d", "mock", "-m", "lasso", "--profile", "smoke",
                          "--out", str(tmp_path / "other"), "-f", f"cell-embedding:path={tmp_path / 'none.csv'}"],
                         capture_output=True, text=True, timeout=300)
    assert bad.returncode == 2 and bad.stderr.strip().splitlines()[-1].startswith("error:")
    assert "embedding file not found" in bad.stderr
    assert not (tmp_path / "other").exists()  # found when the run is planned: no store, no job started
    (tmp_path / "broken.csv").write_text("name,dim0\nA,x\n")
    dry = subprocess.run([sys.executable, "-m", "synbench.cli", "run", "-d", "mock", "-m", "lasso", "--profile", "smoke",
                          "--dry-run", "-f", f"drug-embedding:path={tmp_path / 'broken.csv'}"],
                         capture_output=True, text=True, timeout=300)
    assert dry.returncode == 2 and "column 'dim0' is not numeric" in dry.stderr and "jobs planned" not in dry.stdout


# -- real data (cheap: loading and splitting, no training) -----------------------------------------
@pytest.mark.realdata
def test_real_tissue_folds_and_oneil_to_cloud_coverage():
    from conftest import real_data_dir

    if real_data_dir() is None:
        pytest.skip("SYNBENCH_DATA_DIR with the staged data is not set")
    from synbench import runner

    where = str(real_data_dir())
    d1 = runner.load_dataset("d1-oneil", where)
    splits = make_splits(d1, "tissue-few-shot:fraction=0.1", seed=0)
    assert sorted(fold_groups(splits).values()) == ["breast", "colon", "lung", "melanoma", "ovarian", "prostate"]
    # train on O'Neil (DrugComb's scores), test on CLOUD: one cell line, 12 of its drugs in O'Neil
    cloud = runner.load_job_data("drugcomb-cloud", "cross:oneil-drugcomb", where)
    ids = fold_ids(make_splits(cloud, "cross:oneil-drugcomb"), 0)
    cov = entity_coverage(cloud, ids["train"].append(ids["valid"]), ids["test"])
    assert cov["cell_lines"]["unseen"] == ["KBM-7"] and cov["drugs"]["test"] == 242
    seen = set(pd.unique(cloud.combinations.loc[ids["test"], cloud.drug_columns].to_numpy().ravel())) - {None}
    seen -= set(cov["drugs"]["unseen"])
    assert {"SN-38", "ZOLINZA", "5-FU"} <= seen and len(seen) == 12  # the loaders' canonical names already agree
