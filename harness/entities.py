"""Entity resolution shared by every dataset and featurizer.

Names of the same drug or cell line differ between sources (MK2206 / MK-2206, NCI-H460 / NCIH460,
ZOLINZA / vorinostat). :func:`normalise_name` folds case and punctuation; :class:`EntityIndex`
maps any known name or alias to one canonical name.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

_PUNCT = re.compile(r"[\s\-_.,/()\[\]'\"+:;]+")


def normalise_name(name: str) -> str:
    """'NCI-H460' -> 'NCIH460', 'mk 2206' -> 'MK2206'; the join key across sources."""
    return _PUNCT.sub("", str(name)).upper()


def canonical_smiles(smiles: str) -> str | None:
    """RDKit canonical SMILES, or None when RDKit cannot parse it."""
    from rdkit import Chem, RDLogger

    RDLogger.DisableLog("rdApp.*")
    mol = Chem.MolFromSmiles(smiles) if isinstance(smiles, str) and smiles else None
    return Chem.MolToSmiles(mol) if mol is not None else None


class EntityIndex:
    """Canonical names plus their aliases; ``resolve`` is case- and punctuation-insensitive."""

    def __init__(self, names: Iterable[str], aliases: Mapping[str, Iterable[str]] | None = None):
        self._key: dict[str, str] = {}
        self.names = list(dict.fromkeys(names))
        for name in self.names:
            self._key.setdefault(normalise_name(name), name)
        for name, others in (aliases or {}).items():
            for other in others:
                self._key.setdefault(normalise_name(other), name)

    def resolve(self, name: str) -> str | None:
        return self._key.get(normalise_name(name))

    def __contains__(self, name: str) -> bool:
        return self.resolve(name) is not None
