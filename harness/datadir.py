"""Where data files come from, in this order:

1. an explicit data directory (``--data-dir``, else ``SYNBENCH_DATA_DIR``, else the ``data_dir``
   set once with ``synbench config data-dir PATH`` in the user's config file);
2. the local cache (``SYNBENCH_CACHE_DIR`` or ``~/.cache/synbench``) under ``data/``;
3. a download from the file's upstream URL into the cache, accepted only if its SHA-256 matches
   the manifest.

Every file is checked against the checksum in its dataset's manifest, so a run records exactly
which bytes it read.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import tomllib
import urllib.request
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path

from .errors import DataError, DataUnavailableError

DATA_DIR_ENV = "SYNBENCH_DATA_DIR"
CACHE_DIR_ENV = "SYNBENCH_CACHE_DIR"
OFFLINE_ENV = "SYNBENCH_OFFLINE"  # set to 1 to never try a download
DOWNLOAD_TIMEOUT_S = 20


def cache_dir() -> Path:
    return Path(os.environ.get(CACHE_DIR_ENV) or Path.home() / ".cache" / "synbench")


CONFIG_ENV = "SYNBENCH_CONFIG"  # the config file; default ~/.config/synbench/config.toml


def config_path() -> Path:
    return Path(os.environ.get(CONFIG_ENV) or Path.home() / ".config" / "synbench" / "config.toml").expanduser()


def read_config() -> dict:
    path = config_path()
    if not path.is_file():
        return {}
    try:
        return tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise DataError(f"config file {path} is not valid TOML: {exc}") from None
    except OSError as exc:
        raise DataError(f"cannot read config file {path}: {exc.strerror}") from None


def write_config(values: dict) -> Path:
    """Merge ``values`` into the config file (a flat TOML table of strings)."""
    path = config_path()
    merged = {**read_config(), **values}
    lines = [f"{k} = {_toml_string(str(v))}" for k, v in sorted(merged.items()) if v is not None]
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("\n".join(lines) + "\n")
    except OSError as exc:
        raise DataError(f"cannot write config file {path}: {exc.strerror}") from None
    return path


def _toml_string(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def data_dir_source(explicit: str | os.PathLike | None = None) -> tuple[str | None, str]:
    """The data directory in effect and where it was set."""
    if explicit:
        return str(explicit), "--data-dir"
    if os.environ.get(DATA_DIR_ENV):
        return os.environ[DATA_DIR_ENV], DATA_DIR_ENV
    configured = read_config().get("data_dir")
    if configured:
        return str(configured), f"config file {config_path()}"
    return None, "not set (cache, then download)"


def data_dir(explicit: str | os.PathLike | None = None) -> Path | None:
    value, source = data_dir_source(explicit)
    if not value:
        return None
    path = Path(value).expanduser()
    if not path.is_dir():
        raise DataUnavailableError(f"data directory '{path}' (from {source}) does not exist")
    return path


@lru_cache(maxsize=256)
def _sha256_cached(path: str, size: int, mtime_ns: int) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def sha256(path: Path) -> str:
    st = path.stat()
    return _sha256_cached(str(path), st.st_size, st.st_mtime_ns)


@dataclass(frozen=True)
class DataFile:
    key: str
    path: str  # relative to the data directory
    sha256: str
    url: str = ""
    description: str = ""
    columns: tuple[str, ...] = ()


@dataclass(frozen=True)
class Manifest:
    name: str
    title: str
    files: dict[str, DataFile]
    citation: str = ""
    licence: str = ""
    notes: str = ""
    extra: dict = field(default_factory=dict)

    def file(self, key: str) -> DataFile:
        if key not in self.files:
            raise DataError(f"manifest '{self.name}' has no file '{key}'")
        return self.files[key]


def read_manifest(path_or_name: str | os.PathLike) -> Manifest:
    """Read a TOML manifest, from a path or by file name from the packaged ``datasets/``."""
    path = Path(path_or_name)
    if not path.is_file():
        path = Path(str(resources.files("synbench.manifests").joinpath(str(path_or_name))))
    try:
        raw = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise DataError(f"dataset manifest '{path_or_name}' not found") from None
    except tomllib.TOMLDecodeError as exc:
        raise DataError(f"dataset manifest '{path}' is not valid TOML: {exc}") from None
    try:
        files = {
            f["key"]: DataFile(
                key=f["key"], path=f["path"], sha256=f["sha256"], url=f.get("url", ""),
                description=f.get("description", ""), columns=tuple(f.get("columns", ())),
            )
            for f in raw.get("files", [])
        }
        return Manifest(
            name=raw["name"], title=raw.get("title", ""), files=files, citation=raw.get("citation", ""),
            licence=raw.get("licence", ""), notes=raw.get("notes", ""),
            extra={k: v for k, v in raw.items() if k not in {"name", "title", "files", "citation", "licence", "notes"}},
        )
    except KeyError as exc:
        raise DataError(f"dataset manifest '{path}' lacks the field {exc}") from None


def _download(url: str, dest: Path, expected: str) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=".part-")
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT_S) as response:
            digest = hashlib.sha256()
            for chunk in iter(lambda: response.read(1 << 20), b""):
                digest.update(chunk)
                out.write(chunk)
        if digest.hexdigest() != expected:
            raise DataError(f"download of {url} has checksum {digest.hexdigest()[:12]}…, expected {expected[:12]}…; not used")
        os.replace(tmp, dest)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def resolve(manifest: Manifest, key: str, explicit_dir=None) -> Path:
    """Return a local path to the manifest's file ``key`` whose checksum matches."""
    entry = manifest.file(key)
    tried = []
    root = data_dir(explicit_dir)
    if root is not None:
        candidate = root / entry.path
        if candidate.is_file():
            return _checked(candidate, entry)
        tried.append(str(candidate))
    cached = cache_dir() / "data" / entry.path
    if cached.is_file():
        return _checked(cached, entry)
    tried.append(str(cached))
    if not entry.url:
        raise DataUnavailableError(f"{entry.path} not found (looked in {', '.join(tried)}) and it has no download URL; pass --data-dir")
    if os.environ.get(OFFLINE_ENV, "") not in ("", "0"):
        raise DataUnavailableError(f"{entry.path} not found (looked in {', '.join(tried)}) and {OFFLINE_ENV} forbids downloads; pass --data-dir")
    try:
        _download(entry.url, cached, entry.sha256)
    except DataError:
        raise
    except Exception as exc:
        raise DataUnavailableError(
            f"{entry.path} not found locally and its download failed ({exc.__class__.__name__}: {exc}); "
            f"pass --data-dir or set {DATA_DIR_ENV}"
        ) from None
    return cached


def _checked(path: Path, entry: DataFile) -> Path:
    actual = sha256(path)
    if actual != entry.sha256:
        raise DataError(f"{path} has checksum {actual[:12]}…, but the manifest expects {entry.sha256[:12]}… (different or corrupted data)")
    return path
