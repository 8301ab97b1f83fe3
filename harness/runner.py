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
import os
import sys
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from functools import lru_cache

import numpy as np
import pandas as pd

from . import progress, provenance
from .base import Profile
from .data import Batch, SynergyData
from .errors import ConfigError, SynbenchError
from .features import featurize, parse_spec
from .metrics import score_predictions
from .registry import get_registry, suggest
from .splits import EXTERNAL, check_splits, fold_ids, make_splits, n_folds_of, schemes_of, with_external
from .store import Store

SELECTION_METRIC = {"regression": ("mse", False), "classification": ("roc_auc", True)}


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

    @property
    def job_id(self) -> str:
        identity = json.dumps({k: v for k, v in asdict(self).items()}, sort_keys=True, default=str)
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
        return cls(**d)

    def describe(self) -> str:
        return f"{self.dataset}/{self.target} {self.model} fold {self.fold}"


@dataclass
class RunSettings:
    data_dir: str | None = None
    threads: int | None = None  # per job; None = all cores
    use_feature_cache: bool = True


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
    """The data a job runs on: the dataset, joined with its external set for ``external:<set>`` splits."""
    data = load_dataset(name, data_dir)
    if split.startswith(EXTERNAL):
        return _with_external_cached(name, split, data_dir)
    return data


@lru_cache(maxsize=4)
def _with_external_cached(name: str, split: str, data_dir: str | None) -> SynergyData:
    return with_external(load_dataset(name, data_dir), split[len(EXTERNAL):]).validate()


# -- planning -------------------------------------------------------------------------------------
def resolve_profile(model_cls, profile: str) -> Profile:
    if profile not in model_cls.profiles:
        raise ConfigError(f"model '{model_cls.name}' has no profile '{profile}'{suggest(profile, model_cls.profiles)}")
    return model_cls.profiles[profile]


def _featurizers_for(model_cls, override) -> tuple[str, ...]:
    """``--featurizer`` replaces a model's inputs; a model that reads no features (constant) keeps none."""
    return tuple(override) if override and model_cls.featurizers else tuple(model_cls.featurizers)


def plan(datasets, models, targets=None, featurizers=None, profile="cpu", split=None, n_folds=5, seed=0,
         folds=None, params=None, data_dir=None) -> list[Job]:
    """Expand the grid. ``targets=None`` means every target of each dataset; ``split=None`` means the
    dataset's published folds when it has them, else ``random``."""
    registry = get_registry()
    params = dict(params or {})
    # ``-p NAME=VALUE`` applies to every model that has NAME (the auto-added constant has none); a name
    # that no chosen model has is a typo.
    model_params = {}
    known = set()
    for model_name in models:
        model_cls = registry.model(model_name)
        resolve_profile(model_cls, profile)
        valid_params = set(model_cls.param_names())
        known |= valid_params
        model_params[model_name] = tuple(sorted((k, v) for k, v in params.items() if k in valid_params))
        feats = _featurizers_for(model_cls, featurizers)
        for f in feats:
            registry.featurizer(parse_spec(f)[0])
    for key in params:
        if key not in known:
            owners = f"model '{models[0]}' has" if len(models) == 1 else "models " + ", ".join(map(repr, models)) + " have"
            raise ConfigError(f"{owners} no parameter '{key}'{suggest(key, known)}")
    jobs = []
    for ds_name in datasets:
        registry.dataset(ds_name)
        data = load_dataset(ds_name, data_dir)
        scheme = split or ("published" if data.fold_column else "random")
        if scheme not in schemes_of(data):
            raise ConfigError(f"unknown split scheme '{scheme}' for dataset '{ds_name}'{suggest(scheme, schemes_of(data))}")
        n = n_folds_of(data, scheme, n_folds)
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
                for f in chosen_folds:
                    jobs.append(Job(ds_name, t, model_name, feats, profile, scheme, n, f, seed, model_params[model_name]))
    return jobs


def prepare(jobs: list[Job], store: Store, data_dir=None) -> None:
    """Compute, store and check the split tables the jobs need (once per dataset/scheme/seed)."""
    checked = set()
    for job in jobs:
        if job.split_key not in checked:
            data = load_job_data(job.dataset, job.split, data_dir)
            table = make_splits(data, job.split, job.n_folds, job.seed)
            store.save_splits(store.split_path(*job.split_key), table)
            checked.add(job.split_key)
        key = job.split_key + (job.target,)
        if key not in checked:
            data = load_job_data(job.dataset, job.split, data_dir)
            target = data.target(job.target)
            check_splits(store.load_splits(store.split_path(*job.split_key)), data.labels(job.target), target.task,
                         where=f"{job.dataset}/{job.target} ({job.split}): ")
            checked.add(key)


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


def _select(model, profile: Profile, train: Batch, valid: Batch, seed: int, search_space: dict) -> tuple[dict, list]:
    """Random search on the inner validation split only (never the test fold)."""
    if profile.search_trials <= 0 or not search_space:
        return {}, []
    from sklearn.model_selection import ParameterSampler

    metric_name, higher = SELECTION_METRIC[model.task]
    registry = get_registry()
    metric = registry.metric(metric_name)
    search_train = train
    if profile.search_max_rows and len(train) > profile.search_max_rows:
        rng = np.random.default_rng(seed)
        keep = np.sort(rng.choice(len(train), profile.search_max_rows, replace=False))
        search_train = train.subset(train.rows.index[keep])
    trials = []
    for i, config in enumerate(ParameterSampler(search_space, n_iter=profile.search_trials, random_state=seed)):
        progress.report(f"search trial {i + 1}/{profile.search_trials}")
        candidate = model.clone(**config)
        candidate.fit(search_train, valid if model.uses_validation else None)
        score = metric.fn(valid.y, np.asarray(candidate.predict(valid), dtype=float))
        trials.append({"params": config, metric_name: score})
    finite = [t for t in trials if np.isfinite(t[metric_name])]
    if not finite:
        return {}, trials
    best = (max if higher else min)(finite, key=lambda t: t[metric_name])
    return dict(best["params"]), trials


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


def execute(job: Job, store: Store, settings: RunSettings | None = None) -> dict | None:
    """Run one job and store it. Returns the record, or None if the store already had it or another
    run is computing it right now (each job is claimed with a lock file, so concurrent runs on one
    store share the work instead of repeating it)."""
    settings = settings or RunSettings()
    if store.has_job(job.job_id):
        return None
    with store.claim(job.job_id) as claimed:
        if not claimed or store.has_job(job.job_id):
            return None
        splits = store.load_splits(store.split_path(*job.split_key))
        record, predictions = compute(job, settings, SharedInputs(splits={job.split_key: splits}))
        store.write_job(job.job_id, record, predictions)
    return record


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

    t0 = time.perf_counter()
    features = {name: shared.features.get(((job.dataset, job.split), name))
                or featurize(data, name, registry=registry, use_cache=settings.use_feature_cache) for name in job.featurizers}
    featurize_seconds = time.perf_counter() - t0

    entity_rows = data.entity_rows()
    y = labels.to_numpy(dtype=float)
    # the dataset's other targets of the same rows, for multi-task models (training rows only)
    others = [t for t in data.targets.values() if t.name != job.target]
    aux = {t.name: t.values(data.combinations).to_numpy(dtype=float) for t in others} or None
    aux_tasks = {t.name: t.task for t in others} or None
    full = Batch(entity_rows, features, target.task, y, job.target, aux, aux_tasks)
    inner_train, inner_valid = full.subset(ids["train"]), full.subset(ids["valid"])
    test = full.subset(ids["test"])
    test.y, test.aux = None, None  # a model never sees test labels, of this target or any other

    base_params = {**profile.params, **dict(job.params)}
    try:
        model = model_cls(task=target.task, seed=job.seed, **base_params)
    except TypeError as exc:
        raise ConfigError(f"model '{job.model}' rejected its parameters: {exc}") from None
    with provenance.PeakMemory() as memory, _plugin_errors(job):
        t0 = time.perf_counter()
        search_space = {k: v for k, v in model_cls.search_space.items() if k not in dict(job.params)}
        chosen, trials = _select(model, profile, inner_train, inner_valid, job.seed * 100 + job.fold, search_space)
        search_seconds = time.perf_counter() - t0
        final = model.clone(**chosen)
        t0 = time.perf_counter()
        progress.report("final fit")
        if model_cls.uses_validation:
            final.fit(inner_train, inner_valid)
        else:  # without early stopping the validation rows are training rows again
            final.fit(full.subset(ids["train"].append(ids["valid"])))
        fit_seconds = time.perf_counter() - t0
        t0 = time.perf_counter()
        y_pred = np.asarray(final.predict(test), dtype=float).reshape(-1)
        extra = final.extra_outputs(test)
        predict_seconds = time.perf_counter() - t0
    if len(y_pred) != len(test):
        from .errors import PluginError

        raise PluginError(f"model '{job.model}' returned {len(y_pred)} predictions for {len(test)} rows")
    predictions = pd.DataFrame({"y_pred": y_pred, **{k: np.asarray(v) for k, v in extra.items()}}, index=test.rows.index)
    predictions.index.name = "row_id"
    metrics = score_predictions(predictions, labels, target.task, registry)
    predictions.insert(0, "y_true", labels.loc[predictions.index].to_numpy())
    record = {
        "job_id": job.job_id,
        "job": job.to_dict(),
        "task": target.task,
        "params": {**final.get_params()},
        "selected_params": chosen,
        "search": trials,
        "metrics": metrics,
        "n_rows": {"train": len(ids["train"]), "valid": len(ids["valid"]), "test": len(ids["test"])},
        "timing": {"featurize_seconds": featurize_seconds, "search_seconds": search_seconds,
                   "fit_seconds": fit_seconds, "predict_seconds": predict_seconds},
        "resources": {"peak_memory_mb": round(memory.peak_mb, 1), "start_memory_mb": round(memory.start_mb, 1),
                      "threads": n_threads(), "device": getattr(final, "device_", "cpu")},
        "training": getattr(final, "training_log_", None),  # e.g. epochs run, best epoch, losses
        "feature_info": {name: fs.info for name, fs in features.items()},
        "provenance": {"versions": provenance.package_versions(), "git_commit": provenance.git_commit(),
                       "plugin_package": registry.entry("model", job.model).package,
                       "plugin_version": registry.entry("model", job.model).version,
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


# -- executors ------------------------------------------------------------------------------------
def _execute_in_worker(job_dict: dict, store_root: str, settings: dict):
    job = Job.from_dict(job_dict)
    try:
        record = execute(job, Store(store_root), RunSettings(**settings))
    except SynbenchError as exc:
        return job_dict, None, str(exc)
    return job_dict, record, None


def plan_status(jobs: list[Job], store: Store | None) -> pd.DataFrame:
    """Where each planned job stands in the store, for ``synbench run --dry-run``.

    status: ``done`` (a record exists), ``locked`` (a lock file exists: another run is computing
    the job, or a run killed with SIGKILL left the file behind) or ``pending``. ``est_seconds`` is the mean
    compute time (featurize + search + fit + predict) of the finished folds of the same
    configuration in this store, NaN when none has finished. ``store=None``: nothing is stored yet.
    """
    seconds: dict[Job, list[float]] = {}
    for record in store.records() if store else []:
        same_config = replace(Job.from_dict(record["job"]), fold=-1)
        seconds.setdefault(same_config, []).append(sum(v for k, v in record["timing"].items() if k.endswith("_seconds")))
    def status(job: Job) -> str:
        if store is not None and store.has_job(job.job_id):
            return "done"
        if store is not None and store.lock_present(job.job_id):
            return "locked"
        return "pending"

    rows = []
    for job in jobs:
        previous = seconds.get(replace(job, fold=-1), [])
        rows.append({"dataset": job.dataset, "target": job.target, "model": job.model,
                     "featurizers": "+".join(job.featurizers), "fold": job.fold, "status": status(job),
                     "est_seconds": float(np.mean(previous)) if previous else float("nan"), "job_id": job.job_id})
    return pd.DataFrame(rows)


EXECUTORS = ("inline", "process", "ray")


def run(jobs: list[Job], store: Store, settings: RunSettings | None = None, executor: str = "inline", n_jobs: int = 1,
        progress=None, on_done=None, ray_address: str | None = None) -> dict:
    """Run the jobs that the store does not have yet. Returns counts of done/skipped/failed.

    Executors run the same serialisable jobs: ``inline`` (this process), ``process`` (a local
    pool of ``n_jobs`` spawned workers; each loads data and reads the feature cache once) and
    ``ray`` (tasks on a Ray cluster; datasets, features and splits are put in Ray's object store
    once and shared by every task; records are written by this process, so workers need no access
    to the store).
    """
    if executor not in EXECUTORS:
        raise ConfigError(f"unknown executor '{executor}'{suggest(executor, EXECUTORS)}")
    settings = settings or RunSettings()
    pending = [j for j in jobs if not store.has_job(j.job_id)]
    summary = {"planned": len(jobs), "skipped": len(jobs) - len(pending), "done": 0, "busy": 0, "failed": []}
    if not pending:
        return summary
    prepare(pending, store, settings.data_dir)

    def finished(job, record, error=None):
        if error:
            summary["failed"].append((job, error))
        elif record is None:
            summary["busy"] += 1  # another run on the same store holds this job
        else:
            summary["done"] += 1
        if on_done:
            on_done(job, record)

    if executor == "ray":
        _run_ray(pending, store, settings, n_jobs, ray_address, finished)
    elif executor == "inline" or n_jobs <= 1:
        for job in pending:
            if progress:
                progress(job, "start", None)
            finished(job, execute(job, store, settings))
    else:
        _run_processes(pending, store, settings, n_jobs, finished)
    if summary["failed"]:
        job, error = summary["failed"][0]
        raise SynbenchError(f"{len(summary['failed'])} job(s) failed; first: {job.describe()}: {error}")
    return summary


def _run_processes(pending, store, settings, n_jobs, finished) -> None:
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor, as_completed
    from concurrent.futures.process import BrokenProcessPool

    threads = settings.threads or max(1, (os.cpu_count() or 1) // n_jobs)
    worker_settings = {**settings.__dict__, "threads": threads}
    with ProcessPoolExecutor(max_workers=n_jobs, mp_context=mp.get_context("spawn")) as pool:
        futures = [pool.submit(_execute_in_worker, j.to_dict(), str(store.root), worker_settings) for j in pending]
        try:
            for fut in as_completed(futures):
                job_dict, record, error = fut.result()
                finished(Job.from_dict(job_dict), record, error)
        except BrokenProcessPool:
            for fut in futures:
                fut.cancel()
            done = sum(store.has_job(j.job_id) for j in pending)
            raise SynbenchError(f"a worker process died (killed or out of memory); {done} of {len(pending)} jobs "
                                "were stored and are kept; run the same command again to finish") from None


def _run_ray(pending, store, settings, n_jobs, address, finished) -> None:
    try:
        import ray
    except ImportError:
        raise ConfigError("--executor ray needs the 'ray' package (pip install 'synbench[ray]')") from None
    shared = load_shared(pending, store, settings)
    started_here = not ray.is_initialized()
    if started_here:
        address = address or os.environ.get("RAY_ADDRESS")
        kwargs = {} if address else {"num_cpus": max(n_jobs, 1), "include_dashboard": False}
        try:
            ray.init(address=address, log_to_driver=False, configure_logging=False, **kwargs)
        except Exception as exc:  # connection refused, bad address, ...
            raise ConfigError(f"cannot start or reach Ray at {address or 'a local cluster'}: {exc}") from None
    try:
        threads = settings.threads or max(1, (os.cpu_count() or 1) // max(n_jobs, 1))
        worker_settings = RunSettings(**{**settings.__dict__, "threads": threads})
        shared_ref = ray.put(shared)
        remote = ray.remote(num_cpus=1, max_retries=2)(_compute_in_ray)
        refs = {remote.remote(job.to_dict(), worker_settings.__dict__, shared_ref): job for job in pending}
        waiting = list(refs)
        while waiting:
            ready, waiting = ray.wait(waiting, num_returns=1)
            job = refs[ready[0]]
            try:
                record, predictions, error = ray.get(ready[0])
            except Exception as exc:  # a worker that died more often than max_retries
                record, predictions, error = None, None, f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
            if error:
                finished(job, None, error)
                continue
            with store.claim(job.job_id) as claimed:
                wrote = claimed and store.write_job(job.job_id, record, predictions)
            finished(job, record if wrote else None)
    finally:
        if started_here:
            ray.shutdown()


def _compute_in_ray(job_dict: dict, settings: dict, shared: SharedInputs):
    job = Job.from_dict(job_dict)
    try:
        record, predictions = compute(job, RunSettings(**settings), shared)
    except SynbenchError as exc:
        return None, None, str(exc)
    return record, predictions, None
