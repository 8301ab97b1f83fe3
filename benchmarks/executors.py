"""Speed-up of parallel executors over one worker, on the cheap baselines.

Runs the same grid into fresh temporary stores with `--executor inline` (one worker),
`--executor process --jobs N` and `--executor ray --jobs N`, every job on one thread
(SYNBENCH_THREADS=1), checks the metrics are identical, and prints wall times and speed-ups.
`inline-all-cores` (one worker using every core) is timed too: multi-threaded XGBoost sums its
histograms in another order, so its metrics may differ from one thread's in the last digits, and
the report gives the largest difference. Features are computed once beforehand (cache warm for all).

    python benchmarks/executors.py --data-dir ../shared/data --jobs 2
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", default="d1-oneil")
    ap.add_argument("--models", default="lasso,treecomb")
    ap.add_argument("--featurizers", default="chem:n_bits=256,expression:n_genes=500")
    ap.add_argument("--profile", default="smoke")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--executors", default="inline,process,ray,inline-all-cores")
    ap.add_argument("--data-dir", default=None)
    args = ap.parse_args()

    from synbench.store import Store

    base = [sys.executable, "-m", "synbench.cli", "run", "-d", args.dataset, "-m", args.models, "--profile", args.profile,
            "--no-constant"]
    for spec in args.featurizers.split(","):
        base += ["-f", spec]
    if args.data_dir:
        base += ["--data-dir", args.data_dir]
    results, metrics = {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        # warm the feature cache so every executor starts from the same state
        subprocess.run(base + ["--folds", "0", "-t", next(iter(_targets(args))), "--out", str(Path(tmp) / "warm")],
                       check=True, capture_output=True)
        for executor in args.executors.split(","):
            out = Path(tmp) / executor
            name = executor.removesuffix("-all-cores")
            extra = ["--executor", name] + (["--jobs", str(args.jobs)] if name != "inline" else [])
            env = {k: v for k, v in os.environ.items() if k != "SYNBENCH_THREADS"}
            if not executor.endswith("-all-cores"):
                env["SYNBENCH_THREADS"] = "1"
            t0 = time.perf_counter()
            res = subprocess.run(base + extra + ["--out", str(out)], capture_output=True, text=True, env=env)
            wall = time.perf_counter() - t0
            if res.returncode:
                sys.exit(f"{executor} failed: {res.stderr.strip().splitlines()[-1]}")
            results[executor] = wall
            frame = Store(out, create=False).metrics_frame()
            metrics[executor] = frame.set_index(["job_id", "metric"])["value"].sort_index()
    ref = metrics.get("inline")
    report = {
        "grid": {"dataset": args.dataset, "models": args.models, "profile": args.profile, "jobs": args.jobs,
                 "n_jobs": int(len(next(iter(metrics.values())).index.get_level_values(0).unique()))},
        "wall_seconds": {k: round(v, 1) for k, v in results.items()},
        "speedup_vs_inline": {k: round(results["inline"] / v, 2) for k, v in results.items()} if "inline" in results else {},
        "identical_metrics": {k: bool(ref is not None and v.equals(ref)) for k, v in metrics.items()},
        "max_abs_metric_difference": {k: float((v - ref).abs().max()) for k, v in metrics.items()} if ref is not None else {},
    }
    print(json.dumps(report, indent=1))


def _targets(args):
    from synbench import runner

    return runner.load_dataset(args.dataset, args.data_dir).targets


if __name__ == "__main__":
    main()
