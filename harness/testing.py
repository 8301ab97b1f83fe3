"""The conformance suite every registered plugin must pass, shipped in the package.

Third-party plugin authors can run it on their own plugins::

    from synbench.testing import check_model
    check_model(MyModel)

or on every plugin an installed package registers, one pytest test each (what
``synbench new`` generates; ``synbench check PACKAGE`` runs the same checks)::

    from synbench.testing import check_plugin, parametrize_plugins

    @parametrize_plugins("my-package")
    def test_plugin_conforms(plugin):
        check_plugin(plugin)
"""

from __future__ import annotations

import numpy as np

from .base import Dataset, Featurizer, Model
from .data import Batch, FeatureSet, SynergyData
from .errors import DataUnavailableError
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


def _declarations_ok(kind: str, obj) -> None:
    """The checks the registry makes at registration, as an assertion naming every problem."""
    from .registry import get_registry
    from .validation import declaration_problems

    featurizers = {e.name: e.obj for e in get_registry().entries("featurizer")}
    problems = declaration_problems(kind, obj, featurizers)
    assert not problems, f"{kind} '{getattr(obj, 'name', obj)}': " + "; ".join(problems)


def _spaces(model_cls) -> dict:
    return {"search_space": model_cls.search_space, **{f"search_spaces['{k}']": v for k, v in model_cls.search_spaces.items()}}


def check_model(model_cls) -> None:
    assert isinstance(model_cls, type) and issubclass(model_cls, Model), f"{model_cls} is not a synbench Model"
    assert model_cls.name and model_cls.name == model_cls.name.strip(), "a model needs a name"
    _declarations_ok("model", model_cls)
    for p in REQUIRED_PROFILES:
        assert p in model_cls.profiles, f"model '{model_cls.name}' lacks the '{p}' profile"
    params = set(model_cls.param_names())
    assert {"task", "seed"} <= params, f"model '{model_cls.name}' must take task and seed in __init__"
    for task in model_cls.tasks:  # every profile and a draw from every search space must construct
        for pname, profile in model_cls.profiles.items():
            profile_params = model_cls(task=task, seed=0, **profile.params).get_params()
            # a misspelt name would exempt nothing from profile_drift, without a sign
            unknown = set(model_cls.inert_params(profile_params)) - params
            assert not unknown, f"inert_params() under profile '{pname}' names {sorted(unknown)}, not parameters of __init__"
        for where, space in _spaces(model_cls).items():
            draw = {k: v.rvs(0) if hasattr(v, "rvs") else v for k, v in space.items()}  # other values are fixed
            made = model_cls(task=task, seed=0, **draw).get_params()
            assert all(made[k] == v for k, v in draw.items()), f"{where}: __init__ must store the drawn values unchanged"
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
    assert isinstance(featurizer_cls, type) and issubclass(featurizer_cls, Featurizer), f"{featurizer_cls} is not a synbench Featurizer"
    assert featurizer_cls.name and featurizer_cls.kind in ("tabular", "text", "graph")
    _declarations_ok("featurizer", featurizer_cls)
    import tempfile

    data = mock_data()
    with tempfile.TemporaryDirectory() as folder:
        options = featurizer_cls.example_options(data, folder)  # e.g. a small embedding file to read
        fs = featurize(data, featurizer_cls.name, params=options, use_cache=False)
        assert isinstance(fs, FeatureSet) and fs.kind == featurizer_cls.kind
        assert fs.drugs is not None or fs.cell_lines is not None, "a featurizer must describe drugs or cell lines"
        cached = featurize(data, featurizer_cls.name, params=options)
        again = featurize(data, featurizer_cls.name, params=options)
    for a, b in ((cached.drugs, again.drugs), (cached.cell_lines, again.cell_lines)):
        if a is not None and fs.kind == "tabular":
            np.testing.assert_array_equal(a.to_numpy(), b.to_numpy())


def check_dataset(dataset_cls, data_dir=None) -> SynergyData:
    """Load and validate a dataset. Any error in ``load()`` or in its tables fails the check;
    only :class:`~synbench.errors.DataUnavailableError` (its files are not here) passes through,
    for the caller to report as skipped (:func:`check_plugin` makes it a pytest skip)."""
    assert isinstance(dataset_cls, type) and issubclass(dataset_cls, Dataset), f"{dataset_cls} is not a synbench Dataset"
    assert dataset_cls.name
    _declarations_ok("dataset", dataset_cls)
    data = dataset_cls().load(data_dir)
    assert isinstance(data, SynergyData), f"load() returned {type(data).__name__}, not SynergyData"
    assert data.name == dataset_cls.name, f"load() returned data named '{data.name}', not '{dataset_cls.name}'"
    data.validate()
    shipped = set(dataset_cls.split_schemes) - set(SCHEMES)
    assert shipped <= set(data.published_splits), \
        f"split schemes {sorted(shipped - set(data.published_splits))} are neither built in nor shipped by the dataset"
    if "published" in dataset_cls.split_schemes:
        assert data.fold_column is not None, "a dataset offering 'published' splits needs a fold column"
    return data


def check_metric(metric) -> None:
    _declarations_ok("metric", metric)
    assert metric.description, f"metric '{metric.name}' needs a description"
    y = np.array([0.0, 1.0, 0.0, 1.0, 1.0])
    value = metric.fn(y, np.array([0.1, 0.8, 0.3, 0.6, 0.9]))
    assert isinstance(value, float), f"metric '{metric.name}' must return a float, got {type(value).__name__}"


CHECKS = {"model": check_model, "featurizer": check_featurizer, "dataset": check_dataset, "metric": check_metric}


def run_check(kind: str, name: str, registry=None, data_dir=None) -> None:
    """Every conformance check of one registered plugin. The registry refuses a clashing or
    badly declared plugin (one-line PluginError); DataUnavailableError means a dataset's files
    are not here."""
    from .registry import get_registry

    obj = (registry or get_registry()).get(kind, name)
    if kind == "dataset":
        check_dataset(obj, data_dir)
    else:
        CHECKS[kind](obj)


def check_plugin(plugin: str, data_dir=None) -> None:
    """Run every check of ``plugin`` ('KIND:NAME', as :func:`parametrize_plugins` gives it) in a
    pytest test; a dataset whose files are not here is a visible skip with the reason."""
    import pytest

    kind, _, name = plugin.partition(":")
    try:
        run_check(kind, name, data_dir=data_dir)
    except DataUnavailableError as exc:
        pytest.skip(f"{plugin}: data not available here ({exc})")


def parametrize_plugins(package: str):
    """A pytest decorator giving the test one ``plugin`` ('KIND:NAME') per plugin that the installed
    package (or plugin module) registers; an unknown package fails the collection with one line."""
    import pytest

    from .registry import get_registry

    names = [f"{e.kind}:{e.name}" for e in get_registry().plugins_of(package)]
    return pytest.mark.parametrize("plugin", list(dict.fromkeys(names)))
