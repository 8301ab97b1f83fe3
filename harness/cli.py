"""The `synbench` command line: plugins, datasets, run, leaderboard."""

from __future__ import annotations

import ast
import math
import os
import shlex
import signal
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import List, Optional

import typer
from rich.console import Console
from rich.table import Table

from .errors import ConfigError, SynbenchError
from .redaction import redact

app = typer.Typer(add_completion=False, no_args_is_help=True, rich_markup_mode=None,
                  help="synbench: benchmark drug-synergy predictors on shared splits and metrics.")
# Piped output (CI logs, files) gets a wide console so tables are never truncated.
console = Console(stderr=True, width=None if sys.stderr.isatty() else 160)
# piped tables keep every column whole however wide the board grows (flags, protocols, seeds)
out = Console(width=None if sys.stdout.isatty() else 1000)
DEFAULT_STORE = "results/local"


@contextmanager
def user_errors():
    """The CLI's error boundary: an expected failure (bad input, a file that cannot be read or
    written, damaged Parquet data, Ctrl-C) is one line on stderr and a non-zero exit; anything
    else is a bug and keeps its traceback, as every failure does with ``SYNBENCH_DEBUG=1``."""
    debug = bool(os.environ.get("SYNBENCH_DEBUG"))
    try:
        yield
    except SynbenchError as exc:
        _fail(str(exc), exc.exit_code)
    except KeyboardInterrupt:
        _fail("interrupted", 128 + signal.SIGINT)
    except OSError as exc:  # unreadable data, a read-only store, --out or --csv naming a file or directory
        if debug:
            raise
        _fail(_os_error_message(exc), 2)
    except Exception as exc:
        if debug or not type(exc).__module__.startswith("pyarrow"):
            raise
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        _fail(f"unreadable Parquet/Arrow data ({type(exc).__name__}): {first}", 2)


def _fail(message: str, code: int):
    console.print(f"error: {redact(message)}", markup=False, highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def _os_error_message(exc: OSError) -> str:
    """'results/x/leaderboard.md: Is a directory': the file first, then what went wrong."""
    what = exc.strerror or str(exc) or type(exc).__name__
    files = " -> ".join(str(f) for f in (exc.filename, exc.filename2) if f is not None)
    return f"{files}: {what}" if files else f"{type(exc).__name__}: {what}"


def _split_multi(values: Optional[List[str]]) -> list[str]:
    """Accept both `-m a -m b` and `-m a,b`."""
    items = []
    for v in values or []:
        items += [x.strip() for x in v.split(",") if x.strip()]
    return items


def _split_featurizers(values: Optional[List[str]]) -> list[str]:
    """Like :func:`_split_multi`, but ``chem:radius=2,n_bits=256`` stays one spec: a comma starts a
    new featurizer only when what follows is not a ``key=value`` option."""
    specs: list[str] = []
    for part in _split_multi(values):
        if specs and ":" in specs[-1] and "=" in part and ":" not in part.split("=", 1)[0]:
            specs[-1] += "," + part
        else:
            specs.append(part)
    return specs


def _metric_names(metric, all_metrics: bool):
    """The metrics a table or report shows: all registered, the named ones (checked), or None = headline."""
    from .registry import get_registry

    if all_metrics:
        return [e.name for e in get_registry().entries("metric")]
    # registered names (`pearson` -> `pcc`); unknown names fail with a suggestion
    names = [get_registry().entry("metric", n).name for n in _split_multi(metric)]
    return names or None


def _show_reports(show, label):
    """A ``progress.listening`` callback: ``show(text)`` updates the live bar or spinner with each
    report; a log file gets no live display, so there a line a minute shows the work is alive."""
    printed = [time.monotonic()]

    def on_report(message):
        text = f"{label()} · {message}"
        show(text)
        if not console.is_terminal and time.monotonic() - printed[0] > 60:
            printed[0] = time.monotonic()
            console.print(f"... {text}", markup=False, highlight=False)

    return on_report


def _int_list(text: Optional[str], option: str) -> Optional[list[int]]:
    if text is None:
        return None
    if not text.strip(" ,"):  # an empty shell variable, say: not the default in disguise
        raise ConfigError(f"{option} is empty; give integers like 0,1,2 or leave the option out")
    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise ConfigError(f"{option} expects integers like 0,1,2, got '{text}'") from None


def _parse_params(values: Optional[List[str]]) -> dict:
    params = {}
    for item in values or []:
        if "=" not in item:
            raise ConfigError(f"--param expects NAME=VALUE, got '{item}'")
        key, raw = item.split("=", 1)
        key = key.strip()
        try:
            value = ast.literal_eval(raw)
        except (ValueError, SyntaxError):
            value = raw
        if key in params:
            raise ConfigError(f"--param {key} is given twice ({params[key]!r} and {value!r}); give it once")
        params[key] = value
    return params


# seeds reach NumPy's RandomState as seed * 100 + fold, which must stay below 2**32
MAX_SEED = 2**32 // 100 - 1
# a dry run's estimates from the same model's other runs (scaled: by the trials its own unfinished jobs kept;
# search not counted: from runs that did not search, for a job that will; search from kept trials: those
# runs plus the search, timed by the trials its settings' unfinished jobs kept)
ROUGH_BASES = tuple(f"{basis}{detail}" for basis in ("other settings", "other split")
                    for detail in ("", ", scaled", ", search not counted", ", search from kept trials"))


def _check_seed(seed: int, option: str = "--seed") -> None:
    if not 0 <= seed <= MAX_SEED:
        raise ConfigError(f"{option} must be between 0 and {MAX_SEED}, got {seed}")


# the files of a store that `leaderboard` writes; every other file in a store is its records
STORE_BOARD_FILES = ("leaderboard.md", "leaderboard.csv", "PROVENANCE.md")


def _refuse_inside_store(path: Path, option: str, board_files: tuple = ()) -> None:
    """A file a command writes never lands on a store's records, predictions, split tables or
    store.json (only on a store's own board files, for the command that writes them)."""
    from .store import MARKER

    resolved = Path(path).resolve()
    for parent in resolved.parents:
        if (parent / MARKER).is_file():
            if resolved.parent == parent and resolved.name in board_files:
                return
            raise ConfigError(f"{option} {path} is inside the result store {parent}, whose files hold its results; "
                              "write it elsewhere")


def _check_run_options(seed: int, n_folds: Optional[int], executor: str, jobs: int, ray_address: Optional[str]) -> None:
    """Options of `run` that are wrong whatever the datasets and models."""
    _check_seed(seed)
    if n_folds is not None and n_folds < 2:
        raise ConfigError(f"--n-folds must be at least 2 (a generated split needs rows to train on), got {n_folds}")
    if jobs > 1 and executor == "inline":
        raise ConfigError(f"--jobs {jobs} has no effect with the inline executor (one job at a time); "
                          "add --executor process or --executor ray")
    if ray_address and executor != "ray":
        raise ConfigError(f"--ray-address applies to --executor ray only (the executor is '{executor}')")
    if executor == "ray":
        from .runner import check_ray_address

        check_ray_address(ray_address)  # before any data is loaded or store created


def _canonical_names(kind: str, names: list[str]) -> list[str]:
    """Names as registered (`-m SVM` runs `svm`; job identities and tables use the registered name)."""
    from .registry import get_registry

    registry = get_registry()
    return [registry.canonical(kind, n) for n in names]


def _canonical_specs(specs: list[str]) -> list[str]:
    """Featurizer specs with the featurizer's registered name (`CHEM:n_bits=256` -> `chem:n_bits=256`)."""
    out = []
    for spec in specs:
        name, sep, options = spec.partition(":")
        out.append(_canonical_names("featurizer", [name.strip()])[0] + sep + options)
    return out


def _check_param_types(models: list[str], params: dict, protocols=("strong",)) -> None:
    """``-p NAME=VALUE`` against what each model declares for NAME: a True/False switch takes
    True or False, a numeric parameter (by its default or its search range) no True/False, an
    integer range no fraction. Anything else goes to the model as given. A value outside the range
    the run's protocols search is allowed (an ablation) and said once, naming the protocol."""
    from .base import Integer, Real
    from .registry import get_registry

    registry = get_registry()
    for name in models:
        cls = registry.model(name)
        defaults = cls.param_defaults()
        # what the run's protocols declare (under strong a range may be real where table1's is integer)
        spaces = [cls.space_for(protocol) for protocol in protocols]
        for key, value in params.items():
            declared = [space[key] for space in spaces if key in space]
            default = defaults.get(key)
            numeric = any(isinstance(d, (Integer, Real)) for d in declared) or \
                (isinstance(default, (int, float)) and not isinstance(default, bool))
            if isinstance(default, bool) and not isinstance(value, bool):
                expected = "True or False"
            elif numeric and isinstance(value, bool):
                expected = "a number"
            elif any(isinstance(d, Integer) for d in declared) and isinstance(value, float) and not value.is_integer():
                expected = "an integer"
            else:  # text for a number may be a named setting (max_features=sqrt); the model decides
                # the ranges of the protocols this run searches (a protocol may fix what another searches)
                ranges = {protocol: d for protocol, space in zip(protocols, spaces)
                          for d in [space.get(key)] if isinstance(d, (Integer, Real))}
                if ranges and isinstance(value, (int, float)) and not any(d.low <= value <= d.high for d in ranges.values()):
                    # an ablation may leave the tuned range on purpose; a typo (alpha=100 for 1.00) says so here
                    shown = ", ".join(f"[{d.low:g}, {d.high:g}] under {protocol}" for protocol, d in ranges.items())
                    console.print(f"warning: -p {key}={value!r} is outside the range model '{name}' searches ({shown})",
                                  markup=False, highlight=False, soft_wrap=True)
                continue
            raise ConfigError(f"-p {key}={value!r}: model '{name}' expects {expected} for '{key}'")


@app.command()
def plugins(kind: Optional[str] = typer.Option(None, help="only this kind: dataset, featurizer, model or metric")):
    """List every registered plugin with its kind, origin package and version; name clashes and plugins
    with broken declarations are listed too, with what to do about them."""
    with user_errors():
        from .registry import KINDS, UNPACKAGED, get_registry

        if kind and kind not in KINDS:
            from .registry import suggest

            raise ConfigError(f"unknown plugin kind '{kind}'{suggest(kind, KINDS)}")
        registry = get_registry()
        table = Table("kind", "name", "package", "version", "description", "status", box=None)
        for e in registry.registrations(kind):
            key = (e.kind, e.name)
            if key in registry.clashes:
                status = "CLASH (not usable until resolved)"
            elif key in registry.chosen:
                status = "chosen" if registry.chosen[key][0] is e else "not chosen"
            else:
                status = "BROKEN: " + "; ".join(e.problems) if e.problems else "ok"
            package = f"{UNPACKAGED} {e.file}" if e.package == UNPACKAGED else e.package
            table.add_row(e.kind, e.name, package, e.version, e.description, status)
        out.print(table)
        if registry.clashes:
            console.print(registry.clash_message(), markup=False, highlight=False, soft_wrap=True)


DATA_DIR_HELP = "directory with the staged data (else $SYNBENCH_DATA_DIR, cache, download)"
datasets_app = typer.Typer(add_completion=False, rich_markup_mode=None, invoke_without_command=True)
app.add_typer(datasets_app, name="datasets")


def _coverage_summary(data) -> str:
    """'SMILES 38/38; expression 39/39; descriptions 11/38, 0/39' (drugs, then cell lines)."""
    from .entities import coverage

    (drugs, cells), _ = coverage(data)
    parts = [f"SMILES {len(drugs.inputs['SMILES'])}/{len(drugs.names)}"]
    parts += [f"{m} {len(cells.inputs[m])}/{len(cells.names)}" for m in cells.inputs if m != "descriptions"]
    parts.append(f"descriptions {len(drugs.inputs['descriptions'])}/{len(drugs.names)}, "
                 f"{len(cells.inputs['descriptions'])}/{len(cells.names)}")
    return "; ".join(parts)


@datasets_app.callback()
def datasets(ctx: typer.Context, data_dir: Optional[Path] = typer.Option(None, help=DATA_DIR_HELP)):
    """List datasets with rows, drugs, cell lines, targets, split schemes and coverage; `datasets show NAME` details one."""
    ctx.obj = data_dir
    if ctx.invoked_subcommand is not None:
        return
    with user_errors():
        from .registry import get_registry
        from .runner import load_dataset

        from .datadir import data_dir_source

        where, source = data_dir_source(str(data_dir) if data_dir else None)
        out.print(f"data directory: {where or '-'} ({source})", markup=False, highlight=False)
        table = Table("name", "rows", "drugs", "cell lines", "targets", "split schemes", "coverage", "status", box=None)
        for e in get_registry().entries("dataset"):
            try:
                d = load_dataset(e.name, str(data_dir) if data_dir else None)
                targets = ", ".join(f"{t.name} ({t.task})" for t in d.targets.values())
                schemes = ", ".join(_split_schemes(e.obj, d))
                table.add_row(e.name, f"{len(d.combinations):,}", str(len(d.drugs)), str(len(d.cell_lines)), targets,
                              schemes, _coverage_summary(d), "ok")
            except SynbenchError as exc:
                table.add_row(e.name, "", "", "", "", ", ".join(e.obj.split_schemes), "", f"unavailable: {exc}")
        out.print(table)
        out.print("Every dataset also takes --split cross:DATASET (train on another dataset, test on this one).",
                  markup=False, highlight=False)


def _split_schemes(cls, data) -> list[str]:
    """The split schemes a dataset takes, as `--split` is written (with the tissue fractions' form)."""
    from .splits import FEW_SHOT, LEAVE_TISSUE_OUT

    schemes = list(dict.fromkeys([*cls.split_schemes, *data.published_splits]))
    if LEAVE_TISSUE_OUT in schemes:
        schemes.insert(schemes.index(LEAVE_TISSUE_OUT) + 1, f"{FEW_SHOT}:fraction=F")
    return schemes


@datasets_app.command("show")
def datasets_show(ctx: typer.Context, name: str = typer.Argument(..., help="dataset name"),
                  data_dir: Optional[Path] = typer.Option(None, help=DATA_DIR_HELP)):
    """Coverage of one dataset: per entity kind, how many have SMILES / expression / descriptions, and which do not."""
    with user_errors():
        from .entities import coverage
        from .registry import get_registry
        from .runner import load_dataset

        cls = get_registry().dataset(name)
        data_dir = data_dir or ctx.obj
        d = load_dataset(name, str(data_dir) if data_dir else None)
        out.print(f"{name}: {cls.description}", markup=False, highlight=False)
        out.print(f"{len(d.combinations):,} rows, {len(d.drugs)} drugs, {len(d.cell_lines)} cell lines; split schemes: "
                  f"{', '.join(_split_schemes(cls, d))}", markup=False, highlight=False)
        for t in d.targets.values():
            out.print(f"  target {t.name} ({t.task}): {t.description}", markup=False, highlight=False)
        # coverage by what each registered featurizer reads (one that reads nothing covers every entity)
        kinds, notes = coverage(d, featurizers=[e.obj for e in get_registry().entries("featurizer") if not e.problems])
        inputs = list(dict.fromkeys(i for k in kinds for i in k.inputs if i != "descriptions")) + ["descriptions"]
        table = Table("entities", "total", *inputs, "no featurizer covers", box=None)
        for k in kinds:
            table.add_row(k.kind, str(len(k.names)), *[f"{len(k.inputs[i])}/{len(k.names)}" if i in k.inputs else "-" for i in inputs],
                          str(len(k.uncovered)))
        out.print(table)
        for k in kinds:
            for i in k.inputs:
                missing = k.missing(i)
                out.print(f"{k.kind} without {i} ({len(missing)}): {', '.join(missing) if missing else '-'}",
                          markup=False, highlight=False, soft_wrap=True)
            if k.uncovered:
                out.print(f"{k.kind} no featurizer can cover ({len(k.uncovered)}): {', '.join(k.uncovered)}",
                          markup=False, highlight=False, soft_wrap=True)
        if notes["unreadable_description_lines"]:
            out.print(f"note: {notes['unreadable_description_lines']} description lines were unreadable and not counted",
                      markup=False, highlight=False)


def _duration(seconds: float) -> str:
    return "?" if math.isnan(seconds) else f"{seconds / 3600:.1f} h" if seconds >= 5400 else f"{seconds / 60:.0f} min"


def _print_plan_status(plan, out_dir: Path) -> None:
    """One row per configuration (all but the fold): folds done, locked and pending, and an
    estimate of the pending compute from the folds this store already finished."""
    from . import runner
    from .store import MARKER, Store

    if (out_dir / MARKER).is_file():
        status = runner.plan_status(plan, Store(out_dir, create=False, repair=False))  # looks, moves nothing
    else:  # a dry run never creates the store
        status = runner.plan_status(plan, None)
    kept = status["kept"].astype(bool).any() if len(status) else False  # a stopped run left progress to reuse
    table = Table("dataset", "target", "model", "featurizers", "done", "locked", "pending", "est. per fold", "est. pending",
                  *(["kept from a stopped run"] if kept else []), box=None)
    config = ["dataset", "target", "model", "featurizers"]
    for key, rows in status.groupby(config, sort=False):
        count = rows["status"].value_counts()
        pending = int(count.get("pending", 0))
        per_fold = rows["est_seconds"].iloc[0]
        left = rows.loc[rows["status"] == "pending", "est_remaining_seconds"].sum(min_count=1)  # less what folds kept
        rough = "~" if rows["est_basis"].iloc[0] in ROUGH_BASES else ""
        unsearched = " + search" if rows["est_basis"].iloc[0].endswith(", search not counted") else ""
        folds = ",".join(str(f) for f in rows.loc[rows["status"] == "pending", "fold"])
        resumes = "; ".join(f"fold {r.fold}: {r.kept}" for r in rows.itertuples() if r.kept)
        table.add_row(*map(redact, key), str(int(count.get("done", 0))), str(int(count.get("locked", 0))),
                      f"{pending} ({folds})" if pending else "0", rough + _duration(per_fold) + unsearched,
                      rough + _duration(left) + unsearched if pending else "",
                      *([resumes] if kept else []))
    out.print(table)
    n = status["status"].value_counts()
    pending_estimates = status.loc[status["status"] == "pending", "est_remaining_seconds"]
    total, unknown = pending_estimates.sum(), int(pending_estimates.isna().sum())  # sum() skips NaN
    # a locked job's estimate less what it kept so far: how long until the other runs are done
    locked_left = status.loc[status["status"] == "locked", "est_remaining_seconds"].sum(min_count=1)
    computing = f"; about {_duration(locked_left)} of it left by the estimate" if locked_left > 0 else ""  # NaN: unknown
    summary = [f"{len(status)} jobs planned: {n.get('done', 0)} done, {n.get('locked', 0)} locked (another run is computing "
               f"them{computing}), {n.get('pending', 0)} pending"]
    stale = int(status["stale_lock"].sum()) if len(status) else 0
    if stale:
        summary.append(f"{stale} of the pending jobs have a lock file no process holds (left by a run killed with SIGKILL "
                       f"or a machine that stopped); the next run takes them over")
    foreign = status.loc[status["status"] == "pending", "foreign_seconds"] if len(status) else None
    # an edit of a model's module or of the training code costs the kept work: said before the run
    if foreign is not None and foreign.sum() > 0:
        summary.append(f"{int((foreign > 0).sum())} of the pending jobs kept work ({_duration(foreign.sum())}) that this "
                       f"checkout would not reuse (marked 'other code': the model's module or the harness's training code "
                       f"changed since; 'optuna X': another optuna proposed those trials); their next run does it again")
    def pending_ending(detail: str) -> int:  # pending jobs whose estimate's basis ends with this detail
        return int(((status["status"] == "pending") & status["est_basis"].str.endswith(detail)).sum()) if len(status) else 0

    unsearched = pending_ending(", search not counted")
    resumed = status.loc[status["status"] == "pending"]
    resumed = resumed[resumed["est_remaining_seconds"] < resumed["est_seconds"]]  # NaN compares False
    if total:  # a floor where some jobs' search is left out
        summary.append(f"estimated compute for the pending jobs: {'at least ' if unsearched else ''}{_duration(total)}"
                       + (f" (less {_duration((resumed['est_seconds'] - resumed['est_remaining_seconds']).sum())} of "
                          f"work that the trials and training phases kept by {len(resumed)} of them already did)" if len(resumed) else ""))
    rough = int(((status["status"] == "pending") & status["est_basis"].isin(ROUGH_BASES)).sum()) if len(status) else 0
    if rough:
        scaled, added = pending_ending(", scaled"), pending_ending(", search from kept trials")
        summary.append(f"{rough} of them (~) estimated from the same model's runs under other settings or splits"
                       + (f", {scaled} scaled by the search trials their settings' unfinished jobs kept" if scaled else "")
                       + (f", {added} with their search added from the trials their settings' unfinished jobs kept"
                          if added else ""))
        if unsearched:
            summary.append(f"{unsearched} of them (+ search) will search but were estimated from runs that did not: "
                           f"their search comes on top")
    if unknown:
        summary.append(f"{unknown} pending job(s) have no finished fold to estimate from")
    out.print("; ".join(summary + ["nothing was run"]), markup=False, highlight=False, soft_wrap=True)


class _SigtermUnwinds:
    """Let SIGTERM (kill, pkill, a scheduler) and SIGINT (Ctrl-C) unwind the run: the executors end
    the jobs in flight and their workers, and the lock files are removed; exits with the shell's
    128 + signal (143, 130).

    The handler raises SystemExit wherever the main thread is, but Python swallows an exception
    raised inside a finalizer, a fork hook or a library callback ("Exception ignored in ..."), so
    the signal is also remembered by the runner (:func:`synbench.runner.request_stop`), whose
    executors poll it while they wait for a job: the job in flight ends, the next does not start,
    and leaving the block exits 143 all the same."""

    SIGNALS = (signal.SIGTERM, signal.SIGINT)

    def _stop(self, signum, frame):
        self._runner.request_stop(signum)
        raise SystemExit(128 + signum)

    def raise_if_stopped(self):
        self._runner.raise_if_stop_requested()

    def __enter__(self):
        from . import runner

        self._runner = runner  # resolved here, not inside the handler
        runner.request_stop(None)
        self._previous = {s: signal.signal(s, self._stop) for s in self.SIGNALS}
        return self

    def __exit__(self, *exc):
        for s, previous in self._previous.items():
            signal.signal(s, previous)
        try:
            if exc[0] is None:
                self.raise_if_stopped()
        finally:
            self._runner.request_stop(None)
        return False


@app.command()
def run(
    dataset: List[str] = typer.Option(..., "--dataset", "-d", help="dataset name(s); repeat or comma-separate"),
    model: List[str] = typer.Option(..., "--model", "-m", help="model name(s); repeat or comma-separate"),
    target: Optional[List[str]] = typer.Option(None, "--target", "-t", help="target(s); default: every target of the dataset"),
    featurizer: Optional[List[str]] = typer.Option(None, "--featurizer", "-f", help="override the models' featurizers"),
    profile: str = typer.Option("cpu", help="budget profile: paper, cpu, quick (the classical baselines, BAITSAO, "
                                                  "synergy-transfer) or smoke"),
    split: Optional[str] = typer.Option(None, help="split scheme (default: the dataset's published folds, else random)"),
    n_folds: Optional[int] = typer.Option(None, help="folds of a generated split (default 5); a split whose folds the "
                                                     "data fixes (published, per tissue) refuses another count"),
    folds: Optional[str] = typer.Option(None, help="run only these folds, e.g. 0,1"),
    seed: int = typer.Option(0, help="seed for generated splits, search and models"),
    seeds: Optional[str] = typer.Option(None, help="repeat every job with each of these seeds, e.g. 0,1,2 (replaces --seed)"),
    protocol: Optional[str] = typer.Option(None, help="search protocol(s): strong (default; practitioners' ranges, targets "
                                          "standardised) or table1 (BAITSAO's Table 1 ranges, raw targets); e.g. strong,table1"),
    trials: Optional[int] = typer.Option(None, help="search trials per job, the same for every model (default: the profile's)"),
    param: Optional[List[str]] = typer.Option(None, "--param", "-p", help="fix a model hyperparameter, NAME=VALUE"),
    out_dir: Path = typer.Option(DEFAULT_STORE, "--out", help="result store directory"),
    data_dir: Optional[Path] = typer.Option(None, help="directory with the staged data (else $SYNBENCH_DATA_DIR, cache, download)"),
    executor: str = typer.Option("inline", help="inline, process (a local process pool) or ray"),
    jobs: int = typer.Option(1, "--jobs", "-j", help="parallel jobs for the process and ray executors"),
    ray_address: Optional[str] = typer.Option(None, help="address of an existing Ray cluster (default: $RAY_ADDRESS, else start a local one)"),
    no_feature_cache: bool = typer.Option(False, "--no-feature-cache", help="recompute features instead of reading the cache"),
    no_constant: bool = typer.Option(False, "--no-constant", help="do not add the constant baseline (added by default so every leaderboard shows it)"),
    dry_run: bool = typer.Option(False, "--dry-run", help="show which jobs are done, locked or pending (with time estimates) and run nothing"),
    keep_going: bool = typer.Option(False, "--keep-going", help="run the rest of the grid when a job fails; list the failures at the end (exit 2)"),
):
    """Run a grid of jobs (dataset x target x model x fold); finished jobs in the store are skipped."""
    with user_errors():
        from . import runner
        from .provenance import git_commit, package_versions
        from .registry import suggest
        from .store import Store

        fold_list = _int_list(folds, "--folds")
        if jobs < 1:
            raise ConfigError("--jobs must be at least 1")
        if data_dir:  # featurizers and worker processes resolve their files through the same setting
            from .datadir import data_dir as existing_data_dir

            existing_data_dir(str(data_dir))  # a wrong --data-dir is an error even for data that needs none (mock)
            os.environ["SYNBENCH_DATA_DIR"] = str(data_dir)
        if executor not in runner.EXECUTORS:
            raise ConfigError(f"unknown executor '{executor}'{suggest(executor, runner.EXECUTORS)}")
        _check_run_options(seed, n_folds, executor, jobs, ray_address)
        if executor == "process" and jobs == 1:
            jobs = os.cpu_count() or 1
        models = _canonical_names("model", _split_multi(model))
        if not no_constant and "constant" not in models:
            models.append("constant")
        _check_param_types(models, _parse_params(param), _split_multi([protocol]) if protocol else ("strong",))
        plan = runner.plan(
            _canonical_names("dataset", _split_multi(dataset)), models, targets=_split_multi(target) or None,
            featurizers=_canonical_specs(_split_featurizers(featurizer)) or None, profile=profile, split=split, n_folds=n_folds, seed=seed,
            folds=fold_list, params=_parse_params(param), data_dir=str(data_dir) if data_dir else None,
            protocols=_split_multi([protocol]) if protocol else ("strong",), seeds=_int_list(seeds, "--seeds"), trials=trials,
        )
        if not plan:
            raise ConfigError("nothing to run: no model supports the chosen targets' task types")
        if dry_run:
            _print_plan_status(plan, out_dir)
            return
        runner.check_split_tables(plan, str(data_dir) if data_dir else None)  # refused by the data: no store is created
        store = Store(out_dir)
        pending = sum(not runner.stored(store, j) for j in plan)
        store.log_invocation({"command": "synbench " + shlex.join(sys.argv[1:]), "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                              "jobs": len(plan), "pending": pending, "versions": package_versions(), "git_commit": git_commit()})
        settings = runner.RunSettings(data_dir=str(data_dir) if data_dir else None, use_feature_cache=not no_feature_cache)
        console.print(f"{len(plan)} jobs planned, {len(plan) - pending} already in {out_dir}, {pending} to run")
        started = time.perf_counter()
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

        from .progress import listening

        # the remaining time is estimated from the jobs finished so far (shown from the first one on)
        with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                      TextColumn("eta"), TimeRemainingColumn(), console=console, transient=False) as progress:
            bar = progress.add_task("running", total=pending)

            current = {"job": ""}
            sigterm = _SigtermUnwinds()

            def on_start(job, *_):
                current["job"] = job.describe()
                progress.update(bar, description=f"running {current['job']}")

            on_report = _show_reports(lambda text: progress.update(bar, description=text),
                                      lambda: f"running {current['job']}")

            def on_failed(job, reason):
                progress.console.print(f"failed {job.describe()}: {reason}", markup=False, highlight=False, soft_wrap=True)

            def on_done(job, record):
                progress.advance(bar)
                if record:
                    m = record["metrics"]
                    shown = " ".join(f"{k}={m[k]:.3f}" for k in ("pcc", "mse", "roc_auc", "accuracy") if k in m)
                    task = progress.tasks[0]
                    left = task.time_remaining
                    eta = f"; about {_duration(left) if left >= 60 else f'{left:.0f} s'} left" if left is not None and task.remaining else ""
                    progress.console.print(
                        f"done {job.describe()}: {shown} (fit {record['timing']['fit_seconds']:.1f}s, "
                        f"search {record['timing']['search_seconds']:.1f}s, peak {record['resources']['peak_memory_mb']:.0f} MB{eta})",
                        markup=False, highlight=False)

            with listening(on_report), sigterm:
                try:
                    summary = runner.run(plan, store, settings, executor=executor, n_jobs=jobs, progress=on_start,
                                         on_done=on_done, ray_address=ray_address, keep_going=keep_going, on_failed=on_failed)
                except runner.JobsFailed as failed:  # --keep-going: every failure again, one line each
                    progress.stop()
                    console.print(f"{len(failed.failures)} job(s) failed:", markup=False, highlight=False)
                    for job, reason in failed.failures:
                        console.print(f"  {job.describe()}: {reason}", markup=False, highlight=False, soft_wrap=True)
                    raise
        busy = f", {summary['busy']} left to another run on this store" if summary["busy"] else ""
        console.print(f"finished: {summary['done']} run, {summary['skipped']} skipped{busy}, wall {time.perf_counter() - started:.1f}s; "
                      f"results in {out_dir}")


# First line of the Markdown files `leaderboard` writes into a store: how the harness recognises its
# own files, so that it never overwrites one a user put there (invisible once rendered).
GENERATED_MD = "<!-- written by `synbench leaderboard` from the job records; rebuilt on every call -->\n"
_EARLIER_HEADERS = {  # what these files began with before GENERATED_MD existed
    "leaderboard.md": "| model | featurizers | profile |",
    "PROVENANCE.md": "# Provenance\n\nBuilt from the job records in this store",
}


def _harness_wrote(path: Path) -> bool:
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            head = fh.read(4096)
    except OSError:
        return False
    if path.suffix == ".csv":
        columns = head.splitlines()[0].split(",") if head else []
        return {"model", "dataset", "target", "metric", "mean", "std"} <= set(columns)
    earlier = _EARLIER_HEADERS.get(path.name)
    return head.startswith(GENERATED_MD) or bool(earlier and head.startswith(earlier))


def _check_overwrite(path: Path, named: bool) -> None:
    """A default output path may replace only a file the harness wrote; a path the user named
    (--markdown, --csv) is theirs to overwrite, but never a directory."""
    if path.is_dir():
        raise ConfigError(f"{path} is a directory; name a file to write")
    if not named and path.exists() and not _harness_wrote(path):
        raise ConfigError(f"{path} was not written by synbench; not overwriting it (move it, or write elsewhere "
                          "with --markdown/--csv, or use --no-write)")


def _write_output(path: Path, text: str) -> None:
    from .store import atomic_write_bytes

    try:
        atomic_write_bytes(path, text.encode("utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot write {path}: {exc.strerror or exc}") from None


@app.command()
def leaderboard(
    stores: Optional[List[Path]] = typer.Argument(None, help="result store directories (default: results/local)"),
    metric: Optional[List[str]] = typer.Option(None, "--metric", help="metrics to show (default: PCC, MSE, ROC-AUC, accuracy)"),
    all_metrics: bool = typer.Option(False, "--all-metrics", help="show every registered metric"),
    dataset: Optional[List[str]] = typer.Option(None, "--dataset", "-d", help="only these datasets"),
    markdown: Optional[Path] = typer.Option(None, help="write Markdown here (default: <store>/leaderboard.md, for one whole store)"),
    csv: Optional[Path] = typer.Option(None, help="write the tidy summary CSV here (default: <store>/leaderboard.csv, for one whole store)"),
    no_write: bool = typer.Option(False, "--no-write", help="only print, write no files"),
):
    """Models x (dataset, target, metric) as mean ± std over folds, with average ranks per metric."""
    with user_errors():
        import pandas as pd

        from . import leaderboard as lb
        from .registry import get_registry, suggest
        from .store import Store

        roots = stores or [Path(DEFAULT_STORE)]
        # a job in several stores counts once; the same job with different predictions is an error
        # reads only: a damaged or superseded job is reported and left in place (the next run moves it aside)
        combined = lb.combine([Store(r, create=False, repair=False) for r in roots])
        metrics, records = combined.metrics, combined.records
        if dataset:
            wanted = _canonical_names("dataset", _split_multi(dataset))
            stored = sorted(set(metrics["dataset"]))
            for name in wanted:  # a typo is named as one, not reported as an empty store
                if name not in stored:
                    raise ConfigError(f"no dataset '{name}' in {', '.join(map(str, roots))}{suggest(name, stored, list_up_to=0)} "
                                      f"(stored: {', '.join(stored) or 'none'})")
            metrics = metrics[metrics["dataset"].isin(wanted)]
            records = [r for r in records if r["job"]["dataset"] in wanted]
        if metrics.empty:
            raise ConfigError(f"no finished jobs in {', '.join(map(str, roots))}")
        names = _metric_names(metric, all_metrics)
        board = lb.build(metrics, names, records=records)
        wide = board.wide()
        from rich.markup import escape  # a split name such as '[tissue-few-shot:fraction=0.1]' is text, not a style

        table = Table(*[escape(str(c)) for c in wide.columns], box=None)
        for _, row in wide.iterrows():
            table.add_row(*[lb._cell(v) for v in row])
        out.print(table)
        # a store's own leaderboard files hold that whole store's board: a board of several stores or
        # of some datasets goes only to the files the user names, never over the first store's board
        # (`synbench verify` checks leaderboard.csv against that board, with the default metrics)
        partial = [why for why, applies in ((f"combines {len(roots)} stores", len(roots) > 1),
                                            ("shows some datasets only", bool(dataset)),
                                            ("shows other metrics than the default", bool(metric) or all_metrics)) if applies]
        whole_store = not partial
        if partial and not no_write and markdown is None and csv is None:
            console.print(f"not written: this board {' and '.join(partial)}, and a store's leaderboard files hold its "
                          "whole default board; name files with --markdown/--csv", markup=False, highlight=False)
        elif not no_write:
            import io

            buffer = io.StringIO()
            board.to_csv(buffer)
            outputs = []
            if markdown is not None or whole_store:
                outputs.append((markdown or Path(roots[0]) / "leaderboard.md", GENERATED_MD + board.to_markdown(), markdown is not None))
            if csv is not None or whole_store:
                outputs.append((csv or Path(roots[0]) / "leaderboard.csv", buffer.getvalue(), csv is not None))
            if whole_store:
                store = Store(roots[0], create=False, repair=False)
                outputs.append((Path(roots[0]) / "PROVENANCE.md",
                                GENERATED_MD + lb.provenance_markdown(store.records(), store.invocations()), False))
            for path, _, named in outputs:  # check every file before writing any, so a refusal writes nothing
                if named:  # a store's own board files take only that whole store's board
                    own = whole_store and path.resolve().parent == Path(roots[0]).resolve()
                    _refuse_inside_store(path, "--csv" if path == csv else "--markdown", STORE_BOARD_FILES if own else ())
                _check_overwrite(path, named)
            for path, text, _ in outputs:
                _write_output(path, text)
            console.print(f"wrote {', '.join(str(p) for p, _, _ in outputs)}", markup=False, highlight=False)


@app.command()
def report(
    stores: Optional[List[Path]] = typer.Argument(None, help="result store directories (default: results/local)"),
    out_path: Optional[Path] = typer.Option(None, "--out", help="HTML file to write; report.md and report_figures/ go beside it (default: <first store>/report.html)"),
    metric: Optional[List[str]] = typer.Option(None, "--metric", help="metrics to show (default: PCC, MSE, ROC-AUC, accuracy)"),
    all_metrics: bool = typer.Option(False, "--all-metrics", help="show every registered metric"),
    dataset: Optional[List[str]] = typer.Option(None, "--dataset", "-d", help="only these datasets"),
    title: Optional[str] = typer.Option(None, help="report title (default: the datasets' names)"),
):
    """Self-contained HTML + Markdown report from stored results: tables, plots, paired tests, published figures, provenance."""
    with user_errors():
        from . import report as rp
        from .registry import get_registry

        roots = stores or [Path(DEFAULT_STORE)]
        names = _metric_names(metric, all_metrics)
        target = rp.check_out(out_path or Path(roots[0]) / "report.html")
        # the command that rebuilds this report, shown in it (from the arguments, so rebuilds match)
        command = ["synbench", "report", *map(str, roots), "--out", str(target)]
        command += [a for n in (names or []) if not all_metrics for a in ("--metric", n)] + (["--all-metrics"] if all_metrics else [])
        command += [a for d in _split_multi(dataset) for a in ("-d", d)] + (["--title", title] if title else [])
        built = rp.build(roots, names, _split_multi(dataset) or None, title=title, command=shlex.join(command))
        written = rp.write(built, target)
        console.print(f"wrote {', '.join(map(str, written))} ({len(built.figures)} figures)")


@app.command()
def verify(
    stores: Optional[List[Path]] = typer.Argument(None, help="result store directories (default: results/local)"),
    data_dir: Optional[Path] = typer.Option(None, help=DATA_DIR_HELP),
    no_data: bool = typer.Option(False, "--no-data", help="check only what the stores hold, not the labels and files of the data"),
):
    """Recompute what stores claim from what they hold: every metric from the stored predictions, each job's
    predictions against its stored test fold, the stored labels and data checksums against the data, and
    leaderboard.csv against the records. Writes nothing; exits 1 if anything disagrees."""
    with user_errors():
        from .verify import verify_store

        roots = stores or [Path(DEFAULT_STORE)]
        found = 0
        for root in roots:
            with console.status(f"verifying {root}") as status:
                result = verify_store(root, str(data_dir) if data_dir else None, check_data=not no_data,
                                      progress=lambda i, n, r=root: status.update(f"verifying {r}: job {i:,} of {n:,}"))
            lines = [f"{result.jobs:,} jobs; {result.metric_values:,} stored metric values recomputed from their predictions; "
                     "each job's predictions checked against its stored test fold"]
            if no_data:
                lines.append("labels and data files not checked (--no-data)")
            if result.data_checked:
                lines.append(f"stored labels and the {result.files_checked} data files the jobs read checked against "
                             f"{', '.join(result.data_checked)}")
            lines += [f"{name}: labels and data files not checked ({why})" for name, why in result.data_skipped.items()]
            lines.append({"matches": "leaderboard.csv matches the board rebuilt from the records",
                          "differs": "leaderboard.csv differs from the board rebuilt from the records",
                          "absent": "no leaderboard.csv to compare"}[result.leaderboard])
            if result.former_constant_encoding:
                lines.append(f"note: {result.former_constant_encoding} correlations of constant predictions are stored as "
                             "undefined (written before such folds scored 0); boards and reports read them as 0, as recomputed")
            verdict = "all agree" if not result.problems else f"{len(result.problems)} problem(s)"
            out.print(f"{root}: {verdict}", markup=False, highlight=False)
            for line in lines:
                out.print(f"  {line}", markup=False, highlight=False, soft_wrap=True)
            for problem in result.problems:
                out.print(f"  problem: {problem}", markup=False, highlight=False, soft_wrap=True)
            found += len(result.problems)
        if found:
            console.print(f"error: {found} problem(s) in {', '.join(map(str, roots))}", markup=False, highlight=False)
            raise typer.Exit(1)


splits_app = typer.Typer(add_completion=False, no_args_is_help=True, rich_markup_mode=None,
                         help="The shared folds, for methods that run outside synbench.")
app.add_typer(splits_app, name="splits")


@splits_app.command("export")
def splits_export(
    dataset: str = typer.Option(..., "--dataset", "-d", help="dataset name"),
    out_path: Path = typer.Option(..., "--out", help="file to write: .csv, .csv.gz or .parquet"),
    split: Optional[str] = typer.Option(None, help="split scheme (default: the dataset's published folds, else random)"),
    n_folds: Optional[int] = typer.Option(None, help="folds of a generated split (default 5), as given to `synbench run`"),
    seed: int = typer.Option(0, help="seed of the split, as given to `synbench run`"),
    data_dir: Optional[Path] = typer.Option(None, help=DATA_DIR_HELP),
):
    """Write the folds a run uses: one row per (fold, row_id) with its role (train, valid or test), the drugs,
    the cell line and every target, blank on test rows. Score predictions of the test rows with `synbench score`."""
    with user_errors():
        from .external import export_splits

        _refuse_inside_store(out_path, "--out")
        done = export_splits(dataset, out_path, split=split, n_folds=n_folds, seed=seed,
                             data_dir=str(data_dir) if data_dir else None)
        console.print(f"wrote {done['path']}: {done['rows']:,} rows, {done['folds']} folds, {done['test_rows']:,} test rows to predict "
                      "(columns row_id, fold, y_pred for `synbench score`)", markup=False, highlight=False, soft_wrap=True)


@app.command()
def score(
    predictions: Path = typer.Argument(..., help="predictions file (.csv, .csv.gz or .parquet) with columns row_id, fold, y_pred"),
    dataset: str = typer.Option(..., "--dataset", "-d", help="dataset name"),
    target: str = typer.Option(..., "--target", "-t", help="the target predicted"),
    method: str = typer.Option(..., "--method", help="the method's name on leaderboards and reports"),
    out_dir: Path = typer.Option(..., "--out", help="result store directory (created if missing)"),
    split: Optional[str] = typer.Option(None, help="split scheme the folds were exported with"),
    n_folds: Optional[int] = typer.Option(None, help="folds the split was exported with (generated splits; default 5)"),
    seed: int = typer.Option(0, help="seed the split was exported with"),
    data_dir: Optional[Path] = typer.Option(None, help=DATA_DIR_HELP),
):
    """Score predictions made outside synbench (every test row of every fold of `synbench splits export`, once;
    class-1 probabilities for classification) and store them as a method, marked "external predictions"."""
    with user_errors():
        from .external import score as score_file
        from .provenance import git_commit, package_versions
        from .store import Store

        done = score_file(predictions, dataset, target, method, out_dir, split=split, n_folds=n_folds, seed=seed,
                          data_dir=str(data_dir) if data_dir else None)
        # the command from the arguments, so it reads the same however the command was invoked
        command = ["synbench", "score", str(predictions), "-d", dataset, "-t", target, "--method", method, "--out", str(out_dir),
                   *(["--split", split] if split else []), *(["--n-folds", str(n_folds)] if n_folds is not None else []),
                   "--seed", str(seed)]
        Store(out_dir, create=False).log_invocation({
            "command": shlex.join(command), "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "jobs": done["folds"], "pending": done["written"], "versions": package_versions(), "git_commit": git_commit()})
        for fold, m in done["metrics"].items():
            shown = " ".join(f"{k}={m[k]:.3f}" for k in ("pcc", "mse", "roc_auc", "accuracy") if k in m)
            console.print(f"fold {fold}: {shown}", markup=False, highlight=False)
        kept = f", {done['already']} already stored" if done["already"] else ""
        console.print(f"scored '{method}' on {done['dataset']}/{done['target']} ({done['split']}): {done['folds']} folds, {done['test_rows']:,} test rows; "
                      f"{done['written']} jobs written{kept}; results in {out_dir}", markup=False, highlight=False, soft_wrap=True)


@app.command()
def config(
    key: Optional[str] = typer.Argument(None, help="setting to change: data-dir"),
    value: Optional[str] = typer.Argument(None, help="its new value (a directory for data-dir)"),
):
    """Show the settings, or set one once for every later command: `synbench config data-dir PATH`."""
    with user_errors():
        from .datadir import config_path, data_dir_source, write_config

        if key is None:
            where, source = data_dir_source()
            out.print(f"config file: {config_path()}", markup=False, highlight=False)
            out.print(f"data-dir: {where or '-'} ({source})", markup=False, highlight=False)
            return
        if key != "data-dir":
            from .registry import suggest

            raise ConfigError(f"unknown setting '{key}'{suggest(key, ['data-dir'])}")
        if value is None or not value.strip():  # '' would resolve to the current directory
            raise ConfigError("synbench config data-dir needs a directory: synbench config data-dir PATH")
        path = Path(value).expanduser().resolve()
        if path.exists() and not path.is_dir():
            raise ConfigError(f"data directory '{path}' is a file, not a directory")
        if not path.is_dir():
            raise ConfigError(f"data directory '{path}' does not exist")
        written = write_config({"data_dir": str(path)})
        console.print(f"data-dir set to {path} in {written}; --data-dir and $SYNBENCH_DATA_DIR still take precedence",
                      markup=False, highlight=False)


@app.command()
def blas(build_shim: bool = typer.Option(False, "--build-shim", help="compile the MKL shim into the cache directory and print how to load it")):
    """Which float32 matmul code path PyTorch takes on this CPU, and whether bf16 is native; on AMD, build the shim that lets MKL use its fast kernels."""
    with user_errors():
        import torch  # noqa: F401  (MKL is loaded with torch; status() describes it only once loaded)

        from . import blas as blas_path
        from .datadir import cache_dir

        info = blas_path.status()
        intel = {True: "fast (Intel) kernels", False: "generic kernels", None: "-"}[info["mkl_intel_path"]]
        out.print(f"cpu: {info['cpu_vendor'] or '-'}; torch BLAS: {info['torch_blas'] or '-'}; MKL code path: {intel}"
                  + (f"; shim loaded: {info['shim']}" if info["shim"] else ""), markup=False, highlight=False, soft_wrap=True)
        if blas_path.needs_shim(info) and not build_shim:
            out.print("MKL runs its generic kernels on this CPU (float32 matmuls about half as fast, measured by benchmarks/mkl_amd.py); "
                      "`synbench blas --build-shim` builds a shim that fixes it", markup=False, highlight=False, soft_wrap=True)
        if "bf16_native" in info:
            out.print("bf16 matmuls: " + ("native (oneDNN): the bf16 speed settings (BAITSAO's bf16, BERT's encode_bf16) apply"
                                          if info["bf16_native"] else
                                          "not native (no AVX-512 or AMX): slower than fp32, so the bf16 speed settings run in fp32"),
                      markup=False, highlight=False, soft_wrap=True)
        if build_shim:
            path = blas_path.build_shim(cache_dir() / "blas")
            out.print(f"built {path}; load it for a command with: LD_PRELOAD={path} synbench run ...", markup=False, highlight=False, soft_wrap=True)


@app.command()
def pretrain(
    dataset: List[str] = typer.Option(..., "--dataset", "-d", help="dataset(s) to pre-train on; repeat or comma-separate"),
    out_path: Path = typer.Option(..., "--out", help="checkpoint file to write"),
    model: str = typer.Option("baitsao", "--model", "-m", help="a model with a checkpoint format"),
    featurizer: Optional[List[str]] = typer.Option(None, "--featurizer", "-f", help="override the model's featurizers (fine-tuning must use the same)"),
    profile: str = typer.Option("cpu", help="budget profile whose fixed parameters apply (the model's: paper, cpu, quick, smoke, ...)"),
    param: Optional[List[str]] = typer.Option(None, "--param", "-p", help="fix a model hyperparameter, NAME=VALUE"),
    exclude_overlap: Optional[List[str]] = typer.Option(None, "--exclude-overlap", help="drop combinations that occur in DATASET, or only in its published folds: DATASET[:FOLD,...]"),
    seed: int = typer.Option(0, help="seed for the validation split and the model"),
    data_dir: Optional[Path] = typer.Option(None, help="directory with the staged data (else $SYNBENCH_DATA_DIR, cache, download)"),
):
    """Pre-train a model on every target of the given datasets and save a checkpoint (for -ft / -zs models and predict)."""
    with user_errors():
        from .pretrain import pretrain as run_pretrain
        from .progress import listening

        _check_seed(seed)
        _refuse_inside_store(out_path, "--out")
        if out_path.is_dir():  # found before the training, not after it
            raise ConfigError(f"--out {out_path} is a directory; name the checkpoint file to write")

        doing = f"pre-training '{model}'"
        with console.status(doing) as status, listening(_show_reports(status.update, lambda: doing)):
            summary = run_pretrain(_split_multi(dataset), out_path, model=model, featurizers=_split_featurizers(featurizer) or None,
                                   profile=profile, params=_parse_params(param), exclude=exclude_overlap or (), seed=seed,
                                   data_dir=str(data_dir) if data_dir else None)
        log = summary["training_log"] or {}
        tasks = ", ".join(f"{n} ({t})" for n, t in summary["tasks"].items())
        console.print(f"pre-trained '{model}' on {summary['rows']:,} rows ({summary['train']:,} train, {summary['valid']:,} validation; "
                      f"{summary['dropped']:,} overlapping rows dropped), {summary['combinations']:,} combinations, tasks: {tasks}",
                      markup=False, highlight=False)
        if log:
            console.print(f"epochs {log.get('epochs')}, best {log.get('best_epoch')}, validation criterion "
                          f"{log.get('best_valid_criterion')}, {summary['seconds']}s", markup=False, highlight=False)
        console.print(f"wrote {summary['path']} (training data sha256 {summary['training_checksum'][:16]}...)", markup=False, highlight=False)


@app.command()
def predict(
    model_checkpoint: Path = typer.Option(..., "--model-checkpoint", help="checkpoint written by `synbench pretrain`"),
    drugs: str = typer.Option(..., "--drugs", help="comma-separated drug names (two or more for a combination)"),
    cell_line: str = typer.Option(..., "--cell-line", help="cell-line name"),
    describe: Optional[List[str]] = typer.Option(None, "--describe", help='NAME="text" describing a drug or cell line the checkpoint lacks'),
    passes: int = typer.Option(100, help="MC-dropout passes for the interval (0: point prediction only)"),
    seed: int = typer.Option(0, help="seed of the MC-dropout passes"),
    as_json: bool = typer.Option(False, "--json", help="print JSON instead of a table"),
):
    """Predict the synergy of any number of drugs on one cell line, with an MC-dropout interval."""
    with user_errors():
        import json

        from .predict import parse_describe, query

        if passes < 0:
            raise ConfigError("--passes must be 0 or more")
        _check_seed(seed)
        result = query(model_checkpoint, drugs.split(","), cell_line, parse_describe(describe), passes=passes, seed=seed)
        if as_json:
            out.print_json(json.dumps(result))
            return
        title = f"{' + '.join(result['drugs'])} on {result['cell_line']} (k = {result['k']}, {result['passes']} MC-dropout passes)"
        table = Table("head", "task", "prediction", "MC mean", "MC std", "95% interval", title=title, box=None)
        for name, h in result["heads"].items():
            interval = f"[{h['low']:.3f}, {h['high']:.3f}]" if "low" in h else ""
            mc = [f"{h[k]:.3f}" if k in h else "" for k in ("mc_mean", "mc_std")]
            label = "probability" if h["task"] == "classification" else "score"
            table.add_row(name, label, f"{h['prediction']:.3f}", *mc, interval)
        out.print(table)
        for entity, source in result["entities"].items():
            console.print(f"{entity}: {source}", markup=False, highlight=False)
        for note in result["notes"]:
            console.print(f"note: {note}", markup=False, highlight=False)


@app.command()
def new(
    kind: str = typer.Argument(..., help="model, featurizer or dataset"),
    name: str = typer.Argument(..., help="the plugin's name, e.g. my-model"),
    out_dir: Path = typer.Option(Path("."), "--out", help="directory in which to create synbench-NAME/"),
):
    """Write a ready plugin package (pyproject with the entry point, the plugin module, a conformance test) to start from."""
    with user_errors():
        from .scaffold import create, names_for

        written = create(kind, name, out_dir)
        root = Path(out_dir) / names_for(name)["dist"]
        for path in written:
            out.print(str(path), markup=False, highlight=False)
        console.print(f"wrote the {kind} plugin package {root}; next: pip install -e {root} && "
                      f"python -m pytest -q {root / 'tests'} && synbench check {names_for(name)['dist']} "
                      "(the guide: docs/plugins.md)", markup=False, highlight=False, soft_wrap=True)


@app.command()
def check(
    packages: List[str] = typer.Argument(..., help="installed plugin package(s), or plugin module(s) named in SYNBENCH_PLUGINS"),
    data_dir: Optional[Path] = typer.Option(None, help=DATA_DIR_HELP),
):
    """Run every conformance check on every plugin a package registers, and report what passed and why anything failed."""
    with user_errors():
        from .check import check_package

        if data_dir:
            os.environ["SYNBENCH_DATA_DIR"] = str(data_dir)
        outcomes = []
        for package in packages:
            with console.status(f"checking {package}") as status:
                outcomes += check_package(package, str(data_dir) if data_dir else None,
                                          on_start=lambda e: status.update(f"checking {e.kind} '{e.name}' of {package}"))
        table = Table("kind", "name", "from", "result", "seconds", "reason", box=None)
        for o in outcomes:
            table.add_row(o.kind, o.name, o.origin, o.status, f"{o.seconds:.1f}", o.reason)
        out.print(table)
        count = {s: sum(o.status == s for o in outcomes) for s in ("passed", "failed", "skipped")}
        console.print(f"{count['passed']} passed, {count['failed']} failed, {count['skipped']} skipped", markup=False, highlight=False)
        if count["failed"]:
            raise typer.Exit(1)


def main():
    app()


if __name__ == "__main__":
    main()
