"""The BERT baseline's frozen encoding in fp32 and under bf16 autocast: speed and what it changes.

``strategy=frozen`` encodes every row once (D1: ~46,000 sequences of up to 512 tokens, hours of
CPU), so its precision decides whether the encoding fits in one sitting. This script encodes the
same real rows of one D1 fold with the plugin's own encoder (``_frozen_pooling_class``, the model's
pooling, fresh temporary caches) in both precisions, in one process, and reports:

- seconds per sequence in each precision and their ratio (noisy on a shared machine: compare the
  ratio, measured in one run);
- the cosine similarity between a row's fp32 and bf16 vectors (min / median);
- a linear probe (ridge regression, the penalty chosen by leave-one-out on the training sample) on
  each precision's vectors of ``--train-rows`` inner-training rows, scored by PCC on
  ``--test-rows`` test rows: the downstream quality the two encodings give.

    SYNBENCH_THREADS=1 python benchmarks/bert_frozen_precision.py --data-dir ../shared/data
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--fold", type=int, default=0)
    ap.add_argument("--train-rows", type=int, default=1200)
    ap.add_argument("--test-rows", type=int, default=400)
    ap.add_argument("--max-length", type=int, default=512)
    args = ap.parse_args()
    os.environ["SYNBENCH_CACHE_DIR"] = tempfile.mkdtemp(prefix="bert-precision-")  # never reuse vectors

    import numpy as np
    import torch
    from scipy.stats import pearsonr
    from sklearn.linear_model import RidgeCV

    from synbench import runner
    from synbench.data import Batch
    from synbench.features import featurize
    from synbench.plugins.models.bert import (BertBaseline, SequenceBuilder, _build_net, _frozen_pooling_class,
                                              _load_encoder, _sequence_key, row_entities, text_features)
    from synbench.runner import n_threads
    from synbench.splits import fold_ids, make_splits
    from synbench.text_encoders import embed

    torch.set_num_threads(n_threads())
    data = runner.load_dataset("d1-oneil", args.data_dir)
    full = Batch(data.entity_rows(), {"description": featurize(data, "description")}, "regression",
                 data.labels("loewe").to_numpy(dtype=float), "loewe")
    ids = fold_ids(make_splits(data, "published"), args.fold)
    rng = np.random.default_rng(0)
    parts = {name: full.subset(np.sort(rng.choice(ids[name], n, replace=False)))
             for name, n in (("train", args.train_rows), ("test", args.test_rows))}

    model = BertBaseline()
    tokenizer, encoder = _load_encoder()
    net = _build_net(encoder, 0.0, model.pooling)
    net.encoder.requires_grad_(False)
    vectors, seconds = {}, {}
    for bf16 in (False, True):
        for name, batch in parts.items():
            builder = SequenceBuilder(tokenizer, text_features(batch, model.name), args.max_length)
            texts = [_sequence_key(*builder.build(list(drugs), cell)[:2]) for drugs, cell in row_entities(batch)]
            pooling = _frozen_pooling_class()(net, model.pooling, builder.pad, torch.device("cpu"), int(model.eval_batch_size), bf16)
            t0 = time.perf_counter()
            vectors[bf16, name], _ = embed(texts, pooling)
            seconds[bf16] = seconds.get(bf16, 0.0) + time.perf_counter() - t0

    n = args.train_rows + args.test_rows
    both = [np.vstack([vectors[bf16, "train"], vectors[bf16, "test"]]) for bf16 in (False, True)]
    cosine = (both[0] * both[1]).sum(1) / (np.linalg.norm(both[0], axis=1) * np.linalg.norm(both[1], axis=1))
    print(f"D1 fold {args.fold}: {n:,} real rows ({args.train_rows:,} training, {args.test_rows:,} test), "
          f"{args.max_length} tokens, {n_threads()} thread(s)\n")
    print("| precision | s / sequence | vs fp32 | linear-probe test PCC |")
    print("|---|---|---|---|")
    for bf16 in (False, True):
        probe = RidgeCV(alphas=np.logspace(-3, 3, 13)).fit(vectors[bf16, "train"], parts["train"].y)
        pcc = pearsonr(probe.predict(vectors[bf16, "test"]), parts["test"].y)[0]
        print(f"| {'bf16 autocast' if bf16 else 'fp32'} | {seconds[bf16] / n:.3f} | x{seconds[False] / seconds[bf16]:.2f} | {pcc:.3f} |")
    print(f"\ncosine(fp32, bf16) per row: min {cosine.min():.5f}, median {np.median(cosine):.5f}")


if __name__ == "__main__":
    main()
