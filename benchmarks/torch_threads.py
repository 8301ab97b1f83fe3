"""Training throughput of the two dense neural baselines at 1 and 2 threads, and what it means for
one D1 fold in the `cpu` profile.

DeepSynergy ([8182, 4096] hidden layers) and MARSY (two encoders and a 4096-wide decoder) each have
about 45 million weights, so their cost is the training steps: (epochs) x (training rows x 2 drug
orders / 64) steps. This script builds each plugin's own network with the input widths that D1's
`chem:n_bits=256` + `expression:n_genes=500` features give, times `synbench.neural.train_epoch` (the
plugins' own training loop) on random inputs of that width at each thread count, and projects the
training time of D1 fold 0 at the cpu profile's largest epoch count. The projection leaves out
validation passes and data preparation (a few per cent); the measured fold times are in the
records of `results/d1-oneil-cpu`.

    python benchmarks/torch_threads.py --data-dir ../shared/data            # threads 1 and 2
    python benchmarks/torch_threads.py --data-dir ../shared/data --threads 1,2 --steps 60
"""

from __future__ import annotations

import argparse
import math
import time


def step_seconds(net, optimiser, loss_fn, inputs, target, batch_size: int) -> float:
    """Seconds per training step of ``synbench.neural.train_epoch`` (the loop both plugins train
    with) over one epoch of the given rows, after a one-batch warm-up."""
    import torch

    from synbench.neural import train_epoch

    generator = torch.Generator().manual_seed(0)
    train_epoch(net, optimiser, loss_fn, tuple(x[:batch_size] for x in inputs), target[:batch_size], batch_size, generator)
    t0 = time.perf_counter()
    train_epoch(net, optimiser, loss_fn, inputs, target, batch_size, generator)
    return (time.perf_counter() - t0) / math.ceil(len(target) / batch_size)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--steps", type=int, default=40, help="timed training steps per network and thread count")
    ap.add_argument("--fold", type=int, default=0)
    args = ap.parse_args()

    import torch

    from synbench import runner
    from synbench.data import Batch
    from synbench.features import featurize
    from synbench.plugins.models.deepsynergy import DeepSynergyModel
    from synbench.plugins.models.marsy import MarsyModel, _marsy_network, _masked_mse
    from synbench.runner import resolve_profile
    from synbench.splits import fold_ids, make_splits

    data = runner.load_dataset("d1-oneil", args.data_dir)
    features = {s: featurize(data, s) for s in ("chem:n_bits=256", "expression:n_genes=500")}
    full = Batch(data.entity_rows(), features, "regression", data.labels("loewe").to_numpy(dtype=float), "loewe")
    ids = fold_ids(make_splits(data, "published"), args.fold)
    n_train, n_fit = len(ids["train"]), len(ids["train"]) + len(ids["valid"])
    probe = full.subset(ids["train"][:64])

    ds_profile = resolve_profile(DeepSynergyModel, "cpu").params
    ds = DeepSynergyModel(**ds_profile)
    n_in = ds._design(probe, fitting=True)[0].shape[1]
    ms_profile = resolve_profile(MarsyModel, "cpu").params
    ms = MarsyModel(**ms_profile)
    T, P, _, _ = ms._inputs(probe, with_targets=True)

    def deepsynergy():
        rows = args.steps * ds.batch_size
        net = ds._network(n_in, "cpu")
        return (net, torch.optim.SGD(net.parameters(), lr=ds.lr, momentum=ds.momentum), torch.nn.MSELoss(),
                (torch.randn(rows, n_in),), torch.randn(rows, 1), ds.batch_size)

    def marsy():
        rows = args.steps * ms.batch_size
        net = _marsy_network(T.shape[1], P.shape[1], 3, ms.triple_layers, ms.pair_layers, ms.decoder_layers,
                             ms.encoder_dropout, ms.decoder_dropout)
        target = torch.full((rows, 3), float("nan"))  # synergy only: the response outputs are unobserved
        target[:, 0] = torch.randn(rows)
        return (net, torch.optim.Adamax(net.parameters(), lr=ms.lr, eps=1e-7), _masked_mse,
                (torch.randn(rows, T.shape[1]), torch.randn(rows, P.shape[1])), target, ms.batch_size)

    # steps of the cpu profile at its largest: DeepSynergy runs max_epochs on the inner training rows,
    # then refits on training + validation rows for at most as many; MARSY runs at most max_epochs
    plans = {
        "deepsynergy": (deepsynergy, ds.max_epochs * 2 * n_train / ds.batch_size + ds.max_epochs * 2 * n_fit / ds.batch_size,
                        f"{ds.max_epochs} epochs + refit of at most {ds.max_epochs}", f"input {n_in}"),
        "marsy": (marsy, ms.max_epochs * 2 * n_train / ms.batch_size, f"at most {ms.max_epochs} epochs",
                  f"inputs {T.shape[1]} / {P.shape[1]}"),
    }
    print(f"D1 fold {args.fold}: {n_train:,} inner training rows, {n_fit:,} with validation; both drug orders\n")
    print("| model | widths | weights | threads | s / step | cpu-profile steps | projected training time |")
    print("|---|---|---|---|---|---|---|")
    for name, (build, steps, budget, widths) in plans.items():
        base = None
        for threads in [int(t) for t in args.threads.split(",")]:
            torch.set_num_threads(threads)
            torch.manual_seed(0)
            net, optimiser, loss_fn, inputs, target, batch_size = build()
            weights = sum(p.numel() for p in net.parameters())
            s = step_seconds(net, optimiser, loss_fn, inputs, target, batch_size)
            base = base or s
            print(f"| {name} | {widths} | {weights / 1e6:.1f} M | {threads} | {s:.3f} (x{base / s:.2f}) | "
                  f"{steps:,.0f} ({budget}) | {steps * s / 60:.0f} min |")


if __name__ == "__main__":
    main()
