"""expression: cell-line gene expression from the dataset's omics, normalised as a method needs."""

import hashlib

import numpy as np
import pandas as pd

from synbench.base import Categorical, Featurizer, Integer
from synbench.data import FeatureSet
from synbench.errors import ConfigError, DataError
from synbench.hookspecs import hookimpl

NORMALISATIONS = ("zscore", "tanh", "none")


class ExpressionFeaturizer(Featurizer):
    name = "expression"
    description = "cell-line gene expression (z-scored, tanh-normalised or raw), optional top-variance genes"
    reference = "CCLE via the dataset's release"
    kind = "tabular"
    needs = ("omics:expression",)
    version = "1"
    options = {"matrix": str, "normalise": Categorical(NORMALISATIONS), "n_genes": Integer(1, 1_000_000)}

    def __init__(self, matrix: str = "expression", normalise: str = "zscore", n_genes: int | None = None):
        if normalise not in NORMALISATIONS:
            raise ConfigError(f"expression: unknown normalisation '{normalise}' (choose from {', '.join(NORMALISATIONS)})")
        super().__init__(matrix=matrix, normalise=normalise, n_genes=n_genes)
        self.matrix, self.normalise, self.n_genes = matrix, normalise, n_genes

    def featurize(self, data) -> FeatureSet:
        if self.matrix not in data.omics:
            raise DataError(f"featurizer 'expression': dataset '{data.name}' has no omics matrix '{self.matrix}' "
                            f"(has: {', '.join(data.omics) or 'none'})")
        x = data.omics[self.matrix].astype(float)
        if self.n_genes:
            x = x[x.var().sort_values(ascending=False).index[: self.n_genes]]
        std = x.std(ddof=0).replace(0, 1.0)
        if self.normalise == "zscore":
            x = (x - x.mean()) / std
        elif self.normalise == "tanh":  # DeepSynergy's 'tanh' normalisation: z-score, tanh, z-score
            x = (x - x.mean()) / std
            x = np.tanh(x)
            x = (x - x.mean()) / x.std(ddof=0).replace(0, 1.0)
        genes = list(x.columns)
        info = {"matrix": self.matrix, "normalise": self.normalise, "n_genes": len(genes),
                "gene_set_sha256": hashlib.sha256("\n".join(map(str, genes)).encode()).hexdigest()}
        x.index.name = "cell_line"
        return FeatureSet(self.name, "tabular", cell_lines=x.astype(np.float32), info=info)


@hookimpl
def synbench_register_featurizers():
    return [ExpressionFeaturizer]
