"""The plugin manager and the registry of everything it loaded.

Built-in plugins and third-party ones take the same path: each is a module implementing the
hooks in :mod:`synbench.hookspecs`. Built-ins are listed in ``synbench.plugins.BUILTIN_PLUGINS``;
others are found through the entry-point group ``synbench`` or named in ``SYNBENCH_PLUGINS``.
"""

from __future__ import annotations

import difflib
import hashlib
import importlib
import os
import re
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path

import pluggy

from . import __version__, hookspecs
from .errors import ConfigError, PluginError, UnknownPluginError
from .validation import declaration_problems

KINDS = ("dataset", "featurizer", "model", "metric")
_HOOKS = {
    "dataset": "synbench_register_datasets",
    "featurizer": "synbench_register_featurizers",
    "model": "synbench_register_models",
    "metric": "synbench_register_metrics",
}


def suggest(name: str, candidates, list_up_to: int = 10, aliases: dict | None = None) -> str:
    """'; did you mean 'lasso'?' for the close matches (compared case-insensitively, through
    ``aliases`` too), followed by every valid name when there are few (profiles, split schemes)."""
    names = [str(c) for c in candidates]
    by_key = {}
    for n in names:
        by_key.setdefault(n.lower(), n)
    for alias, target in (aliases or {}).items():
        if target in names:
            by_key.setdefault(alias, target)
    close = difflib.get_close_matches(_name_key(name), list(by_key), n=6, cutoff=0.5)
    close = list(dict.fromkeys(by_key[c] for c in close))[:3]
    text = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    if 0 < len(names) <= list_up_to:
        text += f" (valid: {', '.join(names)})"
    return text


# What people type for a plugin's name (keys are compared after _name_key)
ALIASES = {
    "metric": {"pearson": "pcc", "pearsonr": "pcc", "pearson_r": "pcc", "auc": "roc_auc", "rocauc": "roc_auc",
               "auroc": "roc_auc", "roc": "roc_auc", "aupr": "auprc", "pr_auc": "auprc", "average_precision": "auprc",
               "spearmanr": "spearman", "spearman_r": "spearman", "acc": "accuracy", "mean_squared_error": "mse",
               "cohen_kappa": "kappa", "r_squared": "r2"},
}


def _name_key(name: str) -> str:
    """'ROC-AUC' and 'roc_auc', 'BAITSAO_FT' and 'baitsao-ft' are typed for the same name."""
    return str(name).strip().lower().replace("-", "_").replace(" ", "_")


@dataclass(frozen=True)
class Entry:
    kind: str
    name: str
    obj: object  # a class (dataset, featurizer, model) or a Metric instance
    package: str  # distribution name, or UNPACKAGED for a module loaded through SYNBENCH_PLUGINS
    version: str  # distribution version, or "sha256:<digest>" of an unpackaged module's source
    module: str
    file: str = ""  # the module's file, recorded for an unpackaged plugin
    problems: tuple[str, ...] = ()  # what is wrong with its declarations (found at registration)

    @property
    def description(self) -> str:
        return getattr(self.obj, "description", "") or ""

    @property
    def origin(self) -> str:
        """'my_pkg.plugin (my-pkg 1.0)', or the file of an unpackaged module."""
        if self.package == UNPACKAGED:
            return f"{self.module} (unpackaged, {self.file or 'no file'})"
        return f"{self.module} ({self.package} {self.version})"

    def provenance(self) -> dict:
        info = {"kind": self.kind, "name": self.name, "package": self.package, "version": self.version, "module": self.module}
        return {**info, "file": self.file} if self.package == UNPACKAGED else info


UNPACKAGED = "(unpackaged)"
CHOOSE_ENV = "SYNBENCH_CHOOSE"


def _source_digest(module) -> tuple[str, str]:
    """The module's file and a SHA-256 over its source (every .py file of a package)."""
    file = getattr(module, "__file__", None)
    if not file:
        return "", "unknown"
    path = Path(file)
    paths = sorted(path.parent.rglob("*.py")) if path.name == "__init__.py" else [path]
    digest = hashlib.sha256()
    for p in paths:
        digest.update(str(p.relative_to(path.parent)).encode() + b"\0" + p.read_bytes() + b"\0")
    return str(path), "sha256:" + digest.hexdigest()[:16]


def _module_origin(module, name: str, distributions: dict) -> tuple[str, str, str]:
    """(package, version, file) of a module named in SYNBENCH_PLUGINS: its installed distribution
    when it belongs to one, else unpackaged with its file and a hash of its source."""
    from importlib import metadata

    for dist in distributions.get(name.split(".")[0], []):
        try:
            return dist, metadata.version(dist), ""
        except metadata.PackageNotFoundError:
            continue
    file, digest = _source_digest(module)
    return UNPACKAGED, digest, file


def _parse_choices(value: str) -> dict[tuple[str, str], str]:
    """``model:ridge=my-package,featurizer:onehot=my_pkg.plugin`` -> {(kind, name): package or module}."""
    choices = {}
    for item in filter(None, (x.strip() for x in value.split(","))):
        what, sep, who = item.partition("=")
        kind, colon, name = what.strip().partition(":")
        if not (sep and colon and who.strip() and name.strip()) or kind not in KINDS:
            raise ConfigError(f"{CHOOSE_ENV}: '{item}' must be KIND:NAME=PACKAGE with KIND one of {', '.join(KINDS)}")
        choices[(kind, name.strip())] = who.strip()
    return choices


def _canonical(package: str) -> str:
    return re.sub(r"[-_.]+", "-", package).lower()


class Registry:
    """Every plugin the plugin manager loaded, by kind and name.

    Two plugins that register the same kind and name clash: neither is handed out (``entry``
    raises, naming every clash and how to resolve it) until one is uninstalled or chosen with
    ``SYNBENCH_CHOOSE=KIND:NAME=PACKAGE``; everything else, listing included, keeps working.
    A plugin whose declarations are wrong (:mod:`synbench.validation`) is listed with its
    problems and refused to a run, before any job starts.
    """

    def __init__(self, pm: pluggy.PluginManager, choose: str | None = None):
        self.pm = pm
        self._entries: dict[str, dict[str, Entry]] = {k: {} for k in KINDS}
        self.clashes: dict[tuple[str, str], list[Entry]] = {}  # unresolved: (kind, name) -> every registration
        self.chosen: dict[tuple[str, str], list[Entry]] = {}  # resolved by SYNBENCH_CHOOSE: the chosen one first
        origins = {}
        for plugin, dist in pm.list_plugin_distinfo():
            origins[id(plugin)] = (dist.project_name, dist.version, "")
        extra = getattr(pm, "synbench_extra_modules", {})
        distributions = {}
        if extra:
            from importlib import metadata

            distributions = metadata.packages_distributions()
        for name, module in extra.items():
            origins.setdefault(id(module), _module_origin(module, name, distributions))
        registered: dict[tuple[str, str], list[Entry]] = {}
        for kind, hook_name in _HOOKS.items():
            hook = getattr(pm.hook, hook_name)
            for impl in hook.get_hookimpls():
                package, version, file = origins.get(id(impl.plugin), ("synbench", __version__, ""))
                try:
                    returned = impl.function()
                except Exception as exc:  # a third-party plugin must not take the harness down silently
                    raise PluginError(f"plugin module '{impl.plugin_name}' failed in {hook_name}: {exc}") from exc
                if not isinstance(returned, (list, tuple)):
                    raise PluginError(f"plugin module '{impl.plugin_name}': {hook_name} must return a list, got {type(returned).__name__}")
                for obj in returned:
                    name = getattr(obj, "name", "")
                    if not isinstance(name, str) or not name:
                        raise PluginError(f"plugin module '{impl.plugin_name}' registered a {kind} without a name: {obj!r}")
                    entry = Entry(kind, name, obj, package, version, impl.plugin_name, file)
                    registered.setdefault((kind, name), []).append(entry)
        choices = _parse_choices(os.environ.get(CHOOSE_ENV, "") if choose is None else choose)
        for (kind, name), candidates in registered.items():
            if len(candidates) > 1:
                wanted = choices.get((kind, name))
                if wanted is None:
                    self.clashes[(kind, name)] = candidates
                    continue
                picked = [e for e in candidates if _canonical(e.package) == _canonical(wanted) or e.module == wanted]
                if len(picked) != 1:
                    raise ConfigError(f"{CHOOSE_ENV}: {kind}:{name}={wanted} matches {len(picked)} of its registrations "
                                      f"({', '.join(e.origin for e in candidates)}); name a package or module that is one of them")
                self.chosen[(kind, name)] = picked + [e for e in candidates if e is not picked[0]]
                candidates = picked
            self._entries[kind][name] = candidates[0]
        # declarations are checked once everything is loaded: a model may name a third-party featurizer
        featurizers = {n: e.obj for n, e in self._entries["featurizer"].items()}
        for kind in KINDS:
            for name, entry in self._entries[kind].items():
                problems = declaration_problems(kind, entry.obj, featurizers)
                if problems:
                    self._entries[kind][name] = replace(entry, problems=tuple(problems))

    def names(self, kind: str) -> list[str]:
        return sorted(set(self._entries[kind]) | {n for k, n in self.clashes if k == kind})

    def entries(self, kind: str | None = None) -> list[Entry]:
        """One entry per registered name (for a clashing name, its first registration), for listings."""
        kinds = KINDS if kind is None else (kind,)
        return [self._entries[k][n] if n in self._entries[k] else self.clashes[(k, n)][0] for k in kinds for n in self.names(k)]

    def registrations(self, kind: str | None = None) -> list[Entry]:
        """Every registration, clashing ones included (what ``synbench plugins`` shows)."""
        kinds = KINDS if kind is None else (kind,)
        found = []
        for k in kinds:
            for n in self.names(k):
                found += self.clashes.get((k, n)) or self.chosen.get((k, n)) or [self._entries[k][n]]
        return found

    def clash_message(self) -> str:
        parts = [f"{kind} '{name}' is registered by {' and '.join(e.origin for e in entries)}"
                 for (kind, name), entries in sorted(self.clashes.items())]
        (kind, name), entries = sorted(self.clashes.items())[0]
        example = f"{CHOOSE_ENV}={kind}:{name}={entries[0].package if entries[0].package != UNPACKAGED else entries[0].module}"
        return (f"plugin name clash{'es' if len(parts) > 1 else ''}: {'; '.join(parts)}; uninstall one of each "
                f"(pip uninstall PACKAGE), or choose one with {example}[,KIND:NAME=PACKAGE...]")

    def canonical(self, kind: str, name: str) -> str:
        """The registered name a user meant: the name itself, else the one name that matches it
        ignoring case and '-' vs '_', else a usual alias (``pearson`` -> ``pcc``); unknown names
        are returned unchanged."""
        known = set(self._entries[kind]) | {k for (k_kind, k) in self.clashes if k_kind == kind}
        if name in known:
            return name
        key = _name_key(name)
        matches = [n for n in known if _name_key(n) == key]
        if len(matches) == 1:
            return matches[0]
        alias = ALIASES.get(kind, {}).get(key)
        return alias if alias in known else name

    def entry(self, kind: str, name: str) -> Entry:
        name = self.canonical(kind, name)
        if (kind, name) in self.clashes:
            raise PluginError(self.clash_message())
        if name not in self._entries[kind]:
            raise UnknownPluginError(f"unknown {kind} '{name}'{suggest(name, self.names(kind), aliases=ALIASES.get(kind))} "
                                     "(see `synbench plugins`)")
        entry = self._entries[kind][name]
        if entry.problems:
            raise PluginError(f"{kind} '{name}' from {entry.origin} is not usable: {'; '.join(entry.problems)} "
                              f"(`synbench check {entry.package if entry.package != UNPACKAGED else entry.module}` checks it)")
        return entry

    def get(self, kind: str, name: str):
        return self.entry(kind, name).obj

    def dataset(self, name: str):
        return self.get("dataset", name)

    def featurizer(self, name: str):
        return self.get("featurizer", name)

    def model(self, name: str):
        return self.get("model", name)

    def metric(self, name: str):
        return self.get("metric", name)

    def featurizer_spec(self, spec: str):
        """The featurizer class of ``name[:opt=value,...]``, its options checked (one-line ConfigError),
        and the inputs they name when the class has ``check_inputs(params)`` (one-line error)."""
        from .features import parse_spec
        from .validation import check_options

        name, params = parse_spec(spec)
        cls = self.featurizer(name)
        check_options(cls, params)
        check_inputs = getattr(cls, "check_inputs", None)
        if callable(check_inputs):  # a featurizer reading a user's file checks it here, before any job or store
            check_inputs(params)
        return cls

    def packages(self) -> list[str]:
        return sorted({e.package if e.package != UNPACKAGED else e.module for e in self.registrations()})

    def plugins_of(self, package: str) -> list[Entry]:
        """Every registration by an installed distribution (any spelling: my-pkg, my_pkg) or by a
        plugin module (``my_pkg.plugin``, or a module named in SYNBENCH_PLUGINS)."""
        found = [e for e in self.registrations()
                 if _canonical(e.package) == _canonical(package) or e.module == package or e.module.startswith(package + ".")]
        if not found:
            raise UnknownPluginError(f"no plugin is registered by a package or module named '{package}'"
                                     f"{suggest(package, self.packages(), list_up_to=len(self.packages()))}")
        return found

    def provenance_of(self, model: str, dataset: str | None = None, featurizers=()) -> dict:
        """What a job record stores about the plugins that produced it."""
        from .features import parse_spec

        used = [("model", model)] + ([("dataset", dataset)] if dataset else [])
        used += [("featurizer", parse_spec(f)[0]) for f in featurizers]
        entries = [self.entry(k, n) for k, n in used]
        main = entries[0]
        record = {"plugin_package": main.package, "plugin_version": main.version,
                  "plugins": [e.provenance() for e in entries]}
        if main.file:
            record["plugin_file"] = main.file
        return record


def make_plugin_manager(entry_points: bool = True, extra_modules=()) -> pluggy.PluginManager:
    from synbench.plugins import BUILTIN_PLUGINS

    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    for module_name in BUILTIN_PLUGINS:
        pm.register(importlib.import_module(module_name), name=module_name)
    pm.synbench_extra_modules = {}  # name -> module; the registry records where they came from
    for module_name in extra_modules:
        try:
            module = importlib.import_module(module_name)
        except Exception as exc:
            raise PluginError(f"plugin module '{module_name}' (from SYNBENCH_PLUGINS) failed to import: "
                              f"{type(exc).__name__}: {exc}") from None
        pm.register(module, name=module_name)
        pm.synbench_extra_modules[module_name] = module
    if entry_points:
        try:
            pm.load_setuptools_entrypoints(hookspecs.PROJECT)
        except Exception as exc:
            raise PluginError(f"a third-party synbench plugin failed to load: {exc}") from exc
    try:
        pm.check_pending()  # a misspelt hook name fails loudly
    except pluggy.PluginValidationError as exc:
        raise PluginError(f"plugin module '{pm.get_name(exc.plugin)}': {str(exc).splitlines()[0]}") from None
    return pm


@lru_cache(maxsize=1)
def get_registry() -> Registry:
    """Built-ins, installed entry points, and the modules named in ``SYNBENCH_PLUGINS``
    (comma-separated import names: a plugin under development, without packaging it)."""
    extra = [m.strip() for m in os.environ.get("SYNBENCH_PLUGINS", "").split(",") if m.strip()]
    return Registry(make_plugin_manager(extra_modules=extra))
