"""Data resolution: explicit directory, then cache, then a checksum-verified download."""

import hashlib
import http.server
import os
import threading
from functools import partial

import pytest

from synbench.datadir import DataFile, Manifest, read_manifest, resolve
from synbench.errors import DataError, DataUnavailableError

PAYLOAD = b"drug,smiles\nA,CCO\n"
SHA = hashlib.sha256(PAYLOAD).hexdigest()


@pytest.fixture()
def server(tmp_path):
    root = tmp_path / "www"
    root.mkdir()
    (root / "good.csv").write_bytes(PAYLOAD)
    (root / "tampered.csv").write_bytes(PAYLOAD + b"B,CCN\n")
    handler = partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *a: None
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


def _manifest(url):
    return Manifest("toy", "toy", {"f": DataFile("f", "toy/file.csv", SHA, url)})


@pytest.fixture()
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SYNBENCH_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("SYNBENCH_DATA_DIR", raising=False)
    monkeypatch.delenv("SYNBENCH_OFFLINE", raising=False)
    return tmp_path / "cache"


def test_explicit_dir_wins(tmp_path, cache, server):
    d = tmp_path / "data" / "toy"
    d.mkdir(parents=True)
    (d / "file.csv").write_bytes(PAYLOAD)
    assert resolve(_manifest(server + "/good.csv"), "f", tmp_path / "data") == d / "file.csv"
    assert not (cache / "data").exists(), "nothing is downloaded when the data directory has the file"


def test_download_into_cache_then_reuse(cache, server):
    path = resolve(_manifest(server + "/good.csv"), "f")
    assert path == cache / "data" / "toy" / "file.csv" and path.read_bytes() == PAYLOAD
    assert resolve(_manifest("http://127.0.0.1:9/unreachable"), "f") == path  # the cache is used


def test_tampered_download_is_rejected_and_not_cached(cache, server):
    with pytest.raises(DataError, match="checksum"):
        resolve(_manifest(server + "/tampered.csv"), "f")
    assert not (cache / "data" / "toy" / "file.csv").exists()


def test_failed_download_says_what_to_do(cache, server):
    with pytest.raises(DataUnavailableError, match="pass --data-dir"):
        resolve(_manifest(server + "/missing.csv"), "f")


def test_offline_and_missing_data_dir(cache, tmp_path, monkeypatch):
    monkeypatch.setenv("SYNBENCH_OFFLINE", "1")
    with pytest.raises(DataUnavailableError, match="forbids downloads"):
        resolve(_manifest("http://127.0.0.1:9/x"), "f")
    with pytest.raises(DataUnavailableError, match="does not exist"):
        resolve(_manifest(""), "f", tmp_path / "nope")


def test_checksum_mismatch_in_data_dir(tmp_path, cache):
    d = tmp_path / "data" / "toy"
    d.mkdir(parents=True)
    (d / "file.csv").write_bytes(b"something else")
    with pytest.raises(DataError, match="different or corrupted"):
        resolve(_manifest(""), "f", tmp_path / "data")


def test_manifests_parse_and_bad_manifest(tmp_path):
    m = read_manifest("d1_oneil.toml")
    assert m.name == "d1-oneil" and {"labels", "smiles", "cells", "expression_zscore"} <= set(m.files)
    assert all(len(f.sha256) == 64 for f in m.files.values())
    bad = tmp_path / "bad.toml"
    bad.write_text("name = [unclosed")
    with pytest.raises(DataError, match="not valid TOML"):
        read_manifest(bad)
    (tmp_path / "nofield.toml").write_text('title = "x"\n')
    with pytest.raises(DataError, match="lacks the field"):
        read_manifest(tmp_path / "nofield.toml")
