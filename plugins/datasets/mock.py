"""A tiny seeded synthetic dataset so every plugin runs end to end in seconds.

Real small-molecule SMILES (so chemistry and graph featurizers have real work to do), six cell
lines with a 24-gene expression matrix, all drug pairs on every cell line plus a few three-drug
combinations. The score is a noisy function of hidden drug and cell factors, so a model that
learns beats the constant baseline.
"""

import itertools

import numpy as np
import pandas as pd

from synbench.base import Dataset
from synbench.data import CELL, N_DRUGS, SynergyData, Target
from synbench.hookspecs import hookimpl
from synbench.splits import combination_keys

MOCK_DRUGS = {
    "ASPIRIN": "CC(=O)Oc1ccccc1C(=O)O",
    "CAFFEINE": "Cn1cnc2c1c(=O)n(C)c(=O)n2C",
    "IBUPROFEN": "CC(C)Cc1ccc(cc1)C(C)C(=O)O",
    "PARACETAMOL": "CC(=O)Nc1ccc(O)cc1",
    "METFORMIN": "CN(C)C(=N)N=C(N)N",
    "5-FU": "O=c1[nH]cc(F)c(=O)[nH]1",
    "TEMOZOLOMIDE": "Cn1nnc2c(C(N)=O)ncn2c1=O",
    "GEMCITABINE": "Nc1ccn(C2OC(CO)C(O)C2(F)F)c(=O)n1",
    "CARBOPLATIN": "N.N.O=C(O)C1(C(=O)O)CCC1.[Pt]",
    "NICOTINE": "CN1CCCC1c1cccnc1",
    "THEOPHYLLINE": "Cn1c2c(c(=O)n(C)c1=O)[nH]cn2",
    "DOPAMINE": "NCCc1ccc(O)c(O)c1",
}
MOCK_CELLS = {"CELL-A": "breast", "CELL-B": "breast", "CELL-C": "lung", "CELL-D": "lung", "CELL-E": "colon", "CELL-F": "colon"}
# Short texts for the description featurizers (used where no project description matches).
MOCK_DRUG_TEXT = {
    "ASPIRIN": "Aspirin, a salicylate that irreversibly inhibits cyclooxygenase; analgesic and antiplatelet drug.",
    "CAFFEINE": "Caffeine, a methylxanthine adenosine receptor antagonist and central nervous system stimulant.",
    "IBUPROFEN": "Ibuprofen, a propionic acid non-steroidal anti-inflammatory drug that inhibits cyclooxygenase.",
    "PARACETAMOL": "Paracetamol (acetaminophen), an analgesic and antipyretic with weak peripheral anti-inflammatory action.",
    "METFORMIN": "Metformin, a biguanide antidiabetic drug that lowers hepatic glucose production.",
    "5-FU": "5-Fluorouracil, a pyrimidine antimetabolite that inhibits thymidylate synthase.",
    "TEMOZOLOMIDE": "Temozolomide, an oral alkylating prodrug that methylates DNA; used for glioblastoma.",
    "GEMCITABINE": "Gemcitabine, a nucleoside analogue that inhibits DNA synthesis and ribonucleotide reductase.",
    "CARBOPLATIN": "Carboplatin, a platinum compound that forms DNA crosslinks.",
    "NICOTINE": "Nicotine, a tobacco alkaloid that activates nicotinic acetylcholine receptors.",
    "THEOPHYLLINE": "Theophylline, a methylxanthine bronchodilator and phosphodiesterase inhibitor.",
    "DOPAMINE": "Dopamine, a catecholamine neurotransmitter that acts on dopamine and adrenergic receptors.",
}
MOCK_CELL_TEXT = {name: f"Synthetic {tissue} cancer cell line {name} of the mock dataset." for name, tissue in MOCK_CELLS.items()}


def make_mock(seed: int = 7, n_genes: int = 24, triples: int = 30) -> SynergyData:
    rng = np.random.default_rng(seed)
    drugs, cells = list(MOCK_DRUGS), list(MOCK_CELLS)
    drug_factor = pd.Series(rng.normal(size=len(drugs)), index=drugs)
    cell_factor = pd.Series(rng.normal(size=len(cells)), index=cells)
    expression = pd.DataFrame(rng.normal(size=(len(cells), n_genes)), index=cells, columns=[f"GENE{i}" for i in range(n_genes)])
    expression.iloc[:, 0] = cell_factor.to_numpy()  # one gene carries the cell signal

    combos = [tuple(p) for p in itertools.combinations(drugs, 2)]
    extra = [tuple(t) for t in itertools.combinations(drugs, 3)]
    combos += [extra[i] for i in rng.choice(len(extra), triples, replace=False)]
    rows = []
    for combo in combos:
        for cell in cells:
            score = 10 * np.prod(drug_factor[list(combo)].to_numpy()) * cell_factor[cell] + 5 * drug_factor[list(combo)].sum()
            rows.append({**{f"drug_{i + 1}": d for i, d in enumerate(combo)}, CELL: cell, N_DRUGS: len(combo),
                         "score": score + rng.normal(scale=2.0)})
    table = pd.DataFrame(rows)
    for col in ("drug_1", "drug_2", "drug_3"):
        table[col] = table[col].astype(object).where(table[col].notna(), None)
    table.index = pd.Index([f"mock-{i:04d}" for i in range(len(table))], name="row_id")
    # published folds group by drug combination, as D1's do
    keys = combination_keys(table, ["drug_1", "drug_2", "drug_3"])
    uniq = keys.unique()
    fold_of = dict(zip(uniq, rng.permutation(np.arange(len(uniq)) % 5)))
    table["fold"] = keys.map(fold_of).to_numpy()
    threshold = float(np.quantile(table["score"], 0.6))
    drug_table = pd.DataFrame({"smiles": pd.Series(MOCK_DRUGS), "aliases": [[] for _ in drugs],
                               "description": pd.Series(MOCK_DRUG_TEXT)})
    drug_table.index.name = "drug"
    cell_table = pd.DataFrame({"tissue": pd.Series(MOCK_CELLS), "description": pd.Series(MOCK_CELL_TEXT)})
    cell_table.index.name = "cell_line"
    return SynergyData(
        name="mock",
        combinations=table,
        targets={
            "score": Target("score", "regression", "score", "synthetic synergy score"),
            "synergistic": Target("synergistic", "classification", "score", "score above its 60th percentile", threshold=threshold),
        },
        drugs=drug_table,
        cell_lines=cell_table,
        omics={"expression": expression},
        checksums={"mock": f"seed={seed}"},
        fold_column="fold",
    )


class MockDataset(Dataset):
    name = "mock"
    description = "tiny seeded synthetic dataset (12 drugs, 6 cell lines, pairs and triples) for tests"
    reference = "synthetic"
    split_schemes = ("published", "random", "leave-combination-out", "leave-drug-out", "leave-cell-out", "leave-tissue-out")

    def load(self, data_dir=None) -> SynergyData:
        return make_mock()


@hookimpl
def synbench_register_datasets():
    return [MockDataset]
