"""The conformance suite every registered plugin must pass, shipped in the package.

Third-party plugin authors can run it on their own plugins::

    from synbench.testing import check_model
    check_model(MyModel)
"""

from __future__ import annotations

import numpy as np

from .base import Dataset, Featurizer, Model
from .data import Batch, FeatureSet, SynergyData
from .errors import SynbenchError
from .features import featurize
from .splits import SCHEMES, fold_ids, make_splits

REQUIRED_PROFILES = ("paper", "cpu", "smoke")


def mock_data() -> SynergyData:
    from synbench.plugins.datasets.mock import make_mock

    return make_mock().validate()


def mock_batches(model_cls, task: str, data: SynergyData | None = None, fold: int = 0):
    """Inner-train, inner-valid and test batches of the mock dataset for one fold."""
    data = data or mock_data()
    target = next(t for t in data.targets.values() if t.task == task)
    splits = make_splits(data, "published", seed=0)
    ids = fold_ids(splits, fold)
    features = {name: featurize(data, name) for name in model_cls.featurizers}
    full = Batch(data.entity_rows(), features, task, data.labels(target.name).to_numpy(dtype=float))
    test = full.subset(ids["test"])
    y_test = test.y
    test.y = None
    return full.subset(ids["train"]), full.subset(ids["valid"]), test, y_test


def check_model(model_cls) -> None:
    assert issubclass(model_cls, Model), f"{model_cls} is not a synbench Model"
    assert model_cls.name and model_cls.name == model_cls.name.strip(), "a model needs a name"
    assert model_cls.tasks and set(model_cls.tasks) <= {"regression", "classification"}
    for p in REQUIRED_PROFILES:
        assert p in model_cls.profiles, f"model '{model_cls.name}' lacks the '{p}' profile"
    params = set(model_cls.param_names())
    assert {"task", "seed"} <= params, f"model '{model_cls.name}' must take task and seed in __init__"
    unknown = set(model_cls.search_space) - params
    assert not unknown, f"search space of '{model_cls.name}' names non-parameters {unknown}"
    for profile in model_cls.profiles.values():
        assert set(profile.params) <= params, f"a profile of '{model_cls.name}' sets unknown parameters"
    for task in model_cls.tasks:
        smoke = model_cls.profiles["smoke"].params
        model = model_cls(task=task, seed=0, **smoke)
        before = model.get_params()
        assert before["task"] == task and before["seed"] == 0, "__init__ must store its arguments unchanged"
        clone = model.clone()
        assert clone is not model and clone.get_params() == before, "clone() must copy the parameters"
        train, valid, test, y_test = mock_batches(model_cls, task)
        fitted = model.fit(train, valid if model_cls.uses_validation else None)
        assert fitted is model, "fit() must return self"
        assert model.get_params() == before, "fit() must not change hyperparameters"
        pred = np.asarray(model.predict(test), dtype=float).reshape(-1)
        assert pred.shape == (len(test),), f"predict() returned {pred.shape} for {len(test)} rows"
        assert np.isfinite(pred).all(), "predictions must be finite"
        if task == "classification":
            assert ((pred >= 0) & (pred <= 1)).all(), "classification predictions must be class-1 probabilities"
        again = np.asarray(model_cls(task=task, seed=0, **smoke).fit(train, valid if model_cls.uses_validation else None).predict(test), dtype=float)
        np.testing.assert_allclose(again.reshape(-1), pred, rtol=1e-5, atol=1e-6,
                                   err_msg="the same seed must give the same predictions")


def check_featurizer(featurizer_cls) -> None:
    assert issubclass(featurizer_cls, Featurizer)
    assert featurizer_cls.name and featurizer_cls.kind in ("tabular", "text", "graph")
    data = mock_data()
    fs = featurize(data, featurizer_cls.name, use_cache=False)
    assert isinstance(fs, FeatureSet) and fs.kind == featurizer_cls.kind
    assert fs.drugs is not None or fs.cell_lines is not None, "a featurizer must describe drugs or cell lines"
    cached = featurize(data, featurizer_cls.name)
    again = featurize(data, featurizer_cls.name)
    for a, b in ((cached.drugs, again.drugs), (cached.cell_lines, again.cell_lines)):
        if a is not None and fs.kind == "tabular":
            np.testing.assert_array_equal(a.to_numpy(), b.to_numpy())


def check_dataset(dataset_cls, data_dir=None) -> SynergyData | None:
    """Validate a dataset; returns None when its files are not available here."""
    assert issubclass(dataset_cls, Dataset)
    assert dataset_cls.name
    try:
        data = dataset_cls().load(data_dir)
    except SynbenchError:
        return None
    assert isinstance(data, SynergyData) and data.name == dataset_cls.name
    data.validate()
    shipped = set(dataset_cls.split_schemes) - set(SCHEMES)
    assert shipped <= set(data.published_splits), \
        f"split schemes {sorted(shipped - set(data.published_splits))} are neither built in nor shipped by the dataset"
    if "published" in dataset_cls.split_schemes:
        assert data.fold_column is not None, "a dataset offering 'published' splits needs a fold column"
    return data
