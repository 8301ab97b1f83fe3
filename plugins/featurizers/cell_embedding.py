"""cell-embedding: cell-line embeddings computed elsewhere (scFoundation, Geneformer, scGPT, ...),
read from a user's CSV or Parquet file (``-f cell-embedding:path=FILE``; format in docs/plugins.md)."""

from synbench.embedding_files import EmbeddingFeaturizer
from synbench.hookspecs import hookimpl


class CellEmbeddingFeaturizer(EmbeddingFeaturizer):
    name = "cell-embedding"
    description = "cell-line embeddings from a user's file (first column: cell-line name; other columns: numbers)"
    reference = "e.g. scFoundation (Hao et al. 2024), Geneformer, scGPT outputs computed elsewhere"
    entity = "cell_lines"


@hookimpl
def synbench_register_featurizers():
    return [CellEmbeddingFeaturizer]
