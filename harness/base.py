"""Small base classes for the three kinds of plugin.

One plugin is one class with a ``name`` (its key everywhere: CLI, result columns, leaderboard)
and a little declarative metadata. Heavy libraries are imported inside methods so that listing
plugins stays instant.
"""

from __future__ import annotations

import copy
import inspect
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from .data import Batch, FeatureSet, SynergyData


class Plugin:
    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    reference: ClassVar[str] = ""  # the paper or source this plugin implements


# -- datasets -------------------------------------------------------------------------------------
class Dataset(Plugin):
    """Loads one dataset. ``load(data_dir)`` returns a validated :class:`SynergyData`.

    ``split_schemes`` names the split strategies that make sense for it; ``published`` (the
    dataset's own fold column) comes first when the dataset has one.
    """

    split_schemes: ClassVar[tuple[str, ...]] = ("random", "leave-combination-out", "leave-drug-out", "leave-cell-out")
    manifest: ClassVar[str | None] = None  # file name under datasets/ (synbench.manifests)

    def load(self, data_dir=None) -> SynergyData:
        raise NotImplementedError


# -- featurizers ----------------------------------------------------------------------------------
class Featurizer(Plugin):
    """Turns a dataset's entities into a :class:`FeatureSet`.

    ``needs`` declares what the featurizer reads (``smiles``, ``omics:<name>``, ``description``);
    ``version`` is part of the cache key, so bump it when the output changes.
    """

    kind: ClassVar[str] = "tabular"
    needs: ClassVar[tuple[str, ...]] = ()
    version: ClassVar[str] = "1"

    def __init__(self, **params):
        self.params = params

    def featurize(self, data: SynergyData) -> FeatureSet:
        raise NotImplementedError


# -- models ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Real:
    """A continuous hyperparameter range; ``rvs`` makes it usable by sklearn's ParameterSampler."""

    low: float
    high: float
    log: bool = False

    def rvs(self, random_state=None):
        rng = np.random.default_rng(random_state) if not isinstance(random_state, np.random.RandomState) else random_state
        u = rng.uniform(np.log(self.low), np.log(self.high)) if self.log else rng.uniform(self.low, self.high)
        return float(np.exp(u)) if self.log else float(u)

    def __str__(self):
        return f"[{self.low:g}, {self.high:g}]" + (" log" if self.log else "")


@dataclass(frozen=True)
class Integer:
    low: int
    high: int

    def rvs(self, random_state=None):
        rng = np.random.default_rng(random_state) if not isinstance(random_state, np.random.RandomState) else random_state
        return int(rng.integers(self.low, self.high + 1)) if hasattr(rng, "integers") else int(rng.randint(self.low, self.high + 1))

    def __str__(self):
        return f"{{{self.low}..{self.high}}}"


@dataclass(frozen=True)
class Profile:
    """A named budget: fixed parameter overrides and how much hyperparameter search to do.

    ``search_trials`` = 0 means: use the defaults (plus ``params``) without search.
    ``search_max_rows`` bounds the inner-training rows used while searching (the final fit always
    uses all training rows).
    """

    params: dict[str, Any] = field(default_factory=dict)
    search_trials: int = 0
    search_max_rows: int | None = None
    description: str = ""


DEFAULT_PROFILES = {
    "paper": Profile(search_trials=10, description="published settings and a full search"),
    "cpu": Profile(search_trials=4, description="bounded for a laptop CPU"),
    "smoke": Profile(search_trials=0, description="seconds, for tests"),
}


class Model(Plugin):
    """A synergy predictor with the scikit-learn estimator conventions.

    Hyperparameters are stored unchanged by ``__init__`` (including ``task`` and ``seed``);
    ``fit(train, valid=None)`` returns self and keeps learned state in attributes ending in ``_``;
    ``predict(batch)`` returns one value per row (regression) or a class-1 probability
    (classification). The harness clones a fresh model for every fit.

    Class metadata: ``tasks`` supported, ``featurizers`` needed by default, ``search_space``
    (sampled by the harness on an inner validation split), ``profiles`` (budgets), and
    ``uses_validation`` (True when ``fit`` needs ``valid`` for early stopping).
    """

    tasks: ClassVar[tuple[str, ...]] = ("regression", "classification")
    featurizers: ClassVar[tuple[str, ...]] = ()
    search_space: ClassVar[dict[str, Any]] = {}
    profiles: ClassVar[dict[str, Profile]] = DEFAULT_PROFILES
    uses_validation: ClassVar[bool] = False

    def __init__(self, task: str = "regression", seed: int = 0):
        self.task = task
        self.seed = seed

    # scikit-learn's get_params / clone contract, without requiring sklearn's BaseEstimator
    @classmethod
    def param_names(cls) -> list[str]:
        sig = inspect.signature(cls.__init__)
        return [n for n, p in sig.parameters.items() if n != "self" and p.kind == p.POSITIONAL_OR_KEYWORD]

    def get_params(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.param_names()}

    def clone(self, **overrides) -> "Model":
        params = copy.deepcopy(self.get_params())
        params.update(overrides)
        return type(self)(**params)

    def fit(self, train: Batch, valid: Batch | None = None) -> "Model":
        raise NotImplementedError

    def predict(self, batch: Batch) -> np.ndarray:
        raise NotImplementedError

    def extra_outputs(self, batch: Batch) -> dict[str, np.ndarray]:
        """Optional per-row outputs stored beside predictions (e.g. ``y_std`` from MC dropout)."""
        return {}


__all__ = ["Plugin", "Dataset", "Featurizer", "Model", "Real", "Integer", "Profile", "DEFAULT_PROFILES", "FeatureSet", "Batch"]
