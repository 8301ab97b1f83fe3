"""The runner: a run is a grid of independent, serialisable jobs.

``plan()`` expands datasets x targets x models x folds into :class:`Job` objects, skipping
model/task pairs a model does not support. ``prepare()`` computes and stores the split tables
once, so every model sees the same splits, and checks every fold can be trained and scored.
``execute()`` runs one job start to finish in any process; ``run()`` hands the unfinished jobs
to an executor and skips those already in the store.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import sys
import time
from collections import Counter
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from functools import lru_cache
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd

from . import progress, provenance
# PRUNE_WARMUP_STEPS: the default warm-up of the search's pruner (a model sets its own)
from .base import (DEFAULT_PROTOCOL, PROTOCOLS, PRUNE_WARMUP_STEPS, SEARCH_TRIALS, Categorical, Integer, Profile, Real,
                   is_distribution)
from .data import Batch, SynergyData
from .errors import ConfigError, SynbenchError
from .features import featurize, parse_spec
from .metrics import score_predictions
from .neural import model_code, progress_path
from .registry import get_registry, suggest
from .splits import (CROSS, EXTERNAL, check_scheme, check_splits, describe_coverage, entity_coverage,
                     fold_count, fold_groups, fold_ids, make_splits, with_cross, with_external)
from .store import Store

log = logging.getLogger(__name__)

SELECTION_METRIC = {"regression": ("mse", False), "classification": ("roc_auc", True)}
# the search's pruner: keep a trial unless it is in the worst quarter at a step. Revision 1 (records
# whose summary says "percentile 25") kept only the best quarter, pruning far more than intended
PRUNE_KEEP_PERCENTILE = 75.0
PRUNER_REVISION = 2
LEGACY_PROTOCOL = "table1"
# protocols under which the harness standardises every regression target with training statistics
SCALED_PROTOCOLS = ("strong",)


class TrialPruned(Exception):
    """Raised through a model's ``report_progress_`` when the search gives up on a trial."""


@dataclass(frozen=True)
class Job:
    """Everything needed to run one (dataset, target, model, fold) anywhere. JSON-serialisable."""

    dataset: str
    target: str
    model: str
    featurizers: tuple[str, ...]
    profile: str
    split: str
    n_folds: int
    fold: int
    seed: int
    params: tuple[tuple[str, object], ...] = ()  # user overrides of model hyperparameters
    protocol: str = DEFAULT_PROTOCOL  # search ranges and target scaling (``strong`` or ``table1``)
    trials: int | None = None  # search trials, the same for every model of a run

    @property
    def job_id(self) -> str:
        fields = asdict(self)
        if fields["protocol"] == LEGACY_PROTOCOL and fields["trials"] is None:
            # a record written before protocols existed keeps the id it was stored under
            del fields["protocol"], fields["trials"]
        identity = json.dumps(fields, sort_keys=True, default=str)
        digest = hashlib.sha256(identity.encode()).hexdigest()[:12]
        return f"{self.dataset}.{self.target}.{self.model}.f{self.fold}.{digest}"

    @property
    def split_key(self) -> tuple[str, str, int, int]:
        return (self.dataset, self.split, self.n_folds, self.seed)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["featurizers"] = list(self.featurizers)
        d["params"] = dict(self.params)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "Job":
        d = dict(d)
        d["featurizers"] = tuple(d["featurizers"])
        d["params"] = tuple(sorted(dict(d.get("params", {})).items()))
        # records written before protocols existed used BAITSAO's Table 1 ranges and raw targets
        d.setdefault("protocol", LEGACY_PROTOCOL)
        return cls(**d)

    def describe(self) -> str:
        seed = f" seed {self.seed}" if self.seed else ""
        return f"{self.dataset}/{self.target} {self.model} [{self.protocol}] fold {self.fold}{seed}"


@dataclass
class RunSettings:
    data_dir: str | None = None
    threads: int | None = None  # per job; None = all cores
    use_feature_cache: bool = True
    # inline jobs compute in a forked child so that a signal stops them at once; False keeps them in
    # this process (a library caller that inspects or patches the model in-process)
    isolate: bool = True
    # where a final fit keeps its resumable training state (``.training-<job id>.pt``; models that
    # support it save every epoch); None: nowhere. ``execute`` uses the store's jobs folder
    checkpoint_dir: str | None = None


# -- loading --------------------------------------------------------------------------------------
@lru_cache(maxsize=8)
def load_dataset(name: str, data_dir: str | None = None) -> SynergyData:
    cls = get_registry().dataset(name)
    data = cls().load(data_dir)
    if not isinstance(data, SynergyData):
        from .errors import PluginError

        raise PluginError(f"dataset '{name}' returned {type(data).__name__}, not SynergyData")
    return data.validate()


def load_job_data(name: str, split: str, data_dir: str | None = None) -> SynergyData:
    """The data a job runs on: the dataset, joined with its external set for ``external:<set>`` splits
    and with the training dataset for ``cross:<dataset>`` splits."""
    data = load_dataset(name, data_dir)
    if split.startswith(EXTERNAL):
        return _with_external_cached(name, split, data_dir)
    if split.startswith(CROSS):
        return _with_cross_cached(name, split, data_dir)
    return data


@lru_cache(maxsize=4)
def _with_cross_cached(name: str, split: str, data_dir: str | None) -> SynergyData:
    return with_cross(load_dataset(name, data_dir), load_dataset(split[len(CROSS):], data_dir)).validate()


@lru_cache(maxsize=4)
def _with_external_cached(name: str, split: str, data_dir: str | None) -> SynergyData:
    return with_external(load_dataset(name, data_dir), split[len(EXTERNAL):]).validate()


# -- planning -------------------------------------------------------------------------------------
def resolve_profile(model_cls, profile: str) -> Profile:
    if profile not in model_cls.profiles:
        raise ConfigError(f"model '{model_cls.name}' has no profile '{profile}'{suggest(profile, model_cls.profiles)}")
    return model_cls.profiles[profile]


def job_space(model_cls, profile: Profile, job: Job, task: str | None) -> tuple[dict, dict]:
    """A job's search space (the protocol's, with the profile's own ranges) and the parameters fixed
    for it: what the protocol fixes, bounded by the profile's budget, then ``-p`` over both."""
    space = model_cls.space_for(job.protocol, task) if job.protocol in PROTOCOLS else dict(model_cls.search_space)
    space = {k: profile.ranges.get(k, v) if is_distribution(v) else v for k, v in space.items()}
    fixed = {**{k: v for k, v in space.items() if not is_distribution(v)}, **profile.params, **dict(job.params)}
    return space, fixed


def searched_ranges(space: dict, job: Job) -> dict:
    """The ranges ``job``'s search covers: the distributions of its ``space`` (:func:`job_space`),
    less the parameters its ``-p`` values fix."""
    return {k: v for k, v in space.items() if is_distribution(v) and k not in dict(job.params)}


# what made a stored record stale (:func:`drift`): the board names it
PROFILE_SETTINGS, SEARCH_RANGES = "profile settings", "search ranges"


def profile_drift(job: Job, record: dict) -> str | None:
    """Why the stored ``record`` of ``job`` no longer stands for it, in words (:func:`drift`)."""
    found = drift(job, record)
    return found[1] if found else None


def drift(job: Job, record: dict) -> tuple[str, str] | None:
    """What changed since the stored ``record`` of ``job`` ran (:data:`PROFILE_SETTINGS` or
    :data:`SEARCH_RANGES`) and how, in words; None when nothing did. A profile whose epoch cap,
    optimiser or other fixed parameter changed, or a protocol whose search ranges changed, would
    otherwise leave the old result standing under the same job id.

    Fixed parameters: only those the profile, the protocol's fixed values and ``-p`` set are
    compared; searched ones are the search's choice, and so are left out the ones a model names as
    without effect on a run with the stored parameters (:meth:`Model.inert_params`: BERT's
    ``encode_bf16`` does nothing outside ``strategy=frozen``), so that a profile setting for one
    mode of a model does not recompute the runs of its other modes. Ranges: those the job's search
    covers today (:func:`searched_ranges`) against the record's ``search_summary.space``."""
    try:
        model_cls = get_registry().model(job.model)
        profile = resolve_profile(model_cls, job.profile)
    except SynbenchError:
        return None  # a plugin no longer installed: nothing to compare with
    space, expected = job_space(model_cls, profile, job, record.get("task"))
    ran, searched = dict(record.get("params") or {}), set(record.get("selected_params") or {})
    # a parameter added to the model since the job ran: it ran with the behaviour the parameter's
    # default keeps (e.g. XGBoost's refit on every training row, off by default, fixed on by strong)
    defaults = model_cls.param_defaults()
    if ran:  # a record without parameters says nothing to compare
        ran.update({k: defaults[k] for k in expected if k not in ran and k not in searched and k in defaults})
    inert = set(model_cls.inert_params(dict(ran)))
    log = record.get("training") if isinstance(record.get("training"), dict) else {}
    # a run its own stopping rule ended before its cap computes the same under any higher cap
    cap = log.get("max_epochs", log.get("max_trees")) if log.get("stopped") == "early stopping" else None

    def plain(value):
        return json.loads(json.dumps(value, default=str))

    def raised_cap(old, new) -> bool:
        return cap is not None and old == cap and isinstance(new, (int, float)) and new >= cap

    changed = [f"{k} {plain(ran[k])!r} -> {plain(v)!r}" for k, v in sorted(expected.items())
               if k in ran and k not in searched and k not in inert and plain(ran[k]) != plain(v)
               and not raised_cap(plain(ran[k]), plain(v))]
    if changed:
        return PROFILE_SETTINGS, f"its profile '{job.profile}' now fixes {', '.join(changed)}"
    ranges = _ranges_drift(searched_ranges(space, job), record)
    return (SEARCH_RANGES, f"its search under '{job.protocol}' now covers {ranges}") if ranges else None


def _ranges_drift(today: dict, record: dict) -> str | None:
    """How the ranges a stored job searched differ from ``today``'s (None when they do not, or when
    it ran no trials: then the ranges chose nothing). A widened range (a low edge every fold chose)
    would otherwise leave the narrower search's result standing."""
    summary = record.get("search_summary") or {}
    searched = summary.get("space")
    if not isinstance(searched, dict) or not (summary.get("n_trials") or record.get("search")):
        return None
    today = {k: str(v) for k, v in today.items()}
    changed = [f"{k} {searched.get(k, 'unsearched')} -> {today.get(k, 'unsearched')}"
               for k in sorted(set(searched) | set(today)) if searched.get(k) != today.get(k)]
    return ", ".join(changed) or None


def validation_rows_learnt(model, n_valid: int) -> int:
    """How many of the ``n_valid`` validation rows the fitted ``model``'s final fit learnt from: all or
    none by :meth:`Model.trains_on_validation_rows`, unless the fit counted them itself
    (``validation_rows_learnt_``: e.g. Synergy Transfer, whose fine-tuning trains on a target tissue's
    validation rows when they are too few to stop on)."""
    counted = getattr(model, "validation_rows_learnt_", None)
    if counted is not None:
        return int(counted)
    return n_valid if model.trains_on_validation_rows() else 0


def stored(store: Store, job: Job) -> bool:
    """Whether ``job`` is in ``store`` as its plan would compute it today. A stored job whose
    profile or search ranges changed since (:func:`profile_drift`) is superseded: moved to ``jobs/.superseded``
    (a dry run only reports it) and counted as not done, so the next run recomputes it."""
    if not store.has_job(job.job_id):
        return False
    reason = profile_drift(job, store.record(job.job_id))
    if reason is None:
        return True
    store.supersede(job.job_id, reason)
    return False


def _featurizers_for(model_cls, override) -> tuple[str, ...]:
    """``--featurizer`` replaces a model's inputs; a model that reads no features (constant) keeps none."""
    return tuple(override) if override and model_cls.featurizers else tuple(model_cls.featurizers)


def search_trials(profile: str, trials: int | None = None) -> int:
    """Trials of search per job: ``--trials`` when given, else the profile's count; the same for
    every model of the run, so no method is tuned harder than another."""
    if trials is not None:
        if trials < 0:
            raise ConfigError(f"--trials must be 0 or more, got {trials}")
        return int(trials)
    return SEARCH_TRIALS.get(profile, SEARCH_TRIALS["cpu"])


# __init__ arguments of every model that each job sets, never -p: what to use instead
HARNESS_PARAMS = {"task": "from the target's task; choose the target with -t", "seed": "choose it with --seed or --seeds"}


def plan(datasets, models, targets=None, featurizers=None, profile="cpu", split=None, n_folds=None, seed=0,
         folds=None, params=None, data_dir=None, protocols=(DEFAULT_PROTOCOL,), seeds=None, trials=None) -> list[Job]:
    """Expand the grid. ``targets=None`` means every target of each dataset; ``split=None`` means the
    dataset's published folds when it has them, else ``random``. ``n_folds``: see
    :func:`synbench.splits.fold_count` (the folds of a generated split; another count than the one
    the data fixes for a published or per-tissue split is an error).
    ``seeds`` repeats every job with each seed (default: ``seed`` alone); ``protocols`` runs every
    job under each search protocol."""
    registry = get_registry()
    params = dict(params or {})
    seeds = list(seeds) if seeds else [seed]
    protocols = list(dict.fromkeys(protocols or (DEFAULT_PROTOCOL,)))
    for p in protocols:
        if p not in PROTOCOLS:
            raise ConfigError(f"unknown protocol '{p}'{suggest(p, PROTOCOLS)}")
    for s in seeds:
        if not isinstance(s, (int, np.integer)) or s < 0:
            raise ConfigError(f"seeds must be integers of 0 or more, got {s!r}")
    for option, values in (("--seeds", seeds), ("--folds", folds or []), ("--model", models), ("--dataset", datasets)):
        repeated = sorted(v for v, n in Counter(values).items() if n > 1)
        if repeated:  # the same job twice in one grid
            raise ConfigError(f"{option} lists {', '.join(map(str, repeated))} more than once")
    n_trials = search_trials(profile, trials)
    # ``-p NAME=VALUE`` applies to every model that has NAME (the auto-added constant has none); a name
    # that no chosen model has is a typo.
    model_params = {}
    known = set()
    specs: dict[str, None] = {}  # the featurizer specs of every model, in order
    for model_name in models:
        model_cls = registry.model(model_name)
        resolve_profile(model_cls, profile)
        valid_params = set(model_cls.param_names())
        known |= valid_params
        model_params[model_name] = tuple(sorted((k, v) for k, v in params.items() if k in valid_params))
        specs.update(dict.fromkeys(_featurizers_for(model_cls, featurizers)))
    for f in specs:  # once per distinct spec: a user's embedding file is read once, however many models use it
        registry.featurizer_spec(f)  # unknown names, bad options and unreadable inputs fail before any job runs
    for key in params:
        if key in HARNESS_PARAMS:
            raise ConfigError(f"-p {key} is not a hyperparameter: the harness sets it for every job ({HARNESS_PARAMS[key]})")
        if key not in known:
            owners = f"model '{models[0]}' has" if len(models) == 1 else "models " + ", ".join(map(repr, models)) + " have"
            raise ConfigError(f"{owners} no parameter '{key}'{suggest(key, sorted(known - set(HARNESS_PARAMS)))}")
    jobs = []
    for ds_name in datasets:
        registry.dataset(ds_name)
        data = load_dataset(ds_name, data_dir)
        scheme = check_scheme(data, split or ("published" if data.fold_column else "random"))  # one line if unknown
        n = fold_count(data, scheme, n_folds)
        if n < 1:
            raise ConfigError(f"--n-folds must be at least 1 (2 or more for cross-validation), got {n}")
        if n > len(data.combinations):  # else minutes of planning empty folds before the split fails
            raise ConfigError(f"--n-folds {n} is more than the {len(data.combinations):,} rows of dataset '{ds_name}'")
        data = load_job_data(ds_name, scheme, data_dir)
        ds_targets = targets or list(data.targets)
        for t in ds_targets:
            data.target(t)
        chosen_folds = list(range(n)) if folds is None else list(folds)
        for f in chosen_folds:
            if not 0 <= f < n:
                raise ConfigError(f"fold {f} is out of range for {n} folds")
        for t in ds_targets:
            task = data.targets[t].task
            for model_name in models:
                model_cls = registry.model(model_name)
                if task not in model_cls.tasks:
                    continue  # e.g. a classification-only method on a regression target
                feats = _featurizers_for(model_cls, featurizers)
                for protocol in protocols[:1] if getattr(model_cls, "protocol_invariant", False) else protocols:
                    # a model with nothing to tune runs no trials, whatever the run's budget
                    tuned = {k for k, v in model_cls.space_for(protocol, task).items()
                             if is_distribution(v) and k not in dict(model_params[model_name])}
                    # a profile without search (smoke) runs none unless --trials asks for it
                    searched = trials is not None or resolve_profile(model_cls, profile).search_trials > 0
                    job_trials = n_trials if tuned and searched else 0
                    for s in seeds:
                        for f in chosen_folds:
                            jobs.append(Job(ds_name, t, model_name, feats, profile, scheme, n, f, int(s),
                                            model_params[model_name], protocol, job_trials))
    return jobs


def check_split_tables(jobs: list[Job], data_dir=None) -> dict[tuple, pd.DataFrame]:
    """Compute the split tables the jobs need (once per dataset/scheme/seed) and check them for every
    job's target (a fold with one class, a fold with no test rows), writing nothing, so that a run
    the data refuses creates no store. Returns the tables by split key."""
    tables, checked = {}, set()
    for job in jobs:
        if job.split_key not in tables:
            data = load_job_data(job.dataset, job.split, data_dir)
            tables[job.split_key] = make_splits(data, job.split, job.n_folds, job.seed)
        key = job.split_key + (job.target,)
        if key not in checked:
            data = load_job_data(job.dataset, job.split, data_dir)
            check_splits(tables[job.split_key], data.labels(job.target), data.target(job.target).task,
                         where=f"{job.dataset}/{job.target} ({job.split}): ")
            checked.add(key)
    return tables


def prepare(jobs: list[Job], store: Store, data_dir=None) -> None:
    """Check and store the split tables the jobs need. A store keeps the table it has and refuses a
    different one (``Store.save_splits``), so the table checked is the table stored."""
    for split_key, table in check_split_tables(jobs, data_dir).items():
        store.save_splits(store.split_path(*split_key), table)
        dataset, scheme = split_key[0], split_key[1]
        if scheme.startswith(CROSS):  # which test entities training never saw, before any job runs
            ids = fold_ids(table, 0)
            data = load_job_data(dataset, scheme, data_dir)
            print(f"{dataset} ({scheme}): " + describe_coverage(entity_coverage(data, ids["train"].append(ids["valid"]), ids["test"])),
                  file=sys.stderr, flush=True)


# -- one job --------------------------------------------------------------------------------------
def _set_threads(n: int | None) -> None:
    if n is None:
        return
    from threadpoolctl import threadpool_limits

    # the variables reach the BLAS and OpenMP libraries loaded later (scipy's, scikit-learn's),
    # threadpoolctl those already loaded
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(n)
    threadpool_limits(n)
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(n)


def n_threads() -> int:
    """Threads a model may use inside one job (set by the executor)."""
    return int(os.environ.get("SYNBENCH_THREADS") or os.cpu_count() or 1)


def _bounded(ids: dict, max_rows: int, seed: int) -> dict:
    """The fold's training rows (train and valid in proportion) cut to ``max_rows`` at random; the
    same rows for every model of the fold, and the test rows untouched."""
    total = len(ids["train"]) + len(ids["valid"])
    if total <= max_rows:
        return ids
    rng = np.random.default_rng(seed)
    out = dict(ids)
    for role in ("train", "valid"):
        keep = int(round(len(ids[role]) * max_rows / total))
        out[role] = ids[role][np.sort(rng.choice(len(ids[role]), keep, replace=False))]
    return out


def _distributions(space: dict) -> dict:
    """Optuna distributions for a model's search space, and how to turn a sampled value back into
    the parameter (choices that are not plain values, e.g. layer tuples, are sampled by index)."""
    import optuna.distributions as od

    dists, decode = {}, {}
    for name, spec in space.items():
        if isinstance(spec, Real):
            dists[name] = od.FloatDistribution(float(spec.low), float(spec.high), log=spec.log)
        elif isinstance(spec, Integer):
            dists[name] = od.IntDistribution(int(spec.low), int(spec.high), log=spec.log)
        elif isinstance(spec, (Categorical, list, tuple)):
            choices = tuple(spec.choices if isinstance(spec, Categorical) else spec)
            if all(c is None or isinstance(c, (bool, int, float, str)) for c in choices):
                dists[name] = od.CategoricalDistribution(choices)
            else:
                dists[name] = od.CategoricalDistribution(tuple(range(len(choices))))
                decode[name] = choices
        else:
            from .errors import PluginError

            raise PluginError(f"search space entry '{name}' is {type(spec).__name__}; use Real, Integer or Categorical")
    return dists, decode


def edge_params(chosen: dict, space: dict, margin: float = 0.02) -> dict[str, str]:
    """Chosen values on the edge of their range ('low' or 'high'): a sign the range was too narrow.
    Integers are on the edge at a bound; reals within ``margin`` of the range (in log space for
    log ranges)."""
    edges = {}
    for name, value in chosen.items():
        spec = space.get(name)
        if isinstance(spec, Integer):
            if value <= spec.low:
                edges[name] = "low"
            elif value >= spec.high:
                edges[name] = "high"
        elif isinstance(spec, Real):
            lo, hi, v = (np.log(spec.low), np.log(spec.high), np.log(value)) if spec.log else (spec.low, spec.high, value)
            position = (v - lo) / (hi - lo) if hi > lo else 0.5
            if position <= margin:
                edges[name] = "low"
            elif position >= 1 - margin:
                edges[name] = "high"
    # a side that is the parameter's own limit cannot be widened: not an edge
    return {name: side for name, side in edges.items() if side not in getattr(space[name], "limits", ())}


def _select(model, profile: Profile, train: Batch, valid: Batch, seed: int, search_space: dict,
            n_trials: int | None = None, progress_file: Path | None = None) -> tuple[dict, list, dict]:
    """Optuna TPE search on the inner validation split only (never the test fold).

    Returns (chosen parameters, one entry per trial, a summary of the search). Models that report
    validation values during ``fit`` have hopeless trials pruned (the worst quarter at a step, after a warm-up), so the budget goes
    to promising configurations.

    ``progress_file`` (a small JSON file in the store's jobs folder, carried by a commit of the store)
    keeps every finished trial with the values it reported, so a job stopped during its search
    (the session ended, the machine went away) replays the finished trials on its next run instead
    of training them again: the sampler is asked in the same order from the same seed, so it proposes
    the same values, and each is told the stored outcome; from the first trial whose proposal differs
    (other code or data) the search runs afresh."""
    n_trials = profile.search_trials if n_trials is None else n_trials
    if n_trials <= 0 or not search_space:
        return {}, [], {"n_trials": 0, "sampler": None}
    import logging

    import optuna

    optuna.logging.set_verbosity(logging.WARNING)
    metric_name, higher = SELECTION_METRIC[model.task]
    metric = get_registry().metric(metric_name)
    search_train = train
    if profile.search_max_rows and len(train) > profile.search_max_rows:
        rng = np.random.default_rng(seed)
        keep = np.sort(rng.choice(len(train), profile.search_max_rows, replace=False))
        search_train = train.subset(train.rows.index[keep])
    dists, decode = _distributions(search_space)
    # a third of the trials explore at random before TPE models the good region
    sampler = optuna.samplers.TPESampler(seed=seed, n_startup_trials=max(2, n_trials // 3), multivariate=True)
    # Prune only a trial in the worst quarter of those seen at the same step, and only after the
    # model's warm-up: early in training a slow learner (boosting at a low learning rate) looks worse
    # than it ends, and a median rule from the first steps pruned most trials of every boosting search.
    # (Optuna's percentile is the share kept: 75 keeps the best three quarters)
    warmup = int(getattr(model, "prune_warmup_steps", PRUNE_WARMUP_STEPS))
    pruner = optuna.pruners.PercentilePruner(PRUNE_KEEP_PERCENTILE, n_startup_trials=4, n_warmup_steps=warmup)
    study = optuna.create_study(direction="maximize" if higher else "minimize", sampler=sampler, pruner=pruner)
    saved = SearchProgress(progress_file, metric_name, {
        "seed": seed, "space": {k: str(v) for k, v in search_space.items()}, "n_trials": n_trials, "metric": metric_name,
        "params": model.get_params(), "code": model_code(model), "optuna": optuna.__version__,
        "pruner": [PRUNER_REVISION, PRUNE_KEEP_PERCENTILE, warmup], "data": _rows_digest(search_train, valid)})
    trials, resumed = [], 0
    for i in range(n_trials):
        trial = study.ask(dists)
        config = {k: decode[k][v] if k in decode else v for k, v in trial.params.items()}
        done = saved.replay(i, trial.params)
        if done is not None:  # finished by an earlier run of this job: the same proposal, its stored outcome
            for step, value in done["reports"]:
                trial.report(value, step)
            state = {"pruned": optuna.trial.TrialState.PRUNED, "failed": optuna.trial.TrialState.FAIL}.get(done["state"])
            if state is None:
                study.tell(trial, done["value"])
            else:
                study.tell(trial, state=state)
            trials.append({"params": config, metric_name: done["value"], "state": done["state"], "seconds": done["seconds"]})
            resumed += 1
            continue
        progress.report(f"search trial {i + 1}/{n_trials}")
        candidate = model.clone(**config)
        reports = []

        def report_progress(step, loss, trial=trial, reports=reports):
            # models report a loss (lower is better); the study compares in its own direction
            value = -float(loss) if higher else float(loss)
            trial.report(value, int(step))
            reports.append((int(step), value))
            if trial.should_prune():
                raise TrialPruned(f"pruned at step {step}")

        candidate.report_progress_ = report_progress
        t0 = time.perf_counter()
        try:
            candidate.fit(search_train, valid if model.uses_validation else None)
        except TrialPruned:
            study.tell(trial, state=optuna.trial.TrialState.PRUNED)
            trials.append({"params": config, metric_name: None, "state": "pruned",
                           "seconds": round(time.perf_counter() - t0, 2)})
        else:
            score = metric.fn(valid.y, np.asarray(candidate.predict(valid), dtype=float).reshape(-1))
            if np.isfinite(score):
                study.tell(trial, score)
            else:
                study.tell(trial, state=optuna.trial.TrialState.FAIL)
            trials.append({"params": config, metric_name: score, "state": "complete" if np.isfinite(score) else "failed",
                           "seconds": round(time.perf_counter() - t0, 2)})
        saved.add(i, trial.params, reports, trials[-1])
    summary = {"sampler": "optuna TPE (multivariate)", "pruner": f"worst quarter at a step, after {warmup} steps", "pruner_revision": PRUNER_REVISION, "n_trials": n_trials,
               "budget": "trials", "rows": len(search_train), "metric": metric_name,
               "pruned": sum(t["state"] == "pruned" for t in trials),
               # the replayed trials ran in an earlier process: their seconds are not in this one's search time
               **({"resumed_trials": resumed, "resumed_seconds": round(sum(t["seconds"] for t in trials[:resumed]), 2)}
                  if resumed else {})}
    finite = [t for t in trials if t["state"] == "complete"]
    if not finite:
        return {}, trials, summary
    best = (max if higher else min)(finite, key=lambda t: t[metric_name])
    return dict(best["params"]), trials, summary


class SearchProgress:
    """The finished trials of one job's search, kept in a small JSON file while the search runs.

    ``fingerprint`` (seed, space, trial budget, metric, the model's fixed parameters and source, the
    optuna version, the pruner's settings, a digest of the search's rows and labels) must match the
    file's, else the file is ignored and overwritten. The sampler's proposals are compared on replay
    as well; an entry that is not a well-formed trial ends the replay there."""

    STATES = ("complete", "pruned", "failed")

    def __init__(self, path: Path | None, metric_name: str, fingerprint: dict):
        self.path = None if path is None else Path(path)
        self.metric_name = metric_name
        self.fingerprint = json.loads(json.dumps(fingerprint, sort_keys=True, default=str))
        self.trials: list = []
        if self.path is not None and self.path.is_file():
            try:
                saved = json.loads(self.path.read_text())
            except (OSError, ValueError):  # damaged: run the search afresh (the file is replaced)
                saved = {}
            if isinstance(saved, dict) and saved.get("fingerprint") == self.fingerprint and isinstance(saved.get("trials"), list):
                for entry in saved["trials"]:
                    if not self._well_formed(entry):
                        break
                    self.trials.append(entry)
            elif isinstance(saved, dict) and isinstance(saved.get("trials"), list) and saved["trials"]:
                # hours of trials may go: say so where the run's output goes, not only in the dry run
                log.warning(f"the {len(saved['trials'])} search trials kept in {self.path.name} are not reused, as "
                            f"{_fingerprint_change(saved.get('fingerprint'), self.fingerprint)} changed: the search starts afresh")
        self._replaying = True

    def _well_formed(self, entry) -> bool:
        try:
            return (isinstance(entry["proposal"], dict) and entry["state"] in self.STATES
                    and isinstance(entry["seconds"], (int, float))
                    and all(isinstance(step, int) and isinstance(value, (int, float)) for step, value in entry["reports"])
                    and (entry["state"] != "complete" or (isinstance(entry["value"], (int, float)) and np.isfinite(entry["value"]))))
        except (KeyError, TypeError, ValueError):
            return False

    def replay(self, index: int, proposal: dict) -> dict | None:
        """The stored outcome of trial ``index`` if the sampler proposed the same values, else None
        (and nothing after it is replayed)."""
        if self._replaying and index < len(self.trials) and self.trials[index]["proposal"] == json.loads(json.dumps(proposal)):
            return self.trials[index]
        if self._replaying:
            self._replaying = False
            del self.trials[index:]
        return None

    def add(self, index: int, proposal: dict, reports: list, outcome: dict) -> None:
        del self.trials[index:]
        value = outcome[self.metric_name]
        self.trials.append({"proposal": proposal, "reports": reports, "state": outcome["state"], "seconds": outcome["seconds"],
                            "value": None if value is None or not np.isfinite(value) else float(value)})
        if self.path is None:
            return
        from .store import atomic_write

        text = json.dumps({"fingerprint": self.fingerprint, "trials": self.trials})
        atomic_write(self.path, lambda tmp: Path(tmp).write_text(text))


_FINGERPRINT_WORDS = {"code": "the code of the model or of the harness's training modules",
                      "data": "the search's rows or labels", "params": "the model's fixed parameters",
                      "optuna": "optuna's version", "space": "the search space", "n_trials": "the trial budget",
                      "seed": "the seed", "metric": "the metric", "pruner": "the pruner's settings"}


def _fingerprint_change(kept, now: dict) -> str:
    """What differs between a kept search's fingerprint and a run's, in words (code digests shown)."""
    if not isinstance(kept, dict):
        return "its fingerprint"
    words, keys = [], set(kept) | set(now)
    for key in [k for k in _FINGERPRINT_WORDS if k in keys] + sorted(keys - set(_FINGERPRINT_WORDS)):
        if kept.get(key) != now.get(key):
            word = _FINGERPRINT_WORDS.get(key, key)
            words.append(f"{word} (digest {kept.get(key)} then, {now.get(key)} now)" if key == "code" else word)
    return ", ".join(words[:-1]) + " and " + words[-1] if len(words) > 1 else "".join(words) or "its fingerprint"


def _rows_digest(*batches: Batch) -> str:
    """A digest of the rows and labels a search trains and validates on."""
    import hashlib

    digest = hashlib.sha256()
    for batch in batches:
        digest.update(pd.util.hash_pandas_object(batch.rows.index.to_series(), index=False).to_numpy().tobytes())
        digest.update(np.ascontiguousarray(np.asarray(batch.y, dtype=float)).tobytes())
    return digest.hexdigest()[:16]


def search_progress_path(settings: RunSettings, job: Job) -> Path:
    """Where the search of ``job`` keeps its finished trials (committed with the store, unlike the
    weight-holding training state)."""
    return Path(settings.checkpoint_dir or ".") / f".search-{job.job_id}.json"


def check_predictions(raw, n_rows: int, task: str, job: Job) -> np.ndarray:
    """What a model's ``predict`` returned, as one finite float per row, refused on the same
    grounds as :func:`synbench.testing.check_model` refuses it: not one value per row (an (n, 1)
    column is accepted), NaN or infinite, or a classification score outside [0, 1]."""
    from .errors import PluginError

    who = f"model '{job.model}'"
    try:
        values = np.asarray(raw, dtype=float)
    except (TypeError, ValueError):
        raise PluginError(f"{who} returned predictions that are not numbers ({type(raw).__name__}) on {job.describe()}") from None
    if values.ndim == 2 and values.shape[1] == 1:
        values = values[:, 0]
    if values.ndim != 1:
        wanted = "one class-1 probability per row" if task == "classification" else "one value per row"
        raise PluginError(f"{who} returned predictions of shape {values.shape} for {n_rows} rows on {job.describe()}; "
                          f"predict() must return {wanted}, shape ({n_rows},)")
    if len(values) != n_rows:
        raise PluginError(f"{who} returned {len(values)} predictions for {n_rows} rows on {job.describe()}")
    bad = ~np.isfinite(values)
    if bad.any():
        raise PluginError(f"{who} returned {int(bad.sum())} NaN or infinite predictions of {n_rows} on {job.describe()}")
    if task == "classification" and ((values < 0) | (values > 1)).any():
        raise PluginError(f"{who} returned classification scores from {values.min():g} to {values.max():g} on "
                          f"{job.describe()}; predict() must return class-1 probabilities in [0, 1]")
    return values


@contextmanager
def _plugin_errors(job: Job):
    """A model that raises becomes a one-line error naming it (SYNBENCH_DEBUG=1 keeps the traceback)."""
    try:
        yield
    except SynbenchError:
        raise
    except Exception as exc:
        if os.environ.get("SYNBENCH_DEBUG"):
            raise
        from .errors import PluginError

        first = (str(exc).strip().splitlines() or [""])[0]
        raise PluginError(f"model '{job.model}' failed on {job.describe()}: {type(exc).__name__}: {first}") from exc


@dataclass
class SharedInputs:
    """Inputs loaded once and handed to every job (the Ray executor puts them in its object store)."""

    datasets: dict = field(default_factory=dict)  # (dataset, split) -> SynergyData
    features: dict = field(default_factory=dict)  # ((dataset, split), spec) -> FeatureSet
    splits: dict = field(default_factory=dict)  # split_key -> split table


def load_shared(jobs: list[Job], store: Store, settings: RunSettings) -> SharedInputs:
    shared = SharedInputs()
    registry = get_registry()
    for job in jobs:
        key = (job.dataset, job.split)
        if key not in shared.datasets:
            shared.datasets[key] = load_job_data(job.dataset, job.split, settings.data_dir)
        data = shared.datasets[key]
        for spec in job.featurizers:
            if (key, spec) not in shared.features:
                shared.features[key, spec] = featurize(data, spec, registry=registry, use_cache=settings.use_feature_cache)
        if job.split_key not in shared.splits:
            shared.splits[job.split_key] = store.load_splits(store.split_path(*job.split_key))
    return shared


def execute(job: Job, store: Store, settings: RunSettings | None = None, isolate: bool = False) -> dict | None:
    """Run one job and store it. Returns the record, or None if the store already had it or another
    run is computing it right now (each job is claimed with a lock file, so concurrent runs on one
    store share the work instead of repeating it).

    ``isolate``: compute in a forked child process (where the platform can fork), so that a signal
    stops the job at once even inside a long C-level fit: this process ends the child and releases
    the lock. The child writes nothing; this process stores what it sends back."""
    settings = settings or RunSettings()
    if settings.checkpoint_dir is None:
        settings = replace(settings, checkpoint_dir=str(store.jobs_dir))
    if stored(store, job):
        _remove_kept_progress(settings, job)  # left by a run that lost the race to store it
        return None
    with store.claim(job.job_id) as claimed:
        if not claimed or stored(store, job):
            return None
        splits = store.load_splits(store.split_path(*job.split_key))
        shared = SharedInputs(splits={job.split_key: splits})
        if isolate and _can_fork():
            record, predictions = _compute_in_child(job, settings, shared)
        else:
            record, predictions = compute(job, settings, shared)
        store.write_job(job.job_id, record, predictions)
        _remove_kept_progress(settings, job)  # the job is stored: nothing to resume
    return record


def _remove_kept_progress(settings: RunSettings, job: Job) -> None:
    state = training_state_path(settings, job)
    for path in (state, progress_path(state), search_progress_path(settings, job)):
        path.unlink(missing_ok=True)


def training_state_path(settings: RunSettings, job: Job) -> Path:
    """Where the final fit of ``job`` keeps its resumable training state."""
    return Path(settings.checkpoint_dir or ".") / f".training-{job.job_id}.pt"


def compute(job: Job, settings: RunSettings, shared: SharedInputs) -> tuple[dict, pd.DataFrame]:
    """Run one job on the given inputs; returns its record and predictions (nothing is written)."""
    if settings.threads:
        os.environ["SYNBENCH_THREADS"] = str(settings.threads)
    # BLAS and OpenMP follow the job's thread count in every executor: a multi-threaded BLAS splits
    # its sums differently, so without this an inline job and the same job in a worker differ in the
    # last digits
    _set_threads(n_threads())
    registry = get_registry()
    data = shared.datasets.get((job.dataset, job.split)) or load_job_data(job.dataset, job.split, settings.data_dir)
    target = data.target(job.target)
    model_cls = registry.model(job.model)
    profile = resolve_profile(model_cls, job.profile)
    ids = fold_ids(shared.splits[job.split_key], job.fold)
    labels = data.labels(job.target)
    if profile.fit_max_rows:
        ids = _bounded(ids, profile.fit_max_rows, job.seed * 100 + job.fold)

    t0 = time.perf_counter()
    features = {name: shared.features.get(((job.dataset, job.split), name))
                or featurize(data, name, registry=registry, use_cache=settings.use_feature_cache) for name in job.featurizers}
    featurize_seconds = time.perf_counter() - t0

    entity_rows = data.entity_rows()
    y = labels.to_numpy(dtype=float)
    scaling = None
    scaled_protocol = target.task == "regression" and job.protocol in SCALED_PROTOCOLS
    if scaled_protocol and not model_cls.learns_from_labels:
        # inverting a standardisation that never happened would rescale predictions already in raw units
        scaling = {"method": "none", "reason": "the model learns nothing from these labels; it predicts in raw units"}
    elif scaled_protocol:
        # the harness standardises every regression target with the fold's training statistics
        # (never the test rows) and inverts the predictions, so no model gets it while another does not
        fit_labels = labels.loc[ids["train"].append(ids["valid"])].to_numpy(dtype=float)
        mean, std = float(fit_labels.mean()), float(fit_labels.std())
        std = std if std > 0 else 1.0
        scaling = {"method": "standardise", "mean": mean, "std": std, "statistics_from": "training rows (train + valid)"}
        y = (y - mean) / std
    # the dataset's other targets of the same rows, for multi-task models (training rows only)
    others = [t for t in data.targets.values() if t.name != job.target]
    aux = {t.name: t.values(data.combinations).to_numpy(dtype=float) for t in others} or None
    if aux and scaling is not None and scaling["method"] == "standardise":
        # the other regression targets too, each with its own training statistics: a multi-task
        # loss (MARSY's) then weighs the tasks as on standardised data, not by their units
        positions = data.combinations.index.get_indexer(ids["train"].append(ids["valid"]))
        scaled = []
        for t in others:
            values = aux[t.name]
            fit = values[positions][np.isfinite(values[positions])]
            if t.task == "regression" and len(fit):
                aux[t.name] = (values - float(fit.mean())) / (float(fit.std()) or 1.0)
                scaled.append(t.name)
        if scaled:
            scaling["auxiliary_targets"] = {"standardised": scaled, "statistics_from": "training rows, each target its own"}
    aux_tasks = {t.name: t.task for t in others} or None
    # each row's tissue and the fold's held-out group (target tissue) are not labels: every side gets them
    fold_group = fold_groups(shared.splits[job.split_key]).get(job.fold)
    full = Batch(entity_rows, features, target.task, y, job.target, aux, aux_tasks, data.row_tissues(), fold_group)
    inner_train, inner_valid = full.subset(ids["train"]), full.subset(ids["valid"])
    test = full.subset(ids["test"])
    test.y, test.aux = None, None  # a model never sees test labels, of this target or any other

    # a profile's parameters are its budget: they bound what a protocol fixes (a smaller tree cap in
    # the quick profile); -p overrides both
    space, base_params = job_space(model_cls, profile, job, target.task)
    try:
        model = model_cls(task=target.task, seed=job.seed, **base_params)
    except TypeError as exc:
        raise ConfigError(f"model '{job.model}' rejected its parameters: {exc}") from None
    with provenance.PeakMemory() as memory, _plugin_errors(job):
        t0 = time.perf_counter()
        search_space = searched_ranges(space, job)
        n_trials = profile.search_trials if job.trials is None else job.trials
        chosen, trials, search_summary = _select(model, profile, inner_train, inner_valid, job.seed * 100 + job.fold,
                                                 search_space, n_trials,
                                                 search_progress_path(settings, job) if settings.checkpoint_dir else None)
        search_seconds = time.perf_counter() - t0
        final = model.clone(**chosen)
        if settings.checkpoint_dir:  # a model that can resume its training saves its state there
            final.checkpoint_path_ = training_state_path(settings, job)
        t0 = time.perf_counter()
        progress.report("final fit")
        if final.uses_validation:  # an instance may decide (e.g. boosting with or without early stopping)
            final.fit(inner_train, inner_valid)
            if getattr(final, "refits_on_every_row", False):
                # the stopping point found, a model may grow again on every training row (never in a trial)
                progress.report("final fit: refit on every training row")
                final.refit_all(full.subset(ids["train"].append(ids["valid"])))
        else:  # without early stopping the validation rows are training rows again
            final.fit(full.subset(ids["train"].append(ids["valid"])))
        fit_seconds = time.perf_counter() - t0
        t0 = time.perf_counter()
        y_pred = check_predictions(final.predict(test), len(test), target.task, job)
        extra = final.extra_outputs(test)
        predict_seconds = time.perf_counter() - t0
    if scaling is not None and scaling["method"] == "standardise":
        y_pred = y_pred * scaling["std"] + scaling["mean"]
        # per-row spreads (MC-dropout y_std) scale with the target; other outputs are left as they are
        extra = {k: np.asarray(v) * scaling["std"] if k.startswith("y_std") else v for k, v in extra.items()}
    if len(y_pred) != len(test):
        from .errors import PluginError

        raise PluginError(f"model '{job.model}' returned {len(y_pred)} predictions for {len(test)} rows")
    predictions = pd.DataFrame({"y_pred": y_pred, **{k: np.asarray(v) for k, v in extra.items()}}, index=test.rows.index)
    predictions.index.name = "row_id"
    metrics = score_predictions(predictions, labels, target.task, registry, where=f"model '{job.model}' on {job.describe()}")
    predictions.insert(0, "y_true", labels.loc[predictions.index].to_numpy())
    record = {
        "job_id": job.job_id,
        "job": job.to_dict(),
        "task": target.task,
        "params": {**final.get_params()},
        "selected_params": chosen,
        "search": trials,
        "search_summary": {**search_summary, "space": {k: str(v) for k, v in search_space.items()},
                           "edge_params": edge_params(chosen, search_space)},
        "protocol": job.protocol,
        "target_scaling": scaling,
        "constant_prediction": bool(len(y_pred) > 1 and np.ptp(y_pred) == 0),
        "metrics": metrics,
        "n_rows": {"train": len(ids["train"]), "valid": len(ids["valid"]), "test": len(ids["test"])},
        # the rows the final model learnt from: the inner-training ones only, for a model that stops on
        # the validation rows and does not train on them afterwards
        "final_fit_rows": len(ids["train"]) + validation_rows_learnt(final, len(ids["valid"])),
        "timing": {"featurize_seconds": featurize_seconds, "search_seconds": search_seconds,
                   "fit_seconds": fit_seconds, "predict_seconds": predict_seconds},
        "resources": {"peak_memory_mb": round(memory.peak_mb, 1), "start_memory_mb": round(memory.start_mb, 1),
                      "threads": n_threads(), "device": getattr(final, "device_", "cpu")},
        "training": getattr(final, "training_log_", None),  # e.g. epochs run, best epoch, losses
        "feature_info": {name: fs.info for name, fs in features.items()},
        # tissue schemes: the group (target tissue) the fold holds out, for per-tissue reporting
        **({"fold_group": fold_group} if fold_group is not None else {}),
        # cross-dataset jobs: the test drugs and cell lines no training row has
        **({"coverage": entity_coverage(data, ids["train"].append(ids["valid"]), ids["test"])} if job.split.startswith(CROSS) else {}),
        "provenance": {"versions": provenance.package_versions(), "git_commit": provenance.git_commit(),
                       **registry.provenance_of(job.model, job.dataset, job.featurizers),  # packages, or file + hash
                       "data_checksums": data.checksums, "machine": provenance.machine(),
                       "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S%z")},
    }
    return json.loads(json.dumps(record, default=_jsonable)), predictions


def _jsonable(value):
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating,)):
        return float(value)
    if isinstance(value, np.ndarray):
        return value.tolist()
    return str(value)


# -- processes that stop when told ----------------------------------------------------------------
STOP_GRACE_SECONDS = 3.0  # how long a worker may take to unwind after SIGTERM before it is killed
PARENT_POLL_SECONDS = 0.5  # how often a worker looks for its parent


def _can_fork() -> bool:
    import multiprocessing as mp

    return "fork" in mp.get_all_start_methods()


def _watch_parent(on_orphaned) -> None:
    """Call ``on_orphaned()`` from a daemon thread once the process that started this one is gone
    (a parent killed with SIGKILL can tell nobody; without this its workers idle forever)."""
    import threading

    parent = os.getppid()

    def watch():
        while os.getppid() == parent:
            time.sleep(PARENT_POLL_SECONDS)
        on_orphaned()

    threading.Thread(target=watch, name="synbench-parent-watch", daemon=True).start()


class _ChildTraceback(Exception):
    """The traceback of an unexpected error in a job's child process (a bug: shown in full)."""


def _child_main(conn, job: Job, settings: RunSettings, shared: SharedInputs) -> None:
    import signal
    import traceback

    # this process holds no lock and writes nothing: SIGTERM may end it at once; Ctrl-C reaches the
    # whole terminal's process group, and the parent decides what it means
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _watch_parent(lambda: os._exit(1))
    # the parent's listeners (a live display) belong to the parent: progress goes through the pipe
    progress._listeners[:] = [lambda message: conn.send(("report", message))]
    try:
        messages = [("result", compute(job, settings, shared))]
    except SynbenchError as exc:
        messages = [("error", exc), ("error", SynbenchError(str(exc)))]
    except BaseException as exc:  # sent whole when it pickles, so the parent raises the same class
        text = f"{type(exc).__name__} in the process computing {job.describe()}:\n{traceback.format_exc()}"
        messages = [("bug", (exc, text)), ("bug", (None, text))]
    messages.append(("bug", (None, f"the process computing {job.describe()} could not send back its result")))
    for message in messages:  # the first that pickles
        try:
            conn.send(message)
            break
        except OSError:  # the parent stopped listening: it is ending this process
            break
        except Exception:
            continue
    conn.close()


# A signal handler's exception is lost where Python swallows it, inside a fork hook or a finalizer
# ("Exception ignored in ..."): a SIGTERM that lands just as a job's process is forked would leave
# that job running to its end. The handler also records the signal here (request_stop), and every
# executor's wait polls it, so the run stops within seconds all the same.
STOP_POLL_SECONDS = 0.5
_stop_signal: int | None = None


def request_stop(signum: int | None) -> None:
    """Remember that signal ``signum`` asked the run to stop (None forgets it)."""
    global _stop_signal
    _stop_signal = signum


def raise_if_stop_requested() -> None:
    """SystemExit(128 + signal) when a signal asked the run to stop."""
    if _stop_signal is not None:
        raise SystemExit(128 + _stop_signal)


def _compute_in_child(job: Job, settings: RunSettings, shared: SharedInputs) -> tuple[dict, pd.DataFrame]:
    """``compute`` in a forked child: the loaded data and caches are shared copy-on-write, the
    result comes back through a pipe, and leaving this function in any way (a signal's SystemExit,
    Ctrl-C) ends the child within ``STOP_GRACE_SECONDS``."""
    import multiprocessing as mp

    ctx = mp.get_context("fork")
    receive, send = ctx.Pipe(duplex=False)
    # not a daemon: a model may start processes of its own (joblib, DataLoader workers)
    child = ctx.Process(target=_child_main, args=(send, job, settings, shared), name=f"synbench job {job.job_id}")
    child.start()
    send.close()
    try:
        while True:
            while not receive.poll(STOP_POLL_SECONDS):  # True on a message and on the child's end alike
                raise_if_stop_requested()
            try:
                kind, payload = receive.recv()
            except EOFError:  # the child died without a word: killed, or out of memory
                child.join(STOP_GRACE_SECONDS)
                from .errors import PluginError

                how = f"signal {-child.exitcode}" if child.exitcode and child.exitcode < 0 else f"exit code {child.exitcode}"
                raise PluginError(f"the process computing {job.describe()} died ({how}: killed or out of memory)") from None
            if kind == "report":
                progress.report(payload)
            elif kind == "result":
                return payload
            elif kind == "error":
                raise payload
            else:
                exc, text = payload
                if exc is None:
                    raise _ChildTraceback(text)
                raise exc from _ChildTraceback(text)
    finally:
        receive.close()
        _end_processes([child])


def _end_processes(processes) -> None:
    """SIGTERM, then SIGKILL what is still running after the grace period; reap them all."""
    for p in processes:
        if p.is_alive():
            p.terminate()
    deadline = time.monotonic() + STOP_GRACE_SECONDS
    for p in processes:
        p.join(max(0.0, deadline - time.monotonic()))
    for p in processes:
        if p.is_alive():
            p.kill()
            p.join(STOP_GRACE_SECONDS)


def _remove_stale_locks(store: Store, jobs) -> None:
    """Remove the lock files of these jobs that no living process holds (left by a worker that
    was killed). A lock another run holds stays: taking it fails."""
    from filelock import FileLock, Timeout

    for job in jobs:
        path = store._lock_path(job.job_id)
        if not path.exists():
            continue
        lock = FileLock(str(path))
        try:
            lock.acquire(timeout=0)
        except (Timeout, OSError):
            continue
        try:
            path.unlink(missing_ok=True)
        finally:
            lock.release()


# -- executors ------------------------------------------------------------------------------------
_worker_lock: dict = {}  # in a pool worker: the lock file of the job it computes


def _init_worker() -> None:
    """Pool worker set-up: SIGTERM unwinds the job (its lock file is removed); Ctrl-C is the
    parent's to handle; a worker whose parent is gone stops."""
    import signal

    from .data import quiet_data_warnings

    quiet_data_warnings()  # the main process has said them once already

    def stop(signum, frame):
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, signal.SIG_IGN)

    def orphaned():
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(STOP_GRACE_SECONDS)  # still here: the job is inside C code that ignores signals
        lock = _worker_lock.get("path")
        if lock and os.path.exists(lock):
            os.unlink(lock)
        os._exit(128 + signal.SIGTERM)

    _watch_parent(orphaned)


def _execute_in_worker(job_dict: dict, store_root: str, settings: dict):
    job = Job.from_dict(job_dict)
    store = Store(store_root)
    _worker_lock["path"] = str(store._lock_path(job.job_id))
    try:
        record = execute(job, store, RunSettings(**settings))
    except SynbenchError as exc:
        return job_dict, None, str(exc)
    except SystemExit as exc:  # SIGTERM: the job has unwound and released its lock; the worker ends
        os._exit(exc.code if isinstance(exc.code, int) else 1)
    finally:
        _worker_lock.pop("path", None)
    return job_dict, record, None


def training_seconds(training) -> float:
    """Seconds of training a record's training log holds (both phases of a two-phase fit); 0 if it says none."""
    if not isinstance(training, dict):
        return 0.0
    if isinstance(training.get("seconds"), (int, float)):
        return float(training["seconds"])
    return sum(float(part.get("seconds") or 0.0) for part in (training.get("selection"), training.get("refit"))
               if isinstance(part, dict))


def phase_seconds(record: dict) -> dict[str, float]:
    """Seconds a stored job spent in each phase (featurize, search, fit, predict), counting the work
    that ran in earlier processes of a resumed job: a final fit resumed after a stop logs every
    epoch's seconds while ``fit_seconds`` holds the last process's only, and a search resumed from
    its kept trials records their seconds as ``resumed_seconds``. A phase the record leaves out
    counts 0; one it marks unmeasured (NaN, as predictions made elsewhere do) stays NaN."""
    timing = record.get("timing") or {}
    seconds = {phase: float(timing.get(f"{phase}_seconds") or 0.0) for phase in ("featurize", "search", "fit", "predict")}
    seconds["search"] += float((record.get("search_summary") or {}).get("resumed_seconds") or 0.0)
    seconds["fit"] = max(seconds["fit"], training_seconds(record.get("training")))  # NaN stays NaN
    return seconds


def compute_seconds(record: dict) -> float:
    """The compute a stored job cost in seconds: the sum of its :func:`phase_seconds`."""
    return sum(phase_seconds(record).values())


def plan_status(jobs: list[Job], store: Store | None) -> pd.DataFrame:
    """Where each planned job stands in the store, for ``synbench run --dry-run``.

    status: ``done`` (a record exists), ``locked`` (another run holds the job's lock: it is
    computing it) or ``pending``; ``stale_lock`` marks a pending job whose lock file no process
    holds (a run killed with SIGKILL left it; the next run takes the job). ``est_seconds`` is the mean
    compute time (:func:`compute_seconds`) of the finished jobs of the same configuration in this
    store, any fold and any seed (a seed does not change what a job computes, only its draws); when
    none has finished, the mean over the same model on the same data and features under other
    settings (``-p`` values, protocol, trials: a rough guide, ``est_basis`` says ``other settings``),
    else under another split of the same data (a tissue fraction, another scheme: ``other split``);
    NaN when none exists. ``store=None``: nothing is stored yet.

    A rough estimate is scaled by what the configuration's own search trials cost where a running or
    stopped job of it has kept some (``.search-*.json``): its mean trial seconds over theirs, trial
    for trial (complete trials only; ``est_basis`` gains ``, scaled``). Settings that change the cost
    per row (both drug orders double the rows and the drug columns: an SVM's trial took 12 times the
    pooled one's) would otherwise be estimated at the other settings' cost. A rough estimate for a job
    that searches, taken from runs none of which searched, leaves the search out (``est_basis`` gains
    ``, search not counted``): DeepSynergy's first ``strong`` fold on O'Neil ZIP was estimated at its
    unsearched ``table1`` folds' 1.5 hours, while a searched fold on D1 spent 1.5-2.8 hours in search alone.
    Where a running or stopped job of the configuration has kept trials, the search is added instead:
    the job's trial count times their mean seconds, pruned trials included (``, search from kept trials``).

    ``est_remaining_seconds`` is what an unfinished job has left: its estimate less the seconds of
    the trials and the finished training phases it kept itself (a stopped run resumes from them),
    0 for a done job.

    Only jobs computed on the kind of device this process would use count (``resources.device``:
    ``cpu`` or ``cuda``): MARSY's ZIP folds took 72-90 s on a GPU and about an hour on one CPU
    thread here, so a GPU's record says nothing about a CPU's pending job, nor the reverse.
    """
    seconds: dict[Job, list[float]] = {}
    near: dict[tuple, list[float]] = {}
    near_trials: dict[tuple, list[tuple[float, float]]] = {}  # (compute, mean complete-trial seconds) of searched jobs
    records = list(store.records()) if store else []
    kinds = {record_device(r) for r in records}
    if kinds - {"cpu"}:  # only then is torch imported to learn this machine's device
        from .neural import device

        local = device().type
        records = [r for r in records if record_device(r) == local]
    for record in records:
        same_config, cost = replace(Job.from_dict(record["job"]), fold=-1, seed=0), compute_seconds(record)
        seconds.setdefault(same_config, []).append(cost)
        near.setdefault(_model_on_data(same_config), []).append(cost)
        near.setdefault(_model_on_data(same_config)[:-1], []).append(cost)  # any split
        trial = _mean_trial_seconds(record.get("search"))
        if trial:
            near_trials.setdefault(_model_on_data(same_config), []).append((cost, trial))
            near_trials.setdefault(_model_on_data(same_config)[:-1], []).append((cost, trial))
    kept = {job: kept_work(store, job) for job in jobs} if store is not None else {}  # one read per job
    kept_trials: dict[Job, list[tuple[str, float]]] = {}  # (state, seconds) of the trials unfinished jobs kept, per configuration
    for job, work in kept.items():
        kept_trials.setdefault(replace(job, fold=-1, seed=0), []).extend(work.trials)
    def status(job: Job) -> tuple[str, bool]:
        if store is not None and stored(store, job):
            return "done", False
        lock = store.lock_state(job.job_id) if store is not None else None
        return ("locked", False) if lock == "held" else ("pending", lock == "stale")

    rows = []
    for job in jobs:
        previous = seconds.get(replace(job, fold=-1, seed=0), [])
        basis = "same configuration" if previous else ""
        if not previous and (previous := near.get(_model_on_data(job), [])):
            basis = "other settings"
        if not previous and (previous := near.get(_model_on_data(job)[:-1], [])):
            basis = "other split"
        settings_trials = kept_trials.get(replace(job, fold=-1, seed=0), [])
        own_trials = [seconds for state, seconds in settings_trials if state == "complete"]
        reference = near_trials.get(_model_on_data(job) if basis == "other settings" else _model_on_data(job)[:-1], [])
        if basis in ("other settings", "other split") and own_trials and reference:
            own = float(np.mean(own_trials))
            previous, basis = [cost * own / trial for cost, trial in reference], basis + ", scaled"
        elif basis in ("other settings", "other split") and job.trials and not reference:  # no run it rests on searched
            if settings_trials:  # pruned trials too: they are part of what a search spends
                previous = [cost + job.trials * float(np.mean([seconds for _, seconds in settings_trials])) for cost in previous]
                basis += ", search from kept trials"
            else:
                basis += ", search not counted"
        state, stale = status(job)
        estimate = float(np.mean(previous)) if previous else float("nan")
        work = kept.get(job, NOTHING_KEPT)
        rows.append({"dataset": job.dataset, "target": job.target, "model": job.model,
                     "featurizers": "+".join(job.featurizers), "fold": job.fold, "status": state, "stale_lock": stale,
                     "est_seconds": estimate, "est_basis": basis,
                     # its own kept trials and finished phases are work already done (for a pending job,
                     # unless its next run will not reuse them: other code or optuna); never below nothing
                     "est_remaining_seconds": (max(estimate - work.seconds + (work.foreign_seconds if state == "pending" else 0.0),
                                                   0.0) if state != "done" else 0.0),
                     "foreign_seconds": work.foreign_seconds if state == "pending" else 0.0,
                     "job_id": job.job_id, "kept": work.description if state != "done" else ""})
    return pd.DataFrame(rows)


def record_device(record: dict) -> str:
    """The kind of device a stored job computed on (``cpu``, ``cuda``): ``cpu`` for a record without one."""
    device = str((record.get("resources") or {}).get("device") or "cpu")
    return device.split(":")[0]


def _mean_trial_seconds(search) -> float:
    """The mean seconds of a stored search's complete trials (0.0 when it has none)."""
    seconds = [float(t["seconds"]) for t in search or [] if isinstance(t, dict) and t.get("state") == "complete"
               and t.get("seconds")]
    return float(np.mean(seconds)) if seconds else 0.0


def _model_on_data(job: Job) -> tuple:
    """What a job's cost mostly depends on besides its settings: the model, the data, the features
    (and, last, so that ``[:-1]`` drops it, the split)."""
    return (job.dataset, job.target, job.model, job.featurizers, job.profile, job.split)


class KeptWork(NamedTuple):
    """What a stopped run of a job left in the store for its next run."""

    trials: list[tuple[str, float]]  # (state, seconds) of its kept search trials that were timed
    seconds: float  # what its kept trials and finished training phases cost: work its next run skips
    description: str  # for the dry run: finished trials, a finished training phase, a training state ('' when nothing)
    foreign_seconds: float = 0.0  # of ``seconds``, what a run from this checkout would not reuse (other code, optuna)


NOTHING_KEPT = KeptWork([], 0.0, "")


def kept_work(store: Store, job: Job) -> KeptWork:
    """What a stopped run of ``job`` left in the store for its next run: finished search trials, a
    finished training phase (its durable progress file), a training state (this machine only).

    Kept work is reused only by the code that computed it (:func:`~synbench.neural.model_code`), and
    kept trials only under the optuna version that proposed them: work stamped with another code
    digest than this checkout's is marked 'other code', trials of another optuna 'optuna X', and
    counted in ``foreign_seconds``, since the next run does it again. (The data digest the run also
    checks needs the data: not compared here.)"""
    settings = RunSettings(checkpoint_dir=str(store.jobs_dir))
    trials, described, foreign = [], [], 0.0
    search = _kept_search(search_progress_path(settings, job))
    if search is not None:
        trials, count, fingerprint = search
        why = _not_reused(fingerprint, job.model)
        described.append(f"{count}/{fingerprint.get('n_trials', '?')} trials" + (f" ({why})" if why else ""))
        foreign += sum(seconds for _, seconds in trials) if why else 0.0
    state = training_state_path(settings, job)
    phases, fingerprint = _finished_phases(progress_path(state))
    if phases:
        why = _not_reused(fingerprint, job.model)
        described.append("a finished training phase" + (f" ({why})" if why else ""))
        foreign += phases if why else 0.0
    if state.is_file():
        described.append("training state")
    return KeptWork(trials, sum(seconds for _, seconds in trials) + phases, ", ".join(described), foreign)


def foreign_kept_work(jobs_dir) -> list[tuple[str, float, str]]:
    """(file name, seconds, why) of the kept search trials and finished training phases in a store's
    jobs folder that a run from this checkout would not reuse ('other code': their code digest is not
    this checkout's; 'optuna X': trials proposed by another optuna): what a start of long runs here
    would do again."""
    found = []
    for path in sorted(Path(jobs_dir).glob(".search-*.json")):
        search = _kept_search(path)  # a damaged one: nothing the run would reuse either
        if search is not None and (why := _not_reused(search[2], _model_of(path.name[len(".search-"):-len(".json")]))):
            found.append((path.name, sum(seconds for _, seconds in search[0]), why))
    for path in sorted(Path(jobs_dir).glob(".progress-*.pt")):
        seconds, fingerprint = _finished_phases(path)
        if seconds and (why := _not_reused(fingerprint, _model_of(path.name[len(".progress-"):-len(".pt")]))):
            found.append((path.name, seconds, why))
    return found


def _kept_search(path: Path) -> tuple[list[tuple[str, float]], int, dict] | None:
    """A search progress file's timed trials as (state, seconds), its trial count and its
    fingerprint; None without the file or for a damaged one."""
    try:
        search = json.loads(Path(path).read_text())
        trials = [(t.get("state"), float(t["seconds"])) for t in search["trials"] if isinstance(t, dict) and t.get("seconds")]
        if not isinstance(search["fingerprint"], dict):
            return None
        return trials, len(search["trials"]), search["fingerprint"]
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


def _model_of(job_id: str) -> str:
    """The model name in a job id (``dataset.target.model.fN.digest``)."""
    return job_id.rsplit(".", 2)[0].rsplit(".", 1)[-1]


def _checkout_code(model_name: str) -> str | None:
    """The code digest that a run of ``model_name`` started from this checkout stamps on the work it
    keeps; None when the plugin cannot be loaded (nothing to compare)."""
    try:
        return model_code(get_registry().model(model_name)())
    except Exception:
        return None


def _not_reused(fingerprint, model_name: str) -> str:
    """Why a run of ``model_name`` from this checkout would not reuse a kept file, from its fingerprint
    (a search's dict, a training state's JSON text): 'other code' for another code digest, 'optuna X'
    for trials proposed by another optuna version; '' when neither (what it does not name is not
    compared)."""
    if isinstance(fingerprint, str):
        try:
            fingerprint = json.loads(fingerprint)
        except ValueError:
            return ""
    if not isinstance(fingerprint, dict):
        return ""
    code = _checkout_code(model_name)
    if code is not None and fingerprint.get("code") not in (None, code):
        return "other code"
    from importlib.metadata import PackageNotFoundError, version

    try:
        installed = version("optuna")
    except PackageNotFoundError:
        installed = None
    if installed is not None and fingerprint.get("optuna") not in (None, installed):
        return f"optuna {fingerprint['optuna']}"
    return ""


def _finished_phases(path: Path) -> tuple[float, object]:
    """The seconds of the training phases a stopped job finished and kept in its durable progress
    file (DeepSynergy's selection run: an hour or more that its next run skips), and the file's
    fingerprint; (0.0, None) without one or for a damaged one, which the run ignores too. The file is
    :class:`~synbench.neural.TrainingState`'s, read here with a load of its own: a reader shared with
    it means editing ``synbench.neural``, whose code digest keys the kept work of the runs in flight."""
    if not path.is_file():
        return 0.0, None
    import torch

    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
        phases = [phase for phase in saved["phases"].values() if isinstance(phase, dict)]
        return sum(float(phase.get("seconds") or 0.0) for phase in phases), saved.get("fingerprint")
    except Exception:
        return 0.0, None


EXECUTORS = ("inline", "process", "ray")


class JobsFailed(SynbenchError):
    """Jobs of a ``keep_going`` run failed; the rest of the grid ran. ``failures``: (job, reason)."""

    def __init__(self, failures: list, summary: dict):
        self.failures, self.summary = failures, summary
        job, reason = failures[0]
        first = reason if job.describe() in reason else f"{job.describe()}: {reason}"
        more = f" (and {len(failures) - 1} more)" if len(failures) > 1 else ""
        super().__init__(f"{len(failures)} job(s) failed, {summary['done']} finished and were stored; first: {first}{more}")


def run(jobs: list[Job], store: Store, settings: RunSettings | None = None, executor: str = "inline", n_jobs: int = 1,
        progress=None, on_done=None, ray_address: str | None = None, keep_going: bool = False, on_failed=None) -> dict:
    """Run the jobs that the store does not have yet. Returns counts of done/skipped/failed.

    Executors run the same serialisable jobs: ``inline`` (one job at a time, each computed in a
    forked child process so that a signal stops it at once), ``process`` (a local pool of
    ``n_jobs`` spawned workers; each loads data and reads the feature cache once) and ``ray``
    (tasks on a Ray cluster; datasets, features and splits are put in Ray's object store once and
    shared by every task; records are written by this process, so workers need no access to the
    store). A SIGTERM/SIGINT (raised here as SystemExit or KeyboardInterrupt) stops every
    executor within seconds: queued jobs never start, jobs in flight are ended, and their lock
    files are removed.

    The first failing job stops the grid (jobs in flight finish and are stored), unless
    ``keep_going``: then every job runs, ``on_failed(job, reason)`` hears of each failure, and
    :class:`JobsFailed` lists them at the end.
    """
    if executor not in EXECUTORS:
        raise ConfigError(f"unknown executor '{executor}'{suggest(executor, EXECUTORS)}")
    settings = settings or RunSettings()
    pending = [j for j in jobs if not stored(store, j)]
    summary = {"planned": len(jobs), "skipped": len(jobs) - len(pending), "done": 0, "busy": 0, "failed": []}
    if not pending:
        return summary
    prepare(pending, store, settings.data_dir)

    def finished(job, record, error=None):
        if error:
            summary["failed"].append((job, error))
            if on_failed:
                on_failed(job, error)
        elif record is None:
            summary["busy"] += 1  # another run on the same store holds this job
        else:
            summary["done"] += 1
        if on_done:
            on_done(job, record)

    if executor == "ray":
        _run_ray(pending, store, settings, n_jobs, ray_address, finished, keep_going)
    elif executor == "inline" or n_jobs <= 1:
        _prepare_inline(pending, settings)
        for job in pending:
            raise_if_stop_requested()
            if progress:
                progress(job, "start", None)
            try:
                record = execute(job, store, settings, isolate=settings.isolate)
            except SynbenchError as exc:
                if not keep_going:
                    raise
                finished(job, None, str(exc))
                continue
            finished(job, record)
    else:
        _run_processes(pending, store, settings, n_jobs, finished, keep_going)
    if summary["failed"]:
        if keep_going:
            raise JobsFailed(summary["failed"], summary)
        raise SynbenchError(summary["failed"][0][1])
    return summary


def _prepare_inline(pending: list[Job], settings: RunSettings) -> None:
    """What every inline job's child would redo, done once here and inherited by each fork: the
    BLAS/OpenMP thread count and the content hashes that key the feature cache."""
    from .features import data_digest

    if settings.threads:
        os.environ["SYNBENCH_THREADS"] = str(settings.threads)
    _set_threads(n_threads())
    for key in dict.fromkeys((j.dataset, j.split) for j in pending if j.featurizers):
        data_digest(load_job_data(*key, settings.data_dir))
    # the libraries every child would import again (seconds per job on small data): imported once
    # here, each fork inherits them
    import importlib

    for module in ("scipy.stats", "sklearn.linear_model", "sklearn.svm", "sklearn.ensemble", "sklearn.pipeline",
                   "sklearn.preprocessing", "sklearn.metrics", "optuna", "xgboost"):
        try:
            importlib.import_module(module)
        except ImportError:
            pass


def _run_processes(pending, store, settings, n_jobs, finished, keep_going=False) -> None:
    import multiprocessing as mp
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
    from concurrent.futures.process import BrokenProcessPool

    threads = settings.threads or max(1, (os.cpu_count() or 1) // n_jobs)
    worker_settings = {**settings.__dict__, "threads": threads}
    pool = ProcessPoolExecutor(max_workers=n_jobs, mp_context=mp.get_context("spawn"), initializer=_init_worker)
    futures = []
    try:
        futures += [pool.submit(_execute_in_worker, j.to_dict(), str(store.root), worker_settings) for j in pending]
        stopping, waiting = False, set(futures)
        while waiting:
            done, waiting = wait(waiting, timeout=STOP_POLL_SECONDS, return_when=FIRST_COMPLETED)
            for fut in done:
                if fut.cancelled():
                    continue
                job_dict, record, error = fut.result()
                finished(Job.from_dict(job_dict), record, error)
                if error and not keep_going and not stopping:
                    stopping = True  # queued jobs never start; those in flight finish and are stored
                    for other in futures:
                        other.cancel()
            raise_if_stop_requested()
    except BrokenProcessPool:
        _stop_pool(pool, futures, store, pending)
        done = sum(stored(store, j) for j in pending)
        raise SynbenchError(f"a worker process died (killed or out of memory); {done} of {len(pending)} jobs "
                            "were stored and are kept; run the same command again to finish") from None
    except BaseException:  # a signal (SystemExit), Ctrl-C: stop now, not after the queue has run
        _stop_pool(pool, futures, store, pending)
        raise
    pool.shutdown(wait=True)


def _stop_pool(pool, futures, store, pending) -> None:
    """Cancel the queued jobs, end the workers within seconds, and remove the lock files of jobs
    they were computing."""
    workers = list((getattr(pool, "_processes", None) or {}).values())
    for fut in futures:
        fut.cancel()
    pool.shutdown(wait=False, cancel_futures=True)
    _end_processes(workers)
    _remove_stale_locks(store, pending)


def check_ray_address(address: str | None, timeout: float = 5.0) -> None:
    """One line when a Ray cluster address cannot be reached: ray.init retries an unreachable
    address for many minutes, printing as it goes, and ignores signals meanwhile."""
    import socket
    from urllib.parse import urlsplit

    if not address or address in ("auto", "local"):
        return
    try:
        target = urlsplit(address if "://" in address else f"//{address}")
        host, port = target.hostname, target.port
    except ValueError:  # a port that is not a number
        host = port = None
    if not host or not port:
        raise ConfigError(f"--ray-address '{address}' is not HOST:PORT, ray://HOST:PORT or auto")
    try:
        socket.create_connection((host, port), timeout=timeout).close()
    except OSError as exc:
        raise ConfigError(f"cannot reach Ray at {address}: {exc.strerror or exc} (is the cluster up? `ray status` "
                          "on its head node)") from None


def _run_ray(pending, store, settings, n_jobs, address, finished, keep_going=False) -> None:
    try:
        import ray
    except ImportError:
        raise ConfigError("--executor ray needs the 'ray' package (pip install 'synbench[ray]')") from None
    shared = load_shared(pending, store, settings)
    started_here = not ray.is_initialized()
    if started_here:
        address = address or os.environ.get("RAY_ADDRESS")
        kwargs = {} if address else {"num_cpus": max(n_jobs, 1), "include_dashboard": False}
        check_ray_address(address)
        try:
            ray.init(address=address, log_to_driver=False, configure_logging=False, **kwargs)
        except Exception as exc:  # connection refused, bad address, ...
            raise ConfigError(f"cannot start or reach Ray at {address or 'a local cluster'}: {exc}") from None
    waiting = []
    try:
        threads = settings.threads or max(1, (os.cpu_count() or 1) // max(n_jobs, 1))
        worker_settings = RunSettings(**{**settings.__dict__, "threads": threads})
        shared_ref = ray.put(shared)
        remote = ray.remote(num_cpus=1, max_retries=2)(_compute_in_ray)
        refs = {remote.remote(job.to_dict(), worker_settings.__dict__, shared_ref): job for job in pending}
        waiting = list(refs)
        while waiting:
            ready, waiting = ray.wait(waiting, num_returns=1, timeout=STOP_POLL_SECONDS)
            raise_if_stop_requested()
            if not ready:
                continue
            job = refs[ready[0]]
            try:
                record, predictions, error = ray.get(ready[0])
            except Exception as exc:  # a worker that died more often than max_retries
                record, predictions, error = None, None, f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
            if error:
                finished(job, None, error)
                if not keep_going:
                    break  # the finally cancels the rest
                continue
            with store.claim(job.job_id) as claimed:
                wrote = claimed and store.write_job(job.job_id, record, predictions)
            finished(job, record if wrote else None)
    finally:
        # a failure, a signal or Ctrl-C: tasks not collected are cancelled on the cluster (Ray itself
        # ends the tasks of a driver that died)
        for ref in waiting:
            try:
                ray.cancel(ref, force=True)
            except Exception:
                pass
        if started_here:
            ray.shutdown()


def _compute_in_ray(job_dict: dict, settings: dict, shared: SharedInputs):
    job = Job.from_dict(job_dict)
    try:
        record, predictions = compute(job, RunSettings(**settings), shared)
    except SynbenchError as exc:
        return None, None, str(exc)
    return record, predictions, None
