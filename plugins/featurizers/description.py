"""description: a text description of every drug and cell line, for text models (BERT) and encoders.

Sources, in the order they are tried for each entity:

- ``source=project`` (default): the project's own descriptions in ``datasets/descriptions/``
  (``drugs_*.jsonl``, ``cell_lines_*.jsonl``; written by a language model from PROMPT.md and not
  verified), then the dataset's own ``description`` column.
- ``source=chebi``: ChEBI-20 text (drugs only; the file is resolved from the data directory
  through ``datasets/descriptions_chebi20.toml``) where a drug has one, and the project
  sources above for every other entity. Which source each entity got is recorded in ``info``.

Entity names are matched through :class:`synbench.entities.EntityIndex`: the dataset name or any
of its aliases against the description names and aliases, ignoring case and punctuation. An
entity no source describes is an error naming all of them, never a silent gap.

Files are read in a fixed order (``*_core.jsonl`` first, then the rest by file name) and the
first definition of a name wins; ``read_descriptions(...).duplicates`` lists the others.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import pandas as pd

from synbench.base import Categorical, Featurizer
from synbench.data import FeatureSet, SynergyData
from synbench.entities import EntityIndex, normalise_name
from synbench.errors import ConfigError, DataError
from synbench.hookspecs import hookimpl

ENTITY_KINDS = {"drugs": "drugs_*.jsonl", "cell_lines": "cell_lines_*.jsonl"}
REQUIRED_KEYS = ("name", "aliases", "text", "confidence")
CONFIDENCE = ("high", "medium", "low")
SOURCES = ("project", "chebi")
CHEBI_MANIFEST = "descriptions_chebi20.toml"


def descriptions_dir() -> Path:
    return Path(str(resources.files("synbench.manifests").joinpath("descriptions")))


@dataclass(frozen=True)
class Description:
    name: str
    aliases: tuple[str, ...]
    text: str
    confidence: str
    file: str
    line: int


@dataclass
class DescriptionLibrary:
    """All project descriptions: accepted entries per entity kind, file checksums, and the later
    definitions that were ignored because a name or alias was already taken (``duplicates``)."""

    entries: dict[str, list[Description]] = field(default_factory=dict)
    files: dict[str, dict] = field(default_factory=dict)
    prompt: dict = field(default_factory=dict)
    duplicates: list[str] = field(default_factory=list)

    def index(self, kind: str) -> tuple[EntityIndex, dict[str, Description]]:
        """Resolver over the accepted entries (their names and aliases never clash) and name -> entry."""
        by_name = {e.name: e for e in self.entries.get(kind, [])}
        return EntityIndex(list(by_name), {e.name: e.aliases for e in by_name.values()}), by_name


def _ordered(paths: list[Path]) -> list[Path]:
    return sorted(paths, key=lambda p: (not p.stem.endswith("_core"), p.name))


def _prompt_info(directory: Path) -> dict:
    path = directory / "PROMPT.md"
    if not path.is_file():
        return {}
    text = path.read_text(encoding="utf-8")
    match = re.search(r"^\s*[-*]?\s*\**version\**\s*:\s*\**\s*([^\s*]+)", text, flags=re.IGNORECASE | re.MULTILINE)
    return {"file": "PROMPT.md", "version": match.group(1) if match else "unversioned",
            "sha256": hashlib.sha256(text.encode("utf-8")).hexdigest()}


def read_descriptions(directory: str | Path | None = None) -> DescriptionLibrary:
    """Parse every description file; a malformed line is a one-line :class:`DataError`."""
    directory = Path(directory) if directory is not None else descriptions_dir()
    library = DescriptionLibrary(prompt=_prompt_info(directory))
    for kind, pattern in ENTITY_KINDS.items():
        seen: dict[str, str] = {}  # normalised name/alias -> "file:line (name)"
        entries = library.entries.setdefault(kind, [])
        for path in _ordered(list(directory.glob(pattern))):
            raw = path.read_bytes()
            where_file = path.name
            count, versions = 0, set()
            try:
                lines = raw.decode("utf-8").splitlines()
            except UnicodeDecodeError:
                raise DataError(f"description file {where_file} is not UTF-8 text") from None
            for lineno, line in enumerate(lines, start=1):
                if not line.strip():
                    continue
                where = f"{where_file}:{lineno}"
                try:
                    obj = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise DataError(f"description file {where} is not valid JSON ({exc.msg})") from None
                if not isinstance(obj, dict):
                    raise DataError(f"description file {where} must hold one JSON object per line")
                missing = [k for k in REQUIRED_KEYS if k not in obj]
                if missing:
                    raise DataError(f"description file {where} lacks {', '.join(missing)}")
                name, aliases, text, confidence = obj["name"], obj["aliases"], obj["text"], obj["confidence"]
                if not isinstance(name, str) or not name.strip():
                    raise DataError(f"description file {where}: 'name' must be a non-empty string")
                if not isinstance(aliases, list) or not all(isinstance(a, str) and a.strip() for a in aliases):
                    raise DataError(f"description file {where} ({name}): 'aliases' must be a list of non-empty strings")
                if not isinstance(text, str) or not text.strip():
                    raise DataError(f"description file {where} ({name}): 'text' must be a non-empty string")
                if confidence not in CONFIDENCE:
                    raise DataError(f"description file {where} ({name}): 'confidence' must be one of {', '.join(CONFIDENCE)}")
                if "prompt_version" in obj:
                    versions.add(str(obj["prompt_version"]))
                entry = Description(name, tuple(aliases), " ".join(text.split()), confidence, where_file, lineno)
                count += 1
                keys = dict.fromkeys(k for k in map(normalise_name, (name, *aliases)) if k)  # an entry may repeat itself
                clash = [seen[k] for k in keys if k in seen]
                if clash:  # the first definition wins; the later entry is ignored as a whole
                    library.duplicates.append(f"{kind}: {where} ({name}) redefines {', '.join(dict.fromkeys(clash))}")
                    continue
                for k in keys:
                    seen[k] = f"{where} ({name})"
                entries.append(entry)
            library.files[where_file] = {"sha256": hashlib.sha256(raw).hexdigest(), "entries": count,
                                         "prompt_versions": sorted(versions)}
    return library


def library_digest() -> str:
    """Hash of everything the description featurizers read from the package (the cache must see edits)."""
    digest = hashlib.sha256()
    directory = descriptions_dir()
    paths = [p for pattern in ENTITY_KINDS.values() for p in directory.glob(pattern)]
    for path in sorted(paths):
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    manifest = Path(str(resources.files("synbench.manifests").joinpath(CHEBI_MANIFEST)))
    if manifest.is_file():
        digest.update(manifest.read_bytes())
    return digest.hexdigest()[:16]


class VersionWithDescriptions:
    """A featurizer ``version`` that also changes when a description file changes.

    The harness keys its feature cache on the featurizer's name, version, options and the
    dataset tables; description files live outside the dataset, so their digest joins the version.
    """

    def __init__(self, base: str):
        self.base = base

    def __get__(self, obj, owner=None) -> str:
        return f"{self.base}+{library_digest()}"


def _chebi_texts(data_dir=None) -> tuple[EntityIndex, dict[str, str], dict]:
    from synbench.datadir import read_manifest, resolve
    from synbench.tabular_io import read_table

    manifest = read_manifest(CHEBI_MANIFEST)
    path = resolve(manifest, "chebi20", data_dir)
    table = read_table(path, sep=",", required=["drug_name", "description"])
    texts = {}
    for name, text in zip(table["drug_name"], table["description"]):
        if isinstance(name, str) and isinstance(text, str) and text.strip():
            texts.setdefault(name, " ".join(text.split()))
    entry = manifest.file("chebi20")
    return EntityIndex(list(texts)), texts, {"file": entry.path, "sha256": entry.sha256}


def _dataset_aliases(table: pd.DataFrame, name) -> list[str]:
    if "aliases" not in table.columns:
        return []
    value = table.at[name, "aliases"]
    if isinstance(value, str):
        return [value]
    try:
        return [str(a) for a in value if isinstance(a, str) and a]
    except TypeError:
        return []


def _dataset_text(table: pd.DataFrame, name) -> str | None:
    if "description" not in table.columns:
        return None
    value = table.at[name, "description"]
    return " ".join(value.split()) if isinstance(value, str) and value.strip() else None


def resolve_descriptions(data: SynergyData, source: str = "project", library: DescriptionLibrary | None = None,
                         featurizer: str = "description") -> tuple[dict[str, pd.Series], dict]:
    """Text per drug and cell line of ``data``, plus a record of where each text came from.

    Returns ``({"drugs": Series, "cell_lines": Series}, info)``; raises a one-line
    :class:`DataError` naming every entity that no source describes.
    """
    if source not in SOURCES:
        raise ConfigError(f"featurizer '{featurizer}': unknown source '{source}' (choose from {', '.join(SOURCES)})")
    library = library or read_descriptions()
    chebi_index = chebi_texts = chebi_info = None
    if source == "chebi":
        chebi_index, chebi_texts, chebi_info = _chebi_texts()
    texts: dict[str, pd.Series] = {}
    info: dict = {"source": source, "prompt": library.prompt, "description_files": library.files,
                  "entity_sources": {}, "project_entries": {}, "low_confidence": []}
    if chebi_info:
        info["chebi"] = chebi_info
        info["chebi_missing"] = []
    missing: dict[str, list[str]] = {}
    for kind, table in (("drugs", data.drugs), ("cell_lines", data.cell_lines)):
        index, by_name = library.index(kind)
        values, sources, matched = {}, {}, {}
        for name in table.index:
            candidates = [str(name), *_dataset_aliases(table, name)]
            entry = next((by_name[hit] for hit in map(index.resolve, candidates) if hit is not None), None)
            names = candidates + (list((entry.name, *entry.aliases)) if entry else [])
            chebi_hit = None
            if chebi_index is not None and kind == "drugs":
                chebi_hit = next((hit for hit in map(chebi_index.resolve, names) if hit is not None), None)
                if chebi_hit is None:
                    info["chebi_missing"].append(str(name))
            if chebi_hit is not None:
                values[name], sources[name] = chebi_texts[chebi_hit], "chebi"
            elif entry is not None:
                values[name], sources[name] = entry.text, f"project:{entry.file}"
                if entry.confidence == "low":
                    info["low_confidence"].append(str(name))
            elif (own := _dataset_text(table, name)) is not None:
                values[name], sources[name] = own, "dataset"
            else:
                missing.setdefault(kind.replace("_", " "), []).append(str(name))
                continue
            if entry is not None:
                matched[str(name)] = entry.name
        series = pd.Series(values, dtype=object, name="text")
        series.index.name = table.index.name
        texts[kind] = series
        info["entity_sources"][kind] = {str(k): v for k, v in sources.items()}
        info["project_entries"][kind] = matched
    if missing:
        listed = "; ".join(f"{len(v)} {k}: {', '.join(v)}" for k, v in missing.items())
        raise DataError(
            f"featurizer '{featurizer}' (source={source}) has no description for {listed} of dataset '{data.name}'; "
            "add them to datasets/descriptions/ or give the dataset a 'description' column"
        )
    counts = {}
    for kind, per in info["entity_sources"].items():
        counts[kind] = {s: sum(1 for v in per.values() if v.split(":")[0] == s) for s in ("project", "chebi", "dataset")}
    info["counts"] = counts
    return texts, info


class DescriptionFeaturizer(Featurizer):
    name = "description"
    description = "text description per drug and cell line (project LLM-written, or ChEBI-20 where available)"
    reference = "Liu et al. 2025 (BAITSAO) descriptions; ChEBI-20 (Edwards et al. 2022)"
    kind = "text"
    needs = ("description",)
    version = VersionWithDescriptions("1")
    options = {"source": Categorical(SOURCES)}

    def __init__(self, source: str = "project"):
        if source not in SOURCES:
            raise ConfigError(f"featurizer 'description': unknown source '{source}' (choose from {', '.join(SOURCES)})")
        super().__init__(source=source)
        self.source = source

    def featurize(self, data) -> FeatureSet:
        texts, info = resolve_descriptions(data, self.source, featurizer=self.name)
        return FeatureSet(self.name, "text", drugs=texts["drugs"], cell_lines=texts["cell_lines"], info=info)


@hookimpl
def synbench_register_featurizers():
    return [DescriptionFeaturizer]
