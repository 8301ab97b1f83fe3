"""Every registered plugin, built-in or third-party, passes the shared conformance checks."""

import pytest

from synbench.errors import DataUnavailableError
from synbench.registry import get_registry
from synbench.testing import check_dataset, check_featurizer, check_model

REGISTRY = get_registry()


@pytest.mark.parametrize("name", REGISTRY.names("model"))
def test_model_conforms(name):
    check_model(REGISTRY.model(name))


def test_a_model_naming_an_inert_parameter_it_does_not_have_fails_conformance():
    # profile_drift skips the names inert_params returns: a misspelt one would exempt nothing, unseen
    class MisspeltInert(REGISTRY.model("lasso")):
        @classmethod
        def inert_params(cls, params):
            return {"alhpa"}

    with pytest.raises(AssertionError, match="alhpa"):
        check_model(MisspeltInert)


@pytest.mark.parametrize("name", REGISTRY.names("featurizer"))
def test_featurizer_conforms(name):
    check_featurizer(REGISTRY.featurizer(name))


@pytest.mark.parametrize("name", REGISTRY.names("dataset"))
def test_dataset_conforms(name):
    try:
        check_dataset(REGISTRY.dataset(name))
    except DataUnavailableError as exc:  # only missing files skip, and visibly; any other error fails
        if name == "mock":
            raise
        pytest.skip(f"dataset '{name}': {exc}")


@pytest.mark.parametrize("name", REGISTRY.names("metric"))
def test_metric_is_declared(name):
    metric = REGISTRY.metric(name)
    assert metric.task in ("regression", "classification")
    assert isinstance(metric.higher_is_better, bool) and metric.description


def test_every_hook_has_a_builtin_implementation():
    from synbench import hookspecs

    hooks = [n for n in dir(hookspecs) if n.startswith("synbench_register_")]
    for hook in hooks:
        assert getattr(REGISTRY.pm.hook, hook).get_hookimpls(), f"no built-in implements {hook}"
    assert set(REGISTRY.names("metric")) >= {"pcc", "mse", "roc_auc", "accuracy"}


def test_headline_metrics_are_the_papers():
    headline = {REGISTRY.metric(n).name for n in REGISTRY.names("metric") if REGISTRY.metric(n).headline}
    assert headline == {"pcc", "mse", "roc_auc", "accuracy"}
