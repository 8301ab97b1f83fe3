"""Built-in plugins. Each module implements hooks from ``synbench.hookspecs`` exactly as a
third-party plugin module would; this list is the only place that names them."""

BUILTIN_PLUGINS = [
    "synbench.metrics",
    "synbench.plugins.datasets.mock",
    "synbench.plugins.datasets.d1_oneil",
    "synbench.plugins.datasets.d3_deepdds",
    "synbench.plugins.datasets.drugcomb",
    "synbench.plugins.datasets.d2_marsy",
    "synbench.plugins.featurizers.chem",
    "synbench.plugins.featurizers.expression",
    "synbench.plugins.featurizers.molecular_graph",
    "synbench.plugins.featurizers.description",
    "synbench.plugins.featurizers.llm_description",
    "synbench.plugins.models.baitsao",
    "synbench.plugins.models.constant",
    "synbench.plugins.models.deepdds",
    "synbench.plugins.models.deepsynergy",
    "synbench.plugins.models.lasso",
    "synbench.plugins.models.marsy",
    "synbench.plugins.models.svm",
    "synbench.plugins.models.treecomb",
    "synbench.plugins.models.random_forest",
    "synbench.plugins.models.elastic_net",
    "synbench.plugins.models.tabnet",
    "synbench.plugins.models.bert",
]
