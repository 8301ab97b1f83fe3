"""Entity resolution shared by every dataset and featurizer.

Names of the same drug or cell line differ between sources (MK2206 / MK-2206, NCI-H460 / NCIH460,
ZOLINZA / vorinostat, "COLO 829" / COLO829). :func:`normalise_name` folds case, accents, Greek
letters and punctuation; :class:`EntityIndex` maps any known name or alias (and, given SMILES,
any structure) to one canonical name. The synonyms every dataset shares live in
``datasets/aliases.toml`` (:func:`shared_aliases`); a loader maps its source spellings onto those
canonical names with :func:`canonical_names`, so the same drug or cell line carries the same name
in every dataset.

:func:`coverage` reports, per dataset, which drugs have SMILES RDKit can read, which cell lines
have expression, which entities have a project description (``datasets/descriptions/*.jsonl``),
and which entities no input covers at all. Nothing is dropped silently: a loader keeps every
entity and this report names the gaps.
"""

from __future__ import annotations

import json
import re
import tomllib
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path

from .errors import DataError

_PUNCT = re.compile(r"[\W_]+")
_GREEK = {"α": "ALPHA", "β": "BETA", "γ": "GAMMA", "δ": "DELTA", "κ": "KAPPA", "μ": "MU", "ω": "OMEGA"}
# Counter-ions and hydrates that name a salt form of the same active drug ('IMATINIB MESYLATE').
# Esters such as acetate are not here: they are different molecules.
_SALT_WORDS = (
    "HYDROCHLORIDE", "DIHYDROCHLORIDE", "HCL", "HYDROBROMIDE", "MESYLATE", "DIMESYLATE", "MESILATE",
    "TOSYLATE", "BESYLATE", "MALEATE", "FUMARATE", "TARTRATE", "CITRATE", "SULFATE", "SULPHATE",
    "PHOSPHATE", "SODIUM", "DISODIUM", "POTASSIUM", "CALCIUM", "HYDRATE", "MONOHYDRATE", "DIHYDRATE",
    "TRIHYDRATE", "SESQUIHYDRATE",
)
# Metals that make one compound with their ligands (platinum drugs, arsenicals); a salt's alkali or
# alkaline-earth counter-ion is not among them and is stripped like any other counter-ion.
_COMPLEX_METALS = frozenset(
    list(range(21, 31)) + list(range(39, 49)) + list(range(57, 81)) + list(range(89, 113))
    + [13, 31, 33, 49, 50, 51, 81, 82, 83]
)
KINDS = ("drugs", "cell_lines")


def normalise_name(name: str) -> str:
    """'NCI-H460' -> 'NCIH460', 'mk 2206' -> 'MK2206', 'β-lapachone' -> 'BETALAPACHONE'; the join key."""
    text = "".join(_GREEK.get(ch, ch) for ch in str(name).lower())
    text = "".join(ch for ch in unicodedata.normalize("NFKD", text) if not unicodedata.combining(ch))
    return _PUNCT.sub("", text).upper()


def _without_salt(key: str) -> str | None:
    """'IMATINIBMESYLATE' -> 'IMATINIB'; None when the key names no salt form."""
    stripped, changed = key, True
    while changed:
        changed = False
        for word in _SALT_WORDS:
            if stripped.endswith(word) and len(stripped) > len(word) + 2:
                stripped, changed = stripped[: -len(word)], True
    return stripped if stripped != key else None


# -- structures -----------------------------------------------------------------------------------
def _mol(smiles):
    from rdkit import Chem, RDLogger

    RDLogger.DisableLog("rdApp.*")
    if not isinstance(smiles, str) or not smiles.strip():
        return None
    return Chem.MolFromSmiles(smiles.strip())


def _parent(mol):
    """The active component: counter-ions and solvents removed, charges neutralised. A compound with
    a complexing metal (carboplatin ``N.N.O=C(O)C1(C(=O)O)CCC1.[Pt]``) is kept whole, because its
    'fragments' are the ligands of one molecule, not a salt."""
    from rdkit import Chem
    from rdkit.Chem.MolStandardize import rdMolStandardize

    if len(Chem.GetMolFrags(mol)) > 1 and not any(a.GetAtomicNum() in _COMPLEX_METALS for a in mol.GetAtoms()):
        mol = rdMolStandardize.LargestFragmentChooser(preferOrganic=True).choose(mol)
    try:
        mol = rdMolStandardize.Uncharger().uncharge(mol)
    except Exception:  # RDKit refuses some exotic charge states; the fragment choice still stands
        pass
    return mol


def smiles_parses(smiles) -> bool:
    """True when RDKit reads and sanitises the SMILES (what every structure featurizer needs)."""
    return _mol(smiles) is not None


def canonical_smiles(smiles: str, parent: bool = False) -> str | None:
    """RDKit canonical SMILES, or None when RDKit cannot parse it.

    ``parent=True`` canonicalises the active component instead (see :func:`_parent`): the salt
    'Cl.CN(C)CCC=C1c2ccccc2CCc2ccccc21' and the free base give the same string, metal complexes
    stay whole.
    """
    from rdkit import Chem

    mol = _mol(smiles)
    if mol is None:
        return None
    return Chem.MolToSmiles(_parent(mol) if parent else mol)


def structure_key(smiles: str) -> str | None:
    """The parent's InChIKey without its protonation flag (connectivity + stereo blocks): one key for
    a compound whatever salt, charge state or SMILES dialect a source writes; None if unreadable.
    Stereochemistry is kept on purpose: epimers such as dexamethasone / betamethasone and
    doxorubicin / epirubicin share the connectivity block and are different drugs. A source that omits
    stereochemistry (MGAE-DC's SMILES files do) still makes them identical, so structure matching is
    only a fallback of :meth:`EntityIndex.resolve`; loaders canonicalise names by name alone."""
    from rdkit import Chem

    mol = _mol(smiles)
    if mol is None:
        return None
    try:
        key = Chem.MolToInchiKey(_parent(mol))
    except Exception:
        return None
    return "-".join(key.split("-")[:2]) if key else None


# -- the index ------------------------------------------------------------------------------------
class EntityIndex:
    """Canonical names plus their aliases; ``resolve`` is case- and punctuation-insensitive.

    Lookup order: a canonical name or alias (the first definition of a spelling wins; later
    clashing ones are listed in ``conflicts``), then the same without a salt word
    ('IMATINIB MESYLATE' -> 'IMATINIB'), then, when ``smiles`` were given for the canonical names
    and the query carries a SMILES, the compound's structure (:func:`structure_key`).
    """

    def __init__(self, names: Iterable[str], aliases: Mapping[str, Iterable[str]] | None = None,
                 smiles: Mapping[str, str] | None = None):
        self._key: dict[str, str] = {}
        self._loose: dict[str, str] = {}
        self.conflicts: dict[str, set[str]] = {}
        self.names = list(dict.fromkeys(names))
        pairs = [(name, name) for name in self.names]
        pairs += [(other, name) for name, others in (aliases or {}).items() for other in others]
        for spelling, name in pairs:
            key = normalise_name(spelling)
            if not key:
                continue
            owner = self._key.setdefault(key, name)
            if owner != name:
                self.conflicts.setdefault(key, {owner}).add(name)
            loose = _without_salt(key)
            if loose:
                self._loose.setdefault(loose, name)
        self._structure: dict[str, str] = {}
        for name, smi in (smiles or {}).items():
            key = structure_key(smi)
            if key:
                self._structure.setdefault(key, name)

    def resolve(self, name: str, smiles: str | None = None) -> str | None:
        key = normalise_name(name)
        if key in self._key:
            return self._key[key]
        loose = _without_salt(key) or key
        found = self._key.get(loose) or self._loose.get(loose)
        if found is None and smiles is not None and self._structure:
            found = self._structure.get(structure_key(smiles) or "")
        return found

    def resolve_smiles(self, smiles: str) -> str | None:
        """The canonical name whose structure matches, or None (needs ``smiles`` at construction)."""
        return self._structure.get(structure_key(smiles) or "")

    def __contains__(self, name: str) -> bool:
        return self.resolve(name) is not None

    def __len__(self) -> int:
        return len(self.names)


# -- the shared alias file ------------------------------------------------------------------------
@lru_cache(maxsize=4)
def _alias_file(path: str | None) -> dict[str, dict[str, tuple[str, ...]]]:
    if path is None:
        text = resources.files("synbench.manifests").joinpath("aliases.toml").read_text(encoding="utf-8")
        where = "datasets/aliases.toml"
    else:
        text, where = Path(path).read_text(encoding="utf-8"), path
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise DataError(f"{where} is not valid TOML: {exc}") from None
    tables = {}
    for kind in KINDS:
        table = raw.get(kind, {})
        for name, others in table.items():
            if not isinstance(others, list) or not all(isinstance(o, str) and o.strip() for o in others):
                raise DataError(f"{where}: [{kind}] '{name}' must be a list of non-empty strings")
        tables[kind] = {name: tuple(others) for name, others in table.items()}
    return tables


def shared_aliases(kind: str, path: str | None = None) -> dict[str, list[str]]:
    """Canonical name -> synonyms of one kind (``drugs`` or ``cell_lines``) from ``datasets/aliases.toml``."""
    if kind not in KINDS:
        raise DataError(f"unknown entity kind '{kind}' (choose from {', '.join(KINDS)})")
    return {name: list(others) for name, others in _alias_file(path)[kind].items()}


def shared_index(kind: str, extra: Iterable[str] = (), smiles: Mapping[str, str] | None = None) -> EntityIndex:
    """An index over the shared canonical names (plus ``extra`` names) and their synonyms."""
    aliases = shared_aliases(kind)
    return EntityIndex([*aliases, *extra], aliases, smiles=smiles)


def canonical_names(source_names: Iterable[str], kind: str, reference: Iterable[str] = ()) -> dict[str, str]:
    """Map each source spelling to its shared canonical name (an ``aliases.toml`` key or a
    ``reference`` name), or to itself when none matches.

    Two different spellings of one source never merge into one entity: if both resolve to the
    same canonical name, the one spelled exactly like it (else the first) takes it and the other
    keeps its own name, so a loader never silently pools two rows' entities.
    """
    index = shared_index(kind, extra=reference)
    names = list(dict.fromkeys(source_names))
    wanted = {name: index.resolve(name) or name for name in names}
    owner: dict[str, str] = {}
    for name in sorted(names, key=lambda n: (wanted[n] != n, names.index(n))):
        owner.setdefault(wanted[name], name)
    return {name: wanted[name] if owner[wanted[name]] == name else name for name in names}


def aliases_for(canonical: str, kind: str, *spellings: str) -> list[str]:
    """Synonyms of a canonical name: the shared ones, then source spellings that differ from it."""
    found = list(shared_aliases(kind).get(canonical, []))
    for spelling in spellings:
        if isinstance(spelling, str) and spelling != canonical and spelling not in found:
            found.append(spelling)
    return found


# -- coverage -------------------------------------------------------------------------------------
def descriptions_dir() -> Path:
    return Path(str(resources.files("synbench.manifests").joinpath("descriptions")))


def description_index(kind: str, directory: str | Path | None = None) -> tuple[EntityIndex, int]:
    """Names and aliases of the project descriptions of one kind, and how many lines were unreadable.

    A report, not a featurizer: a line that is not yet complete JSON (files are edited while
    benchmarks run) is counted and skipped here; the description featurizers reject it.
    """
    directory = Path(directory) if directory is not None else descriptions_dir()
    names, aliases, bad = [], {}, 0
    for path in sorted(directory.glob(f"{kind}_*.jsonl")):
        for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
                name = obj["name"]
                if not (isinstance(name, str) and name.strip() and str(obj.get("text", "")).strip()):
                    raise ValueError
            except (ValueError, KeyError, TypeError):
                bad += 1
                continue
            names.append(name)
            others = obj.get("aliases") or []
            aliases.setdefault(name, []).extend(a for a in others if isinstance(a, str))
    return EntityIndex(names, aliases), bad


@dataclass
class KindCoverage:
    """Which entities of one kind each input covers. ``inputs`` maps an input ('SMILES',
    'expression', 'descriptions') to the covered names; ``featurizers``, when given, maps each
    featurizer to the entities it can describe. ``uncovered`` lists the entities no featurizer
    covers (without featurizers: that no input covers)."""

    kind: str
    names: list[str]
    inputs: dict[str, set[str]] = field(default_factory=dict)
    featurizers: dict[str, set[str]] | None = None

    def missing(self, source: str) -> list[str]:
        return [n for n in self.names if n not in self.inputs.get(source, set())]

    @property
    def uncovered(self) -> list[str]:
        sources = self.inputs if self.featurizers is None else self.featurizers
        return [n for n in self.names if not any(n in covered for covered in sources.values())]


def _featurizer_covers(needs, kind: str, names: list[str], table, inputs: dict[str, set[str]], omics) -> set[str]:
    """The entities of one kind a featurizer with these ``needs`` can describe. No needs: every
    entity (it reads nothing of theirs, e.g. a one-hot encoding). ``smiles`` is a drug input,
    ``omics:<matrix>`` a cell-line one, ``description`` both; another need is a column of the
    entity table. A need of the other kind does not concern this kind; if none concerns it, the
    featurizer covers none of its entities."""
    if not needs:
        return set(names)
    relevant = []
    for need in needs:
        if need == "smiles":
            if kind == "drugs":
                relevant.append(inputs["SMILES"])
        elif need.startswith("omics:"):
            if kind == "cell lines":
                matrix = omics.get(need[len("omics:"):])
                relevant.append(set() if matrix is None else set(map(str, matrix.index)))
        elif need == "description":
            relevant.append(inputs["descriptions"])
        elif need in table.columns:
            relevant.append({str(n) for n, v in table[need].items() if v is not None and not (isinstance(v, float) and v != v)})
    return set(names).intersection(*relevant) if relevant else set()


def _aliases_of(table, name) -> list[str]:
    if "aliases" not in table.columns:
        return []
    value = table.at[name, "aliases"]
    return [a for a in value if isinstance(a, str)] if isinstance(value, (list, tuple)) else []


def _described(table, index: EntityIndex) -> set[str]:
    covered = set()
    own = table["description"] if "description" in table.columns else None
    for name in table.index:
        if own is not None and isinstance(own.get(name), str) and own.get(name).strip():
            covered.add(name)
        elif any(index.resolve(n) for n in (name, *_aliases_of(table, name))):
            covered.add(name)
    return covered


def coverage(data, descriptions: str | Path | None = None, featurizers=None) -> tuple[list[KindCoverage], dict]:
    """Per entity kind, which inputs cover which entities, plus notes (unreadable description lines).

    Drugs: SMILES that RDKit parses (``smiles`` column) and descriptions. Cell lines: every omics
    matrix of the dataset (by its name) and descriptions. Descriptions are the project's JSON Lines
    files matched by name or alias, or the dataset's own ``description`` column. ``featurizers``
    (classes, e.g. every registered one) adds which entities each can describe, from its ``needs``.
    """
    drug_index, bad_drugs = description_index("drugs", descriptions)
    cell_index, bad_cells = description_index("cell_lines", descriptions)
    drugs = KindCoverage("drugs", [str(n) for n in data.drugs.index])
    smiles = data.drugs["smiles"] if "smiles" in data.drugs.columns else None
    drugs.inputs["SMILES"] = set() if smiles is None else {n for n, s in smiles.items() if smiles_parses(s)}
    drugs.inputs["descriptions"] = _described(data.drugs, drug_index)
    cells = KindCoverage("cell lines", [str(n) for n in data.cell_lines.index])
    for matrix, values in data.omics.items():
        cells.inputs[matrix] = set(values.index) & set(cells.names)
    cells.inputs.setdefault("expression", set())
    cells.inputs["descriptions"] = _described(data.cell_lines, cell_index)
    if featurizers is not None:
        for k, table in ((drugs, data.drugs), (cells, data.cell_lines)):
            k.featurizers = {f.name: _featurizer_covers(tuple(f.needs), k.kind, k.names, table, k.inputs, data.omics)
                             for f in featurizers}
    return [drugs, cells], {"unreadable_description_lines": bad_drugs + bad_cells}
