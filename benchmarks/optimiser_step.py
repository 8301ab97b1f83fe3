"""The optimiser's share of a torch model's training step: torch's default kernel against a single-pass one.

``synbench.neural.optimiser`` builds every torch model's optimiser with torch's fused kernel where
torch has one (Adam, AdamW, SGD, Adagrad) and otherwise, for a network of a million weights or more,
compiles its step with ``torch.compile`` (MARSY's Adamax); ``SYNBENCH_FUSED_OPTIMISER=0`` keeps
torch's default kernels. This script times one ``optimiser.step()`` on the weights of each
published network at the reference input widths (D1: 256-bit fingerprints + 217 descriptors per
drug, 500 genes), built by the plugins' own functions, for the default and the single-pass kernel
alternating over ``--rounds`` rounds (one thread, as each stream of the reference runs; the first,
compiling step is left out), and checks that both kernels leave the same weights after 20 steps
from the same start with the same gradients (largest difference relative to the weights' spread).

    python benchmarks/optimiser_step.py --out /tmp/optimiser_step.json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

N_DRUG = 256 + 217
N_GENES = 500


def networks():
    from synbench.plugins.models.deepsynergy import DeepSynergyModel
    from synbench.plugins.models.marsy import _marsy_network

    return {
        # the cpu profile's Adam (the published SGD has a fused kernel too)
        "deepsynergy": (lambda: DeepSynergyModel()._network(2 * N_DRUG + N_GENES, "cpu"), ("Adam", {"lr": 1e-4}), ("SGD", {"lr": 1e-5, "momentum": 0.5})),
        # MARSY's published Adamax has no fused kernel in torch: its step is compiled
        "marsy": (lambda: _marsy_network(2 * N_DRUG + N_GENES + 1, 2 * N_DRUG, 3, (2048, 4096), (1024, 2048), (4096, 1024), 0.2, 0.5),
                  ("Adamax", {"lr": 1e-3, "betas": (0.9, 0.999), "eps": 1e-7})),
    }


def _time_step(opt, n=5) -> float:
    opt.step()
    start = time.perf_counter()
    for _ in range(n):
        opt.step()
    return 1000 * (time.perf_counter() - start) / n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()

    import torch

    from synbench.neural import FUSED_ENV, optimiser, optimiser_kernel

    torch.set_num_threads(1)
    report = {}
    for model, (build, *choices) in networks().items():
        torch.manual_seed(0)
        net = build()
        weights = [p for p in net.parameters()]
        for p in weights:
            p.grad = torch.randn_like(p) * 1e-3
        n_weights = sum(p.numel() for p in weights)
        for name, options in choices:
            times = {"default": [], "fused": []}
            single_pass = {}
            for r in range(args.rounds):
                for kernel in (("default", "fused") if r % 2 == 0 else ("fused", "default")):
                    os.environ[FUSED_ENV] = "1" if kernel == "fused" else "0"
                    made = optimiser(name, weights, **options)
                    times[kernel].append(_time_step(made))
                    if kernel == "fused":
                        single_pass = optimiser_kernel(made)
            os.environ.pop(FUSED_ENV, None)
            # the same 20 steps from the same start with each kernel
            start = [p.detach().clone() for p in weights]
            after = {}
            for kernel in ("default", "fused"):
                with torch.no_grad():
                    for p, s in zip(weights, start):
                        p.copy_(s)
                os.environ[FUSED_ENV] = "1" if kernel == "fused" else "0"
                opt = optimiser(name, weights, **options)
                for step in range(20):
                    gen = torch.Generator().manual_seed(step)
                    for p in weights:
                        p.grad = torch.randn(p.shape, generator=gen) * 1e-3
                    opt.step()
                after[kernel] = [p.detach().clone() for p in weights]
            os.environ.pop(FUSED_ENV, None)
            spread = float(torch.cat([s.ravel() for s in start]).std())
            diff = max(float((a - b).abs().max()) for a, b in zip(after["default"], after["fused"])) / spread
            row = {"weights": n_weights, "kernel": single_pass, "default_ms": statistics.median(times["default"]),
                   "single_pass_ms": statistics.median(times["fused"]),
                   "speedup": statistics.median(d / f for d, f in zip(times["default"], times["fused"])),
                   "largest_difference_over_sd": diff}
            report[f"{model} {name}"] = row
            print(f"{model:12s} {n_weights / 1e6:5.1f} M weights  {name} default {row['default_ms']:5.0f} ms  {single_pass} "
                  f"{row['single_pass_ms']:5.0f} ms  x{row['speedup']:.1f}  weights after 20 steps differ by at most {diff:.1e} sd", flush=True)
    if args.out:
        args.out.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
