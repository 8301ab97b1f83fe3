"""The compute the reference results cost, read from their stored job records.

For every job record under ``results/`` (or the stores given): featurize + search + fit + predict
seconds, times the threads the job ran on, summed per store, protocol and model, in CPU-hours.
It also lists, for the torch models, the seconds per training epoch of the final fit where the
record says how many epochs ran (``training.epochs_run`` or ``epochs``, both phases where a
model has two), and how many jobs record why they stopped and how many ended at their cap, so a profile change shows as a ratio against
older records of the same model. Wall time is not CPU time: a job stream on one thread of a shared
two-core machine waits for the other stream, so these are upper bounds of the work itself. A job
computed on a GPU (``resources.device``) counts its seconds as GPU-hours instead, not as CPU-hours
times the GPU machine's threads.

    python benchmarks/cpu_hours.py                       # every store under results/
    python benchmarks/cpu_hours.py results/d1-oneil-cpu --markdown
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pandas as pd

from synbench.runner import phase_seconds, record_device


def job_rows(stores: list[Path]) -> pd.DataFrame:
    rows = []
    for store in stores:
        for path in sorted((store / "jobs").glob("*/record.json")):
            record = json.loads(path.read_text())
            training = record.get("training") or {}
            # work of earlier processes of a resumed job included (kept search trials, resumed epochs)
            phases = phase_seconds(record)
            seconds, fit = sum(phases.values()), phases["fit"]
            threads = int((record.get("resources") or {}).get("threads") or 1)
            epochs = (training.get("epochs_run") or training.get("epochs")) if isinstance(training, dict) else None
            device = record_device(record)
            on_cpu = device == "cpu"
            rows.append({"store": store.name, "model": record["job"]["model"], "protocol": record.get("protocol", "table1 (v0)"),
                         "profile": record["job"]["profile"], "device": device,
                         "cpu_hours": seconds * threads / 3600 if on_cpu else 0.0,
                         "gpu_hours": 0.0 if on_cpu else seconds / 3600,
                         "fit_seconds": fit,
                         "epochs": epochs if isinstance(epochs, (int, float)) else None,
                         "stopped": training.get("stopped") if isinstance(training, dict) else None})
    return pd.DataFrame(rows)


def summarise(jobs: pd.DataFrame) -> pd.DataFrame:
    jobs = jobs.assign(s_per_epoch=jobs["fit_seconds"] / jobs["epochs"].where(jobs["epochs"] > 0))
    grouped = jobs.groupby(["store", "protocol", "model", "device"], dropna=False)
    table = grouped.agg(jobs=("cpu_hours", "size"), cpu_hours=("cpu_hours", "sum"), gpu_hours=("gpu_hours", "sum"),
                        fit_s_per_epoch=("s_per_epoch", "median"),
                        stop_recorded=("stopped", lambda s: int(s.notna().sum())),
                        capped=("stopped", lambda s: int((s == "cap").sum())))
    return table.reset_index().sort_values(["store", "protocol", "cpu_hours"], ascending=[True, True, False])


def markdown(df: pd.DataFrame) -> str:
    def cell(v):
        return f"{v:.2f}" if isinstance(v, float) else str(v)

    lines = ["| " + " | ".join(map(str, df.columns)) + " |", "|" + "---|" * len(df.columns)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join(lines)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("stores", nargs="*", type=Path, help="result stores (default: every store under results/)")
    parser.add_argument("--markdown", action="store_true", help="print Markdown tables")
    args = parser.parse_args(argv)
    root = Path(__file__).resolve().parent.parent / "results"
    stores = args.stores or sorted(p.parent for p in root.glob("*/store.json"))
    jobs = job_rows(stores)
    if jobs.empty:
        raise SystemExit("error: no job records in " + ", ".join(map(str, stores)))
    table = summarise(jobs)
    totals = table.groupby("store")["cpu_hours"].sum().round(1)
    fmt = markdown if args.markdown else (lambda df: df.to_string(index=False))
    print(fmt(table))
    print()
    print(fmt(totals.reset_index()))
    on_gpu = jobs["device"] != "cpu"
    print(f"\nall stores: {jobs['cpu_hours'].sum():.1f} CPU-hours over {int((~on_gpu).sum())} jobs"
          + (f"; {jobs['gpu_hours'].sum():.2f} GPU-hours over {int(on_gpu.sum())} jobs" if on_gpu.any() else ""))


if __name__ == "__main__":
    main()
