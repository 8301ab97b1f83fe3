"""D3: DeepDDS's binary O'Neil set, its published leave-drug/cell/combination split files, and its
AstraZeneca-DREAM independent test set (a second dataset, also attached as an external set).

The labels file stores SMILES; ``drugs_0_10.csv`` maps them to names by exact string. Replicate rows
are kept (the split files count them); see ``datasets/d3_deepdds.toml`` for what every file holds.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from synbench.base import Dataset
from synbench.data import CELL, N_DRUGS, PublishedSplit, SynergyData, Target
from synbench.datadir import Manifest, read_manifest, resolve
from synbench.entities import EntityIndex, canonical_smiles
from synbench.errors import DataError
from synbench.hookspecs import hookimpl
from synbench.tabular_io import read_table

MANIFEST = "d3_deepdds.toml"
LABEL_COLUMNS = ["drug1", "drug2", "cell", "label"]

# scheme -> (folder, fold names: test file X.csv / train file leave_X.csv, grouping of the inner validation split)
PUBLISHED = {
    "deepdds-leave-drug": ("leave_drug", ("d00", "d11", "d22", "d33", "d44"), "drug",
                           "DeepDDS leave-drug-out: 5 drug groups; test = rows with a held-out drug, train = rows with none"),
    "deepdds-leave-cell": ("leave_cell", ("breast", "colon", "lung", "melanoma", "ovarian", "prostate"), "cell",
                           "DeepDDS leave-tissue-out: all cell lines of one tissue held out (6 folds)"),
    "deepdds-leave-comb": ("leave_comb", ("c00", "c11", "c22", "c33", "c44"), "combination",
                           "DeepDDS leave-combination-out: drug pairs (all cell lines) held out, 5 folds"),
    "deepdds-leave-drug-both": ("leave_drug", ("dd0and5",), "drug",
                                "DeepDDS dd0and5: 6 drugs held out; test = rows with both held out, mixed rows unused (1 fold)"),
}


def _labels(path, where: str) -> pd.DataFrame:
    frame = read_table(path, sep=",", required=LABEL_COLUMNS)[LABEL_COLUMNS]
    label = pd.to_numeric(frame["label"], errors="coerce")
    if label.isna().any() or not set(label.unique()) <= {0, 1}:
        raise DataError(f"{where}: column 'label' must be 0/1")
    return frame.assign(label=label.astype(int))


def _row_ids(first, second, cells) -> pd.Index:
    """'A_B_CELL', with replicates of the same ordered triple numbered '#2', '#3' in file order (as D1)."""
    key = pd.Series([f"{a}_{b}_{c}" for a, b, c in zip(first, second, cells)])
    replicate = key.groupby(key).cumcount().to_numpy()
    return pd.Index([k if r == 0 else f"{k}#{r + 1}" for k, r in zip(key, replicate)], name="row_id")


class _RowKeys:
    """Integer keys of (drug1 SMILES, drug2 SMILES, cell, label, occurrence) rows, so that matching the
    ~30 split files (long SMILES strings) against the label table is a fast integer join."""

    def __init__(self, labels: pd.DataFrame, row_id: pd.Index, smiles: pd.Index, cells: pd.Index):
        self.smiles, self.cells = smiles, cells
        keys, occ = self.encode(labels)
        self.row_of = pd.Series(np.asarray(row_id, dtype=object), index=pd.MultiIndex.from_arrays([keys, occ]))

    def encode(self, frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        d1, d2 = self.smiles.get_indexer(frame["drug1"]), self.smiles.get_indexer(frame["drug2"])
        cell = self.cells.get_indexer(frame["cell"])
        keys = ((d1.astype(np.int64) * len(self.smiles) + d2) * len(self.cells) + cell) * 2 + frame["label"].to_numpy()
        keys[(d1 < 0) | (d2 < 0) | (cell < 0)] = -1
        return keys, pd.Series(keys).groupby(keys).cumcount().to_numpy()

    def match(self, parts: list[pd.DataFrame], where: str) -> list[np.ndarray]:
        """Row ids of each part, matching rows as a multiset over all parts together, so that two copies of a
        replicated row map to its two row ids wherever the files put them."""
        keys, occ = self.encode(pd.concat(parts, ignore_index=True))
        pos = self.row_of.index.get_indexer(pd.MultiIndex.from_arrays([keys, occ]))
        if (pos < 0).any():
            raise DataError(f"{where}: {int((pos < 0).sum())} rows are not rows of the label table (or occur more often there)")
        ids = self.row_of.to_numpy()[pos]
        bounds = np.cumsum([0] + [len(p) for p in parts])
        return [ids[bounds[i]:bounds[i + 1]] for i in range(len(parts))]


def _published_splits(keys: _RowKeys, manifest: Manifest, paths: dict) -> dict[str, PublishedSplit]:
    splits = {}
    for scheme, (folder, folds, group_by, description) in PUBLISHED.items():
        parts = []
        for fold, name in enumerate(folds):
            test_key, train_key = f"{folder}/{name}", f"{folder}/leave_{name}"
            frames = [_labels(paths[k], manifest.file(k).path) for k in (test_key, train_key)]
            test_ids, train_ids = keys.match(frames, f"{manifest.file(test_key).path} + {manifest.file(train_key).path}")
            # object dtype: the row-id membership checks in validate() are ~10x faster than on arrow strings
            parts += [pd.DataFrame({"fold": fold, "row_id": pd.Series(test_ids, dtype=object), "role": "test"}),
                      pd.DataFrame({"fold": fold, "row_id": pd.Series(train_ids, dtype=object), "role": "train"})]
        splits[scheme] = PublishedSplit(pd.concat(parts, ignore_index=True), group_by=group_by, description=description)
    return splits


def _drug_table(path, where: str, aliases: dict) -> pd.DataFrame:
    raw = read_table(path, sep=",", header=None, names=["drug", "smiles", "deepdds_group"])
    if raw["drug"].duplicated().any() or raw["smiles"].duplicated().any():
        raise DataError(f"{where}: drug names and SMILES must be unique")
    drugs = raw.set_index("drug")
    drugs["canonical_smiles"] = [canonical_smiles(s) for s in drugs["smiles"]]
    drugs["aliases"] = [list(aliases.get(d, [])) for d in drugs.index]
    return drugs[["smiles", "canonical_smiles", "aliases", "deepdds_group"]]


def _expression(path, where: str) -> pd.DataFrame:
    """Rows 1-2 are gene_id / transcript_id headers (954 distinct genes), then one row per cell line (TPM)."""
    raw = read_table(path, sep=",", header=None, index_col=0, low_memory=False)
    if len(raw) < 3 or list(raw.index[:2]) != ["gene_id", "transcript_id"]:
        raise DataError(f"{where}: expected rows 'gene_id' and 'transcript_id' before the cell lines")
    genes = raw.iloc[0].astype(str)
    if genes.duplicated().any():
        raise DataError(f"{where}: duplicate gene ids")
    values = raw.iloc[2:].apply(pd.to_numeric, errors="coerce")
    if values.isna().to_numpy().any():
        raise DataError(f"{where}: non-numeric expression values")
    if values.index.duplicated().any():
        raise DataError(f"{where}: duplicate cell lines")
    values.columns = pd.Index(genes.to_numpy(), name="gene_id")
    values.index.name = CELL
    return values.astype(float)


def _synergy_data(name: str, combinations: pd.DataFrame, label_meaning: str, drugs: pd.DataFrame,
                  cell_lines: pd.DataFrame, expression: pd.DataFrame, manifest: Manifest, paths: dict,
                  **extra) -> SynergyData:
    """D3 and its independent set alike: one binary ``synergy`` target, expression, file checksums."""
    return SynergyData(
        name=name,
        combinations=combinations,
        targets={"synergy": Target("synergy", "classification", "synergy", label_meaning)},
        drugs=drugs,
        cell_lines=cell_lines,
        omics={"expression": expression},
        checksums={manifest.file(k).path: manifest.file(k).sha256 for k in paths},
        **extra,
    )


class D3DeepDDS(Dataset):
    name = "d3-deepdds"
    description = "DeepDDS binary set (O'Neil, Loewe >10 vs <0): 12,415 rows, 36 drugs, 31 cell lines, 954-gene expression"
    reference = "Wang et al. 2022, Brief Bioinform (DeepDDS); O'Neil et al. 2016"
    manifest = MANIFEST
    # No published fold column: DeepDDS's own 5-fold CV used an unseeded random permutation, so 'random' is the default.
    split_schemes = ("random", "leave-combination-out", "leave-drug-out", "leave-cell-out") + tuple(PUBLISHED)

    def load(self, data_dir=None) -> SynergyData:
        manifest = read_manifest(self.manifest)
        keys = ["labels", "drugs", "cells", "expression"]
        keys += [f"{folder}/{prefix}{name}" for folder, folds, _, _ in PUBLISHED.values()
                 for name in folds for prefix in ("", "leave_")]
        paths = {key: resolve(manifest, key, data_dir) for key in dict.fromkeys(keys)}

        drugs = _drug_table(paths["drugs"], manifest.file("drugs").path, manifest.extra.get("aliases", {}))
        labels = _labels(paths["labels"], manifest.file("labels").path)
        name_of = pd.Series(drugs.index, index=drugs["smiles"])
        unknown = sorted(set(labels["drug1"]).union(labels["drug2"]) - set(name_of.index))
        if unknown:
            raise DataError(f"{manifest.file('labels').path}: {len(unknown)} SMILES not in "
                            f"{manifest.file('drugs').path}, e.g. {unknown[0]}")
        first, second = labels["drug1"].map(name_of).to_numpy(), labels["drug2"].map(name_of).to_numpy()
        row_id = _row_ids(first, second, labels["cell"])
        combinations = pd.DataFrame({"drug_1": first, "drug_2": second, CELL: labels["cell"].to_numpy(), N_DRUGS: 2,
                                     "synergy": labels["label"].to_numpy()}, index=row_id)
        row_keys = _RowKeys(labels, row_id, pd.Index(drugs["smiles"]), pd.Index(pd.unique(labels["cell"])))

        cells = read_table(paths["cells"], sep=",", header=None, names=[CELL, "tissue"], index_col=0)
        if not cells.index.is_unique:
            raise DataError(f"{manifest.file('cells').path}: duplicate cell lines")
        cell_lines = pd.DataFrame({"tissue": cells["tissue"].str.lower()})
        cell_lines.index.name = CELL

        expression = _expression(paths["expression"], manifest.file("expression").path)
        independent = load_independent(manifest, data_dir, drugs, cell_lines, expression.columns,
                                       name=D3DeepDDSIndependent.name)
        return _synergy_data(self.name, combinations, "synergistic (Loewe > 10) vs not (Loewe < 0), as published",
                             drugs, cell_lines, expression, manifest, paths,
                             published_splits=_published_splits(row_keys, manifest, paths),
                             external_sets={"independent": independent})


def load_independent(manifest: Manifest, data_dir, d3_drugs: pd.DataFrame, d3_cells: pd.DataFrame, genes: pd.Index,
                     name: str) -> SynergyData:
    """The AstraZeneca-DREAM independent set, with names resolved to D3's where they are the same entity."""
    keys = ("independent_labels", "independent_smiles", "independent_drugs", "independent_cells")
    paths = {key: resolve(manifest, key, data_dir) for key in keys}
    where = {key: manifest.file(key).path for key in keys}

    rows = read_table(paths["independent_labels"], sep=",", header=None, names=["name1", "name2", "cell", "label"])
    with_smiles = _labels(paths["independent_smiles"], where["independent_smiles"])
    table = read_table(paths["independent_drugs"], sep=",", required=["Drug name", "Putative target", "Pathway", "smile"])
    if table["Drug name"].duplicated().any():
        raise DataError(f"{where['independent_drugs']}: duplicate drug names")
    smiles_of = table.set_index("Drug name")["smile"]
    unknown = sorted(set(rows["name1"]).union(rows["name2"]) - set(smiles_of.index))
    if unknown:
        raise DataError(f"{where['independent_labels']}: drugs not in {where['independent_drugs']}: {', '.join(unknown[:5])}")
    # The name file and the SMILES file are the same rows; refuse them if they have drifted apart.
    same = (len(rows) == len(with_smiles) and (rows["cell"].to_numpy() == with_smiles["cell"].to_numpy()).all()
            and (rows["label"].to_numpy() == with_smiles["label"].to_numpy()).all()
            and (rows["name1"].map(smiles_of).to_numpy() == with_smiles["drug1"].to_numpy()).all()
            and (rows["name2"].map(smiles_of).to_numpy() == with_smiles["drug2"].to_numpy()).all())
    if not same:
        raise DataError(f"{where['independent_labels']} and {where['independent_smiles']} do not describe the same rows")

    index = EntityIndex(d3_drugs.index, dict(zip(d3_drugs.index, d3_drugs["aliases"])))
    used = list(dict.fromkeys(list(rows["name1"]) + list(rows["name2"])))
    drug_rows, rename = [], {}
    for upstream in used:
        # AstraZeneca names list synonyms with commas ("AZD6244,Selumetinib"): try the whole name, then each part.
        parts = [p.strip() for p in upstream.split(",") if p.strip()]
        resolved = next((r for r in map(index.resolve, [upstream] + parts) if r is not None), None)
        drug = resolved or upstream
        rename[upstream] = drug
        own = parts if len(parts) > 1 else []
        aliases = list(dict.fromkeys((list(d3_drugs.at[drug, "aliases"]) + [upstream] + own) if resolved else own))
        info = table.loc[table["Drug name"] == upstream].iloc[0]
        drug_rows.append({"drug": drug, "smiles": smiles_of[upstream], "canonical_smiles": canonical_smiles(smiles_of[upstream]),
                          "aliases": aliases, "source_name": upstream, "target": info["Putative target"],
                          "pathway": info["Pathway"]})
    drugs = pd.DataFrame(drug_rows).set_index("drug")
    if not drugs.index.is_unique:
        twice = drugs.index[drugs.index.duplicated()][0]
        raise DataError(f"{where['independent_drugs']}: two drug names resolve to the same drug: {twice}")

    cells_raw = read_table(paths["independent_cells"], sep=",",
                           required=["Cell line name", "COSMIC ID", "GDSC tissue descriptor 2", "TCGA label"])
    cell_index = EntityIndex(d3_cells.index)
    tissue_map = manifest.extra.get("independent_tissue", {})
    cell_name = {c: cell_index.resolve(c) or c for c in cells_raw["Cell line name"]}
    cell_lines = pd.DataFrame({
        "tissue": [tissue_map.get(t, str(t).lower()) for t in cells_raw["GDSC tissue descriptor 2"]],
        "cosmic_id": cells_raw["COSMIC ID"].to_numpy(),
        "tcga_label": cells_raw["TCGA label"].to_numpy(),
    }, index=pd.Index([cell_name[c] for c in cells_raw["Cell line name"]], name=CELL))
    unknown_cells = sorted(set(rows["cell"]) - set(cell_name))
    if unknown_cells:
        raise DataError(f"{where['independent_labels']}: cell lines not in {where['independent_cells']}: "
                        f"{', '.join(unknown_cells[:5])}")

    first, second = rows["name1"].map(rename).to_numpy(), rows["name2"].map(rename).to_numpy()
    cells = rows["cell"].map(cell_name).to_numpy()
    combinations = pd.DataFrame({"drug_1": first, "drug_2": second, CELL: cells, N_DRUGS: 2,
                                 "synergy": rows["label"].to_numpy()}, index=_row_ids(first, second, cells))
    # No expression was staged for these lines (upstream's independent_cell_features_954.csv is missing): the matrix
    # has D3's 954 genes and no rows, so the expression featurizer reports the missing cell lines by name.
    expression = pd.DataFrame(np.empty((0, len(genes))), columns=genes, index=pd.Index([], name=CELL, dtype=object))
    return _synergy_data(name, combinations, "synergistic or not, as published (AstraZeneca-DREAM)",
                         drugs, cell_lines, expression, manifest, paths)


class D3DeepDDSIndependent(Dataset):
    name = "d3-deepdds-independent"
    description = "DeepDDS independent test set (AstraZeneca-DREAM): 668 rows, 52 drugs, 24 new cell lines, no expression"
    reference = "Wang et al. 2022, Brief Bioinform (DeepDDS); Menden et al. 2019, Nat Commun"
    manifest = MANIFEST

    def load(self, data_dir=None) -> SynergyData:
        manifest = read_manifest(self.manifest)
        drugs = _drug_table(resolve(manifest, "drugs", data_dir), manifest.file("drugs").path, manifest.extra.get("aliases", {}))
        cells = read_table(resolve(manifest, "cells", data_dir), sep=",", header=None, names=[CELL, "tissue"], index_col=0)
        genes = _expression(resolve(manifest, "expression", data_dir), manifest.file("expression").path).columns
        data = load_independent(manifest, data_dir, drugs, cells, genes, name=self.name)
        data.checksums.update({manifest.file(k).path: manifest.file(k).sha256 for k in ("drugs", "cells", "expression")})
        return data


@hookimpl
def synbench_register_datasets():
    return [D3DeepDDS, D3DeepDDSIndependent]
