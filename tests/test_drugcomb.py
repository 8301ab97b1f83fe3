"""DrugComb-derived screens (MGAE-DC release): parsers on tiny fixtures, counts and names on the real files."""

import numpy as np
import pandas as pd
import pytest

from conftest import real_data_dir, requires_real_data
from synbench import runner
from synbench.datadir import read_manifest
from synbench.entities import coverage
from synbench.errors import DataError
from synbench.features import featurize
from synbench.plugins.datasets.drugcomb import build_screen
from synbench.splits import combination_keys, make_splits

HEADER = "drugname1\tdrugname2\tcell_line\tsynergy\tfold\n"
# MGAE-DC-style spellings that must resolve to D1's: MK2206 -> MK-2206, NCI-H460 -> NCIH460
ONEIL_ROWS = [("5-FU", "MK2206", "NCI-H460"), ("5-FU", "SN-38", "NCI-H460"), ("MK2206", "SN-38", "A2058"),
              ("5-FU", "MK2206", "A2058"), ("5-FU", "SN-38", "A2058"), ("MK2206", "SN-38", "NCI-H460")]


def _scores(path, rows, seed):
    rng = np.random.default_rng(seed)
    path.write_text(HEADER + "".join(f"{a}\t{b}\t{c}\t{rng.normal(0, 20):.4f}\t{rng.integers(0, 3)}\n" for a, b, c in rows))
    return path


def _oneil_fixture(tmp_path, rows=ONEIL_ROWS):
    paths = {f"scores_{s}": _scores(tmp_path / f"{s}.txt", rows, i) for i, s in enumerate(("zip", "bliss", "hsa", "loewe"))}
    loewe = pd.read_csv(paths["scores_loewe"], sep="\t")
    loewe.loc[0, "synergy"] = 45.0  # one synergistic combination for the > 30 target
    loewe.to_csv(paths["scores_loewe"], sep="\t", index=False)
    (tmp_path / "smiles.txt").write_text("5-FU\tO=c1[nH]cc(F)c(=O)[nH]1\nMK2206\tNC1(CCC1)c1ccc(cc1)-c1nc2ccn3c(n[nH]c3=O)c2cc1-c1ccccc1\n"
                                         "SN-38\tCCc1c2c(nc3ccc(O)cc13)-c1cc3c(c(=O)n1C2)COC(=O)C3(O)CC\n")
    (tmp_path / "cells.txt").write_text("NCIH460\tLung\twildtype\nA2058\tMelanoma\twildtype\n")
    d1 = pd.DataFrame({"drug_a_name": ["5-FU", "5-FU", "MK-2206", "5-FU", "5-FU", "MK-2206", "MK-2206"],
                       "drug_b_name": ["MK-2206", "SN-38", "SN-38", "MK-2206", "SN-38", "SN-38", "SN-38"],
                       "cell_line": ["NCIH460", "NCIH460", "A2058", "A2058", "A2058", "NCIH460", "NCIH460"],
                       "synergy": [1, 2, 3, 4, 5, 6, 7], "fold": [0, 1, 2, 0, 1, 2, 2]},
                      index=["a", "b", "c", "d", "e", "f", "f2"])
    d1.to_csv(tmp_path / "labels.csv")
    pd.DataFrame(np.arange(6.0).reshape(2, 3), index=["NCIH460", "A2058"], columns=["G1", "G2", "G3"]).to_csv(tmp_path / "expr.csv")
    paths.update(smiles=tmp_path / "smiles.txt", cells=tmp_path / "cells.txt", d1_labels=tmp_path / "labels.csv",
                 expression=tmp_path / "expr.csv")
    return paths


def test_oneil_fixture_resolves_to_d1_names_folds_and_expression(tmp_path):
    data = build_screen("oneil-drugcomb", read_manifest("drugcomb_oneil.toml"), _oneil_fixture(tmp_path)).validate()
    c = data.combinations
    assert set(data.drugs.index) == {"5-FU", "MK-2206", "SN-38"} and set(data.cell_lines.index) == {"NCIH460", "A2058"}
    assert data.drugs.at["MK-2206", "source_name"] == "MK2206" and "MK2206" in data.drugs.at["MK-2206", "aliases"]
    assert data.cell_lines.at["NCIH460", "tissue"] == "lung" and "NCI-H460" in data.cell_lines.at["NCIH460", "aliases"]
    assert c.index[0] == "5-FU_MK-2206_NCIH460"  # D1's row-id spelling
    # D1's leave-combination-out fold, looked up by (drug pair, cell line) whatever the drug order
    assert c.loc["MK-2206_SN-38_NCIH460", "fold"] == 2 and c.loc["5-FU_SN-38_A2058", "fold"] == 1
    assert data.fold_column == "fold" and set(data.targets) == {"zip", "bliss", "hsa", "loewe", "loewe_gt30"}
    assert data.labels("loewe_gt30").tolist() == [1.0, 0, 0, 0, 0, 0]
    assert data.omics["expression"].shape == (2, 3)
    assert "not MARSY's D2" in data.targets["zip"].description
    split = data.published_splits["mgaedc-zip"]
    zip_folds = pd.read_csv(tmp_path / "zip.txt", sep="\t")["fold"]
    assert split.group_by == "row" and split.table["fold"].nunique() == zip_folds.nunique()
    tests = split.table[split.table["role"] == "test"]
    assert sorted(tests.groupby("fold").size().tolist()) == sorted(zip_folds.value_counts().tolist())
    splits = make_splits(data, "published")
    assert splits.groupby("fold")["row_id"].nunique().eq(len(c)).all()


def test_oneil_names_outside_d1_are_an_error(tmp_path):
    rows = ONEIL_ROWS[:-1] + [("5-FU", "NOT-IN-D1", "A2058")]
    with pytest.raises(DataError, match=r"do not resolve to a D1 name: NOT-IN-D1; add them to datasets/aliases.toml"):
        build_screen("oneil-drugcomb", read_manifest("drugcomb_oneil.toml"), _oneil_fixture(tmp_path, rows))


def test_score_files_of_one_screen_must_match(tmp_path):
    paths = _oneil_fixture(tmp_path)
    _scores(paths["scores_bliss"], ONEIL_ROWS[:-1], 9)
    with pytest.raises(DataError, match="bliss.txt lists other combinations than .*zip.txt"):
        build_screen("oneil-drugcomb", read_manifest("drugcomb_oneil.toml"), paths)
    _scores(paths["scores_bliss"], ONEIL_ROWS, 9)
    paths["scores_bliss"].write_text(paths["scores_bliss"].read_text().replace("\t0\n", "\tx\n", 1).replace("\t1\n", "\tx\n", 1)
                                     .replace("\t2\n", "\tx\n", 1))
    with pytest.raises(DataError, match="non-numeric 'fold'"):
        build_screen("oneil-drugcomb", read_manifest("drugcomb_oneil.toml"), paths)


def _cloud_fixture(tmp_path):
    rows = [("ASPIRIN", "BROKEN", "KBM7"), ("BROKEN", "ASPIRIN", "KBM7"), ("ASPIRIN", "CAFFEINE", "KBM7"), ("CAFFEINE", "BROKEN", "KBM7")]
    paths = {f"scores_{s}": _scores(tmp_path / f"c_{s}.txt", rows, i) for i, s in enumerate(("zip", "bliss", "hsa", "loewe"))}
    (tmp_path / "c_smiles.txt").write_text("ASPIRIN\tCC(=O)Oc1ccccc1C(=O)O\nBROKEN\tC1CC(\nCAFFEINE\tCn1cnc2c1c(=O)n(C)c(=O)n2C\n")
    paths["smiles"] = tmp_path / "c_smiles.txt"
    return paths


def test_unparseable_smiles_are_recorded_and_single_line_screens_have_no_expression(tmp_path):
    from synbench.errors import SynbenchError

    data = build_screen("drugcomb-cloud", read_manifest("drugcomb_cloud.toml"), _cloud_fixture(tmp_path)).validate()
    assert list(data.cell_lines.index) == ["KBM-7"] and data.cell_lines.at["KBM-7", "tissue"] == "haematopoietic and lymphoid"
    assert data.drugs.at["BROKEN", "smiles"] == "C1CC(" and not data.drugs.at["BROKEN", "smiles_parsed"]
    assert pd.isna(data.drugs.at["BROKEN", "canonical_smiles"]) and data.drugs["smiles_parsed"].sum() == 2
    assert len(data.combinations) == 4  # nothing dropped; both drug orders of a pair kept as rows
    (drugs, cells), _ = coverage(data)
    assert drugs.missing("SMILES") == ["BROKEN"] and cells.missing("expression") == ["KBM-7"]
    with pytest.raises(SynbenchError, match="featurizer 'chem': no valid SMILES for 1 drugs .*BROKEN"):
        featurize(data, "chem", use_cache=False)
    with pytest.raises(SynbenchError, match="dataset 'drugcomb-cloud' has no omics matrix 'expression'"):
        featurize(data, "expression", use_cache=False)
    keys = combination_keys(data.combinations, data.drug_columns)
    test = make_splits(data, "leave-combination-out", n_folds=2).query("role == 'test'")
    assert test.groupby("row_id")["fold"].first().groupby(keys).nunique().max() == 1  # both orders on one side


@pytest.fixture(scope="module")
def real():
    return {n: runner.load_dataset(n, str(real_data_dir())) for n in ("oneil-drugcomb", "drugcomb-cloud", "drugcomb-forcina", "d1-oneil")}


@requires_real_data
def test_real_oneil_counts_names_and_folds(real):
    data, d1 = real["oneil-drugcomb"], real["d1-oneil"]
    c = data.combinations
    assert (len(c), len(data.drugs), len(data.cell_lines)) == (22737, 38, 39)
    assert set(data.drugs.index) == set(d1.drugs.index) and set(data.cell_lines.index) == set(d1.cell_lines.index)
    assert data.drugs["smiles_parsed"].all() and data.omics["expression"].shape == (39, 3384)
    # every combination carries D1's fold; D1 minus its 315 replicate rows
    d1_unique = d1.combinations.drop_duplicates(["drug_1", "drug_2", "cell_line"])
    assert c["fold"].value_counts().sort_index().tolist() == d1_unique["fold"].value_counts().sort_index().tolist()
    joined = c.join(d1_unique.set_index(["drug_1", "drug_2", "cell_line"])["loewe"].rename("d1"), on=["drug_1", "drug_2", "cell_line"])
    assert joined["d1"].notna().all() and 0.4 < np.corrcoef(joined["zip"], joined["d1"])[0, 1] < 0.6  # ZIP is not Loewe
    assert 0.06 < data.labels("loewe_gt30").mean() < 0.12
    assert {s: data.published_splits[s].table["fold"].nunique() for s in data.published_splits} == \
        {"mgaedc-zip": 10, "mgaedc-bliss": 10, "mgaedc-hsa": 10, "mgaedc-loewe": 10}


@requires_real_data
def test_real_single_line_screens(real):
    cloud, forcina, d1 = real["drugcomb-cloud"], real["drugcomb-forcina"], real["d1-oneil"]
    assert (len(cloud.combinations), len(cloud.drugs), list(cloud.cell_lines.index)) == (29278, 242, ["KBM-7"])
    assert (len(forcina.combinations), len(forcina.drugs), list(forcina.cell_lines.index)) == (757, 757, ["T98G"])
    for data in (cloud, forcina):
        assert data.omics == {} and set(data.targets) == {"zip", "bliss", "hsa", "loewe"} and data.fold_column is None
        assert data.drugs["smiles_parsed"].all()
    # shared names: FORCINA's lower-case or generic spellings map onto D1's, the source spelling stays an alias
    assert (forcina.combinations["drug_2"] == "TEMOZOLOMIDE").all()
    assert forcina.drugs.at["ZOLINZA", "source_name"] == "Vorinostat" and "Vorinostat" in forcina.drugs.at["ZOLINZA", "aliases"]
    assert forcina.drugs.at["ABT-888", "source_name"] == "Veliparib"
    assert {"5-FU", "CARBOPLATIN", "TEMOZOLOMIDE"} <= set(cloud.drugs.index) & set(d1.drugs.index)
