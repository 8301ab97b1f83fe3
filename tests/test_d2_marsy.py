"""D2 (MARSY): the loader on a small data.csv in MARSY's published format, and the real fold files."""

import itertools

import numpy as np
import pandas as pd
import pytest

from conftest import real_data_dir, requires_real_data
from synbench.datadir import read_manifest
from synbench.errors import DataError, DataUnavailableError
from synbench.plugins.datasets.d2_marsy import D2Marsy, build, lpo_folds, lto_folds, read_positions
from synbench.splits import make_splits

DRUGS = ["temozolomide", "MK2206", "vorinostat", "ilomastat", "DrugE", "DrugF"]
CELLS = {"NCI-H460": "lung", "COLO 829": "skin", "SK-MEL-5": "skin"}


def _write(tmp_path, aux=True, index=True):
    """data.csv as MARSY ships it: each (pair, cell) twice, rows 2k / 2k+1 in both drug orders."""
    rng = np.random.default_rng(0)
    rows, pair_of = [], []
    for p, (a, b) in enumerate(itertools.combinations(DRUGS, 2)):
        for cell, tissue in CELLS.items():
            zip_, smean, ri1, ri2 = rng.normal(0, 10, 4)
            for first, second, r1, r2 in ((a, b, ri1, ri2), (b, a, ri2, ri1)):
                rows.append({"Drug1_PC3": first, "Drug1_MCF7": first, "Drug2_PC3": second, "Drug2_MCF7": second, "Cell_line": cell,
                             "Ri1": r1, "Ri2": r2, "Synergy_Zip": zip_, "Synergy_Smean": smean, "Tissue": tissue})
                pair_of.append(p)
    frame = pd.DataFrame(rows)
    if not aux:
        frame = frame.drop(columns=["Ri1", "Ri2", "Synergy_Smean"])
    (tmp_path / "lpo").mkdir(exist_ok=True)
    frame.to_csv(tmp_path / "data.csv", index=index)
    pair_of = np.array(pair_of)
    paths = {"data": tmp_path / "data.csv"}
    for i in range(1, 6):  # leave-pair-out: a drug pair (all cell lines, both orders) is in one test fold
        test = np.flatnonzero(pair_of % 5 == i - 1)
        train = np.flatnonzero(pair_of % 5 != i - 1)
        for role, positions in (("test", test), ("train", train)):
            path = tmp_path / "lpo" / f"{role}{i}.txt"
            path.write_text("\n".join(map(str, positions)) + "\n")
            paths[f"lpo_{role}_{i}"] = path
    triples = rng.permutation(np.arange(0, len(frame), 2))
    (tmp_path / "lto.txt").write_text("\n".join(map(str, triples)) + "\n")
    paths["lto"] = tmp_path / "lto.txt"
    return paths


def _build(paths):
    return build("d2-marsy", read_manifest("d2_marsy.toml"), paths, {"data.csv": "fixture"}).validate()


def _partner_roles_agree(splits, data):
    pos = {rid: int(rid.split("-")[1]) for rid in data.combinations.index}
    for _, part in splits.groupby("fold"):
        role = dict(zip(part["row_id"], part["role"]))
        for rid, r in role.items():
            partner = f"marsy-{pos[rid] ^ 1:05d}"
            assert role.get(partner) == r, (rid, partner)


def test_loads_published_format_with_both_splits(tmp_path):
    data = _build(_write(tmp_path))
    c = data.combinations
    assert len(c) == 90 and c.index[0] == "marsy-00000"
    assert set(data.targets) == {"zip", "s_mean", "response_1", "response_2"}
    # shared entity resolution: DrugComb spellings take the canonical names, the source spelling stays an alias
    assert {"TEMOZOLOMIDE", "MK-2206", "ZOLINZA", "ilomastat"} <= set(data.drugs.index)
    assert set(data.cell_lines.index) == {"NCIH460", "COLO 829", "SK-MEL-5"} and data.cell_lines.at["NCIH460", "tissue"] == "lung"
    assert data.drugs.at["ZOLINZA", "source_name"] == "vorinostat"
    # the flipped copy swaps the single-drug responses with the drugs
    assert c.at["marsy-00001", "drug_1"] == c.at["marsy-00000", "drug_2"] and c.at["marsy-00001", "Ri1"] == c.at["marsy-00000", "Ri2"]
    assert data.fold_column == "lpo_fold" and sorted(c["lpo_fold"].unique()) == [0, 1, 2, 3, 4]
    assert set(data.published_splits) == {"marsy-lpo", "marsy-lto"}
    lto = data.published_splits["marsy-lto"].table
    assert lto[lto["role"] == "test"].groupby("fold").size().tolist() == [18] * 5  # 45 triples, 9 per block, x2 orders
    for scheme in ("published", "marsy-lpo", "marsy-lto", "leave-combination-out"):
        _partner_roles_agree(make_splits(data, scheme), data)  # train, valid and test never split a pair of copies
    assert data.omics == {}  # no expression file: the 'expression' featurizer says so, see test_drugcomb


def test_auxiliary_targets_only_when_present(tmp_path):
    data = _build(_write(tmp_path, aux=False, index=False))
    assert set(data.targets) == {"zip"} and len(data.combinations) == 90


def test_fold_file_that_splits_flipped_copies_is_an_error(tmp_path):
    paths = _write(tmp_path)
    test = read_positions(paths["lpo_test_2"], "t")
    moved = test[0] | 1  # the odd copy of the first test combination goes to training
    paths["lpo_test_2"].write_text("\n".join(str(p) for p in test if p != moved) + "\n")
    paths["lpo_train_2"].write_text(paths["lpo_train_2"].read_text() + f"{moved}\n")
    with pytest.raises(DataError, match=rf"leave-pair-out fold 2: rows {moved - 1} and {moved} .* both copies must be on one side"):
        _build(paths)


def test_data_that_is_not_in_flipped_pairs_is_an_error(tmp_path):
    paths = _write(tmp_path)
    frame = pd.read_csv(paths["data"], index_col=0)
    frame.iloc[[2, 3]] = frame.iloc[[3, 2]].to_numpy()  # swap rows 2 and 3: still pairs of orders, one of them mismatched
    frame.iloc[[3, 4]] = frame.iloc[[4, 3]].to_numpy()
    frame.to_csv(paths["data"])
    with pytest.raises(DataError, match="rows 2 and 3 are not the same combination in both drug orders"):
        _build(paths)


def test_bad_fold_files(tmp_path):
    paths = _write(tmp_path)
    paths["lto"].write_text("0\n3\n")
    with pytest.raises(DataError, match="odd row positions"):
        _build(paths)
    paths = _write(tmp_path)
    paths["lpo_test_1"].write_text(paths["lpo_test_1"].read_text() + "400\n401\n")
    with pytest.raises(DataError, match="names row 401, but data.csv has 90 rows"):
        _build(paths)
    paths["lpo_test_1"].write_text("0\nx\n")
    with pytest.raises(DataError, match="one non-negative integer"):
        _build(paths)


def test_missing_data_csv_says_where_it_goes(tmp_path):
    with pytest.raises(DataUnavailableError) as err:
        D2Marsy().load(tmp_path)
    message = str(err.value)
    assert "D2_marsy/data.csv" in message and str(tmp_path / "D2_marsy" / "data.csv") in message and "\n" not in message


@requires_real_data
def test_real_fold_files_keep_flipped_copies_together():
    root = real_data_dir() / "D2_marsy"
    if (root / "data.csv").is_file():
        pytest.skip("data.csv is staged: the loader itself checks the folds")
    manifest = read_manifest("d2_marsy.toml")
    tests = [read_positions(root / manifest.file(f"lpo_test_{i}").path.split("/", 1)[1], "t") for i in range(1, 6)]
    trains = [read_positions(root / manifest.file(f"lpo_train_{i}").path.split("/", 1)[1], "t") for i in range(1, 6)]
    table = lpo_folds(tests, trains, 86348, ["f"] * 10)  # raises if any fold splits a pair of copies
    assert sorted(np.concatenate(tests).tolist()) == list(range(86348))  # the test files partition the rows
    assert table.groupby("fold").size().tolist() == [86348] * 5
    lto = lto_folds(read_positions(root / "lto_folds" / "Tpl_Folds_Sig.txt", "t"), 86348, "lto")
    assert lto[lto["role"] == "test"].groupby("fold").size().tolist() == [17270, 17270, 17270, 17270, 17268]
    with pytest.raises(DataUnavailableError, match="D2_marsy/data.csv"):
        D2Marsy().load(real_data_dir())
