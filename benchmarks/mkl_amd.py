"""How much MKL's generic code path costs the torch models on an AMD CPU, and what the shim gives back.

PyTorch's float32 matmuls run in Intel's MKL, which takes its fast kernels only on a CPU it believes
is Intel's (see ``synbench/harness/blas.py``). This script runs the same work in child processes with
and without the shim preloaded (``LD_PRELOAD``), the order rotating over ``--rounds`` rounds so a slow
spell of the shared machine hits every variant alike, and reports each variant's median ratio to the
generic path (>1 = faster):

- ``matmul``: float32 ``x @ W`` at the shape of DeepSynergy's second layer on the reference features
  (a batch of 64 rows, 8,182 x 4,096), in GFLOPS;
- ``deepsynergy`` / ``marsy``: one published-size network built by the plugin's own function, trained
  with the plugin's optimiser (DeepSynergy's ``cpu`` Adam, MARSY's Adamax) for ``--steps`` minibatches
  of 64 rows of the reference input width (D1: 256-bit fingerprints + 217 descriptors per drug, 500
  genes), in milliseconds per step, three ways: ``generic`` (MKL's generic kernels, torch's default
  optimiser kernel), ``shim`` and ``shim+fused`` (the shim and the fused optimiser kernel,
  ``synbench.neural.optimiser``; Adamax has none, so MARSY's two shim rows do the same work);
- agreement: the largest difference between the two paths' outputs after the same training steps
  from the same initial weights on the same rows, relative to the outputs' spread, beside the
  rounding floor: the same difference for the generic path run twice on inputs one float32 ulp
  apart (Adam-type optimisers turn rounding-sized gradients into full-sized steps, so the floor
  grows with the steps; a wrong kernel would show as a difference far above it).

    python benchmarks/mkl_amd.py                 # builds the shim in the cache directory if needed
    python benchmarks/mkl_amd.py --rounds 5 --steps 20 --out /tmp/mkl_amd.json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

N_DRUG = 256 + 217  # per drug: fingerprint bits + RDKit descriptors (the reference 'chem:n_bits=256')
N_GENES = 500  # the reference 'expression:n_genes=500'
BATCH = 64  # DeepSynergy's and MARSY's published batch size


def _child(work: str, steps: int, out: str) -> None:
    """Runs one measurement in this process (with or without the shim, as the parent launched it)."""
    import numpy as np
    import torch

    torch.set_num_threads(1)  # as each stream of the reference runs
    from synbench import blas

    result = {"mkl_intel_path": blas.mkl_intel_path()}
    gen = torch.Generator().manual_seed(0)
    if work == "matmul":
        x, w = torch.randn(BATCH, 8182, generator=gen), torch.randn(8182, 4096, generator=gen)
        for _ in range(3):
            x @ w
        start, n = time.perf_counter(), 20
        for _ in range(n):
            x @ w
        result["gflops"] = 2 * BATCH * 8182 * 4096 / ((time.perf_counter() - start) / n) / 1e9
        result["out"] = (x[:4] @ w).numpy()[:, :256].ravel().tolist()
    else:
        from synbench.neural import optimiser as make_optimiser, optimiser_kernel

        torch.manual_seed(0)
        if work == "deepsynergy":
            from synbench.plugins.models.deepsynergy import DeepSynergyModel

            model = DeepSynergyModel(optimizer="adam", lr=1e-4)
            net = model._network(2 * N_DRUG + N_GENES, "cpu")
            optimiser = make_optimiser("Adam", net.parameters(), lr=1e-4)
            inputs = (torch.randn(steps * BATCH, 2 * N_DRUG + N_GENES, generator=gen),)
            n_out = 1
        else:
            from synbench.plugins.models.marsy import _marsy_network

            net = _marsy_network(2 * N_DRUG + N_GENES + 1, 2 * N_DRUG, 3, (2048, 4096), (1024, 2048), (4096, 1024), 0.2, 0.5)
            optimiser = make_optimiser("Adamax", net.parameters(), lr=1e-3, betas=(0.9, 0.999), eps=1e-7)
            inputs = (torch.randn(steps * BATCH, 2 * N_DRUG + N_GENES + 1, generator=gen), torch.randn(steps * BATCH, 2 * N_DRUG, generator=gen))
            n_out = 3
        target = torch.randn(steps * BATCH, n_out, generator=gen)
        if os.environ.get("MKL_AMD_ULP"):  # the rounding floor: the same work on inputs one float32 ulp apart
            inputs = tuple(torch.nextafter(x, torch.full_like(x, float("inf"))) for x in inputs)
        loss_fn = torch.nn.MSELoss()
        times = []
        net.train()
        for step in range(steps):
            rows = slice(step * BATCH, (step + 1) * BATCH)
            start = time.perf_counter()
            loss = loss_fn(net(*(x[rows] for x in inputs)), target[rows])
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            times.append(time.perf_counter() - start)
        result["ms_per_step"] = 1000 * statistics.median(times[2:] or times)
        result["optimiser"] = optimiser_kernel(optimiser)
        net.eval()
        with torch.no_grad():
            result["out"] = net(*(x[:256] for x in inputs)).numpy().ravel().tolist()
    Path(out).write_text(json.dumps(result))


def _run(work: str, steps: int, shim: str | None, ulp: bool = False, fused: bool = False) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("LD_PRELOAD", "MKL_AMD_ULP")}
    env["SYNBENCH_FUSED_OPTIMISER"] = "1" if fused else "0"
    if shim:
        env["LD_PRELOAD"] = shim
    if ulp:
        env["MKL_AMD_ULP"] = "1"
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as fh:
        out = fh.name
    try:
        subprocess.run([sys.executable, __file__, "--child", work, "--steps", str(steps), "--child-out", out], env=env, check=True)
        return json.loads(Path(out).read_text())
    finally:
        Path(out).unlink(missing_ok=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=12, help="training steps per network measurement")
    parser.add_argument("--work", default="matmul,deepsynergy,marsy")
    parser.add_argument("--out", type=Path)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--child-out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(args.child, args.steps, args.child_out)
        return

    import numpy as np

    from synbench import blas
    from synbench.datadir import cache_dir

    shim = str(blas.build_shim(cache_dir() / "blas"))
    report = {"cpu_vendor": blas.cpu_vendor(), "rounds": args.rounds, "steps": args.steps, "work": {}}
    print(f"cpu {report['cpu_vendor']}; shim {shim}; {args.rounds} rounds, order alternating", flush=True)
    modes = {"generic": (None, False), "shim": (shim, False), "shim+fused": (shim, True)}
    for work in args.work.split(","):
        names = ("generic", "shim") if work == "matmul" else tuple(modes)
        runs = {name: [] for name in names}
        for r in range(args.rounds):
            for name in names[r % len(names):] + names[:r % len(names)]:  # the order rotates each round
                shim_path, fused = modes[name]
                runs[name].append(_run(work, args.steps, shim_path, fused=fused))
        assert not any(x["mkl_intel_path"] for x in runs["generic"]) or report["cpu_vendor"] == "GenuineIntel"
        assert all(x["mkl_intel_path"] for x in runs["shim"]), "the shim did not take effect"
        key = "gflops" if work == "matmul" else "ms_per_step"
        row = {"unit": key}
        for name in names:
            row[name] = statistics.median(x[key] for x in runs[name])
            if name != "generic":
                pairs = list(zip(runs["generic"], runs[name]))
                row[f"{name} speedup"] = statistics.median((s[key] / g[key]) if key == "gflops" else (g[key] / s[key]) for g, s in pairs)
        a = np.asarray(runs["generic"][0]["out"])
        row["largest_difference_over_sd"] = {name: float(np.max(np.abs(a - np.asarray(runs[name][0]["out"]))) / (np.std(a) or 1.0))
                                             for name in names if name != "generic"}
        if work != "matmul":  # how far the same path drifts when its inputs move by one float32 ulp
            c = np.asarray(_run(work, args.steps, None, ulp=True)["out"])
            row["rounding_floor_over_sd"] = float(np.max(np.abs(a - c)) / (np.std(a) or 1.0))
            row["optimiser"] = {name: runs[name][0]["optimiser"] for name in names}
        report["work"][work] = row
        shown = "  ".join(f"{name} {row[name]:7.1f}" + (f" (x{row[name + ' speedup']:.2f})" if name != "generic" else "") for name in names)
        drift = ", ".join(f"{name} {d:.1e}" for name, d in row["largest_difference_over_sd"].items())
        floor = f"; inputs 1 ulp apart: {row['rounding_floor_over_sd']:.1e}" if "rounding_floor_over_sd" in row else ""
        print(f"{work:12s} {key}: {shown}; outputs differ from generic by at most (sd) {drift}{floor}", flush=True)
    if args.out:
        args.out.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
