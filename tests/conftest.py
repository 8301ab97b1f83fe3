import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

# One thread per job in tests (inherited by the CLI subprocesses): OpenMP/XGBoost/torch spin-waits
# make a test on a busy 2-core machine take minutes instead of seconds when threads oversubscribe.
os.environ.setdefault("SYNBENCH_THREADS", "1")


@pytest.fixture(autouse=True, scope="session")
def _isolated_cache(tmp_path_factory):
    """Feature and data caches go to a throwaway directory, never the user's home."""
    os.environ["SYNBENCH_CACHE_DIR"] = str(tmp_path_factory.mktemp("cache"))
    # a data directory set with `synbench config` on this machine must not reach the tests
    os.environ["SYNBENCH_CONFIG"] = str(tmp_path_factory.mktemp("config") / "config.toml")
    yield


def benchmark_script(name: str):
    """``benchmarks/<name>.py`` imported as a module (the folder is not a package)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(name, REPO / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def real_data_dir():
    value = os.environ.get("SYNBENCH_DATA_DIR")
    return Path(value) if value and Path(value).is_dir() else None


requires_real_data = pytest.mark.skipif(real_data_dir() is None, reason="SYNBENCH_DATA_DIR with the staged data is not set")
