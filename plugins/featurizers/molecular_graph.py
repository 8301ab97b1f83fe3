"""molecular-graph: one torch-geometric graph per drug, with GraphDTA's 78-d atom features.

Atoms are nodes and bonds are undirected edges (stored in both directions). Each atom's
feature vector is the GraphDTA / DeepDDS encoding, 78 values:

- atom symbol, one-hot over GraphDTA's 44-entry list (the last entry, ``Unknown``, takes any
  other element),
- degree, total hydrogen count and implicit valence, each one-hot over 0..10 (values above 10
  fall into the last slot),
- the aromatic flag;

and, as in GraphDTA and DeepDDS, the vector is divided by its sum (``normalise=True``).

Salts, mixtures and metal complexes are featurised as written, all fragments kept as one
disconnected graph: carboplatin ``N.N.O=C(O)C1(C(=O)O)CCC1.[Pt]`` is a 13-node graph whose two
ammonia nitrogens and platinum atom have no edges. This is what the published pipeline does
(RDKit on the SMILES as given), and it keeps the metal, which is the active part. Isolated
atoms get no edge in the graph; graph layers that add self-loops (torch-geometric's GATConv
and GCNConv by default) still update them from their own features, and global pooling sees
them. ``fragments="largest"`` keeps only the largest fragment instead (by heavy-atom count).
``info`` records, per drug, the number of fragments and of isolated atoms.

``FeatureSet.drugs`` is a pandas Series drug name -> ``torch_geometric.data.Data`` with ``x``
(float32, atoms x 78), ``edge_index`` (int64, 2 x 2*bonds) and ``num_nodes``.
"""

import numpy as np
import pandas as pd

from synbench.base import Categorical, Featurizer
from synbench.data import FeatureSet
from synbench.errors import ConfigError, DataError
from synbench.hookspecs import hookimpl

# GraphDTA's symbol list (Nguyen et al. 2021), reused unchanged by DeepDDS; order matters
SYMBOLS = ("C", "N", "O", "S", "F", "Si", "P", "Cl", "Br", "Mg", "Na", "Ca", "Fe", "As", "Al", "I", "B", "V", "K",
           "Tl", "Yb", "Sb", "Sn", "Ag", "Pd", "Co", "Se", "Ti", "Zn", "H", "Li", "Ge", "Cu", "Au", "Ni", "Cd",
           "In", "Mn", "Zr", "Cr", "Pt", "Hg", "Pb", "Unknown")
COUNTS = 11  # one-hot slots for 0..10
N_ATOM_FEATURES = len(SYMBOLS) + 3 * COUNTS + 1  # 78
FRAGMENT_RULES = ("all", "largest")


def _one_hot(index: int, size: int) -> np.ndarray:
    v = np.zeros(size, dtype=np.float32)
    v[min(index, size - 1)] = 1.0
    return v


def atom_features(atom) -> np.ndarray:
    """The unnormalised 78-d GraphDTA encoding of one RDKit atom."""
    from rdkit import Chem

    symbol = atom.GetSymbol()
    position = SYMBOLS.index(symbol) if symbol in SYMBOLS else len(SYMBOLS) - 1
    # GetImplicitValence() is deprecated in newer RDKit releases; same value
    implicit = atom.GetValence(Chem.ValenceType.IMPLICIT) if hasattr(Chem, "ValenceType") else atom.GetImplicitValence()
    return np.concatenate([
        _one_hot(position, len(SYMBOLS)),
        _one_hot(atom.GetDegree(), COUNTS),
        _one_hot(atom.GetTotalNumHs(), COUNTS),
        _one_hot(implicit, COUNTS),
        np.array([float(atom.GetIsAromatic())], dtype=np.float32),
    ])


def mol_to_graph(mol, normalise: bool = True):
    """An RDKit molecule -> ``Data(x, edge_index, num_nodes)``; undirected bonds in both directions."""
    import torch
    from torch_geometric.data import Data
    from torch_geometric.utils import to_undirected

    x = np.stack([atom_features(a) for a in mol.GetAtoms()])
    if normalise:
        x = x / x.sum(axis=1, keepdims=True)
    bonds = [(b.GetBeginAtomIdx(), b.GetEndAtomIdx()) for b in mol.GetBonds()]
    edge_index = torch.tensor(bonds, dtype=torch.long).t().reshape(2, -1)
    edge_index = to_undirected(edge_index, num_nodes=mol.GetNumAtoms())
    return Data(x=torch.from_numpy(x.astype(np.float32)), edge_index=edge_index, num_nodes=mol.GetNumAtoms())


class MolecularGraphFeaturizer(Featurizer):
    name = "molecular-graph"
    description = "RDKit molecular graph per drug with GraphDTA's 78-d atom features (DeepDDS input)"
    reference = "Nguyen et al. 2021 (GraphDTA); Wang et al. 2022 (DeepDDS)"
    kind = "graph"
    needs = ("smiles",)
    version = "1"
    options = {"fragments": Categorical(FRAGMENT_RULES), "normalise": bool}

    def __init__(self, fragments: str = "all", normalise: bool = True):
        if fragments not in FRAGMENT_RULES:
            raise ConfigError(f"molecular-graph: unknown fragments rule '{fragments}' (choose from {', '.join(FRAGMENT_RULES)})")
        super().__init__(fragments=fragments, normalise=normalise)
        self.fragments, self.normalise = fragments, bool(normalise)

    def featurize(self, data) -> FeatureSet:
        from rdkit import Chem, RDLogger

        RDLogger.DisableLog("rdApp.*")
        if "smiles" not in data.drugs.columns:
            raise DataError(f"featurizer 'molecular-graph' needs SMILES, but dataset '{data.name}' has none")
        graphs, bad, fragments, isolated = {}, [], {}, {}
        for drug, smiles in data.drugs["smiles"].items():
            mol = Chem.MolFromSmiles(smiles) if isinstance(smiles, str) and smiles else None
            if mol is None or mol.GetNumAtoms() == 0:
                bad.append(drug)
                continue
            parts = Chem.GetMolFrags(mol, asMols=True)
            if self.fragments == "largest" and len(parts) > 1:
                mol = max(parts, key=lambda m: m.GetNumHeavyAtoms())
            if len(parts) > 1:
                fragments[drug] = len(parts)
            lonely = sum(1 for a in mol.GetAtoms() if a.GetDegree() == 0)
            if lonely:
                isolated[drug] = lonely
            graphs[drug] = mol_to_graph(mol, self.normalise)
        if bad:
            raise DataError(f"featurizer 'molecular-graph': no valid SMILES for {len(bad)} drugs of '{data.name}': "
                            f"{', '.join(map(str, bad[:5]))}")
        series = pd.Series(graphs, dtype=object)
        series.index.name = "drug"
        info = {"atom_features": N_ATOM_FEATURES, "normalise": self.normalise, "fragments": self.fragments,
                "multi_fragment_drugs": fragments, "isolated_atoms": isolated,
                "isolated_atom_handling": "kept as nodes without edges; self-loops come from the graph layer"}
        return FeatureSet(self.name, "graph", drugs=series, info=info)


@hookimpl
def synbench_register_featurizers():
    return [MolecularGraphFeaturizer]
