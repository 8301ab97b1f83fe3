"""Cost of the BERT baseline's training strategies (frozen, LoRA, full fine-tuning) on D1 fold 0.

Each strategy runs in its own forked process (so the peak memory is its own), with the `cpu`
profile's settings (`-p strategy=...` as on the command line), and fits the plugin itself
(``BertBaseline.fit``, nothing re-implemented) on a fixed random sample of ``--batches`` x
batch-size inner-training rows for one epoch, without validation. Then, projected to one epoch
over all inner-training rows of the fold:

- full / lora: the epoch time scales with the rows (every step is one batch of sequences);
- frozen: the one-off encoding of every training row (in both drug orders) scales with the
  rows, and each later epoch trains only the head on the cached vectors (measured directly).
  The benchmark encodes into a fresh temporary cache; in a real run the vectors are cached on
  disk, so only the first fold of a dataset pays for most of the encoding.

The encoding time per sequence is also what one prediction costs (a forward pass), which gives
the validation pass per epoch and the test predictions. Columns: trainable and total parameters,
seconds per training batch, projected epoch and fold time, peak resident memory of the process
(MiB, as the runner records it with ``synbench.provenance.PeakMemory``). Timings on a shared
machine are noisy; compare strategies by the ratios printed, measured in the same run.

    SYNBENCH_THREADS=1 python benchmarks/bert_strategies.py --data-dir ../shared/data
    SYNBENCH_THREADS=1 python benchmarks/bert_strategies.py --data-dir ../shared/data --batches 200
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import tempfile
import time


def measure(strategy: str, train, sample, queue, overrides: dict) -> None:
    from synbench import provenance
    from synbench.plugins.models.bert import BertBaseline
    from synbench.runner import resolve_profile

    os.environ["SYNBENCH_CACHE_DIR"] = tempfile.mkdtemp(prefix="bert-strategies-")  # frozen: encode, never reuse
    params = {**resolve_profile(BertBaseline, "cpu").params, **overrides, "strategy": strategy, "epochs": 1,
              "patience": None, "rows_per_epoch": None}
    model = BertBaseline(**params)
    with provenance.PeakMemory() as memory:
        t0, c0 = time.perf_counter(), time.process_time()
        model.fit(train.subset(train.rows.index[sample]))
        seconds, cpu_seconds = time.perf_counter() - t0, time.process_time() - c0
    log = model.training_log_
    queue.put({"strategy": strategy, "seconds": seconds, "cpu_seconds": cpu_seconds, "epoch_seconds": log["epoch_seconds"][0],
               "encode_seconds": log.get("encode_seconds"), "trainable": log["trainable_parameters"],
               "total": log["total_parameters"], "peak_mb": memory.peak_mb, "start_mb": memory.start_mb,
               "batch_size": int(model.batch_size), "max_length": int(model.max_length),
               "views": 2 if model.shuffle_drugs else 1, "truncated": log["truncated_share"]})


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--fold", type=int, default=0)
    ap.add_argument("--batches", type=int, default=8, help="timed training batches per strategy")
    ap.add_argument("--strategies", default="frozen,lora,full")
    ap.add_argument("-p", "--param", action="append", default=[], help="override a cpu-profile parameter, e.g. max_length=256")
    args = ap.parse_args()

    import numpy as np

    from synbench import runner
    from synbench.data import Batch
    from synbench.features import featurize
    from synbench.plugins.models.bert import BertBaseline
    from synbench.runner import n_threads, resolve_profile
    from synbench.splits import fold_ids, make_splits

    overrides = {}
    for item in args.param:
        key, value = item.split("=", 1)
        overrides[key] = type(BertBaseline().get_params()[key])(value) if BertBaseline().get_params()[key] is not None else int(value)
    cpu = {**resolve_profile(BertBaseline, "cpu").params, **overrides}
    data = runner.load_dataset("d1-oneil", args.data_dir)
    features = {"description": featurize(data, "description")}
    full = Batch(data.entity_rows(), features, "regression", data.labels("loewe").to_numpy(dtype=float), "loewe")
    ids = fold_ids(make_splits(data, "published"), args.fold)
    train = full.subset(ids["train"])
    n_train, n_valid, n_test = len(ids["train"]), len(ids["valid"]), len(ids["test"])
    batch = int(cpu.get("batch_size", 32))
    rows = min(n_train, args.batches * batch)
    sample = np.sort(np.random.default_rng(0).choice(n_train, rows, replace=False))

    results = []
    ctx = mp.get_context("fork")
    for strategy in args.strategies.split(","):
        queue = ctx.Queue()
        child = ctx.Process(target=measure, args=(strategy, train, sample, queue, overrides))
        child.start()
        child.join()  # the child's result is a small dict: joining first cannot deadlock
        if child.exitcode != 0:  # e.g. killed by the kernel for memory (full fine-tuning at 512 tokens, batch 32: >13 GB)
            print(f"{strategy}: the measuring process ended with exit code {child.exitcode}; left out")
            continue
        results.append(queue.get())

    valid_rows = min(n_valid, int(cpu["valid_rows"])) if cpu.get("valid_rows") else n_valid
    print(f"D1 fold {args.fold}: {n_train:,} inner training rows, {n_valid:,} validation ({valid_rows:,} scored per "
          f"epoch), {n_test:,} test; cpu profile, max_length {results[0]['max_length']}, batch {batch}, "
          f"{n_threads()} thread(s); timed on {rows:,} rows ({rows // batch} batches); training rows truncated "
          f"{results[0]['truncated']:.2%}\n")
    print("| strategy | trainable params | total params | s / batch | epoch (all rows) | vs full | "
          "one-off encoding | fold at 1 epoch | each further epoch | fit CPU s (vs full) | peak MiB |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    full_cpu = next((r["cpu_seconds"] for r in results if r["strategy"] == "full"), None)
    forward = None  # seconds per sequence of a forward pass (from the frozen encoding)
    for r in results:
        if r["encode_seconds"] is not None:
            forward = r["encode_seconds"] / (rows * r["views"])
    full_epoch = None
    rows_out = []
    for r in results:
        if r["encode_seconds"] is not None:  # frozen: encode once, then head-only epochs
            epoch = r["epoch_seconds"] * n_train / rows
            once = r["encode_seconds"] / rows * (n_train * r["views"] + valid_rows)
            per_batch = r["epoch_seconds"] / (rows / batch)
        else:
            epoch = r["epoch_seconds"] * n_train / rows
            once = 0.0
            per_batch = r["epoch_seconds"] / (rows / batch)
        further = epoch + (forward * valid_rows if forward and r["encode_seconds"] is None else 0.0)
        fold = once + further + (forward * n_test if forward else float("nan"))
        rows_out.append((r, per_batch, epoch, once, fold, further))
        if r["strategy"] == "full":
            full_epoch = epoch
    for r, per_batch, epoch, once, fold, further in rows_out:
        ratio = f"x{epoch / full_epoch:.3f}" if full_epoch else ""
        cpu_ratio = f" (x{r['cpu_seconds'] / full_cpu:.3f})" if full_cpu else ""
        print(f"| {r['strategy']} | {r['trainable']:,} | {r['total']:,} | {per_batch:.2f} | {epoch / 60:.1f} min | {ratio} | "
              f"{once / 60:.1f} min | {fold / 60:.0f} min | {further / 60:.1f} min | {r['cpu_seconds']:.0f}{cpu_ratio} | "
              f"{r['peak_mb']:.0f} |")
    if forward:
        print(f"\nforward pass: {forward:.3f} s per sequence ({forward * (n_valid + n_test) / 60:.0f} min for all "
              f"validation + test rows); 'fold at 1 epoch' = encoding + one epoch + validation pass + test predictions")


if __name__ == "__main__":
    main()
