"""chem: RDKit Morgan (ECFP) fingerprints and physico-chemical descriptors from SMILES.

Salts, mixtures and metal complexes (e.g. carboplatin ``N.N.O=C(O)C1(C(=O)O)CCC1.[Pt]``) are
featurised as written; descriptors RDKit cannot compute for such a molecule (non-finite values)
are imputed with the median over the dataset's drugs, and the imputed cells are recorded in
the feature set's ``info``.
"""

import numpy as np
import pandas as pd

from synbench.base import Featurizer, Integer
from synbench.data import FeatureSet
from synbench.errors import DataError
from synbench.hookspecs import hookimpl


class ChemFeaturizer(Featurizer):
    name = "chem"
    description = "RDKit Morgan fingerprint bits + RDKit 2D descriptors per drug"
    reference = "Rogers & Hahn 2010 (ECFP); RDKit"
    kind = "tabular"
    needs = ("smiles",)
    version = "1"
    options = {"radius": Integer(0, 8), "n_bits": Integer(8, 1 << 16), "descriptors": bool}

    def __init__(self, radius: int = 2, n_bits: int = 1024, descriptors: bool = True):
        super().__init__(radius=radius, n_bits=n_bits, descriptors=descriptors)
        self.radius, self.n_bits, self.descriptors = radius, n_bits, descriptors

    def featurize(self, data) -> FeatureSet:
        from rdkit import Chem, RDLogger
        from rdkit.Chem import Descriptors, rdFingerprintGenerator

        RDLogger.DisableLog("rdApp.*")
        if "smiles" not in data.drugs.columns:
            raise DataError(f"featurizer 'chem' needs SMILES, but dataset '{data.name}' has none")
        generator = rdFingerprintGenerator.GetMorganGenerator(radius=self.radius, fpSize=self.n_bits)
        fps, descs, bad = {}, {}, []
        for drug, smiles in data.drugs["smiles"].items():
            mol = Chem.MolFromSmiles(smiles) if isinstance(smiles, str) and smiles else None
            if mol is None:
                bad.append(drug)
                continue
            fps[drug] = generator.GetFingerprintAsNumPy(mol).astype(np.float32)
            if self.descriptors:
                descs[drug] = Descriptors.CalcMolDescriptors(mol, missingVal=np.nan)
        if bad:
            raise DataError(f"featurizer 'chem': no valid SMILES for {len(bad)} drugs of '{data.name}': {', '.join(map(str, bad[:5]))}")
        table = pd.DataFrame.from_dict(fps, orient="index", columns=[f"morgan{i}" for i in range(self.n_bits)])
        info = {"radius": self.radius, "n_bits": self.n_bits, "imputed": {}}
        if self.descriptors:
            desc = pd.DataFrame.from_dict(descs, orient="index").astype(float)
            desc = desc.replace([np.inf, -np.inf], np.nan)
            desc = desc.loc[:, desc.notna().any()]  # a descriptor undefined for every drug carries nothing
            for drug, row in desc.iterrows():
                missing = list(row.index[row.isna()])
                if missing:
                    info["imputed"][drug] = missing
            desc = desc.fillna(desc.median())
            # descriptors span many orders of magnitude; a signed log keeps them on one scale
            desc = np.sign(desc) * np.log1p(np.abs(desc))
            table = table.join(desc.add_prefix("rdkit_"))
            info["n_descriptors"] = desc.shape[1]
        table.index.name = "drug"
        return FeatureSet(self.name, "tabular", drugs=table, info=info)


@hookimpl
def synbench_register_featurizers():
    return [ChemFeaturizer]
