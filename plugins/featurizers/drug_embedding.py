"""drug-embedding: drug embeddings computed elsewhere (a molecular foundation model's vectors, ...),
read from a user's CSV or Parquet file (``-f drug-embedding:path=FILE``; format in docs/plugins.md)."""

from synbench.embedding_files import EmbeddingFeaturizer
from synbench.hookspecs import hookimpl


class DrugEmbeddingFeaturizer(EmbeddingFeaturizer):
    name = "drug-embedding"
    description = "drug embeddings from a user's file (first column: drug name; other columns: numbers)"
    reference = "any drug embedding computed elsewhere (e.g. a molecular foundation model)"
    entity = "drugs"


@hookimpl
def synbench_register_featurizers():
    return [DrugEmbeddingFeaturizer]
