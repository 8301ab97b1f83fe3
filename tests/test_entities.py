"""Entity resolution shared by every dataset: names, aliases, structures, coverage."""

import json

import pytest

from conftest import real_data_dir, requires_real_data
from synbench.entities import (
    EntityIndex, aliases_for, canonical_names, canonical_smiles, coverage, normalise_name, shared_aliases,
    shared_index, smiles_parses, structure_key,
)
from synbench.errors import DataError
from synbench.testing import mock_data

CARBOPLATIN = "N.N.O=C(O)C1(C(=O)O)CCC1.[Pt]"
OXALIPLATIN = "NC1CCCCC1N.O=C(O)C(=O)O.[Pt+2]"


@pytest.mark.parametrize("a, b", [("MK2206", "MK-2206"), ("SN38", "SN-38"), ("NCI-H460", "NCIH460"), ("COLO 829", "colo829"),
                                  ("SK-MEL-5", "SKMEL5"), ("NCI/ADR-RES", "NCI-ADR-RES"), ("β-lapachone", "beta-Lapachone"),
                                  ("Tretinoïn", "TRETINOIN")])
def test_spelling_variants_share_a_key(a, b):
    assert normalise_name(a) == normalise_name(b)


def test_distinct_names_keep_distinct_keys():
    assert normalise_name("MK-2206") != normalise_name("MK-2260")
    assert normalise_name("UWB1289") != normalise_name("UWB1289BRCA1")


@pytest.mark.parametrize("query, canonical", [("MK2206", "MK-2206"), ("SN38", "SN-38"), ("vorinostat", "ZOLINZA"),
                                              ("ZOLINZA", "ZOLINZA"), ("ridaforolimus", "MK-8669"), ("MK-8669", "MK-8669"),
                                              ("temozolomide", "TEMOZOLOMIDE"), ("Topotecan hydrochloride", "TOPOTECAN"),
                                              ("MK-1775", "AZD1775")])
def test_shared_drug_aliases(query, canonical):
    assert shared_index("drugs").resolve(query) == canonical


@pytest.mark.parametrize("query, canonical", [("NCI-H460", "NCIH460"), ("H460", "NCIH460"), ("MSTO-211H", "MSTO"),
                                              ("UWB1289+BRCA1", "UWB1289BRCA1"), ("KBM7", "KBM-7"), ("NCI-ADR-RES", "NCI/ADR-RES")])
def test_shared_cell_line_aliases(query, canonical):
    assert shared_index("cell_lines").resolve(query) == canonical


def test_index_lookup_order_and_conflicts():
    index = EntityIndex(["IMATINIB MESYLATE", "COLO 829", "SK-MEL-5"], {"COLO 829": ["COLO829"], "SK-MEL-5": ["COLO829"]})
    assert index.resolve("imatinib") == "IMATINIB MESYLATE"  # salt form in the index, free base queried
    assert index.resolve("colo-829") == "COLO 829" and "sk mel 5" in index and "SK-MEL-28" not in index
    assert index.conflicts == {"COLO829": {"COLO 829", "SK-MEL-5"}}  # the first definition wins, the clash is kept


def test_structures_resolve_across_notations():
    index = EntityIndex(["TEMOZOLOMIDE", "CARBOPLATIN"], smiles={"TEMOZOLOMIDE": "Cn1nnc2c(C(N)=O)ncn2c1=O", "CARBOPLATIN": CARBOPLATIN})
    assert index.resolve("Temodal brand X", smiles="CN1C(=O)N2C=NC(=C2N=N1)C(=O)N") == "TEMOZOLOMIDE"
    assert index.resolve_smiles(CARBOPLATIN) == "CARBOPLATIN"
    assert index.resolve("unknown", smiles="CCO") is None


def test_canonical_smiles_of_salts_and_metal_complexes():
    assert canonical_smiles("C1=CC=CC=C1") == canonical_smiles("c1ccccc1") == "c1ccccc1"
    assert canonical_smiles("not a smiles") is None and canonical_smiles(None) is None and not smiles_parses("C1CC")
    # a salt's counter-ion goes, a platinum complex stays whole (its fragments are ligands, not a salt)
    assert canonical_smiles("Cl.CN(C)CCC=C1c2ccccc2CCc2ccccc21", parent=True) == canonical_smiles("CN(C)CCC=C1c2ccccc2CCc2ccccc21")
    assert canonical_smiles("[Na+].CC(=O)[O-]", parent=True) == "CC(=O)O"
    for complex_ in (CARBOPLATIN, OXALIPLATIN):
        assert "Pt" in canonical_smiles(complex_, parent=True)
    assert structure_key(CARBOPLATIN) != structure_key("O=C(O)C1(C(=O)O)CCC1")
    assert structure_key("Cl.CN(C)CCC=C1c2ccccc2CCc2ccccc21") == structure_key("CN(C)CCC=C1c2ccccc2CCc2ccccc21")
    dexamethasone = "C[C@@H]1C[C@H]2[C@@H]3CCC4=CC(=O)C=C[C@@]4([C@]3([C@H](C[C@@]2([C@]1(C(=O)CO)O)C)O)F)C"
    betamethasone = "C[C@H]1C[C@H]2[C@@H]3CCC4=CC(=O)C=C[C@@]4([C@]3([C@H](C[C@@]2([C@]1(C(=O)CO)O)C)O)F)C"
    assert structure_key(dexamethasone) != structure_key(betamethasone)  # epimers are different drugs


def test_canonical_names_never_merge_two_source_entities():
    mapping = canonical_names(["temozolomide", "Temozolomide ", "NEWDRUG"], "drugs")
    assert mapping["temozolomide"] == "TEMOZOLOMIDE"
    assert mapping["Temozolomide "] == "Temozolomide "  # the second spelling keeps its own name
    assert mapping["NEWDRUG"] == "NEWDRUG"
    exact_first = canonical_names(["vorinostat", "ZOLINZA"], "drugs")
    assert exact_first == {"vorinostat": "vorinostat", "ZOLINZA": "ZOLINZA"}
    assert canonical_names(["MK2206"], "drugs", reference=["MK-2206"]) == {"MK2206": "MK-2206"}
    assert aliases_for("ZOLINZA", "drugs", "Vorinostat", "ZOLINZA")[:3] == ["vorinostat", "SAHA", "Vorinostat"]


def test_alias_file_is_checked(tmp_path):
    bad = tmp_path / "aliases.toml"
    bad.write_text('[drugs]\n"X" = "not a list"\n')
    with pytest.raises(DataError, match="must be a list"):
        shared_aliases("drugs", str(bad))
    with pytest.raises(DataError, match="unknown entity kind"):
        shared_aliases("cells")


def test_coverage_counts_descriptions_by_name_or_alias(tmp_path):
    data = mock_data()
    data.drugs = data.drugs.drop(columns=["description"], errors="ignore")
    data.cell_lines = data.cell_lines.drop(columns=["description"], errors="ignore")
    data.drugs.at["CARBOPLATIN", "smiles"] = "C1CC"  # unreadable: reported, not dropped
    lines = [{"name": "aspirin", "aliases": [], "text": "An analgesic.", "confidence": "high"},
             {"name": "acetaminophen", "aliases": ["paracetamol"], "text": "An analgesic.", "confidence": "high"}]
    (tmp_path / "drugs_x.jsonl").write_text("\n".join(json.dumps(x) for x in lines) + '\n{"name": "caff')
    (tmp_path / "cell_lines_x.jsonl").write_text(json.dumps({"name": "cell a", "aliases": [], "text": "A line.", "confidence": "low"}))
    (drugs, cells), notes = coverage(data, descriptions=tmp_path)
    assert drugs.inputs["descriptions"] == {"ASPIRIN", "PARACETAMOL"}
    assert "CARBOPLATIN" in drugs.missing("SMILES") and len(drugs.inputs["SMILES"]) == len(drugs.names) - 1
    assert drugs.uncovered == ["CARBOPLATIN"]  # no SMILES and no description: no featurizer can cover it
    assert cells.inputs["descriptions"] == {"CELL-A"} and len(cells.inputs["expression"]) == 6 and cells.uncovered == []
    assert notes["unreadable_description_lines"] == 1


@requires_real_data
def test_every_d1_entity_is_a_canonical_name():
    import pandas as pd

    labels = pd.read_csv(real_data_dir() / "D1_deepsynergy_oneil" / "labels.csv", index_col=0)
    assert set(labels["drug_a_name"]) | set(labels["drug_b_name"]) <= set(shared_aliases("drugs"))
    assert set(labels["cell_line"]) <= set(shared_aliases("cell_lines"))



def _cli(*args, data_dir=None):
    """The CLI in-process (typer's runner): each subprocess would pay the imports again."""
    from typer.testing import CliRunner

    from synbench.cli import app

    # offline: a dataset whose files are not in the data directory must say so, not download them here
    env = {"SYNBENCH_DATA_DIR": str(data_dir) if data_dir else "", "SYNBENCH_OFFLINE": "1"}
    return CliRunner().invoke(app, list(args), env=env)


def test_cli_datasets_show_and_list_without_data(tmp_path):
    from synbench.runner import load_dataset

    load_dataset.cache_clear()  # the listing must not reuse datasets loaded from another data directory
    res = _cli("datasets", "show", "mock")
    assert res.exit_code == 0, res.output
    lines = res.stdout.splitlines()
    assert lines[0].startswith("mock: tiny seeded synthetic dataset")
    table = {" ".join(line.split()[:2]) if line.split()[0] == "cell" else line.split()[0]: line.split()
             for line in lines if line.startswith((" drugs", " cell lines"))}
    assert table["drugs"][1:] == ["12", "12/12", "-", "12/12", "0"]  # total, SMILES, expression, descriptions, no input
    assert table["cell lines"][2:] == ["6", "-", "6/6", "6/6", "0"]
    assert "drugs without SMILES (0): -" in res.stdout
    missing = _cli("datasets", "show", "d2-marsy", "--data-dir", str(tmp_path))
    assert missing.exit_code == 2 and missing.stderr.count("\n") == 1 and "D2_marsy/data.csv" in missing.stderr
    assert _cli("datasets", "show", "mokc").stderr.startswith("error: unknown dataset 'mokc'; did you mean 'mock'?")
    listing = _cli("datasets", "--data-dir", str(tmp_path))
    assert listing.exit_code == 0, listing.output
    rows = {line.split()[0]: line for line in listing.stdout.splitlines() if line.strip()}
    assert "coverage" in rows["name"] and "SMILES 12/12; expression 6/6; descriptions 12/12, 6/6" in rows["mock"]
    # targets name their task in full; the schemes are written as --split takes them
    assert "score (regression), synergistic (classification)" in rows["mock"]
    assert "leave-tissue-out, tissue-few-shot:fraction=F" in rows["mock"] and "--split cross:DATASET" in listing.stdout
    assert "unavailable" in rows["oneil-drugcomb"] and "unavailable" in rows["drugcomb-cloud"]
    load_dataset.cache_clear()


@requires_real_data
def test_cli_datasets_show_lists_uncovered_entities():
    res = _cli("datasets", "show", "drugcomb-cloud", data_dir=real_data_dir())
    assert res.exit_code == 0, res.output
    assert "cell lines without expression (1): KBM-7" in res.stdout and "drugs without SMILES (0): -" in res.stdout
