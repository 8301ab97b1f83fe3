"""D3 (DeepDDS): the loader on a tiny set written in D3's file format, then on the staged public data."""

import hashlib
import itertools

import numpy as np
import pandas as pd
import pytest

from conftest import real_data_dir, requires_real_data
from synbench import runner
from synbench.errors import DataError
from synbench.features import featurize
from synbench.plugins.datasets import d3_deepdds
from synbench.plugins.datasets.d3_deepdds import PUBLISHED, D3DeepDDS, D3DeepDDSIndependent
from synbench.splits import combination_keys, fold_ids, make_splits

# -- a tiny data set in D3's layout ---------------------------------------------------------------
TINY_DRUGS = {"ASPIRIN": "CC(=O)Oc1ccccc1C(=O)O", "CAFFEINE": "Cn1cnc2c1c(=O)n(C)c(=O)n2C",
              "METFORMIN": "CN(C)C(=N)N=C(N)N", "5-FU": "O=c1[nH]cc(F)c(=O)[nH]1"}
TINY_CELLS = {"T1": "breast", "T2": "colon", "T3": "lung", "T4": "melanoma", "T5": "ovarian", "T6": "prostate"}


def _write_tiny(root):
    """Write every file the D3 manifest names (tiny versions) plus a manifest with their checksums."""
    base = root / "D3_deepdds"
    for sub in ("leave_drug", "leave_cell", "leave_comb", "independent_set"):
        (base / sub).mkdir(parents=True)
    smiles = TINY_DRUGS
    pairs = list(itertools.combinations(TINY_DRUGS, 2))
    rows = [(a, b, c, (i + j) % 2) for i, (a, b) in enumerate(pairs) for j, c in enumerate(TINY_CELLS)]
    rows += [rows[0], ("ASPIRIN", "METFORMIN", "T1", 1 - rows[6][3])]  # an identical and a conflicting replicate
    labels = pd.DataFrame([(smiles[a], smiles[b], c, y) for a, b, c, y in rows], columns=["drug1", "drug2", "cell", "label"])
    labels.to_csv(base / "new_labels_0_10.csv", index=False)
    groups = (0, 5, 1, 2)  # drugs_0_10.csv's third column
    pd.DataFrame([(d, s, g) for (d, s), g in zip(smiles.items(), groups)]).to_csv(base / "drugs_0_10.csv", index=False, header=False)
    pd.DataFrame(list(TINY_CELLS.items())).to_csv(base / "cell_line_0_10.csv", index=False, header=False)
    expr = pd.DataFrame(np.arange(18, dtype=float).reshape(6, 3) + 1, index=list(TINY_CELLS))
    header = pd.DataFrame([["ENSG1", "ENSG2", "ENSG3"], ["ENST1", "ENST2", "ENST3"]], index=["gene_id", "transcript_id"])
    pd.concat([header, expr.astype(object)]).to_csv(base / "new_cell_features_954.csv", header=False)

    named = pd.DataFrame(rows, columns=["a", "b", "cell", "label"])
    drugs = list(TINY_DRUGS)

    def write(folder, name, test_mask, train_mask):
        labels[test_mask].to_csv(base / folder / f"{name}.csv", index=False)
        labels[train_mask].to_csv(base / folder / f"leave_{name}.csv", index=False)

    for k, name in enumerate(PUBLISHED["deepdds-leave-drug"][1]):
        held = named["a"].eq(drugs[k % 4]) | named["b"].eq(drugs[k % 4])
        write("leave_drug", name, held, ~held)
    both = named["a"].isin(drugs[:2]) & named["b"].isin(drugs[:2])
    write("leave_drug", "dd0and5", both, ~named["a"].isin(drugs[:2]) & ~named["b"].isin(drugs[:2]))
    for tissue in PUBLISHED["deepdds-leave-cell"][1]:
        held = named["cell"].map(TINY_CELLS).eq(tissue)
        write("leave_cell", tissue, held, ~held)
    pair_fold = {p: i % 5 for i, p in enumerate(pairs)}
    for k, name in enumerate(PUBLISHED["deepdds-leave-comb"][1]):
        held = pd.Series([pair_fold[(a, b)] == k for a, b in zip(named["a"], named["b"])])
        write("leave_comb", name, held, ~held)

    # independent set: AstraZeneca-style names, one of them an alias of a D3 drug, one a new drug
    ind_drugs = {"Acetylsalicylic,ASA": smiles["ASPIRIN"], "caffeine": smiles["CAFFEINE"], "AZD0001": "CCO"}
    ind = [("Acetylsalicylic,ASA", "AZD0001", "NEW1", 1), ("caffeine", "AZD0001", "NEW2", 0),
           ("caffeine", "AZD0001", "NEW2", 0)]
    iset = base / "independent_set"
    pd.DataFrame(ind).to_csv(iset / "independent_input_drug_cell.csv", index=False, header=False)
    pd.DataFrame([(ind_drugs[a], ind_drugs[b], c, y) for a, b, c, y in ind],
                 columns=["drug1", "drug2", "cell", "label"]).to_csv(iset / "independent_input.csv", index=False)
    pd.DataFrame({"Drug name": list(ind_drugs), "Putative target": "T", "Pathway": "P", "smile": list(ind_drugs.values())}
                 ).to_csv(iset / "independent_drug.csv", index=False)
    pd.DataFrame({"Cell line name": ["NEW1", "NEW2"], "COSMIC ID": [1, 2],
                  "GDSC tissue descriptor 2": ["large_intestine", "Bladder"],
                  "TCGA label": ["COAD/READ", "BLCA"]}).to_csv(iset / "independent_cell.csv", index=False)

    real = d3_deepdds.read_manifest(d3_deepdds.MANIFEST)
    lines = ['name = "d3-deepdds"', "[aliases]", '"ASPIRIN" = ["acetylsalicylic acid", "ASA"]',
             "[independent_tissue]", '"large_intestine" = "colon"']
    for f in real.files.values():
        digest = hashlib.sha256((root / f.path).read_bytes()).hexdigest()
        lines += ["[[files]]", f'key = "{f.key}"', f'path = "{f.path}"', f'sha256 = "{digest}"']
    (root / "manifest.toml").write_text("\n".join(lines) + "\n")
    return root / "manifest.toml"


def _load_tiny(root):
    manifest = _write_tiny(root)
    cls = type("TinyD3", (D3DeepDDS,), {"manifest": str(manifest)})
    return cls().load(root).validate(), root, manifest


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return _load_tiny(tmp_path_factory.mktemp("tiny_d3"))


def test_tiny_maps_smiles_to_names_and_keeps_replicates(tiny):
    data, _, _ = tiny
    c = data.combinations
    assert len(c) == 6 * 6 + 2 and c.index.is_unique
    first = c.loc["ASPIRIN_CAFFEINE_T1"]
    assert (first["drug_1"], first["drug_2"], first["cell_line"]) == ("ASPIRIN", "CAFFEINE", "T1")
    assert set(c["drug_1"]) | set(c["drug_2"]) == set(TINY_DRUGS)
    # replicates keep their own rows, numbered in file order, with their own labels
    assert c.loc["ASPIRIN_CAFFEINE_T1#2", "synergy"] == c.loc["ASPIRIN_CAFFEINE_T1", "synergy"]
    assert c.loc["ASPIRIN_METFORMIN_T1#2", "synergy"] == 1 - c.loc["ASPIRIN_METFORMIN_T1", "synergy"]
    assert data.drugs.loc["ASPIRIN", "smiles"] == TINY_DRUGS["ASPIRIN"]
    assert data.drugs.loc["ASPIRIN", "aliases"] == ["acetylsalicylic acid", "ASA"]
    assert data.drugs.loc["CAFFEINE", "canonical_smiles"] == "Cn1c(=O)c2c(ncn2C)n(C)c1=O"
    assert data.omics["expression"].shape == (6, 3) and list(data.omics["expression"].columns) == ["ENSG1", "ENSG2", "ENSG3"]


def test_tiny_published_splits_map_every_copy_of_a_replicate(tiny):
    data, _, _ = tiny
    for scheme, split in data.published_splits.items():
        t = split.table
        for fold, part in t.groupby("fold"):
            test, train = set(part.loc[part.role == "test", "row_id"]), set(part.loc[part.role == "train", "row_id"])
            assert not test & train and len(test) == (part.role == "test").sum()
            if scheme != "deepdds-leave-drug-both":
                assert test | train == set(data.combinations.index), (scheme, fold)
    # leave-drug fold 0 holds out ASPIRIN: both copies of the ASPIRIN/CAFFEINE/T1 replicate are test rows
    t = data.published_splits["deepdds-leave-drug"].table
    test0 = set(t.loc[(t.fold == 0) & (t.role == "test"), "row_id"])
    assert {"ASPIRIN_CAFFEINE_T1", "ASPIRIN_CAFFEINE_T1#2", "ASPIRIN_METFORMIN_T1#2"} <= test0
    assert test0 == {r for r in data.combinations.index if "ASPIRIN" in r}


def test_tiny_split_file_with_a_foreign_row_is_refused(tmp_path):
    _, root, manifest = _load_tiny(tmp_path)  # its own copy: the files are changed below
    path = root / "D3_deepdds" / "leave_comb" / "c00.csv"
    frame = pd.read_csv(path)
    frame.loc[0, "label"] = 1 - frame.loc[0, "label"]  # no longer a row of the label table
    frame.to_csv(path, index=False)
    text = manifest.read_text()
    old = next(line for line in text.splitlines() if "leave_comb/c00.csv" in line)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    lines = text.splitlines()
    lines[lines.index(old) + 1] = f'sha256 = "{digest}"'
    manifest.write_text("\n".join(lines) + "\n")
    cls = type("TinyD3", (D3DeepDDS,), {"manifest": str(manifest)})
    with pytest.raises(DataError, match="c00.csv.*not rows of the label table"):
        cls().load(root)


def test_tiny_independent_set_resolves_names_and_lacks_expression(tiny):
    data, root, manifest = tiny
    ind = data.external_sets["independent"].validate()
    assert set(ind.drugs.index) == {"ASPIRIN", "CAFFEINE", "AZD0001"}
    assert ind.drugs.loc["ASPIRIN", "source_name"] == "Acetylsalicylic,ASA"
    assert "Acetylsalicylic" in ind.drugs.loc["ASPIRIN", "aliases"]
    assert list(ind.combinations.index) == ["ASPIRIN_AZD0001_NEW1", "CAFFEINE_AZD0001_NEW2", "CAFFEINE_AZD0001_NEW2#2"]
    assert ind.cell_lines.loc["NEW1", "tissue"] == "colon" and ind.cell_lines.loc["NEW2", "tissue"] == "bladder"
    with pytest.raises(DataError, match=r"expression.* 2 cell lines of dataset 'd3-deepdds-independent': NEW1, NEW2"):
        featurize(ind, "expression", use_cache=False)
    standalone = type("TinyInd", (D3DeepDDSIndependent,), {"manifest": str(manifest)})().load(root).validate()
    pd.testing.assert_frame_equal(standalone.combinations, ind.combinations)


# -- the staged public data -----------------------------------------------------------------------
@pytest.fixture(scope="module")
def d3():
    return runner.load_dataset("d3-deepdds", str(real_data_dir()))


def _drugs_of(c, ids):
    rows = c.loc[list(ids)]
    return set(rows["drug_1"]) | set(rows["drug_2"])


def _sides(split, fold):
    t = split.table[split.table["fold"] == fold]
    return pd.Index(t.loc[t.role == "test", "row_id"]), pd.Index(t.loc[t.role == "train", "row_id"])


@requires_real_data
def test_real_counts(d3):
    c = d3.combinations
    assert len(c) == 12415 and c.index.is_unique
    assert len(d3.drugs) == 36 and len(d3.cell_lines) == 31
    assert c["synergy"].value_counts().to_dict() == {0: 6299, 1: 6116}
    assert sum(r.endswith("#2") for r in c.index) == 185 and not any(r.endswith("#3") for r in c.index)
    ordered = set(zip(c["drug_1"], c["drug_2"], c["cell_line"]))
    assert not any((b, a, cell) in ordered for a, b, cell in ordered)  # no pair in both drug orders
    assert d3.omics["expression"].shape == (31, 954) and set(d3.omics["expression"].index) == set(d3.cell_lines.index)
    tissues = {"lung": 8, "melanoma": 6, "colon": 6, "ovarian": 5, "breast": 4, "prostate": 2}
    assert d3.cell_lines["tissue"].value_counts().to_dict() == tissues
    assert d3.fold_column is None and "random" == D3DeepDDS.split_schemes[0]
    assert {"CARBOPLATIN", "OXALIPLATIN"}.isdisjoint(d3.drugs.index) and d3.drugs["canonical_smiles"].notna().all()


@requires_real_data
def test_real_labels_are_d1_loewe_above_10_or_below_0(d3):
    d1 = pd.read_csv(real_data_dir() / "D1_deepsynergy_oneil" / "labels.csv", index_col=0)
    d1 = d1[d1["cell_line"].isin(d3.cell_lines.index) & d1["drug_a_name"].isin(d3.drugs.index)
            & d1["drug_b_name"].isin(d3.drugs.index)]
    d1 = d1[(d1["synergy"] > 10) | (d1["synergy"] < 0)]
    as_d1 = sorted(zip(d1["drug_a_name"], d1["drug_b_name"], d1["cell_line"], (d1["synergy"] > 10).astype(int)))
    c = d3.combinations
    assert as_d1 == sorted(zip(c["drug_1"], c["drug_2"], c["cell_line"], c["synergy"]))


@requires_real_data
def test_real_published_leave_drug_holds_drugs_out(d3):
    split, c = d3.published_splits["deepdds-leave-drug"], d3.combinations
    assert split.group_by == "drug"
    held_all = []
    for fold in range(5):
        test, train = _sides(split, fold)
        assert not set(test) & set(train) and len(test) + len(train) == len(c)
        held = _drugs_of(c, test) - _drugs_of(c, train)
        assert len(held) in (7, 8)
        rows = c.loc[test]
        assert (rows["drug_1"].isin(held) | rows["drug_2"].isin(held)).all()  # every test row has a held-out drug
        held_all += sorted(held)
    assert sorted(held_all) == sorted(d3.drugs.index)  # the five groups partition the 36 drugs
    both = d3.published_splits["deepdds-leave-drug-both"]
    test, train = _sides(both, 0)
    assert (len(test), len(train)) == (133, 8960)
    held = _drugs_of(c, test)
    assert held == {"MK-8669", "PACLITAXEL", "SN-38", "TOPOTECAN", "VINBLASTINE", "VINORELBINE"}
    assert held == set(d3.drugs.index[~d3.drugs["deepdds_group"].isin([0, 5])]) and not held & _drugs_of(c, train)


@requires_real_data
def test_real_published_leave_cell_and_leave_comb(d3):
    c = d3.combinations
    cells = d3.published_splits["deepdds-leave-cell"]
    for fold, tissue in enumerate(PUBLISHED["deepdds-leave-cell"][1]):
        test, train = _sides(cells, fold)
        assert set(c.loc[test, "cell_line"]) == set(d3.cell_lines.index[d3.cell_lines["tissue"] == tissue])
        assert set(c.loc[test, "cell_line"]).isdisjoint(c.loc[train, "cell_line"]) and len(test) + len(train) == len(c)
    comb = d3.published_splits["deepdds-leave-comb"]
    keys = combination_keys(c, d3.drug_columns)
    tested = []
    for fold in range(5):
        test, train = _sides(comb, fold)
        assert set(keys[test]).isdisjoint(keys[train]) and len(test) + len(train) == len(c)
        tested += list(test)
    assert sorted(tested) == sorted(c.index)  # test sides partition the rows


@requires_real_data
def test_real_harness_splits_from_published_files(d3):
    c = d3.combinations
    for scheme in PUBLISHED:
        ids = fold_ids(make_splits(d3, scheme), 0)
        assert not set(ids["test"]) & (set(ids["train"]) | set(ids["valid"])), scheme
        # replicates of a (pair, cell) triple never straddle the split
        triple = c["drug_1"] + "|" + c["drug_2"] + "|" + c["cell_line"]
        assert set(triple[ids["test"]]).isdisjoint(triple[ids["train"].append(ids["valid"])]), scheme
    ids = fold_ids(make_splits(d3, "deepdds-leave-drug"), 0)
    held = _drugs_of(c, ids["test"]) - _drugs_of(c, ids["train"].append(ids["valid"]))
    assert len(held) == 7 and _drugs_of(c, ids["valid"]) - _drugs_of(c, ids["train"])  # validation holds drugs out too


@requires_real_data
def test_real_independent_set(d3):
    from rdkit import Chem

    ind = d3.external_sets["independent"].validate()
    assert (len(ind.combinations), len(ind.drugs), len(ind.cell_lines)) == (668, 52, 24)
    assert ind.combinations["synergy"].value_counts().to_dict() == {1: 480, 0: 188}
    renamed = ind.drugs[ind.drugs["source_name"] != ind.drugs.index]["source_name"].to_dict()
    assert renamed == {"MK-2206": "MK2206", "SN-38": "SN38", "DOXORUBICIN": "AZ13047864, Doxorubicin",
                       "GEMCITABINE": "Gemcitibine,Gemzar"}

    def skeleton(smiles):
        return Chem.MolToInchiKey(Chem.MolFromSmiles(smiles))[:14]

    for drug in renamed:  # the resolved names are the same molecules
        assert skeleton(ind.drugs.loc[drug, "smiles"]) == skeleton(d3.drugs.loc[drug, "smiles"])
    assert "Selumetinib" in ind.drugs.loc["AZD6244,Selumetinib", "aliases"]
    assert set(ind.cell_lines.index).isdisjoint(d3.cell_lines.index)
    assert ind.omics["expression"].shape == (0, 954)
    with pytest.raises(DataError, match="no features for 24 cell lines of dataset 'd3-deepdds-independent': 22RV1, A549"):
        featurize(ind, "expression", use_cache=False)
