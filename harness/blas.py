"""Which matrix-multiply code path PyTorch runs on this CPU, and a shim that fixes MKL's on AMD.

PyTorch's CPU wheels do float32 matmuls with Intel's MKL, and MKL picks its fast (AVX-512) kernels
only when it believes the CPU is Intel's. On an AMD EPYC with AVX-512 it takes a generic path:
`benchmarks/mkl_amd.py` measures a float32 matmul at the shape of DeepSynergy's second layer x2.08
faster, and a DeepSynergy training step x1.38 faster, once MKL is told the truth about the
instructions the CPU has. bfloat16 matmuls go through oneDNN, which is not affected.

MKL asks one exported function, `mkl_serv_intel_cpu_true`, whether the CPU is Intel's. The shim is
a two-line shared library that answers yes; loaded first (`LD_PRELOAD`), it takes that function's
place. MKL then dispatches on the instruction sets the CPU reports, which AMD's Zen 4 implements in
full. The arithmetic is still float32; only the kernels' summation order changes, so results agree
to float32 rounding (the benchmark reports the largest difference it sees).

It is opt-in: `synbench blas --build-shim` compiles it (with the system C compiler) into the
cache directory and prints the `LD_PRELOAD=...` line to use. Every job record stores what this
module reports under `provenance.machine.blas`, so a board says which code path computed it.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import subprocess
from functools import lru_cache
from pathlib import Path

from .errors import ConfigError

SHIM_NAME = "libsynbench_mkl_intel_path.so"
SHIM_SOURCE = """\
/* synbench: tell Intel MKL the CPU may use its fast kernels (see synbench/harness/blas.py). */
int mkl_serv_intel_cpu_true(void) { return 1; }
"""


@lru_cache(maxsize=1)  # every job record asks; the answer cannot change within a process
def cpu_vendor() -> str | None:
    """The CPU vendor string from /proc/cpuinfo ('AuthenticAMD', 'GenuineIntel'), None if unknown."""
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("vendor_id"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


@lru_cache(maxsize=1)
def _torch_blas() -> str | None:
    import torch

    config = torch.__config__.show()
    for line in config.splitlines():
        if "BLAS_INFO=" in line:
            return line.split("BLAS_INFO=", 1)[1].split(",", 1)[0].strip()
    return None


def mkl_intel_path() -> bool | None:
    """Whether MKL, as loaded in this process, will take its Intel code path (None: no MKL loaded).

    Looked up in the global symbol scope first, so a preloaded shim answers, as it does for MKL itself;
    torch loads its libraries privately, so without a shim the answer comes from torch's own copy.
    """
    for library in (None, _torch_cpu_library()):
        try:
            answer = ctypes.CDLL(library).mkl_serv_intel_cpu_true
        except (AttributeError, OSError, TypeError):  # no such symbol; no library; a platform without dlopen(NULL)
            continue
        answer.restype = ctypes.c_int
        return bool(answer())
    return None


def _torch_cpu_library() -> str | None:
    import sys

    torch = sys.modules.get("torch")
    if torch is None:
        return None
    found = sorted((Path(torch.__file__).parent / "lib").glob("libtorch_cpu.*"))
    return str(found[0]) if found else None


def status() -> dict:
    """What a job record stores: the CPU vendor, torch's BLAS, MKL's code path, the shim if loaded,
    and whether bf16 matmuls are native here (the models' bf16 speed settings run in fp32 where not)."""
    import sys

    info = {"cpu_vendor": cpu_vendor()}
    if "torch" in sys.modules:  # never import torch just to describe it
        from .neural import native_bf16

        info["torch_blas"] = _torch_blas()
        info["mkl_intel_path"] = mkl_intel_path()
        info["bf16_native"] = native_bf16("cpu")
    preload = [p for p in os.environ.get("LD_PRELOAD", "").split(":") if p.endswith(SHIM_NAME)]
    info["shim"] = preload[0] if preload else None
    return info


def needs_shim(info: dict) -> bool:
    return info.get("torch_blas") == "mkl" and info.get("cpu_vendor") not in (None, "GenuineIntel") and info.get("mkl_intel_path") is False


def build_shim(directory: Path) -> Path:
    """Compile the shim into `directory` (idempotent) and return its path."""
    wanted = os.environ.get("CC")
    compiler = shutil.which(wanted) if wanted else (shutil.which("cc") or shutil.which("gcc") or shutil.which("clang"))
    if compiler is None:
        raise ConfigError(f"C compiler '{wanted}' ($CC) not found" if wanted else
                          "no C compiler found (install gcc or set $CC) to build the MKL shim")
    directory.mkdir(parents=True, exist_ok=True)
    source, target = directory / "mkl_intel_path.c", directory / SHIM_NAME
    if source.exists() and source.read_text() == SHIM_SOURCE and target.exists():
        return target
    source.write_text(SHIM_SOURCE)
    partial = target.with_suffix(".so.partial")
    done = subprocess.run([compiler, "-shared", "-fPIC", "-O2", "-o", str(partial), str(source)], capture_output=True, text=True)
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["(no output)"])[-1]
        raise ConfigError(f"building the MKL shim with {compiler} failed: {last}")
    partial.replace(target)
    return target
