"""D2: MARSY's DrugComb extract (ZIP), with its leave-pair-out and leave-triple-out fold files.

MARSY's ``data.csv`` is not public (see ``datasets/d2_marsy.toml``); without it the dataset is
unavailable with a one-line message saying where the file goes. With it, the loader reads the
published format: one row per (drug pair, cell line, drug order), rows ``2k`` and ``2k+1`` being
the same combination in both drug orders. The fold files index rows of ``data.csv`` by position;
every split must keep both copies of a combination on one side, which is verified (a violation
is a one-line :class:`~synbench.errors.DataError` naming the fold and rows), and the inner
validation split groups by drug pair for the same reason. The harness's ``random`` scheme is not
offered: it would put the two copies on both sides.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from synbench.base import Dataset
from synbench.data import CELL, N_DRUGS, PublishedSplit, SynergyData, Target
from synbench.datadir import Manifest, cache_dir, data_dir as data_root, read_manifest, resolve, sha256
from synbench.entities import EntityIndex, aliases_for, canonical_names, canonical_smiles
from synbench.errors import DataError, DataUnavailableError
from synbench.hookspecs import hookimpl
from synbench.tabular_io import read_table

MANIFEST = "d2_marsy.toml"
REQUIRED = ["Drug1_PC3", "Drug2_PC3", "Cell_line", "Synergy_Zip"]
N_LPO = 5
N_LTO = 5


# -- fold files ----------------------------------------------------------------------------------
def read_positions(path, where: str) -> np.ndarray:
    """One non-negative integer row position per line."""
    try:
        values = pd.read_csv(path, header=None, sep=r"\s+", dtype=str).iloc[:, 0]
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise DataError(f"{where}: unreadable fold file ({str(exc).strip().splitlines()[0]})") from None
    numbers = pd.to_numeric(values, errors="coerce")
    if numbers.isna().any() or (numbers < 0).any() or (numbers % 1 != 0).any():
        raise DataError(f"{where}: expected one non-negative integer row position per line")
    positions = numbers.to_numpy(dtype=np.int64)
    if len(np.unique(positions)) != len(positions):
        raise DataError(f"{where}: a row position is listed twice")
    return positions


def _check_copies(test: np.ndarray, train: np.ndarray, where: str) -> None:
    """Rows 2k and 2k+1 (one combination in both drug orders) must be on the same side, or both unused."""
    side = {}
    for role, positions in (("test", test), ("train", train)):
        for p in positions.tolist():
            side[p] = role
    for p, role in side.items():
        partner = p ^ 1  # 2k <-> 2k+1
        other = side.get(partner)
        if other != role:
            first, second = sorted((p, partner))
            raise DataError(f"{where}: rows {first} and {second} (one combination in both drug orders) are split "
                            f"({'test' if role == 'test' else 'train'} vs {other or 'unused'}); both copies must be on one side")


def lpo_folds(tests: list[np.ndarray], trains: list[np.ndarray], n_rows: int, where: list[str]) -> pd.DataFrame:
    """MARSY's leave-pair-out folds as a long split table (fold i-1 from Pair_Tr{i} / Pair_Tst{i})."""
    parts = []
    for i, (test, train) in enumerate(zip(tests, trains)):
        for positions, file in ((test, where[2 * i + 1]), (train, where[2 * i])):
            if len(positions) and positions.max() >= n_rows:
                raise DataError(f"{file} names row {int(positions.max())}, but data.csv has {n_rows} rows")
        both = np.intersect1d(test, train)
        if len(both):
            raise DataError(f"{where[2 * i + 1]} and {where[2 * i]} both list rows {', '.join(map(str, both[:5]))}")
        _check_copies(test, train, f"leave-pair-out fold {i + 1}")
        parts += [pd.DataFrame({"fold": i, "pos": test, "role": "test"}), pd.DataFrame({"fold": i, "pos": train, "role": "train"})]
    return pd.concat(parts, ignore_index=True)


def lto_folds(triples: np.ndarray, n_rows: int, where: str, n_folds: int = N_LTO) -> pd.DataFrame:
    """MARSY's leave-triple-out folds: even positions in their published order, cut into ``n_folds``
    consecutive test blocks (KFold without shuffling); each position brings its flipped copy +1."""
    if (triples % 2).any():
        raise DataError(f"{where}: holds odd row positions; MARSY's file lists only the first (even) copy of each combination")
    if 2 * len(triples) != n_rows or triples.max(initial=-1) >= n_rows:
        raise DataError(f"{where}: lists {len(triples)} combinations, but data.csv has {n_rows} rows ({n_rows // 2} combinations)")
    parts = []
    for i, block in enumerate(np.array_split(np.arange(len(triples)), n_folds)):
        test_mask = np.zeros(len(triples), dtype=bool)
        test_mask[block] = True
        for mask, role in ((test_mask, "test"), (~test_mask, "train")):
            first = triples[mask]
            parts.append(pd.DataFrame({"fold": i, "pos": np.concatenate([first, first + 1]), "role": role}))
    return pd.concat(parts, ignore_index=True)


# -- data.csv -----------------------------------------------------------------------------------
def read_data(path, where: str) -> pd.DataFrame:
    frame = read_table(path, sep=",", keep_default_na=False, na_values=[""], dtype={c: str for c in
                       ("Drug1_PC3", "Drug1_MCF7", "Drug2_PC3", "Drug2_MCF7", "Cell_line", "Tissue")})
    first = str(frame.columns[0])
    if first == "" or first.startswith("Unnamed"):
        frame = frame.iloc[:, 1:]  # a written pandas index; rows are addressed by position anyway
    missing = [c for c in REQUIRED if c not in frame.columns]
    if missing:
        raise DataError(f"{where}: missing column(s) {', '.join(repr(c) for c in missing)} (MARSY's data.csv format)")
    for col in ("Drug1_PC3", "Drug2_PC3", "Cell_line"):
        if frame[col].isna().any():
            raise DataError(f"{where}: {int(frame[col].isna().sum())} rows have no '{col}'")
        frame[col] = frame[col].str.strip()
    for col in ("Synergy_Zip", "Synergy_Smean", "Ri1", "Ri2"):
        if col in frame.columns:
            values = pd.to_numeric(frame[col], errors="coerce")
            if values.isna().any():
                raise DataError(f"{where}: column '{col}' has {int(values.isna().sum())} missing or non-numeric values")
            frame[col] = values.astype(float)
    return frame.reset_index(drop=True)


def check_flipped_pairs(frame: pd.DataFrame, where: str) -> None:
    """Rows 2k and 2k+1 must be one combination in both drug orders (responses swapped, same scores)."""
    if len(frame) % 2:
        raise DataError(f"{where}: {len(frame)} rows; MARSY's format has every combination twice (both drug orders)")
    even, odd = frame.iloc[0::2].reset_index(drop=True), frame.iloc[1::2].reset_index(drop=True)
    ok = (even["Drug1_PC3"] == odd["Drug2_PC3"]) & (even["Drug2_PC3"] == odd["Drug1_PC3"]) & (even["Cell_line"] == odd["Cell_line"])
    for col in ("Synergy_Zip", "Synergy_Smean"):
        if col in frame.columns:
            ok &= np.isclose(even[col], odd[col], rtol=1e-6, atol=1e-6)
    if {"Ri1", "Ri2"} <= set(frame.columns):
        ok &= np.isclose(even["Ri1"], odd["Ri2"], rtol=1e-6, atol=1e-6) & np.isclose(even["Ri2"], odd["Ri1"], rtol=1e-6, atol=1e-6)
    if not ok.all():
        k = int(np.flatnonzero(~ok.to_numpy())[0])
        raise DataError(f"{where}: rows {2 * k} and {2 * k + 1} are not the same combination in both drug orders "
                        f"({even.at[k, 'Drug1_PC3']} + {even.at[k, 'Drug2_PC3']} on {even.at[k, 'Cell_line']} vs "
                        f"{odd.at[k, 'Drug1_PC3']} + {odd.at[k, 'Drug2_PC3']} on {odd.at[k, 'Cell_line']}); "
                        f"the fold files pair row 2k with 2k+1")


def _expression(path, where: str, cell_name: dict) -> pd.DataFrame | None:
    """Genes x cell lines (columns named like data.csv's Cell_line) -> cell line x gene."""
    raw = read_table(path, sep=",")
    index = EntityIndex(list(cell_name))
    keep = {col: cell_name[index.resolve(str(col))] for col in raw.columns if index.resolve(str(col))}
    if not keep:
        raise DataError(f"{where}: no column is a cell line of data.csv")
    values = raw[list(keep)].apply(pd.to_numeric, errors="coerce")
    if values.isna().to_numpy().any():
        raise DataError(f"{where}: non-numeric or missing expression values")
    genes = raw.iloc[:, 0].astype(str) if not pd.api.types.is_numeric_dtype(raw.iloc[:, 0]) else pd.Series(raw.index.astype(str))
    matrix = values.T
    matrix.columns = pd.Index(genes.to_numpy(), name="gene")
    matrix.index = pd.Index([keep[c] for c in values.columns], name=CELL)
    return matrix.loc[~matrix.index.duplicated()]


def build(name: str, manifest: Manifest, paths: dict, checksums: dict) -> SynergyData:
    """Assemble D2 from resolved paths (``data``, ``lpo_train_i``/``lpo_test_i``, ``lto`` required)."""
    where = {key: manifest.file(key).path for key in paths}
    frame = read_data(paths["data"], where["data"])
    check_flipped_pairs(frame, where["data"])
    n = len(frame)

    mcf7 = {c: frame[c] if c in frame.columns else frame[c.replace("MCF7", "PC3")] for c in ("Drug1_MCF7", "Drug2_MCF7")}
    raw_drugs = list(dict.fromkeys(pd.concat([frame["Drug1_PC3"], frame["Drug2_PC3"]])))
    raw_cells = list(dict.fromkeys(frame["Cell_line"]))
    drug_name = canonical_names(raw_drugs, "drugs")
    cell_name = canonical_names(raw_cells, "cell_lines")

    d_1 = np.array([drug_name[d] for d in frame["Drug1_PC3"].tolist()], dtype=object)
    d_2 = np.array([drug_name[d] for d in frame["Drug2_PC3"].tolist()], dtype=object)
    cells = np.array([cell_name[c] for c in frame["Cell_line"].tolist()], dtype=object)
    row_ids = pd.Index([f"marsy-{i:05d}" for i in range(n)], name="row_id")
    combinations = pd.DataFrame({"drug_1": d_1, "drug_2": d_2, CELL: cells, N_DRUGS: 2}, index=row_ids)
    targets = {}
    for spec in manifest.extra.get("targets", []):
        if spec["column"] in frame.columns:  # the auxiliary columns are exposed only when data.csv has them
            combinations[spec["column"]] = frame[spec["column"]].to_numpy()
            targets[spec["name"]] = Target(spec["name"], "regression", spec["column"], spec.get("description", ""))

    tests = [read_positions(paths[f"lpo_test_{i}"], where[f"lpo_test_{i}"]) for i in range(1, N_LPO + 1)]
    trains = [read_positions(paths[f"lpo_train_{i}"], where[f"lpo_train_{i}"]) for i in range(1, N_LPO + 1)]
    files = [where[f"lpo_{role}_{i}"] for i in range(1, N_LPO + 1) for role in ("train", "test")]
    lpo = lpo_folds(tests, trains, n, files)
    tested = np.concatenate(tests)
    if len(tested) != n or len(np.unique(tested)) != n:
        raise DataError(f"the {N_LPO} leave-pair-out test files ({where['lpo_test_1']} ...) must list every row of data.csv "
                        f"exactly once; they list {len(np.unique(tested))} of {n} rows")
    fold = np.empty(n, dtype=int)
    for i, test in enumerate(tests):
        fold[test] = i
    combinations["lpo_fold"] = fold
    lto = lto_folds(read_positions(paths["lto"], where["lto"]), n, where["lto"])

    def as_split(table: pd.DataFrame, description: str) -> PublishedSplit:
        return PublishedSplit(table.assign(row_id=row_ids[table["pos"].to_numpy()])[["fold", "row_id", "role"]],
                              group_by="combination", description=description)

    published = {
        "marsy-lpo": as_split(lpo, f"MARSY leave-pair-out: {N_LPO} folds from lpo_folds/Pair_Tr*/Pair_Tst* (= 'published')"),
        "marsy-lto": as_split(lto, f"MARSY leave-triple-out: lto_folds/Tpl_Folds_Sig.txt in {N_LTO} consecutive test blocks, "
                                   "each row with its flipped copy"),
    }

    drugs = _drugs(frame, raw_drugs, drug_name, mcf7, paths, where)
    tissue = frame.groupby("Cell_line")["Tissue"].agg(lambda s: s.mode().iat[0] if s.notna().any() else "unknown") \
        if "Tissue" in frame.columns else pd.Series(dtype=str)
    cell_lines = pd.DataFrame({
        "tissue": [str(tissue.get(raw, "unknown")).lower() for raw in raw_cells],
        "aliases": [aliases_for(cell_name[raw], "cell_lines", raw) for raw in raw_cells],
        "source_name": raw_cells,
    }, index=pd.Index([cell_name[raw] for raw in raw_cells], name=CELL))

    omics = {}
    if paths.get("cell_expression"):
        omics["expression"] = _expression(paths["cell_expression"], where["cell_expression"], {raw: cell_name[raw] for raw in raw_cells})
    return SynergyData(name=name, combinations=combinations, targets=targets, drugs=drugs, cell_lines=cell_lines,
                       omics=omics, checksums=checksums, fold_column="lpo_fold", published_splits=published)


def _drugs(frame, raw_drugs, drug_name, mcf7, paths, where) -> pd.DataFrame:
    """Drug table; SMILES from the optional DrugComb SMILES files by name (first source wins)."""
    smiles, names = {}, []
    for key in ("smiles_oneil", "smiles_cloud", "smiles_forcina", "smiles_almanac"):
        if paths.get(key):
            table = read_table(paths[key], sep="\t", header=None, names=["drug", "smiles"], dtype=str, keep_default_na=False)
            for drug, smi in zip(table["drug"].str.strip(), table["smiles"].str.strip()):
                smiles.setdefault(drug, smi)
                names.append(drug)
    index = EntityIndex(names)
    other_spelling = {}
    for col in ("Drug1", "Drug2"):
        for pc3, m in zip(frame[f"{col}_PC3"].tolist(), mcf7[f"{col}_MCF7"].tolist()):
            if isinstance(m, str) and m != pc3:
                other_spelling.setdefault(pc3, m)
    rows = []
    for raw in raw_drugs:
        name = drug_name[raw]
        source = next((index.resolve(s) for s in (raw, name, other_spelling.get(raw)) if s and index.resolve(s)), None)
        smi = smiles.get(source) if source else None
        canonical = canonical_smiles(smi) if smi else None
        rows.append({"drug": name, "smiles": smi, "canonical_smiles": canonical, "smiles_parsed": canonical is not None,
                     "aliases": aliases_for(name, "drugs", raw, other_spelling.get(raw)), "source_name": raw})
    return pd.DataFrame(rows).set_index("drug")


# -- locating files ------------------------------------------------------------------------------
def _locate(manifest: Manifest, key: str, explicit_dir, required: bool) -> tuple[str | None, str | None]:
    """(path, sha256) of a manifest file. A file without a published checksum (MARSY never
    distributed them) is accepted as found and its checksum recorded; a missing required one is a
    one-line error naming where it goes."""
    entry = manifest.file(key)
    if entry.sha256:
        try:
            return str(resolve(manifest, key, explicit_dir)), entry.sha256
        except DataUnavailableError:
            if required:
                raise
            return None, None
    root = data_root(explicit_dir)
    candidates = ([root / entry.path] if root is not None else []) + [cache_dir() / "data" / entry.path]
    for candidate in candidates:
        if candidate.is_file():
            return str(candidate), sha256(candidate)
    if not required:
        return None, None
    place = f"{candidates[0]}" if root is not None else f"<data dir>/{entry.path} (pass --data-dir or set SYNBENCH_DATA_DIR)"
    raise DataUnavailableError(
        f"d2-marsy needs {entry.path}, which MARSY does not distribute (no download; format in datasets/{MANIFEST}): "
        f"put your copy at {place}; looked in {', '.join(map(str, candidates))}")


class D2Marsy(Dataset):
    name = "d2-marsy"
    description = ("MARSY's DrugComb extract (D2): ZIP + single-drug responses, leave-pair-out and leave-triple-out "
                   "folds; data.csv not public")
    reference = "El Khili, Memon & Emad 2023, Bioinformatics (MARSY); DrugComb (Zagidullin et al. 2019)"
    manifest = MANIFEST
    # 'published' = MARSY's leave-pair-out test files; no 'random': it would split the two drug orders
    split_schemes = ("published", "leave-combination-out", "leave-drug-out", "leave-cell-out")

    def load(self, data_dir=None) -> SynergyData:
        manifest = read_manifest(self.manifest)
        optional = set(manifest.extra.get("optional", {}).get("files", []))
        paths, checksums = {}, {}
        # data.csv first: it is the file most likely to be missing, and its message says what to do
        for key in ["data"] + [k for k in manifest.files if k != "data"]:
            path, digest = _locate(manifest, key, data_dir, required=key not in optional)
            if path is not None:
                paths[key] = path
                checksums[manifest.file(key).path] = digest
        return build(self.name, manifest, paths, checksums)


@hookimpl
def synbench_register_datasets():
    return [D2Marsy]
