"""Built-in plugins. Each module implements hooks from ``synbench.hookspecs`` exactly as a
third-party plugin module would; this list is the only place that names them."""

BUILTIN_PLUGINS = [
    "synbench.metrics",
    "synbench.plugins.datasets.mock",
    "synbench.plugins.datasets.d1_oneil",
    "synbench.plugins.featurizers.chem",
    "synbench.plugins.featurizers.expression",
    "synbench.plugins.models.constant",
    "synbench.plugins.models.lasso",
    "synbench.plugins.models.svm",
    "synbench.plugins.models.treecomb",
]
