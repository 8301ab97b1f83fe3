"""The plugin manager and the registry of everything it loaded.

Built-in plugins and third-party ones take the same path: each is a module implementing the
hooks in :mod:`synbench.hookspecs`. Built-ins are listed in ``synbench.plugins.BUILTIN_PLUGINS``;
others are found through the entry-point group ``synbench`` or named in ``SYNBENCH_PLUGINS``.
"""

from __future__ import annotations

import difflib
import importlib
from dataclasses import dataclass
from functools import lru_cache

import pluggy

from . import __version__, hookspecs
from .errors import PluginError, UnknownPluginError

KINDS = ("dataset", "featurizer", "model", "metric")
_HOOKS = {
    "dataset": "synbench_register_datasets",
    "featurizer": "synbench_register_featurizers",
    "model": "synbench_register_models",
    "metric": "synbench_register_metrics",
}


def suggest(name: str, candidates) -> str:
    close = difflib.get_close_matches(str(name), [str(c) for c in candidates], n=3, cutoff=0.5)
    return f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""


@dataclass(frozen=True)
class Entry:
    kind: str
    name: str
    obj: object  # a class (dataset, featurizer, model) or a Metric instance
    package: str
    version: str
    module: str

    @property
    def description(self) -> str:
        return getattr(self.obj, "description", "") or ""


class Registry:
    def __init__(self, pm: pluggy.PluginManager):
        self.pm = pm
        self._entries: dict[str, dict[str, Entry]] = {k: {} for k in KINDS}
        origins = {}
        for plugin, dist in pm.list_plugin_distinfo():
            origins[id(plugin)] = (dist.project_name, dist.version)
        for kind, hook_name in _HOOKS.items():
            hook = getattr(pm.hook, hook_name)
            for impl in hook.get_hookimpls():
                package, version = origins.get(id(impl.plugin), ("synbench", __version__))
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
                    if name in self._entries[kind]:
                        other = self._entries[kind][name]
                        raise PluginError(f"{kind} '{name}' is registered twice: by {other.module} ({other.package}) and {impl.plugin_name} ({package})")
                    self._entries[kind][name] = Entry(kind, name, obj, package, version, impl.plugin_name)

    def names(self, kind: str) -> list[str]:
        return sorted(self._entries[kind])

    def entries(self, kind: str | None = None) -> list[Entry]:
        kinds = KINDS if kind is None else (kind,)
        return [self._entries[k][n] for k in kinds for n in sorted(self._entries[k])]

    def entry(self, kind: str, name: str) -> Entry:
        if name not in self._entries[kind]:
            raise UnknownPluginError(f"unknown {kind} '{name}'{suggest(name, self._entries[kind])} (see `synbench plugins`)")
        return self._entries[kind][name]

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


def make_plugin_manager(entry_points: bool = True, extra_modules=()) -> pluggy.PluginManager:
    from synbench.plugins import BUILTIN_PLUGINS

    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    for module_name in BUILTIN_PLUGINS:
        pm.register(importlib.import_module(module_name), name=module_name)
    for module_name in extra_modules:
        try:
            module = importlib.import_module(module_name)
        except Exception as exc:
            raise PluginError(f"plugin module '{module_name}' (from SYNBENCH_PLUGINS) failed to import: "
                              f"{type(exc).__name__}: {exc}") from None
        pm.register(module, name=module_name)
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
    import os

    extra = [m.strip() for m in os.environ.get("SYNBENCH_PLUGINS", "").split(",") if m.strip()]
    return Registry(make_plugin_manager(extra_modules=extra))
