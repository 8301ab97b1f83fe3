"""Project descriptions (datasets/descriptions/) and the description / llm-description featurizers."""

import json

import numpy as np
import pandas as pd
import pytest

from conftest import real_data_dir, requires_real_data
from synbench.errors import DataError, DataUnavailableError
from synbench.features import featurize, tabular_design
from synbench.plugins.featurizers import description as desc
from synbench.testing import mock_data

# The entities the core files must cover (names exactly as in the data files; see COVERAGE.md).
D1_DRUGS = """5-FU ABT-888 AZD1775 BEZ-235 BORTEZOMIB CARBOPLATIN CYCLOPHOSPHAMIDE DASATINIB DEXAMETHASONE
DINACICLIB DOXORUBICIN ERLOTINIB ETOPOSIDE GELDANAMYCIN GEMCITABINE L778123 LAPATINIB METFORMIN METHOTREXATE
MITOMYCINE MK-2206 MK-4541 MK-4827 MK-5108 MK-8669 MK-8776 MRK-003 OXALIPLATIN PACLITAXEL PD325901 SN-38
SORAFENIB SUNITINIB TEMOZOLOMIDE TOPOTECAN VINBLASTINE VINORELBINE ZOLINZA""".split()
D1_CELLS = """A2058 A2780 A375 A427 CAOV3 COLO320DM DLD1 EFM192B ES2 HCT116 HT144 HT29 KPL1 LNCAP LOVO MDAMB436
MSTO NCIH1650 NCIH2122 NCIH23 NCIH460 NCIH520 OCUBM OV90 OVCAR3 PA1 RKO RPMI7951 SKMEL30 SKMES1 SKOV3 SW620
SW837 T47D UACC62 UWB1289 UWB1289BRCA1 VCAP ZR751""".split()
OTHER_CELLS = ["KBM-7", "T98G"]  # CLOUD and FORCINA screens


@pytest.fixture(scope="module")
def library():
    return desc.read_descriptions()


def test_description_files_parse_and_carry_a_versioned_prompt(library):
    assert library.prompt["version"] != "unversioned"
    assert {"drugs_core.jsonl", "cell_lines_core.jsonl"} <= set(library.files)
    for name in ("drugs_core.jsonl", "cell_lines_core.jsonl"):
        path = desc.descriptions_dir() / name
        for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            obj = json.loads(line)
            assert set(desc.REQUIRED_KEYS) <= set(obj), f"{name}:{lineno}"
            words = len(obj["text"].split())
            low = obj["confidence"] == "low"
            assert (40 if low else 55) <= words <= 110, f"{name}:{lineno} ({obj['name']}) has {words} words"
            assert obj["text"].split()[0].strip(",(").upper() in {n.upper() for n in [obj["name"], *obj["aliases"]]} \
                or obj["name"].upper() in obj["text"][:80].upper(), f"{name}:{lineno} does not start with the entity"


def test_names_and_aliases_are_unique_across_files(library):
    assert not library.duplicates, (
        f"{len(library.duplicates)} description entries reuse a name or alias defined earlier "
        "(the first definition wins; remove or merge the later ones):\n  " + "\n  ".join(library.duplicates))


def test_core_files_cover_d1_d3_and_the_screens(library):
    drugs, _ = library.index("drugs")
    cells, _ = library.index("cell_lines")
    assert [d for d in D1_DRUGS if d not in drugs] == []
    assert [c for c in D1_CELLS + OTHER_CELLS if c not in cells] == []
    core = {e.name for e in library.entries["drugs"] if e.file == "drugs_core.jsonl"}
    assert {drugs.resolve(d) for d in D1_DRUGS} <= core  # the core file, not a later one, describes them
    # names used in the D3 independent set resolve to the same entity as D1's spelling
    for independent, d1 in (("MK2206", "MK-2206"), ("SN38", "SN-38"), ("AZ13047864, Doxorubicin", "DOXORUBICIN"),
                            ("Gemcitibine,Gemzar", "GEMCITABINE"), ("vorinostat", "ZOLINZA"), ("ridaforolimus", "MK-8669")):
        assert drugs.resolve(independent) == drugs.resolve(d1) == d1


@requires_real_data
def test_real_entity_lists_are_covered(library):
    root = real_data_dir()
    labels = pd.read_csv(root / "D1_deepsynergy_oneil/labels.csv", index_col=0)
    assert sorted(set(labels.drug_a_name) | set(labels.drug_b_name)) == sorted(D1_DRUGS)
    assert sorted(set(labels.cell_line)) == sorted(D1_CELLS)
    drugs, _ = library.index("drugs")
    cells, _ = library.index("cell_lines")
    independent = root / "D3_deepdds/independent_set"
    drug_names = pd.read_csv(independent / "independent_drug.csv")["Drug name"]
    cell_names = pd.read_csv(independent / "independent_cell.csv")["Cell line name"]
    assert [d for d in drug_names if d not in drugs] == []
    assert [c for c in cell_names if c not in cells] == []


def test_loader_first_definition_wins_and_reports_the_rest(tmp_path):
    def line(name, aliases, text):
        return json.dumps({"name": name, "aliases": aliases, "text": text, "confidence": "high"}) + "\n"

    (tmp_path / "PROMPT.md").write_text("Version: 7\n")
    (tmp_path / "drugs_core.jsonl").write_text(line("ZOLINZA", ["vorinostat", "SAHA"], "core text"))
    (tmp_path / "drugs_alpha.jsonl").write_text(line("Vorinostat", [], "later text") + line("Aspirin", ["ASA"], "fine"))
    lib = desc.read_descriptions(tmp_path)
    index, entries = lib.index("drugs")
    assert entries[index.resolve("vorinostat")].text == "core text"  # core first, although 'alpha' sorts before it
    assert index.resolve("asa") == "Aspirin" and lib.prompt["version"] == "7"
    assert lib.duplicates == ["drugs: drugs_alpha.jsonl:1 (Vorinostat) redefines drugs_core.jsonl:1 (ZOLINZA)"]
    (tmp_path / "drugs_beta.jsonl").write_text('{"name": "X", "aliases": [], "text": "t"}\n')
    with pytest.raises(DataError, match=r"drugs_beta.jsonl:1 lacks confidence"):
        desc.read_descriptions(tmp_path)


def test_description_featurizer_sources_on_mock():
    data = mock_data()
    fs = featurize(data, "description", use_cache=False)
    assert fs.kind == "text" and isinstance(fs.drugs, pd.Series) and isinstance(fs.cell_lines, pd.Series)
    sources = fs.info["entity_sources"]
    # a project description wins over the dataset's own column; the column fills the rest
    assert sources["drugs"]["5-FU"] == "project:drugs_core.jsonl"
    assert fs.drugs["5-FU"].startswith("5-Fluorouracil (5-FU) is a fluorinated pyrimidine")
    assert sources["cell_lines"]["CELL-A"] == "dataset"
    assert fs.cell_lines["CELL-A"] == data.cell_lines.at["CELL-A", "description"]
    assert fs.info["prompt"]["version"] and "drugs_core.jsonl" in fs.info["description_files"]


def test_missing_descriptions_are_one_line_error_naming_them():
    data = mock_data()
    data.drugs["description"] = data.drugs["description"].astype(object)
    data.drugs.loc["NICOTINE", "description"] = None
    data.cell_lines.loc[["CELL-A", "CELL-C"], "description"] = None
    for spec in ("description", "llm-description"):
        with pytest.raises(DataError) as err:
            featurize(data, spec, use_cache=False)
        message = str(err.value)
        assert "\n" not in message
        assert "1 drugs: NICOTINE" in message and "2 cell lines: CELL-A, CELL-C" in message


def test_chebi_source_needs_its_file(tmp_path, monkeypatch):
    monkeypatch.setenv("SYNBENCH_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("SYNBENCH_OFFLINE", "1")
    with pytest.raises(DataUnavailableError, match="chebi20_matched_D1_D3_drugs.csv not found"):
        featurize(mock_data(), "description:source=chebi", use_cache=False)


@requires_real_data
def test_chebi_source_falls_back_to_project_text(monkeypatch):
    from synbench.runner import load_dataset

    monkeypatch.setenv("SYNBENCH_DATA_DIR", str(real_data_dir()))
    data = load_dataset("d1-oneil")
    fs = featurize(data, "description:source=chebi", use_cache=False)
    sources = fs.info["entity_sources"]["drugs"]
    assert sources["ZOLINZA"] == "chebi" and fs.drugs["ZOLINZA"].startswith("The molecule is")
    assert sources["5-FU"] == "project:drugs_core.jsonl"
    assert len(fs.info["chebi_missing"]) == 27 and "5-FU" in fs.info["chebi_missing"]
    assert fs.info["counts"]["drugs"] == {"project": 27, "chebi": 11, "dataset": 0}
    assert set(fs.info["entity_sources"]["cell_lines"].values()) == {"project:cell_lines_core.jsonl"}


def test_llm_description_feeds_the_baitsao_design():
    from synbench.data import Batch

    data = mock_data()
    fs = featurize(data, "llm-description")
    assert fs.kind == "tabular" and fs.drugs.shape == (12, 384) and fs.cell_lines.shape == (6, 384)
    assert fs.info["encoder"] == "minilm" and fs.info["dimension"] == 384
    assert fs.info["entity_sources"]["drugs"]["5-FU"] == "project:drugs_core.jsonl"
    rows = data.entity_rows()
    triple = rows[rows["n_drugs"] == 3].iloc[:1]
    x = tabular_design(Batch(triple, {"llm-description": fs}, "regression"), "mean")
    drugs = [triple.iloc[0][c] for c in ("drug_1", "drug_2", "drug_3")]
    np.testing.assert_allclose(x[0, :384], fs.drugs.loc[drugs].to_numpy().mean(axis=0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(x[0, 384:768], fs.cell_lines.loc[triple.iloc[0]["cell_line"]].to_numpy(), atol=1e-6)
    assert x.shape == (1, 769) and x[0, -1] == 3


def test_feature_cache_version_follows_the_description_files(tmp_path, monkeypatch):
    from synbench.plugins.featurizers.llm_description import LLMDescriptionFeaturizer

    (tmp_path / "drugs_core.jsonl").write_text('{"name": "A", "aliases": [], "text": "one", "confidence": "low"}\n')
    monkeypatch.setattr(desc, "descriptions_dir", lambda: tmp_path)
    before = LLMDescriptionFeaturizer.version
    assert before.startswith("1+") and desc.DescriptionFeaturizer.version == before
    (tmp_path / "drugs_core.jsonl").write_text('{"name": "A", "aliases": [], "text": "two", "confidence": "low"}\n')
    assert LLMDescriptionFeaturizer.version != before
