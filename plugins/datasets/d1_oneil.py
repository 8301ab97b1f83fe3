"""D1: the O'Neil screen in DeepSynergy's release, with its published leave-combination-out folds."""

import pandas as pd

from synbench.base import Dataset
from synbench.data import CELL, N_DRUGS, SynergyData, Target
from synbench.datadir import read_manifest, resolve
from synbench.entities import shared_aliases
from synbench.errors import DataError
from synbench.hookspecs import hookimpl
from synbench.tabular_io import read_table


class D1ONeil(Dataset):
    name = "d1-oneil"
    description = "O'Neil 2016 screen (DeepSynergy release): 23,052 rows, 38 drugs, 39 cell lines, Loewe"
    reference = "O'Neil et al. 2016; Preuer et al. 2018 (DeepSynergy)"
    manifest = "d1_oneil.toml"
    split_schemes = ("published", "random", "leave-combination-out", "leave-drug-out", "leave-cell-out", "leave-tissue-out")

    def load(self, data_dir=None) -> SynergyData:
        manifest = read_manifest(self.manifest)
        paths = {key: resolve(manifest, key, data_dir) for key in manifest.files}
        labels = read_table(paths["labels"], sep=",", index_col=0,
                            required=["drug_a_name", "drug_b_name", "cell_line", "synergy", "fold"])
        # Replicate measurements share DeepSynergy's DRUGA_DRUGB_CELL key: number them for a stable id.
        key = labels.index.astype(str)
        replicate = key.to_series().groupby(key).cumcount().to_numpy()
        row_id = [k if r == 0 else f"{k}#{r + 1}" for k, r in zip(key, replicate)]
        combinations = pd.DataFrame({
            "drug_1": labels["drug_a_name"].to_numpy(), "drug_2": labels["drug_b_name"].to_numpy(),
            CELL: labels["cell_line"].to_numpy(), N_DRUGS: 2,
            "loewe": pd.to_numeric(labels["synergy"], errors="coerce").to_numpy(),
            "fold": labels["fold"].to_numpy(),
        }, index=pd.Index(row_id, name="row_id"))

        smiles = read_table(paths["smiles"], sep=",", header=None, names=["drug", "smiles"], index_col=0)
        aliases = shared_aliases("drugs")  # datasets/aliases.toml, shared by every dataset
        drugs = pd.DataFrame({"smiles": smiles["smiles"]})
        drugs["aliases"] = [list(aliases.get(d, [])) for d in drugs.index]
        drugs.index.name = "drug"

        cells = read_table(paths["cells"], sep="\t", header=None, names=["cell_line", "tissue", "status"], index_col=0)
        cell_lines = pd.DataFrame({"tissue": cells["tissue"].str.lower()})
        cell_lines.index.name = "cell_line"

        expression = read_table(paths["expression_zscore"], sep=",", index_col=0)
        if not expression.index.is_unique:
            raise DataError(f"{paths['expression_zscore']}: duplicate cell lines")

        return SynergyData(
            name=self.name,
            combinations=combinations,
            targets={
                "loewe": Target("loewe", "regression", "loewe", "Loewe synergy score"),
                "loewe_gt30": Target("loewe_gt30", "classification", "loewe", "Loewe > 30 (synergistic)", threshold=30.0),
            },
            drugs=drugs,
            cell_lines=cell_lines,
            omics={"expression": expression},
            checksums={manifest.file(k).path: manifest.file(k).sha256 for k in paths},
            fold_column="fold",
        )


@hookimpl
def synbench_register_datasets():
    return [D1ONeil]
