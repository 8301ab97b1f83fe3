"""Queries to a pre-trained checkpoint: any number of drugs on one cell line.

``synbench predict --model-checkpoint CKPT --drugs A,B,C --cell-line X`` resolves each name
against the entities the checkpoint stores (names and aliases, ignoring case and punctuation),
embeds the ones it lacks with the checkpoint's own featurizers, and returns every head's
prediction (synergy scores; class probabilities for classification heads) with the mean,
standard deviation and 2.5-97.5 % interval of ``passes`` MC-dropout passes.

An entity the checkpoint lacks is embedded from ``describe[name]`` (``--describe NAME="..."``)
when given, else from the project's description files; with neither, the query fails with one
line naming it. A combination the checkpoint was trained on is answered and flagged, since a
user query is not an evaluation.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .data import CELL, N_DRUGS, Batch, FeatureSet, SynergyData
from .entities import EntityIndex, normalise_name
from .errors import ConfigError, DataError, SynbenchError
from .features import parse_spec
from .pretrain import combination_set_keys, load_checkpoint

PLACEHOLDER = "query-entity-{kind}-{i}"  # names no description file uses, so the user's text is taken


def parse_describe(values) -> dict[str, str]:
    """``['X=a kinase inhibitor ...']`` -> {'X': 'a kinase inhibitor ...'}."""
    out = {}
    for item in values or []:
        name, sep, text = str(item).partition("=")
        if not sep or not name.strip() or not text.strip():
            raise ConfigError(f"--describe expects NAME=\"description\", got '{item}'")
        out[name.strip()] = text.strip().strip('"').strip("'")
    return out


def _tables(checkpoint: dict, spec: str, part: str) -> pd.DataFrame | None:
    entry = checkpoint["entities"].get(spec, {}).get(part)
    if entry is None:
        return None
    return pd.DataFrame(entry["values"].numpy(), index=pd.Index(entry["names"]), columns=entry["columns"])


def _index(names, aliases: dict[str, str]) -> EntityIndex:
    by_key = {normalise_name(n): n for n in names}
    others: dict[str, list[str]] = {}
    for alias, canonical in aliases.items():
        if canonical in by_key:
            others.setdefault(by_key[canonical], []).append(alias)
    return EntityIndex(names, others)


def _embed_new(checkpoint: dict, new: dict[str, list[tuple[str, str, str | None]]]) -> dict[str, dict[str, pd.DataFrame]]:
    """Feature rows for entities the checkpoint lacks: {spec: {part: frame indexed by the row name}}.

    ``new[part]`` lists (row name, user name, text or None); without a text the entity keeps its own
    name so that the featurizer can find it in the project's description files.
    """
    from .registry import get_registry

    registry = get_registry()
    drugs = pd.DataFrame({"smiles": [None] * len(new["drugs"]), "aliases": [[] for _ in new["drugs"]],
                          "description": [text for _, _, text in new["drugs"]]},
                         index=pd.Index([row for row, _, _ in new["drugs"]], name="drug"), dtype=object)
    cells = pd.DataFrame({"tissue": [None] * len(new["cell_lines"]), "description": [text for _, _, text in new["cell_lines"]]},
                         index=pd.Index([row for row, _, _ in new["cell_lines"]], name="cell_line"), dtype=object)
    mini = SynergyData("query", pd.DataFrame(index=pd.Index([], name="row_id")), {}, drugs, cells)
    out = {}
    for spec in checkpoint["featurizers"]:
        name, params = parse_spec(spec)
        featurizer = registry.featurizer(name)
        if "description" not in getattr(featurizer, "needs", ()):
            unknown = [user for part in new.values() for _, user, _ in part]
            raise DataError(f"unknown to the checkpoint: {', '.join(unknown)}; featurizer '{name}' cannot embed new entities from a description")
        try:
            fs = featurizer(**params).featurize(mini)
        except SynbenchError:
            missing = [user for part in new.values() for _, user, text in part if text is None]
            raise DataError(f"no description for {', '.join(missing)} (not in the checkpoint nor in datasets/descriptions); "
                            f"pass --describe NAME=\"...\"") from None
        out[spec] = {"drugs": fs.drugs, "cell_lines": fs.cell_lines}
    return out


def query(checkpoint_path, drugs: list[str], cell_line: str, describe: dict[str, str] | None = None,
          passes: int = 100, seed: int = 0) -> dict:
    """Predict one combination of ``drugs`` on ``cell_line``; see the module docstring."""
    from .registry import get_registry

    checkpoint = load_checkpoint(checkpoint_path)
    model_cls = get_registry().model(checkpoint["model"])
    if not hasattr(model_cls, "from_checkpoint"):
        raise ConfigError(f"model '{checkpoint['model']}' cannot answer queries from a checkpoint")
    drugs = [d.strip() for d in drugs if d and d.strip()]
    if not drugs:
        raise ConfigError("--drugs needs at least one drug name")
    if not cell_line or not cell_line.strip():
        raise ConfigError("--cell-line needs a cell-line name")
    cell_line = cell_line.strip()
    keys = [normalise_name(d) for d in drugs]
    if len(set(keys)) != len(keys):
        raise ConfigError(f"a drug is named twice in {', '.join(drugs)}")
    texts = {normalise_name(k): v for k, v in (describe or {}).items()}
    first = checkpoint["featurizers"][0]
    aliases = checkpoint.get("aliases", {})
    resolved, new, notes = {}, {"drugs": [], "cell_lines": []}, []
    for part, names in (("drugs", drugs), ("cell_lines", [cell_line])):
        table = _tables(checkpoint, first, part)
        index = _index(list(table.index) if table is not None else [], aliases.get(part, {}))
        for i, name in enumerate(names):
            text = texts.pop(normalise_name(name), None)
            hit = index.resolve(name)
            if text is not None:  # the user's description wins, also over a stored entity
                row = PLACEHOLDER.format(kind=part, i=i)
                new[part].append((row, name, text))
                resolved[name] = row
            elif hit is not None:
                resolved[name] = hit
            else:
                new[part].append((name, name, None))
                resolved[name] = name
    if texts:
        raise ConfigError(f"--describe names {', '.join(sorted(texts))}, which the query does not use")
    features = {}
    embedded = _embed_new(checkpoint, new) if new["drugs"] or new["cell_lines"] else {}
    for spec in checkpoint["featurizers"]:
        tables = {}
        for part in ("drugs", "cell_lines"):
            table = _tables(checkpoint, spec, part)
            rows = [row for row, _, _ in new[part]]
            if rows:
                extra = embedded[spec][part].loc[rows]
                if table is not None and extra.shape[1] != table.shape[1]:
                    raise DataError(f"featurizer {spec} gives {extra.shape[1]} columns now, the checkpoint has {table.shape[1]}")
                extra.columns = table.columns if table is not None else extra.columns
                table = pd.concat([table.drop(index=[r for r in rows if r in table.index]), extra]) if table is not None else extra
            tables[part] = table
        features[spec] = FeatureSet(spec.split(":")[0], "tabular", tables["drugs"], tables["cell_lines"],
                                    checkpoint["feature_info"].get(spec, {}))
    row = {f"drug_{i + 1}": resolved[d] for i, d in enumerate(drugs)}
    rows = pd.DataFrame([{**row, CELL: resolved[cell_line], N_DRUGS: len(drugs)}], index=pd.Index(["query"], name="row_id"))
    named = pd.DataFrame([{**{f"drug_{i + 1}": d for i, d in enumerate(drugs)}, CELL: cell_line, N_DRUGS: len(drugs)}])
    key = combination_set_keys(named, aliases).iloc[0]
    seen = key in set(checkpoint["seen"])
    if seen:
        notes.append("this combination was in the pre-training data")
    if len(drugs) not in checkpoint.get("k_seen", []):
        notes.append(f"the checkpoint saw only k = {', '.join(map(str, checkpoint.get('k_seen', [])))} drugs per combination; "
                     f"its embedding of k = {len(drugs)} was not trained")
    model = model_cls.from_checkpoint(checkpoint, seed=seed)
    heads = model.predict_heads(Batch(rows, features, model.tasks_[0][1]), passes)
    plain = {name: {k: (v if isinstance(v, str) else float(np.asarray(v).reshape(-1)[0])) for k, v in entry.items()}
             for name, entry in heads.items()}
    sources = {}
    for part in ("drugs", "cell_lines"):
        for row_name, user, text in new[part]:
            sources[user] = "described (--describe)" if text is not None else "project description"
    for name in [*drugs, cell_line]:
        sources.setdefault(name, f"checkpoint ({resolved[name]})")
    return {"checkpoint": str(checkpoint_path), "model": checkpoint["model"], "drugs": drugs, "cell_line": cell_line,
            "k": len(drugs), "entities": sources, "seen_in_pretraining": seen, "passes": int(passes),
            "heads": plain, "notes": notes}
