"""DrugComb-derived screens as released by MGAE-DC: O'Neil (ZIP/Bliss/HSA + Loewe), CLOUD, FORCINA.

``oneil-drugcomb`` is the O'Neil screen re-scored by DrugComb (ZIP/Bliss/HSA), on D1's combinations,
names, folds and expression; it is not MARSY's D2 (``d2-marsy``). ``drugcomb-cloud`` (KBM-7) and
``drugcomb-forcina`` (T98G) have one cell line each and no expression: they are for pre-training
and zero-shot transfer. What every file holds and why the MGAE-DC 'fold' column is exposed only as
per-target schemes is in the manifests ``datasets/drugcomb_*.toml``.

Each score file has the header ``drugname1 drugname2 cell_line synergy fold``; the files of one
screen must list the same combinations. Source names are mapped to the shared canonical names of
``datasets/aliases.toml`` (:func:`synbench.entities.canonical_names`); SMILES RDKit cannot read
are kept as written and flagged (``smiles_parsed``), never dropped.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from synbench.base import Dataset
from synbench.data import CELL, N_DRUGS, PublishedSplit, SynergyData, Target
from synbench.datadir import Manifest, read_manifest, resolve
from synbench.entities import EntityIndex, aliases_for, canonical_names, canonical_smiles
from synbench.errors import DataError
from synbench.hookspecs import hookimpl
from synbench.tabular_io import read_table

SCORE_COLUMNS = ["drugname1", "drugname2", "cell_line", "synergy", "fold"]
KEY = ["drugname1", "drugname2", "cell_line"]
TASKS = ("regression", "classification")


def read_scores(path, where: str) -> pd.DataFrame:
    """One MGAE-DC score file, with an occurrence number for repeated (drug1, drug2, cell) triples."""
    frame = read_table(path, sep="\t", required=SCORE_COLUMNS, dtype={c: str for c in KEY}, keep_default_na=False)
    frame = frame[SCORE_COLUMNS].copy()
    for col in KEY:
        frame[col] = frame[col].str.strip()
        if (frame[col] == "").any():
            raise DataError(f"{where}: empty '{col}' in {int((frame[col] == '').sum())} rows")
    for col in ("synergy", "fold"):
        values = pd.to_numeric(frame[col].replace("", np.nan), errors="coerce")
        bad = values.isna() | ~np.isfinite(values.to_numpy(dtype=float))
        if bad.any():
            raise DataError(f"{where}: non-numeric '{col}' in {int(bad.sum())} rows (first at data line {int(np.flatnonzero(bad)[0]) + 2})")
        frame[col] = values
    frame["fold"] = frame["fold"].astype(int)
    frame["occurrence"] = frame.groupby(KEY, sort=False).cumcount()
    return frame


def read_smiles(path, where: str) -> pd.Series:
    """``name<TAB>SMILES`` without header -> Series name -> SMILES as written."""
    raw = read_table(path, sep="\t", header=None, names=["drug", "smiles"], dtype=str, keep_default_na=False)
    raw["drug"] = raw["drug"].str.strip()
    dup = raw["drug"][raw["drug"].duplicated()]
    if len(dup):
        raise DataError(f"{where}: drug listed twice: {', '.join(dup.unique()[:5])}")
    return pd.Series(raw["smiles"].str.strip().to_numpy(), index=raw["drug"].to_numpy())


def _row_ids(first, second, cells) -> pd.Index:
    """'A_B_CELL' as D1 spells its rows; a repeated ordered triple gets '#2', '#3' in file order."""
    key = pd.Series([f"{a}_{b}_{c}" for a, b, c in zip(list(first), list(second), list(cells))])
    replicate = key.groupby(key).cumcount().to_numpy()
    return pd.Index([k if r == 0 else f"{k}#{r + 1}" for k, r in zip(key, replicate)], name="row_id")


def fold_table(row_ids: pd.Index, fold: np.ndarray) -> pd.DataFrame:
    """Long split table (fold, row_id, role) from one fold label per row: fold k tests its rows and
    trains on all others. Plain object ids and a categorical role keep checks on ~10^6 rows fast."""
    ids = np.asarray(row_ids, dtype=object)
    folds, roles, rows = [], [], []
    for i, value in enumerate(sorted(np.unique(fold))):
        test = fold == value
        for mask, role in ((test, "test"), (~test, "train")):
            folds.append(np.full(int(mask.sum()), i))
            roles.append(np.full(int(mask.sum()), role, dtype=object))
            rows.append(ids[mask])
    table = pd.DataFrame({"fold": np.concatenate(folds), "role": pd.Categorical(np.concatenate(roles), categories=["train", "test"])})
    table.insert(1, "row_id", pd.Series(np.concatenate(rows), dtype=object))
    return table


def _targets(manifest: Manifest) -> list[dict]:
    specs = manifest.extra.get("targets", [])
    if not specs:
        raise DataError(f"manifest '{manifest.name}' declares no [[targets]]")
    for spec in specs:
        if spec.get("task") not in TASKS or not spec.get("name") or not (spec.get("file") or spec.get("column")):
            raise DataError(f"manifest '{manifest.name}': target {spec.get('name')!r} needs name, task "
                            f"({' or '.join(TASKS)}) and a file or column")
    return specs


def _drug_table(raw_names: list[str], rename: dict, smiles: pd.Series) -> pd.DataFrame:
    # the SMILES file may spell a name differently from the score files; resolve it like any source
    smiles_index = EntityIndex(list(smiles.index))
    rows = []
    for raw in raw_names:
        name = rename[raw]
        source = smiles_index.resolve(raw)
        smi = smiles[source] if source is not None else None
        canonical = canonical_smiles(smi) if smi else None
        rows.append({"drug": name, "smiles": smi, "canonical_smiles": canonical,
                     "smiles_parsed": canonical is not None, "aliases": aliases_for(name, "drugs", raw),
                     "source_name": raw})
    return pd.DataFrame(rows).set_index("drug")


def build_screen(name: str, manifest: Manifest, paths: dict) -> SynergyData:
    """Assemble a screen from its manifest's targets and the resolved file ``paths`` (key -> path).

    Optional keys: ``cells`` (name, tissue, status; else the manifest's [cell_lines] tissues),
    ``d1_labels`` (D1's names and leave-combination-out folds: names must resolve to D1 and every
    combination gets D1's fold), ``expression`` (cell line x gene matrix).
    """
    specs = _targets(manifest)
    where = {key: manifest.file(key).path for key in paths}
    scores = {s["name"]: read_scores(paths[s["file"]], where[s["file"]]) for s in specs if s.get("file")}
    if not scores:
        raise DataError(f"manifest '{manifest.name}': no target reads a score file")
    file_of = {s["name"]: s["file"] for s in specs if s.get("file")}
    first = where[next(iter(file_of.values()))]
    base_keys = next(iter(scores.values()))[KEY + ["occurrence"]]
    table = base_keys.copy()
    for target, frame in scores.items():
        merged = base_keys.merge(frame[KEY + ["occurrence", "synergy"]], on=KEY + ["occurrence"], how="left", validate="one_to_one")
        extra = len(frame) - int(merged["synergy"].notna().sum())
        if merged["synergy"].isna().any() or extra:
            raise DataError(f"{where[file_of[target]]} lists other combinations than {first} "
                            f"({int(merged['synergy'].isna().sum())} missing, {extra} extra); the files of one screen must match")
        table[target] = merged["synergy"].to_numpy()

    reference = {"drugs": [], "cell_lines": []}
    d1 = None
    if "d1_labels" in paths:
        d1 = read_table(paths["d1_labels"], sep=",", index_col=0, required=["drug_a_name", "drug_b_name", "cell_line", "fold"])
        reference = {"drugs": sorted(set(d1["drug_a_name"]) | set(d1["drug_b_name"])), "cell_lines": sorted(set(d1["cell_line"]))}

    raw_drugs = list(dict.fromkeys(pd.concat([table["drugname1"], table["drugname2"]])))
    raw_cells = list(dict.fromkeys(table["cell_line"]))
    drug_name = canonical_names(raw_drugs, "drugs", reference["drugs"])
    cell_name = canonical_names(raw_cells, "cell_lines", reference["cell_lines"])
    if d1 is not None:  # D1's folds and expression are looked up by name: every name must resolve
        for kind, mapping, known in (("drugs", drug_name, reference["drugs"]), ("cell lines", cell_name, reference["cell_lines"])):
            lost = [raw for raw, canon in mapping.items() if canon not in set(known)]
            if lost:
                raise DataError(f"{first}: {len(lost)} {kind} do not resolve to a D1 name: "
                                f"{', '.join(lost[:5])}; add them to datasets/aliases.toml")

    d_1 = np.array([drug_name[d] for d in table["drugname1"].tolist()], dtype=object)
    d_2 = np.array([drug_name[d] for d in table["drugname2"].tolist()], dtype=object)
    cells = np.array([cell_name[c] for c in table["cell_line"].tolist()], dtype=object)
    combinations = pd.DataFrame({"drug_1": d_1, "drug_2": d_2, CELL: cells, N_DRUGS: 2}, index=_row_ids(d_1, d_2, cells))
    for target in scores:
        combinations[target] = table[target].to_numpy()

    fold_column = None
    if d1 is not None:
        pair_cell = [("|".join(sorted((a, b))), c)
                     for a, b, c in zip(d1["drug_a_name"].tolist(), d1["drug_b_name"].tolist(), d1["cell_line"].tolist())]
        folds = pd.Series(d1["fold"].to_numpy(), index=pd.MultiIndex.from_tuples(pair_cell))
        per_key = folds.groupby(level=[0, 1]).nunique()
        if (per_key > 1).any():
            raise DataError(f"{where['d1_labels']}: a (drug pair, cell line) has two folds; D1's folds must be by combination")
        folds = folds.groupby(level=[0, 1]).first()
        mine = pd.MultiIndex.from_tuples([("|".join(sorted((a, b))), c) for a, b, c in zip(d_1, d_2, cells)])
        fold = folds.reindex(mine)
        if fold.isna().any():
            raise DataError(f"{int(fold.isna().sum())} combinations are not in D1 ({where['d1_labels']}), so they have no D1 fold")
        combinations["fold"] = fold.to_numpy().astype(int)
        fold_column = "fold"

    smiles = read_smiles(paths["smiles"], where["smiles"])
    drugs = _drug_table(raw_drugs, drug_name, smiles)

    if "cells" in paths:
        info = read_table(paths["cells"], sep="\t", header=None, names=["cell_line", "tissue", "status"], dtype=str)
        tissue_of = EntityIndex(info["cell_line"])
        tissues = dict(zip(info["cell_line"], info["tissue"].str.lower()))
        tissue = {raw: tissues.get(tissue_of.resolve(raw) or "", "unknown") for raw in raw_cells}
    else:
        listed = manifest.extra.get("cell_lines", {})
        index = EntityIndex(listed)
        tissue = {raw: listed.get(index.resolve(raw) or "", "unknown") for raw in raw_cells}
    cell_lines = pd.DataFrame({
        "tissue": [tissue[raw] for raw in raw_cells],
        "aliases": [aliases_for(cell_name[raw], "cell_lines", raw) for raw in raw_cells],
        "source_name": raw_cells,
    }, index=pd.Index([cell_name[raw] for raw in raw_cells], name=CELL))

    omics = {}
    if "expression" in paths:
        expression = read_table(paths["expression"], sep=",", index_col=0)
        if not expression.index.is_unique:
            raise DataError(f"{where['expression']}: duplicate cell lines")
        # keep the dataset's own cell lines; one without a row stays in the table and shows up in coverage
        expression = expression.loc[[c for c in cell_lines.index if c in expression.index]]
        if len(expression):
            omics["expression"] = expression

    published = {}
    if manifest.extra.get("mgaedc_splits"):
        for spec in specs:
            if not spec.get("file"):
                continue
            published[f"mgaedc-{spec['name']}"] = PublishedSplit(
                fold_table(combinations.index, scores[spec["name"]]["fold"].to_numpy()), group_by="row",
                description=f"MGAE-DC's random row-level {len(np.unique(fold))}-fold assignment shipped in "
                            f"{where[spec['file']]}; drawn per score file, so use it with target '{spec['name']}'")

    targets = {}
    for spec in specs:
        column = spec.get("column") or spec["name"]
        targets[spec["name"]] = Target(spec["name"], spec["task"], column, spec.get("description", ""),
                                       threshold=spec.get("threshold"))
    return SynergyData(
        name=name, combinations=combinations, targets=targets, drugs=drugs, cell_lines=cell_lines, omics=omics,
        checksums={manifest.file(k).path: manifest.file(k).sha256 for k in paths},
        fold_column=fold_column, published_splits=published,
    )


class _DrugCombScreen(Dataset):
    def load(self, data_dir=None) -> SynergyData:
        manifest = read_manifest(self.manifest)
        paths = {key: resolve(manifest, key, data_dir) for key in manifest.files}
        return build_screen(self.name, manifest, paths)


class ONeilDrugComb(_DrugCombScreen):
    name = "oneil-drugcomb"
    description = ("DrugComb ZIP/Bliss/HSA scores for the O'Neil screen (not MARSY's D2): 22,737 rows, "
                   "38 drugs, 39 cell lines, D1's folds and expression")
    reference = "O'Neil et al. 2016; DrugComb (Zagidullin et al. 2019); MGAE-DC release (Zhang & Tu 2023)"
    manifest = "drugcomb_oneil.toml"
    split_schemes = ("published", "random", "leave-combination-out", "leave-drug-out", "leave-cell-out", "leave-tissue-out")


class CloudDrugComb(_DrugCombScreen):
    name = "drugcomb-cloud"
    description = ("CLOUD screen via DrugComb (ZIP/Bliss/HSA/Loewe): 29,278 rows, 242 drugs, one cell line "
                   "(KBM-7), no expression; for pre-training / zero-shot")
    reference = "Licciardello et al. 2017 (CLOUD); DrugComb (Zagidullin et al. 2019); MGAE-DC release"
    manifest = "drugcomb_cloud.toml"
    split_schemes = ("leave-combination-out", "leave-drug-out", "random")


class ForcinaDrugComb(_DrugCombScreen):
    name = "drugcomb-forcina"
    description = ("FORCINA screen via DrugComb (ZIP/Bliss/HSA/Loewe): 757 rows, each drug with temozolomide, "
                   "one cell line (T98G), no expression; for pre-training / zero-shot")
    reference = "DrugComb (Zagidullin et al. 2019), study FORCINA; MGAE-DC release"
    manifest = "drugcomb_forcina.toml"
    # one cell line and one fixed partner drug: leave-cell-out and leave-drug-out cannot be made
    split_schemes = ("random", "leave-combination-out")


@hookimpl
def synbench_register_datasets():
    return [ONeilDrugComb, CloudDrugComb, ForcinaDrugComb]
