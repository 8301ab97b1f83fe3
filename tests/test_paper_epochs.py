"""`benchmarks/paper_epochs.py`: seconds per epoch of a torch model's final fit, read from its own
progress messages, and the table that sets two machines side by side."""

import json

import pytest

from conftest import benchmark_script
from synbench import runner
from synbench.store import Store


@pytest.fixture(scope="module")
def paper_epochs():
    return benchmark_script("paper_epochs")


def test_epoch_times_count_each_epoch_once_and_leave_out_the_refit(paper_epochs):
    # a model's own message and its stopper's for the same epoch; DeepSynergy's refit epochs
    events = [(1.0, "final fit"), (3.0, "epoch 1/4: validation loss 2"), (3.1, "epoch 1: validation MSE 2 (best 2)"),
              (4.0, "epoch 2/4: validation loss 1.5"), (5.5, "epoch 3/4: validation loss 1.4"), (9.0, "refit epoch 1/3")]
    assert paper_epochs._epoch_times(events, 1.0) == {"train": [2.0, 1.0, 1.5]}
    # named stages (pre-training, fine-tuning): the stopper's unnamed messages do not count
    staged = [(0.0, "pretrain epoch 1/10"), (0.2, "epoch 1: pretrain validation loss 3"), (1.0, "pretrain epoch 2/10"),
              (3.0, "finetune epoch 1/10"), (3.5, "finetune epoch 2/10")]
    assert paper_epochs._epoch_times(staged, 0.0) == {"pretrain": [0.0, 1.0], "finetune": [2.0, 0.5]}


def test_a_models_final_fit_is_timed_per_epoch_with_its_epochs_capped(paper_epochs, tmp_path):
    job = runner.plan(["mock"], ["marsy"], targets=["score"], profile="smoke", folds=[0], trials=0)[0]
    store = Store(tmp_path / "s")
    runner.prepare([job], store)
    shared = runner.load_shared([job], store, runner.RunSettings())
    out = paper_epochs.measure_one("marsy", job, shared, runner.RunSettings(isolate=False), epochs=3, rows_per_epoch=None)
    # every epoch count of the published profile above the cap is cut to it (MARSY: up to 200 epochs)
    assert out["cuts"]["max_epochs"] == 3
    train = out["stages"]["train"]
    assert train["epochs"] <= 3 and len(train["seconds"]) == train["epochs"]  # early stopping may end it sooner
    assert train["seconds_per_epoch"] > 0 and out["device"] == "cpu" and out["fit_seconds"] >= sum(train["seconds"][1:])


def test_the_table_sets_two_machines_side_by_side_with_their_ratio(paper_epochs, tmp_path, capsys):
    def run(device, seconds):
        return {"device": device, "threads": 1, "models": {
            "marsy": {"stages": {"train": {"seconds_per_epoch": seconds}}},
            "bert": {"error": "EncoderError: no weights"}}}

    cpu, gpu = tmp_path / "cpu.json", tmp_path / "gpu.json"
    cpu.write_text(json.dumps(run("CPU", 300.0)))
    gpu.write_text(json.dumps(run("GPU", 2.0)))
    paper_epochs.table([cpu, gpu])
    lines = capsys.readouterr().out.splitlines()
    marsy = next(line for line in lines if line.startswith("| marsy "))
    # MARSY's paper cap is 200 epochs: 300 s x 200 = 16.7 h, 2 s x 200 = 7 min
    assert marsy == "| marsy | 200 | 300.00 | 2.00 | x150.0 | 16.7 h | 7 min |"
    assert "EncoderError" in next(line for line in lines if line.startswith("| bert "))
