"""llm-description: text-encoder embeddings of the drug and cell-line descriptions (BAITSAO's input).

The descriptions come from the ``description`` featurizer's sources (``source=project|chebi``);
each text is embedded by a backend from :mod:`synbench.text_encoders` (``encoder=minilm``, the
local all-MiniLM-L6-v2, by default; ``encoder=openai`` for an OpenAI-compatible endpoint, as
BAITSAO used). Vectors are cached on disk per (text, encoder, model), so only new or edited
texts are ever encoded. Models combine them with ``tabular_design(batch, "mean")``:
mean of the k drug embeddings || cell-line embedding || k.

Options: ``encoder``, ``source``, and for ``openai`` ``model``, ``base_url``, ``dimensions``,
``api_key_env`` (the NAME of the environment variable holding the key, default
``SYNBENCH_EMBED_API_KEY``; a key itself is never an option because options are recorded).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from synbench.base import Categorical, Featurizer, Integer
from synbench.data import FeatureSet
from synbench.errors import ConfigError
from synbench.hookspecs import hookimpl
from synbench.plugins.featurizers.description import SOURCES, VersionWithDescriptions, resolve_descriptions


class _VersionWithEndpoint(VersionWithDescriptions):
    """Also keys the feature cache on the endpoint and model taken from the environment: the
    harness hashes only the spec's options, and an ``encoder=openai`` spec may leave both to
    ``SYNBENCH_EMBED_BASE_URL`` / ``SYNBENCH_EMBED_MODEL`` (never the key, which changes no vector)."""

    def __get__(self, obj, owner=None) -> str:
        import hashlib
        import os

        from synbench.text_encoders import BASE_URL_ENV, MODEL_ENV, _public_url

        env = [_public_url(os.environ.get(BASE_URL_ENV, "")), os.environ.get(MODEL_ENV, "")]
        suffix = hashlib.sha256("\n".join(env).encode()).hexdigest()[:8] if any(env) else ""
        return super().__get__(obj, owner) + (f"+{suffix}" if suffix else "")


class LLMDescriptionFeaturizer(Featurizer):
    name = "llm-description"
    description = "text-encoder embeddings of drug and cell-line descriptions (minilm local, or an OpenAI-compatible API)"
    reference = "Liu et al. 2025 (BAITSAO); Reimers & Gurevych 2019 (sentence embeddings)"
    kind = "tabular"
    needs = ("description",)
    version = _VersionWithEndpoint("1")
    # encoders are registered at run time (synbench.text_encoders), so __init__ checks that name
    options = {"encoder": str, "source": Categorical(SOURCES), "model": str, "base_url": str,
               "dimensions": Integer(1, 100_000), "api_key_env": str}

    def __init__(self, encoder: str = "minilm", source: str = "project", model: str | None = None,
                 base_url: str | None = None, dimensions: int | None = None, api_key_env: str | None = None):
        from synbench.text_encoders import ENCODERS

        if source not in SOURCES:
            raise ConfigError(f"featurizer 'llm-description': unknown source '{source}' (choose from {', '.join(SOURCES)})")
        if encoder not in ENCODERS:
            from synbench.registry import suggest

            raise ConfigError(f"featurizer 'llm-description': unknown encoder '{encoder}' "
                              f"(choose from {', '.join(sorted(ENCODERS))}){suggest(encoder, ENCODERS)}")
        params = {"encoder": encoder, "source": source, "model": model, "base_url": base_url,
                  "dimensions": dimensions, "api_key_env": api_key_env}
        super().__init__(**{k: v for k, v in params.items() if v is not None})
        self.encoder, self.source, self.model, self.base_url = encoder, source, model, base_url
        self.dimensions, self.api_key_env = dimensions, api_key_env

    def _encoder(self):
        from synbench.text_encoders import get_encoder

        options = {"model": self.model, "base_url": self.base_url, "dimensions": self.dimensions, "api_key_env": self.api_key_env}
        options = {k: v for k, v in options.items() if v is not None}
        if self.encoder == "minilm" and options:
            raise ConfigError(f"featurizer 'llm-description': encoder 'minilm' takes no options {sorted(options)}")
        return get_encoder(self.encoder, **options)

    def featurize(self, data) -> FeatureSet:
        from synbench.text_encoders import embed

        encoder = self._encoder()
        texts, info = resolve_descriptions(data, self.source, featurizer=self.name)
        order = [(kind, name) for kind in ("drugs", "cell_lines") for name in texts[kind].index]
        vectors, _ = embed([texts[kind][name] for kind, name in order], encoder)
        dim = vectors.shape[1]
        columns = [f"emb{i}" for i in range(dim)]
        tables = {}
        for kind in ("drugs", "cell_lines"):
            rows = [i for i, (k, _) in enumerate(order) if k == kind]
            frame = pd.DataFrame(vectors[rows] if rows else np.zeros((0, dim), dtype=np.float32),
                                 index=texts[kind].index, columns=columns, dtype=np.float32)
            tables[kind] = frame
        info = {**encoder.identity(), "dimension": dim, **info}
        return FeatureSet(self.name, "tabular", drugs=tables["drugs"], cell_lines=tables["cell_lines"], info=info)


@hookimpl
def synbench_register_featurizers():
    return [LLMDescriptionFeaturizer]
