"""The `synbench` command line: plugins, datasets, run, leaderboard."""

from __future__ import annotations

import ast
import os
import shlex
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import List, Optional

import typer
from rich.console import Console
from rich.table import Table

from .errors import ConfigError, SynbenchError

app = typer.Typer(add_completion=False, no_args_is_help=True, rich_markup_mode=None,
                  help="synbench: benchmark drug-synergy predictors on shared splits and metrics.")
# Piped output (CI logs, files) gets a wide console so tables are never truncated.
console = Console(stderr=True, width=None if sys.stderr.isatty() else 160)
out = Console(width=None if sys.stdout.isatty() else 250)
DEFAULT_STORE = "results/local"


@contextmanager
def user_errors():
    try:
        yield
    except SynbenchError as exc:
        console.print(f"error: {exc}", markup=False, highlight=False, soft_wrap=True)
        raise typer.Exit(exc.exit_code)


def _split_multi(values: Optional[List[str]]) -> list[str]:
    """Accept both `-m a -m b` and `-m a,b`."""
    items = []
    for v in values or []:
        items += [x.strip() for x in v.split(",") if x.strip()]
    return items


def _parse_params(values: Optional[List[str]]) -> dict:
    params = {}
    for item in values or []:
        if "=" not in item:
            raise ConfigError(f"--param expects NAME=VALUE, got '{item}'")
        key, raw = item.split("=", 1)
        try:
            params[key.strip()] = ast.literal_eval(raw)
        except (ValueError, SyntaxError):
            params[key.strip()] = raw
    return params


@app.command()
def plugins(kind: Optional[str] = typer.Option(None, help="only this kind: dataset, featurizer, model or metric")):
    """List every registered plugin with its kind, origin package and version."""
    with user_errors():
        from .registry import KINDS, get_registry

        if kind and kind not in KINDS:
            from .registry import suggest

            raise ConfigError(f"unknown plugin kind '{kind}'{suggest(kind, KINDS)}")
        table = Table("kind", "name", "package", "version", "description", box=None)
        for e in get_registry().entries(kind):
            table.add_row(e.kind, e.name, e.package, e.version, e.description)
        out.print(table)


@app.command()
def datasets(data_dir: Optional[Path] = typer.Option(None, help="directory with the staged data (else $SYNBENCH_DATA_DIR, cache, download)")):
    """List datasets with rows, drugs, cell lines, targets and split schemes."""
    with user_errors():
        from .registry import get_registry
        from .runner import load_dataset

        table = Table("name", "rows", "drugs", "cell lines", "targets", "split schemes", "status", box=None)
        for e in get_registry().entries("dataset"):
            try:
                d = load_dataset(e.name, str(data_dir) if data_dir else None)
                targets = ", ".join(f"{t.name} ({t.task[:5]})" for t in d.targets.values())
                table.add_row(e.name, f"{len(d.combinations):,}", str(len(d.drugs)), str(len(d.cell_lines)), targets,
                              ", ".join(e.obj.split_schemes), "ok")
            except SynbenchError as exc:
                table.add_row(e.name, "", "", "", "", ", ".join(e.obj.split_schemes), f"unavailable: {exc}")
        out.print(table)


@app.command()
def run(
    dataset: List[str] = typer.Option(..., "--dataset", "-d", help="dataset name(s); repeat or comma-separate"),
    model: List[str] = typer.Option(..., "--model", "-m", help="model name(s); repeat or comma-separate"),
    target: Optional[List[str]] = typer.Option(None, "--target", "-t", help="target(s); default: every target of the dataset"),
    featurizer: Optional[List[str]] = typer.Option(None, "--featurizer", "-f", help="override the models' featurizers"),
    profile: str = typer.Option("cpu", help="budget profile: paper, cpu or smoke"),
    split: Optional[str] = typer.Option(None, help="split scheme (default: the dataset's published folds, else random)"),
    n_folds: int = typer.Option(5, help="folds for generated splits"),
    folds: Optional[str] = typer.Option(None, help="run only these folds, e.g. 0,1"),
    seed: int = typer.Option(0, help="seed for generated splits, search and models"),
    param: Optional[List[str]] = typer.Option(None, "--param", "-p", help="fix a model hyperparameter, NAME=VALUE"),
    out_dir: Path = typer.Option(DEFAULT_STORE, "--out", help="result store directory"),
    data_dir: Optional[Path] = typer.Option(None, help="directory with the staged data (else $SYNBENCH_DATA_DIR, cache, download)"),
    executor: str = typer.Option("inline", help="inline, process (a local process pool) or ray"),
    jobs: int = typer.Option(1, "--jobs", "-j", help="parallel jobs for the process and ray executors"),
    ray_address: Optional[str] = typer.Option(None, help="address of an existing Ray cluster (default: $RAY_ADDRESS, else start a local one)"),
    no_feature_cache: bool = typer.Option(False, help="recompute features instead of reading the cache"),
    no_constant: bool = typer.Option(False, help="do not add the constant baseline (added by default so every leaderboard shows it)"),
):
    """Run a grid of jobs (dataset x target x model x fold); finished jobs in the store are skipped."""
    with user_errors():
        from . import runner
        from .provenance import git_commit, package_versions
        from .registry import suggest
        from .store import Store

        fold_list = None
        if folds:
            try:
                fold_list = [int(f) for f in folds.split(",")]
            except ValueError:
                raise ConfigError(f"--folds expects integers like 0,1, got '{folds}'") from None
        if jobs < 1:
            raise ConfigError("--jobs must be at least 1")
        if executor not in runner.EXECUTORS:
            raise ConfigError(f"unknown executor '{executor}'{suggest(executor, runner.EXECUTORS)}")
        if executor == "process" and jobs == 1:
            jobs = os.cpu_count() or 1
        models = _split_multi(model)
        if not no_constant and "constant" not in models:
            models.append("constant")
        plan = runner.plan(
            _split_multi(dataset), models, targets=_split_multi(target) or None,
            featurizers=_split_multi(featurizer) or None, profile=profile, split=split, n_folds=n_folds, seed=seed,
            folds=fold_list, params=_parse_params(param), data_dir=str(data_dir) if data_dir else None,
        )
        if not plan:
            raise ConfigError("nothing to run: no model supports the chosen targets' task types")
        store = Store(out_dir)
        store.log_invocation({"command": "synbench " + shlex.join(sys.argv[1:]), "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                              "jobs": len(plan), "versions": package_versions(), "git_commit": git_commit()})
        settings = runner.RunSettings(data_dir=str(data_dir) if data_dir else None, use_feature_cache=not no_feature_cache)
        pending = sum(not store.has_job(j.job_id) for j in plan)
        console.print(f"{len(plan)} jobs planned, {len(plan) - pending} already in {out_dir}, {pending} to run")
        started = time.perf_counter()
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                      console=console, transient=False) as progress:
            bar = progress.add_task("running", total=pending)

            def on_start(job, *_):
                progress.update(bar, description=f"running {job.describe()}")

            def on_done(job, record):
                progress.advance(bar)
                if record:
                    m = record["metrics"]
                    shown = " ".join(f"{k}={m[k]:.3f}" for k in ("pcc", "mse", "roc_auc", "accuracy") if k in m)
                    progress.console.print(
                        f"done {job.describe()}: {shown} (fit {record['timing']['fit_seconds']:.1f}s, "
                        f"search {record['timing']['search_seconds']:.1f}s, peak {record['resources']['peak_memory_mb']:.0f} MB)",
                        markup=False, highlight=False)

            summary = runner.run(plan, store, settings, executor=executor, n_jobs=jobs, progress=on_start, on_done=on_done,
                                 ray_address=ray_address)
        busy = f", {summary['busy']} left to another run on this store" if summary["busy"] else ""
        console.print(f"finished: {summary['done']} run, {summary['skipped']} skipped{busy}, wall {time.perf_counter() - started:.1f}s; "
                      f"results in {out_dir}")


@app.command()
def leaderboard(
    stores: Optional[List[Path]] = typer.Argument(None, help="result store directories (default: results/local)"),
    metric: Optional[List[str]] = typer.Option(None, "--metric", help="metrics to show (default: PCC, MSE, ROC-AUC, accuracy)"),
    all_metrics: bool = typer.Option(False, help="show every registered metric"),
    dataset: Optional[List[str]] = typer.Option(None, "--dataset", "-d", help="only these datasets"),
    markdown: Optional[Path] = typer.Option(None, help="write Markdown here (default: <store>/leaderboard.md)"),
    csv: Optional[Path] = typer.Option(None, help="write the tidy summary CSV here (default: <store>/leaderboard.csv)"),
    no_write: bool = typer.Option(False, help="only print, write no files"),
):
    """Models x (dataset, target, metric) as mean ± std over folds, with average ranks per metric."""
    with user_errors():
        import pandas as pd

        from . import leaderboard as lb
        from .registry import get_registry
        from .store import Store

        roots = stores or [Path(DEFAULT_STORE)]
        frames = [Store(r, create=False).metrics_frame() for r in roots]
        metrics = pd.concat(frames, ignore_index=True)
        if dataset:
            metrics = metrics[metrics["dataset"].isin(_split_multi(dataset))]
        if metrics.empty:
            raise ConfigError(f"no finished jobs in {', '.join(map(str, roots))}")
        names = None
        if all_metrics:
            names = [e.name for e in get_registry().entries("metric")]
        elif metric:
            names = _split_multi(metric)
            for n in names:
                get_registry().metric(n)
        board = lb.build(metrics, names)
        wide = board.wide()
        table = Table(*[str(c) for c in wide.columns], box=None)
        for _, row in wide.iterrows():
            table.add_row(*[lb._cell(v) for v in row])
        out.print(table)
        if not no_write:
            md_path = markdown or Path(roots[0]) / "leaderboard.md"
            csv_path = csv or Path(roots[0]) / "leaderboard.csv"
            md_path.write_text(board.to_markdown())
            board.to_csv(csv_path)
            written = [md_path, csv_path]
            if len(roots) == 1:
                store = Store(roots[0], create=False)
                prov_path = Path(roots[0]) / "PROVENANCE.md"
                prov_path.write_text(lb.provenance_markdown(store.records(), store.invocations()))
                written.append(prov_path)
            console.print(f"wrote {', '.join(map(str, written))}")


def main():
    app()


if __name__ == "__main__":
    main()
