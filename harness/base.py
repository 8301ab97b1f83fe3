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

    ``needs`` declares what the featurizer reads (``smiles``, ``omics:<name>``, ``description``;
    none: it covers any entity); ``version`` is part of the cache key, so bump it when the output
    changes. ``options`` maps each ``__init__`` option to its type or range (``Integer(1, 100)``,
    ``Real(0, 1)``, ``Categorical(...)``, ``str``, ``bool``); the harness rejects any other option
    or value before building the featurizer (None passes where the default is None).
    """

    kind: ClassVar[str] = "tabular"
    needs: ClassVar[tuple[str, ...]] = ()
    version: ClassVar[str] = "1"
    options: ClassVar[dict[str, Any]] = {}

    def __init__(self, **params):
        self.params = params

    def featurize(self, data: SynergyData) -> FeatureSet:
        raise NotImplementedError

    @classmethod
    def example_options(cls, data: SynergyData, folder) -> dict:
        """Options that make the featurizer run on ``data`` (the mock dataset) in the conformance
        checks; one that reads a user's file writes a small one into ``folder``. Default: none."""
        return {}


# -- models ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Real:
    """A continuous hyperparameter range; ``rvs`` makes it usable by sklearn's ParameterSampler."""

    low: float
    high: float
    log: bool = False
    # the sides ("low", "high") that are the parameter's own limits (a dropout of 0, a subsample of
    # 1): a value chosen there is not "on the edge of the range", since no wider range exists
    limits: tuple = ()

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
    log: bool = False
    limits: tuple = ()  # as for Real: sides that are the parameter's own limits (a leaf size of 1)

    def rvs(self, random_state=None):
        rng = np.random.default_rng(random_state) if not isinstance(random_state, np.random.RandomState) else random_state
        return int(rng.integers(self.low, self.high + 1)) if hasattr(rng, "integers") else int(rng.randint(self.low, self.high + 1))

    def __str__(self):
        return f"{{{self.low}..{self.high}}}" + (" log" if self.log else "")


@dataclass(frozen=True)
class Categorical:
    """A choice among a few values (strings, numbers, booleans or None)."""

    choices: tuple

    def __init__(self, choices):
        object.__setattr__(self, "choices", tuple(choices))

    def rvs(self, random_state=None):
        rng = np.random.default_rng(random_state) if not isinstance(random_state, np.random.RandomState) else random_state
        return self.choices[int(rng.integers(len(self.choices))) if hasattr(rng, "integers") else int(rng.randint(len(self.choices)))]

    def __str__(self):
        return "{" + ", ".join(map(str, self.choices)) + "}"


# Search protocols: ``table1`` is BAITSAO's published search ranges exactly (what the paper did),
# ``strong`` the ranges a careful practitioner would use (log-uniform where scale matters, boosting
# with early stopping). Every model in a run is tuned under the same protocol, the same number of
# trials and the same target scaling; the protocol is part of each job's identity.
PROTOCOLS = ("strong", "table1")
DEFAULT_PROTOCOL = "strong"


def is_distribution(value) -> bool:
    return isinstance(value, (Real, Integer, Categorical))


@dataclass(frozen=True)
class Profile:
    """A named budget: fixed parameter overrides and how much hyperparameter search to do.

    ``search_trials`` = 0 means: use the defaults (plus ``params``) without search. The trial count
    is the same for every model of a run (the harness's :data:`SEARCH_TRIALS` for the profile, or
    ``--trials``); a model's own profile may set ``search_trials`` only to 0 (nothing to tune).
    ``search_max_rows`` bounds the inner-training rows used while searching (the final fit always
    uses all training rows); it is recorded and shown on the board.
    """

    params: dict[str, Any] = field(default_factory=dict)
    search_trials: int = 0
    search_max_rows: int | None = None
    description: str = ""
    # bounds the rows of the final fit too (the same random subsample for every model of a fold):
    # for a first board in minutes, recorded and flagged on the board
    fit_max_rows: int | None = None
    # a budget's own range for a parameter the protocol searches (the learning rate of a faster
    # optimiser the profile fixes); a parameter the protocol does not search stays unsearched
    ranges: dict[str, Any] = field(default_factory=dict)

    def with_params(self, note: str = "", **params) -> "Profile":
        """The same budget with fixed parameters added (a model's own bound, e.g. its tree count)."""
        from dataclasses import replace

        return replace(self, params={**self.params, **params}, description=self.description + (f"; {note}" if note else ""))

    def with_ranges(self, **ranges) -> "Profile":
        """The same budget searching its own range for parameters the protocol searches."""
        from dataclasses import replace

        if not all(is_distribution(v) for v in ranges.values()):
            raise TypeError("Profile.with_ranges takes Real, Integer or Categorical ranges")
        return replace(self, ranges={**self.ranges, **ranges})


# Trials of hyperparameter search per job, identical for every model of a profile.
SEARCH_TRIALS = {"paper": 50, "cpu": 12, "quick": 4, "smoke": 0}

# Steps a trial runs before the search may prune it (``Model.prune_warmup_steps``): boosting
# reports every round and a slow learner needs hundreds to show its worth; an epoch of a network
# is a whole pass over the rows, so a few epochs tell a hopeless trial apart
PRUNE_WARMUP_STEPS = 300
PRUNE_WARMUP_EPOCHS = 5

DEFAULT_PROFILES = {
    "paper": Profile(search_trials=SEARCH_TRIALS["paper"], description="published settings and a full search"),
    "cpu": Profile(search_trials=SEARCH_TRIALS["cpu"], search_max_rows=5000,
                   description="bounded for a laptop CPU: 12 trials on 5,000 inner-training rows"),
    # sized so that the five classical baselines on D1 (both targets, five folds) finish in under
    # 15 minutes on two cores (benchmarks/main_job.sh); a search trial costs what a fit on its rows does
    "quick": Profile(search_trials=SEARCH_TRIALS["quick"], search_max_rows=2000, fit_max_rows=5000,
                     description="a first board in minutes: 4 trials on 2,000 rows, final fit on 5,000 rows"),
    "smoke": Profile(search_trials=0, description="seconds, for tests"),
}


class Model(Plugin):
    """A synergy predictor with the scikit-learn estimator conventions.

    Hyperparameters are stored unchanged by ``__init__`` (including ``task`` and ``seed``);
    ``fit(train, valid=None)`` returns self and keeps learned state in attributes ending in ``_``;
    ``predict(batch)`` returns one value per row (regression) or a class-1 probability
    (classification). The harness clones a fresh model for every fit.

    Class metadata: ``tasks`` supported, ``featurizers`` needed by default, ``search_space``
    (sampled by the harness on an inner validation split; ``search_spaces`` maps a protocol to
    its own space, e.g. ``{"table1": ..., "strong": ...}``; a protocol it does not name uses
    ``search_space``), ``profiles`` (budgets), and ``uses_validation`` (True when ``fit`` needs
    ``valid`` for early stopping). A model may report ``(step, validation value)`` during ``fit``
    through ``self.report_progress_`` (set by the harness while searching) so that a hopeless
    trial is pruned; :class:`synbench.runner.TrialPruned` raised from it ends the fit. The search
    prunes no trial before step ``prune_warmup_steps`` (boosting rounds, or epochs for a network).
    While searching, ``predict(valid)`` scores the trial, so ``fit`` must not train on ``valid``.
    """

    tasks: ClassVar[tuple[str, ...]] = ("regression", "classification")
    featurizers: ClassVar[tuple[str, ...]] = ()
    search_space: ClassVar[dict[str, Any]] = {}
    search_spaces: ClassVar[dict[str, dict[str, Any]]] = {}
    profiles: ClassVar[dict[str, Profile]] = DEFAULT_PROFILES
    uses_validation: ClassVar[bool] = False
    prune_warmup_steps: ClassVar[int] = PRUNE_WARMUP_STEPS
    # True for a model that standardises a regression target inside ``fit`` (flagged on the board
    # when the protocol does not scale targets for every model)
    scales_target_itself: ClassVar[bool] = False
    # False for a model that learns nothing from the evaluation labels (a pre-trained head applied
    # zero-shot): its predictions are in the units of the data it was trained on, so the harness
    # neither standardises its target nor maps its predictions back
    learns_from_labels: ClassVar[bool] = True

    @classmethod
    def space_for(cls, protocol: str, task: str | None = None) -> dict[str, Any]:
        """The search space under ``protocol`` (``search_spaces["<protocol>:<task>"]``, else
        ``search_spaces["<protocol>"]``, else ``search_space``). Entries that are plain values,
        not distributions, are parameters the protocol fixes (e.g. a tree cap with early stopping)."""
        for key in (f"{protocol}:{task}", protocol):
            if key in cls.search_spaces:
                return dict(cls.search_spaces[key])
        return dict(cls.search_space)

    def __init__(self, task: str = "regression", seed: int = 0):
        self.task = task
        self.seed = seed

    # scikit-learn's get_params / clone contract, without requiring sklearn's BaseEstimator
    @classmethod
    def param_names(cls) -> list[str]:
        sig = inspect.signature(cls.__init__)
        return [n for n, p in sig.parameters.items() if n != "self" and p.kind == p.POSITIONAL_OR_KEYWORD]

    @classmethod
    def param_defaults(cls) -> dict[str, Any]:
        """Each hyperparameter's default in ``__init__`` (parameters without one are left out)."""
        sig = inspect.signature(cls.__init__)
        return {n: p.default for n, p in sig.parameters.items() if n != "self" and p.default is not p.empty}

    @classmethod
    def inert_params(cls, params: dict[str, Any]) -> set[str]:
        """The parameters that have no effect on a run with ``params`` (none by default). A model with
        modes that ignore some of its parameters names them here, so that a profile changing one of
        them does not supersede that mode's stored runs (:func:`synbench.runner.profile_drift`)."""
        return set()

    def get_params(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.param_names()}

    def trains_on_validation_rows(self) -> bool:
        """Whether the final fit learns from the validation rows as well as the inner-training ones.
        A model without early stopping gets them as training rows; one that stops on them does not,
        unless it grows again on every row afterwards (``refits_on_every_row``) or, like DeepSynergy's
        published refit, retrains on them itself (override this). The board flags a method whose
        final model saw only the inner-training rows, beside baselines that saw all of them."""
        return not self.uses_validation or bool(getattr(self, "refits_on_every_row", False))

    def clone(self, **overrides) -> "Model":
        params = copy.deepcopy(self.get_params())
        params.update(overrides)
        return type(self)(**params)

    def fit(self, train: Batch, valid: Batch | None = None) -> "Model":
        raise NotImplementedError

    def report_validation(self, step: int, loss: float) -> None:
        """Hand the search the validation loss at ``step`` (1-based epoch or round); a no-op outside
        a search, and for a non-finite loss (the model's own rule handles divergence)."""
        report = getattr(self, "report_progress_", None)
        if report is not None and np.isfinite(loss):
            report(int(step), float(loss))

    def predict(self, batch: Batch) -> np.ndarray:
        raise NotImplementedError

    def extra_outputs(self, batch: Batch) -> dict[str, np.ndarray]:
        """Optional per-row outputs stored beside predictions (e.g. ``y_std`` from MC dropout)."""
        return {}


__all__ = ["Plugin", "Dataset", "Featurizer", "Model", "Real", "Integer", "Categorical", "Profile", "DEFAULT_PROFILES",
           "SEARCH_TRIALS", "PRUNE_WARMUP_STEPS", "PRUNE_WARMUP_EPOCHS", "PROTOCOLS", "DEFAULT_PROTOCOL", "FeatureSet", "Batch"]
