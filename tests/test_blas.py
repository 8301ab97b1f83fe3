"""The MKL code-path report and the opt-in shim (synbench.blas, `synbench blas`)."""

import json
import os
import shutil
import subprocess
import sys

import pytest

from synbench import blas


def _cli(*args, env=None):
    return subprocess.run([sys.executable, "-m", "synbench.cli", *args], capture_output=True, text=True, timeout=300,
                          env={**os.environ, **(env or {})})


def _torch_uses_mkl() -> bool:
    import torch  # noqa: F401

    return blas._torch_blas() == "mkl"


def test_the_shim_is_suggested_only_where_mkl_runs_generic_kernels_on_another_vendors_cpu():
    amd_generic = {"cpu_vendor": "AuthenticAMD", "torch_blas": "mkl", "mkl_intel_path": False}
    assert blas.needs_shim(amd_generic)
    assert not blas.needs_shim({**amd_generic, "mkl_intel_path": True})  # already fixed
    assert not blas.needs_shim({**amd_generic, "cpu_vendor": "GenuineIntel"})
    assert not blas.needs_shim({**amd_generic, "torch_blas": "open"})  # an OpenBLAS torch build
    assert not blas.needs_shim({"cpu_vendor": "AuthenticAMD"})  # torch never loaded: nothing to say


def test_the_report_says_whether_bf16_is_native_as_the_models_decide_it():
    """Whether bf16 is the fast path is torch's own dispatch rule, asked at run time: machines
    differ (AVX-512 or AMX one session, AVX2 alone the next)."""
    import torch

    from synbench.neural import native_bf16

    assert blas.status()["bf16_native"] is native_bf16("cpu") is bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    assert native_bf16("meta") is True  # not the CPU: an accelerator's autocast is its fast path
    res = _cli("blas")
    assert res.returncode == 0, res.stderr
    assert ("bf16 matmuls: native" if native_bf16("cpu") else "bf16 matmuls: not native") in res.stdout


def test_a_missing_compiler_is_one_clear_error(tmp_path):
    res = _cli("blas", "--build-shim", env={"CC": "no-such-cc", "SYNBENCH_CACHE_DIR": str(tmp_path)})
    assert res.returncode != 0
    assert "C compiler 'no-such-cc' ($CC) not found" in res.stderr and "Traceback" not in res.stderr
    assert not (tmp_path / "blas" / blas.SHIM_NAME).exists()


@pytest.mark.skipif(shutil.which("cc") is None and shutil.which("gcc") is None, reason="no C compiler")
def test_the_shim_switches_mkl_to_its_fast_kernels_and_the_job_record_says_so(tmp_path):
    if not _torch_uses_mkl():
        pytest.skip("this torch build does not use MKL")
    built = _cli("blas", "--build-shim", env={"SYNBENCH_CACHE_DIR": str(tmp_path / "cache")})
    assert built.returncode == 0, built.stderr
    shim = tmp_path / "cache" / "blas" / blas.SHIM_NAME
    assert shim.exists() and f"LD_PRELOAD={shim}" in built.stdout
    assert blas.build_shim(shim.parent) == shim  # built once; a second call reuses it

    loaded = _cli("blas", env={"LD_PRELOAD": str(shim)})
    assert loaded.returncode == 0 and "MKL code path: fast (Intel) kernels" in loaded.stdout and str(shim) in loaded.stdout
    plain = _cli("blas", env={"LD_PRELOAD": ""})
    if blas.cpu_vendor() == "GenuineIntel":
        assert "fast (Intel) kernels" in plain.stdout
    else:  # the generic path is reported, with what to do about it
        assert "MKL code path: generic kernels" in plain.stdout and "synbench blas --build-shim" in plain.stdout

    # a torch model's job stores the code path that computed it
    store = tmp_path / "store"
    res = _cli("run", "-d", "mock", "-m", "deepsynergy", "--profile", "smoke", "--folds", "0", "--no-constant",
               "--out", str(store), env={"LD_PRELOAD": str(shim)})
    assert res.returncode == 0, res.stderr
    records = list(store.glob("jobs/*/record.json"))
    assert records
    for record in records:
        stored = json.loads(record.read_text())["provenance"]["machine"]["blas"]
        assert stored["torch_blas"] == "mkl" and stored["mkl_intel_path"] is True and stored["shim"] == str(shim)
