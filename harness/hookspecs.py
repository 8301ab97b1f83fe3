"""The hooks through which every plugin, built-in or third-party, registers.

A plugin module implements any of these with ``@synbench.hookimpl`` and returns a list of classes.
Built-ins are listed in ``synbench.plugins.BUILTIN_PLUGINS``; third-party packages declare their
module under the entry-point group ``synbench`` in their own ``pyproject.toml``::

    [project.entry-points.synbench]
    my_models = "my_package.synbench_plugin"

``synbench new model|featurizer|dataset NAME`` writes such a package; ``docs/plugins.md`` is the guide.
"""

import pluggy

PROJECT = "synbench"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def synbench_register_datasets() -> list[type]:
    """Return :class:`synbench.base.Dataset` subclasses."""


@hookspec
def synbench_register_featurizers() -> list[type]:
    """Return :class:`synbench.base.Featurizer` subclasses."""


@hookspec
def synbench_register_models() -> list[type]:
    """Return :class:`synbench.base.Model` subclasses."""


@hookspec
def synbench_register_metrics() -> list:
    """Return :class:`synbench.metrics.Metric` instances."""
