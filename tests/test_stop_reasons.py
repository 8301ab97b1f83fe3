"""Why training stopped: every torch model records it in one format (``synbench.neural.stop_reason``)
and the leaderboard flags a run that hit its cap while its validation value was still improving.

The model tests fit each torch model on the mock data under its smoke profile twice: with a cap of
two epochs and no (or a long) patience, which must end at the cap, and with the learning rate at 0
and patience 1, where the validation value cannot improve after the first epochs, which must end
by early stopping.
"""

import pytest

pytest.importorskip("torch")

from synbench.leaderboard import method_flags  # noqa: E402
from synbench.neural import STOPPED, EarlyStopping, improving_window, stop_reason  # noqa: E402
from synbench.plugins.models.baitsao import BaitsaoFineTune, BaitsaoModel  # noqa: E402
from synbench.plugins.models.bert import BertBaseline  # noqa: E402
from synbench.plugins.models.deepdds import DeepDDSModel  # noqa: E402
from synbench.plugins.models.deepsynergy import DeepSynergyModel  # noqa: E402
from synbench.plugins.models.marsy import MarsyModel  # noqa: E402
from synbench.plugins.models.tabnet import TabNetModel  # noqa: E402
from synbench.testing import mock_batches  # noqa: E402

FIELDS = {"stopped", "best_epoch", "epochs_run", "max_epochs", "patience", "monitor", "improving_at_cap"}

# model, task, the name of its epoch cap, the patience that means "run to the cap" (None where the
# model takes no patience; a long one where it needs a number)
MODELS = [
    (DeepSynergyModel, "regression", "max_epochs", None),
    (MarsyModel, "regression", "max_epochs", None),
    (DeepDDSModel, "classification", "max_epochs", None),
    (TabNetModel, "regression", "max_epochs", 50),
    (BertBaseline, "regression", "epochs", None),
    (BaitsaoModel, "regression", "max_epochs", 50),
    (BaitsaoFineTune, "regression", "max_epochs", 50),
]
IDS = [m[0].name for m in MODELS]


class _Weights:
    """What EarlyStopping snapshots, for curves without a network."""

    def state_dict(self):
        return {}


def _run_curve(curve, patience, max_epochs):
    """Feed a validation curve to EarlyStopping as a model's loop does; return the stop record."""
    stopper = EarlyStopping(patience if patience else max_epochs + 1)
    epochs = 0
    for epoch, value in enumerate(curve[:max_epochs]):
        epochs = epoch + 1
        if stopper.step(epoch, value, _Weights()):
            break
    return stop_reason(epochs, max_epochs, stopper.best_epoch + 1, patience, "validation loss",
                       stopped_early=stopper.stopped)


# the optimiser each record names: torch's fused kernel wherever torch has one (Adamax has none)
OPTIMISERS = {"deepsynergy": "SGD (fused)", "marsy": "Adamax", "deepdds": "Adam (fused)", "tabnet": "Adam (fused)",
              "bert": "AdamW (fused)", "baitsao": "Adam (fused)", "baitsao-ft": "Adam (fused)"}


def _consistent(log, max_epochs, patience):
    assert FIELDS <= set(log), f"missing {FIELDS - set(log)}"
    assert log["optimiser"] in OPTIMISERS.values()
    assert log["stopped"] in STOPPED
    assert log["max_epochs"] == max_epochs and log["patience"] == patience
    assert isinstance(log["monitor"], str) and log["monitor"]
    assert 0 <= log["best_epoch"] <= log["epochs_run"] <= log["max_epochs"]
    if log["stopped"] == "cap":
        assert log["epochs_run"] == log["max_epochs"]
    if log["epochs_run"] < log["max_epochs"]:
        assert log["stopped"] in ("early stopping", "diverged")
    expected = (log["stopped"] == "cap"
                and log["epochs_run"] - log["best_epoch"] < improving_window(log["patience"], log["max_epochs"]))
    assert log["improving_at_cap"] is expected


# -- the helper on synthetic curves ---------------------------------------------------------------
def test_a_curve_still_falling_at_the_cap_is_flagged():
    rec = _run_curve([10 - i for i in range(10)], patience=4, max_epochs=10)
    assert rec == {"stopped": "cap", "best_epoch": 10, "epochs_run": 10, "max_epochs": 10, "patience": 4,
                   "monitor": "validation loss", "improving_at_cap": True}


def test_a_curve_that_turned_up_stops_early_and_is_not_flagged():
    curve = [5, 4, 3, 3.5, 4, 4.5, 5, 6, 7, 8]
    rec = _run_curve(curve, patience=3, max_epochs=20)
    assert rec["stopped"] == "early stopping" and rec["best_epoch"] == 3 and rec["epochs_run"] == 6
    assert rec["improving_at_cap"] is False


def test_at_the_cap_only_a_recent_best_counts_as_improving():
    # patience 8: window 4 epochs; best 5 epochs before the cap is a plateau, 2 before is improving
    plateau = [9, 8, 7, 6, 5, 5, 5, 5, 5, 5]
    late = [9, 8, 7, 6, 5, 5, 5, 4, 5, 5]
    assert improving_window(8, 10) == 4
    assert _run_curve(plateau, patience=8, max_epochs=10)["improving_at_cap"] is False
    rec = _run_curve(late, patience=8, max_epochs=10)
    assert rec["stopped"] == "cap" and rec["best_epoch"] == 8 and rec["improving_at_cap"] is True
    # without patience (every epoch runs on purpose): the last max(2, cap // 10) epochs
    assert improving_window(None, 30) == 3 and improving_window(None, 5) == 2
    assert _run_curve([30 - i for i in range(28)] + [5, 5], patience=None, max_epochs=30)["improving_at_cap"] is True
    assert _run_curve([30 - i for i in range(20)] + [20] * 10, patience=None, max_epochs=30)["improving_at_cap"] is False


def test_stop_record_rejects_inconsistent_input_and_handles_no_validation_and_divergence():
    with pytest.raises(ValueError):  # ended before the cap without a reason
        stop_reason(4, 10, 2, 3, "validation loss", stopped_early=False)
    with pytest.raises(ValueError):  # best epoch after the last epoch run
        stop_reason(4, 4, 5, 3, "validation loss", stopped_early=False)
    rec = stop_reason(3, 10, 2, 5, "validation loss", stopped_early=False, diverged=True)
    assert rec["stopped"] == "diverged" and rec["improving_at_cap"] is False
    rec = stop_reason(10, 10, 10, None, None, stopped_early=False)  # no validation split: nothing watched
    assert rec["stopped"] == "cap" and rec["monitor"] is None and rec["improving_at_cap"] is False
    # the patience ran out at the last epoch: the model's own rule ended it, not the cap
    assert stop_reason(10, 10, 7, 3, "validation loss", stopped_early=True)["stopped"] == "early stopping"


# -- every torch model ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def batches():
    cache = {}

    def get(cls, task):
        key = (tuple(cls.featurizers), task)
        if key not in cache:
            cache[key] = mock_batches(cls, task)
        return cache[key]

    return get


def _fit(cls, task, batches, **overrides):
    train, valid, _, _ = batches(cls, task)
    return cls(task=task, seed=0, **{**cls.profiles["smoke"].params, **overrides}).fit(train, valid).training_log_


@pytest.mark.parametrize("cls, task, cap, no_patience", MODELS, ids=IDS)
def test_a_run_without_patience_ends_at_its_cap_and_says_so(cls, task, cap, no_patience, batches):
    log = _fit(cls, task, batches, **{cap: 2, "patience": no_patience})
    _consistent(log, 2, no_patience)
    assert log["optimiser"] == OPTIMISERS[cls.name]
    assert log["stopped"] == "cap" and log["epochs_run"] == 2
    assert log["best_epoch"] >= 1
    assert log["improving_at_cap"] is True  # two epochs: the best is always one of the last two


@pytest.mark.parametrize("cls, task, cap, no_patience", MODELS, ids=IDS)
def test_a_run_that_cannot_improve_stops_early_and_says_so(cls, task, cap, no_patience, batches):
    log = _fit(cls, task, batches, **{cap: 20, "patience": 1, "lr": 0.0})
    _consistent(log, 20, 1)
    assert log["stopped"] == "early stopping" and log["epochs_run"] < 20
    assert log["best_epoch"] < log["epochs_run"]
    assert log["improving_at_cap"] is False


def test_xgboost_flags_a_forest_capped_while_improving(batches):
    pytest.importorskip("xgboost")
    from synbench.plugins.models.treecomb import TreeCombModel

    train, valid, _, _ = batches(TreeCombModel, "regression")
    capped = TreeCombModel(seed=0, n_estimators=5, early_stopping_rounds=50, learning_rate=0.3).fit(train, valid)
    assert capped.training_log_["stopped"] == "cap" and capped.training_log_["improving_at_cap"] is True
    stopped = TreeCombModel(seed=0, n_estimators=300, early_stopping_rounds=5, learning_rate=0.3).fit(train, valid)
    assert stopped.training_log_["stopped"] == "early stopping" and stopped.training_log_["improving_at_cap"] is False


# -- the leaderboard ---------------------------------------------------------------------------------
def _record(model, training, profile="cpu"):
    return {"job": {"model": model, "featurizers": ["chem"], "profile": profile, "params": {}, "protocol": "strong"},
            "task": "classification", "training": training}


def test_the_board_flags_runs_capped_while_improving():
    cap = {"stopped": "cap", "best_epoch": 10, "epochs_run": 10, "max_epochs": 10}
    records = [_record("deepdds", {**cap, "improving_at_cap": True}),
               _record("deepdds", {**cap, "improving_at_cap": True}),
               _record("deepdds", {**cap, "best_epoch": 2, "improving_at_cap": False}),
               _record("deepdds", {"stopped": "early stopping", "improving_at_cap": False}),
               # records that do not say whether they were improving keep the older flag
               _record("treecomb", {"stopped": "cap", "trees_grown": 1000}),
               _record("treecomb", {"stopped": "early stopping", "trees_grown": 300}),
               _record("marsy", {**cap, "best_epoch": 3, "improving_at_cap": False})]
    flags = method_flags(records).set_index("model")["flags"]
    assert "capped while improving (2/4)" in flags["deepdds"]
    assert "stopped at its cap" not in flags["deepdds"]
    assert "stopped at its cap (1/2)" in flags["treecomb"] and "capped while improving" not in flags["treecomb"]
    assert "cap" not in flags["marsy"]  # capped on a plateau: the cap cost nothing


def test_the_fused_optimiser_kernel_makes_the_same_update_as_the_default(monkeypatch):
    import torch

    from synbench.neural import FUSED_ENV, optimiser, optimiser_kernel

    def trained(**env):
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        torch.manual_seed(0)
        weights = [torch.nn.Parameter(torch.randn(300, 200)), torch.nn.Parameter(torch.randn(200))]
        opt = optimiser("Adam", weights, lr=1e-2)
        for step in range(20):
            for w in weights:
                w.grad = torch.randn(w.shape, generator=torch.Generator().manual_seed(step))
            opt.step()
        monkeypatch.delenv(FUSED_ENV, raising=False)
        return optimiser_kernel(opt), [w.detach() for w in weights]

    fused_name, fused = trained()
    plain_name, plain = trained(**{FUSED_ENV: "0"})
    assert (fused_name, plain_name) == ("Adam (fused)", "Adam")
    for a, b in zip(fused, plain):
        assert torch.allclose(a, b, rtol=1e-5, atol=1e-6) and not torch.equal(a, torch.zeros_like(a))
    # no fused kernel: the default one, named as such
    assert optimiser_kernel(optimiser("Adamax", [torch.nn.Parameter(torch.zeros(3))], lr=1e-3)) == "Adamax"


def test_adagrad_is_fused_only_where_its_fused_kernel_exists(monkeypatch):
    """Adagrad's fused kernel is the CPU's alone; torch refuses it at the first step, not when the
    optimiser is made, so weights elsewhere (a GPU; here the meta device) get the default kernel.
    Synergy Transfer's published Adagrad failed its first step on a GPU before this."""
    import torch

    from synbench.neural import FUSED_ENV, optimiser, optimiser_kernel

    monkeypatch.delenv(FUSED_ENV, raising=False)
    on_cpu = optimiser("Adagrad", [torch.nn.Parameter(torch.zeros(3))], lr=1e-2)
    assert optimiser_kernel(on_cpu) == "Adagrad (fused)"
    elsewhere = [torch.nn.Parameter(torch.zeros(3, device="meta"))]
    opt = optimiser("Adagrad", [{"params": elsewhere}], lr=1e-2)
    assert optimiser_kernel(opt) == "Adagrad"
    elsewhere[0].grad = torch.zeros(3, device="meta")
    opt.step()  # the step that failed


def _adamax_after(steps, weights_shape, monkeypatch, **env):
    import torch

    from synbench.neural import FUSED_ENV, optimiser, optimiser_kernel

    monkeypatch.delenv(FUSED_ENV, raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    torch.manual_seed(0)
    weights = [torch.nn.Parameter(torch.randn(*weights_shape))]
    opt = optimiser("Adamax", weights, lr=1e-3, betas=(0.9, 0.999), eps=1e-7)
    for step in range(steps):
        weights[0].grad = torch.randn(weights_shape, generator=torch.Generator().manual_seed(step))
        opt.step()
    return optimiser_kernel(opt), weights[0].detach()


def test_a_large_optimiser_without_a_fused_kernel_runs_a_compiled_step_with_the_same_update(monkeypatch):
    import torch

    from synbench.neural import COMPILE_MIN_WEIGHTS, FUSED_ENV

    shape = (COMPILE_MIN_WEIGHTS // 1000, 1000)
    compiled_name, compiled = _adamax_after(3, shape, monkeypatch)
    eager_name, eager = _adamax_after(3, shape, monkeypatch, **{FUSED_ENV: "0"})
    assert (compiled_name, eager_name) == ("Adamax (compiled)", "Adamax")
    assert torch.allclose(compiled, eager, rtol=1e-5, atol=1e-7)
    # a small network keeps the eager step: compiling would cost more than it saves
    assert _adamax_after(1, (10, 10), monkeypatch)[0] == "Adamax"


def test_a_step_that_cannot_be_compiled_runs_eagerly_once(monkeypatch):
    import torch

    from synbench.neural import COMPILE_MIN_WEIGHTS, FUSED_ENV

    def no_compiler(fn, **kwargs):
        def fail():
            raise RuntimeError("no C++ compiler found\nsecond line")
        return fail

    monkeypatch.setattr(torch, "compile", no_compiler)
    shape = (COMPILE_MIN_WEIGHTS // 1000, 1000)
    name, fallen_back = _adamax_after(3, shape, monkeypatch)
    _, eager = _adamax_after(3, shape, monkeypatch, **{FUSED_ENV: "0"})
    assert name == "Adamax"
    assert torch.equal(fallen_back, eager)  # each step applied exactly once, by the eager kernel
