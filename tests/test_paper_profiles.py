"""Every built-in model's ``paper`` profile runs: its published parameters, on the mock dataset,
with every epoch count cut to one and one search trial, so the profile cannot rot unseen.

The architectures stay the published ones (DeepSynergy's 8182-4096 layers, BAITSAO's 4096/10240
widths); only the epochs, the search trials and, for BERT, the rows per epoch are cut.
"""

import dataclasses
import inspect
import json

import numpy as np
import pytest

from synbench.base import is_distribution
from synbench.registry import get_registry
from synbench.runner import RunSettings, SharedInputs, compute, load_job_data, plan
from synbench.splits import make_splits

BUILT_IN = sorted(e.name for e in get_registry().entries("model") if e.module.startswith("synbench.plugins."))
# Cuts that are data, not method: the final fit and the search see 100 of the fold's rows (the
# profile's ``fit_max_rows``, recorded), and BERT trains on 32 rows an epoch. On the full mock fold
# the published widths (BAITSAO's 90M parameters, DeepSynergy's 8182-4096, BERT at 256 tokens)
# took about 2 minutes each on one busy CPU thread; the whole file took 10 minutes.
FIT_ROWS = 100
SMALL_DATA = {"bert": {"rows_per_epoch": 32, "valid_rows": 16}}


def _published(cls) -> dict:
    defaults = {n: p.default for n, p in inspect.signature(cls.__init__).parameters.items() if n != "self"}
    return {**defaults, **cls.profiles["paper"].params}


def _cuts(cls, tmp_path_factory) -> dict:
    """One epoch wherever the paper profile runs more, two MC-dropout passes (repetitions, like
    epochs), and a pre-trained checkpoint for the modes that need one (the paper pre-training, one
    epoch)."""
    published = _published(cls)
    cuts = {n: 1 for n, v in published.items() if n.endswith("epochs") and isinstance(v, int) and v > 1}
    if isinstance(published.get("mc_passes"), int) and published["mc_passes"] > 2:
        cuts["mc_passes"] = 2
    if "checkpoint" in published and "pretrain_profile" in published:
        cuts["checkpoint"] = _paper_checkpoint(tmp_path_factory)
    return {**cuts, **SMALL_DATA.get(cls.name, {})}


_CHECKPOINT = {}


def _paper_checkpoint(tmp_path_factory) -> str:
    if not _CHECKPOINT:
        from synbench.pretrain import pretrain

        path = tmp_path_factory.mktemp("paper-ckpt") / "mock-without-fold0.pt"
        pretrain(["mock"], path, profile="paper", params={"max_epochs": 1}, exclude=["mock:0"])
        _CHECKPOINT["path"] = str(path)
    return _CHECKPOINT["path"]


@pytest.mark.parametrize("name", BUILT_IN)
def test_paper_profile_runs_with_its_published_parameters(name, tmp_path_factory, monkeypatch):
    pytest.importorskip("torch")
    cls = get_registry().model(name)
    paper = cls.profiles["paper"]
    monkeypatch.setitem(cls.profiles, "paper", dataclasses.replace(paper, fit_max_rows=FIT_ROWS))
    cuts = _cuts(cls, tmp_path_factory)
    task = cls.tasks[0]
    target = {"regression": "score", "classification": "synergistic"}[task]
    job = plan(["mock"], [name], targets=[target], profile="paper", folds=[0], trials=1, params=cuts)[0]
    data = load_job_data(job.dataset, job.split)
    splits = make_splits(data, job.split, job.n_folds, job.seed)
    record, predictions = compute(job, RunSettings(), SharedInputs(splits={job.split_key: splits}))

    assert np.isfinite(predictions["y_pred"]).all() and len(predictions) > 0
    assert sum(record["n_rows"][k] for k in ("train", "valid")) <= FIT_ROWS
    space = cls.space_for(job.protocol, task)
    searched = {k for k, v in space.items() if is_distribution(v) and k not in cuts}
    assert record["search_summary"]["n_trials"] == (1 if searched else 0)
    assert set(record["selected_params"]) == searched
    # every parameter neither searched nor cut is the published one (or the protocol's fixed value)
    fixed = {k: v for k, v in space.items() if not is_distribution(v)}
    expected = json.loads(json.dumps({**_published(cls), **fixed, **cls.profiles["paper"].params}, default=str))
    expected.pop("checkpoint", None)  # a path (the cut)
    stored = {k: v for k, v in record["params"].items() if k not in searched and k not in cuts and k in expected}
    assert stored == {k: expected[k] for k in stored}
    assert set(stored) | searched | set(cuts) >= set(expected) - {"task", "seed"}
