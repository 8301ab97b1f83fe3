"""Leaderboards: pure functions of stored results, never of a retrained model.

Rows are methods (model, featurizers, profile); columns are (dataset, target, metric) cells of
``mean ± std`` over folds (sample standard deviation, ddof=1), followed by the average rank per
metric across dataset/target pairs (BAITSAO Fig. 3a). A method that does not have every fold of a
cell shows how many it has, and it is not ranked on that cell.
"""

from __future__ import annotations

import functools
import json
from collections import Counter
from dataclasses import dataclass

import numpy as np
import pandas as pd

from .registry import get_registry

METHOD_COLS = ["model", "featurizers", "profile", "protocol"]
# records written before search protocols existed searched BAITSAO's Table 1 ranges at random
LEGACY_PROTOCOL = "table1 (v0)"
# a constant prediction has no correlation with the labels: scored 0, counted as a failed fold
CORRELATION_METRICS = ("pcc", "spearman")
# `synbench score` stores predictions made outside synbench under this profile; tables show the label
EXTERNAL_PROFILE = "external"
EXTERNAL_LABEL = "external predictions"


def method_of(job: dict) -> tuple[str, str, str, str]:
    """A method is a model with its featurizers, its budget and its search protocol; hyperparameters
    fixed with ``-p`` (an ablation such as ``combine=sum``) are part of the budget label so ablations
    stay apart."""
    params = job.get("params") or {}
    budget = EXTERNAL_LABEL if job["profile"] == EXTERNAL_PROFILE else job["profile"]
    profile = budget + ("".join(f" {k}={v}" for k, v in sorted(params.items())) if params else "")
    protocol = job.get("protocol") or LEGACY_PROTOCOL
    if job["profile"] == EXTERNAL_PROFILE:
        protocol = ""
    return job["model"], "+".join(job["featurizers"]), profile, protocol


@dataclass
class Combined:
    """The jobs of several stores read as one, each job once."""

    records: list[dict]
    metrics: pd.DataFrame  # tidy, as ``Store.metrics_frame``
    store_of: dict  # job_id -> the store whose copy is used (the first listed that has it)
    duplicates: int = 0  # copies found again in later stores, identical and not counted


def combine(stores) -> Combined:
    """Read several result stores as one. A job id names one configuration (dataset, target, model,
    featurizers, profile, split, fold, seed, parameters), so a job in two stores (a copied store, a
    local store beside results/) counts once; the same id with different predictions means the
    stores disagree about one result, which is an error naming both."""
    from .errors import StoreError

    if len(stores) > 1:
        check_same_folds(stores)
    records, frames, store_of, duplicates = [], [], {}, 0
    for store in stores:
        frame = store.metrics_frame()
        repeated = set()
        for rec in store.records():
            job_id = rec["job_id"]
            first = store_of.get(job_id)
            if first is None:
                store_of[job_id] = store
                records.append(rec)
                continue
            if not _same_job(first, store, job_id):
                raise StoreError(f"job {job_id} is in both {first.root} and {store.root} with different predictions; "
                                 "keep one copy, or list only one of these stores")
            duplicates += 1
            repeated.add(job_id)
        frames.append(frame[~frame["job_id"].isin(repeated)])
    metrics = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    return Combined(records, metrics, store_of, duplicates)


def check_same_folds(stores) -> None:
    """Stores read as one must split each dataset the same way. Job ids name a split by its scheme
    (``random``, 5 folds, seed 0), not by its table, and a scheme can change between harness
    versions (``random`` keeps replicate combinations together since it was found to split them):
    fold 0 of two different tables holds different test rows, and the report's paired tests would
    pair them. Different tables for one scheme are an error naming both stores."""
    from .errors import StoreError

    seen: dict = {}
    for store in stores:
        for path in sorted(store.splits_dir.glob("*.parquet")) if store.splits_dir.is_dir() else ():
            try:
                table = pd.read_parquet(path, columns=["row_id", "fold", "role"]).astype(str)
            except Exception:  # unreadable: its own store's next run recomputes it; nothing is paired on it
                continue
            table = table.sort_values(["fold", "row_id", "role"], kind="stable").reset_index(drop=True)
            if path.name not in seen:
                seen[path.name] = (store, table)
                continue
            first, first_table = seen[path.name]
            if not first_table.equals(table):
                parts = path.stem.split("--")  # dataset--scheme--kN--seedS (see Store.split_path)
                what = (f"{parts[0]} differently under the same scheme ('{'--'.join(parts[1:-2])}', {parts[-2][1:]} folds, "
                        f"seed {parts[-1][4:]}; splits/{path.name})" if len(parts) >= 4 else f"differently (splits/{path.name})")
                raise StoreError(f"{first.root} and {store.root} split {what}, so their folds cannot be compared one by one; "
                                 "read them separately")


def _same_job(a, b, job_id: str) -> bool:
    """Whether two stores hold the same result for a job."""
    return same_result(a.record(job_id)["metrics"], b.record(job_id)["metrics"],
                       _predictions_or_none(a, job_id), _predictions_or_none(b, job_id))


def same_result(ma: dict, mb: dict, pa: pd.DataFrame | None, pb: pd.DataFrame | None) -> bool:
    """The same metrics and predictions, up to the last digits a different BLAS or machine changes
    (a real conflict, another model or data, differs far more)."""
    def close(x, y) -> bool:
        return np.allclose(np.asarray(x, dtype=float), np.asarray(y, dtype=float), rtol=1e-6, atol=1e-9, equal_nan=True)

    if sorted(ma) != sorted(mb) or not close([ma[k] for k in sorted(ma)], [mb[k] for k in sorted(ma)]):
        return False
    if pa is None or pb is None:
        return pa is None and pb is None
    if len(pa) != len(pb) or list(pa.columns) != list(pb.columns) or set(pa.index) != set(pb.index):
        return False
    pb = pb.loc[pa.index]
    for col in pa.columns:
        numeric = pd.api.types.is_numeric_dtype(pa[col]) and pd.api.types.is_numeric_dtype(pb[col])
        if not (close(pa[col], pb[col]) if numeric else pa[col].astype(str).equals(pb[col].astype(str))):
            return False
    return True


def _predictions_or_none(store, job_id: str) -> pd.DataFrame | None:
    from .errors import StoreError

    path = store.jobs_dir / job_id / "predictions.parquet"
    if not path.is_file():
        return None
    try:
        return pd.read_parquet(path)
    except Exception as exc:  # a truncated or foreign file: name it instead of a pyarrow traceback
        raise StoreError(f"cannot read {path}: {type(exc).__name__}") from None


@dataclass
class Leaderboard:
    summary: pd.DataFrame  # tidy: method x dataset x target x metric with mean, std, n_folds, expected, rank
    ranks: pd.DataFrame  # method x metric average rank
    flags: pd.DataFrame | None = None  # method -> search trials and what is unequal (see method_flags)

    def wide(self) -> pd.DataFrame:
        s = self.summary.copy()
        s["cell"] = [_fmt(m, sd, n, e, d, f) for m, sd, n, e, d, f in
                     zip(s["mean"], s["std"], s["n_folds"], s["expected"], s["n_defined"], s["n_failed"])]
        # The split is part of a cell's identity: name it when it is not the dataset's default or
        # when one dataset/target was run under several schemes (else their cells would collide).
        n_splits = s.groupby(["dataset", "target"])["split"].transform("nunique")
        named = (n_splits > 1) | ~s["split"].isin(["published", "random"])
        s["column"] = s["dataset"] + np.where(named, " [" + s["split"].astype(str) + "]", "") + "/" + s["target"] + " " + s["metric"]
        order = list(dict.fromkeys(s.sort_values(["dataset", "target", "metric_order"])["column"]))
        wide = s.pivot_table(index=METHOD_COLS, columns="column", values="cell", aggfunc="first")[order]
        if len(self.ranks):
            # best first by the mean of the method's average ranks over the metrics it is ranked on
            # in every cell: a method still missing the folds of some cells is placed by the metrics
            # it has complete, and one ranked in only some cells of a metric after those
            rank_cols, order = rank_order(self.ranks, METHOD_COLS)
            rank_cols = rank_cols[[m for m in dict.fromkeys(s.sort_values("metric_order")["metric"]) if m in rank_cols.columns]]
            rank_cols.columns = [f"avg rank {c}" for c in rank_cols.columns]
            wide = wide.join(rank_cols, how="left")
            wide = wide.loc[[m for m in order if m in wide.index] + [m for m in wide.index if m not in set(order)]]
        if self.flags is not None and len(self.flags):
            wide = wide.join(self.flags.set_index(METHOD_COLS)[["trials", "flags"]], how="left")
        return wide.reset_index().astype(object).fillna("")  # object first: "" is no float fill value

    def to_csv(self, path) -> None:
        self.summary.drop(columns=["metric_order"]).to_csv(path, index=False, float_format="%.6g")

    def to_markdown(self) -> str:
        from .md_escape import md_text

        wide = self.wide()
        header = list(wide.columns)
        lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
        for _, row in wide.iterrows():
            lines.append("| " + " | ".join(md_text(_cell(v)) for v in row) + " |")  # names and options as text
        return "\n".join(lines) + "\n"


def _cell(v) -> str:
    if isinstance(v, float):
        return f"{v:.2f}"
    return str(v)


def _fmt(mean, std, n, expected, defined, failed=0) -> str:
    if not np.isfinite(mean):
        return "n/a"
    text = f"{mean:.3f} ± {std:.3f}" if np.isfinite(std) else f"{mean:.3f}"
    if failed:
        text += f" ({int(failed)}/{n} folds constant, scored 0)"
    if defined < n:
        text += f" ({defined}/{n} folds defined)"
    return text if n == expected else f"{text} ({n}/{expected} folds)"


def method_flags(records: list[dict]) -> pd.DataFrame:
    """Per method, the search trials it had and what makes its comparison unequal, from the job
    records, so that a reader never has to discover it: the Table 1 ranges searched at random
    (records from before protocols), a search on a subsample of rows, chosen values on the edge of
    their range, a raw (unscaled) regression target, folds with a constant prediction, training
    that stopped at its cap while its validation value was still improving (or, for records that
    do not say, at its cap rather than by its own stopping rule)."""
    from .runner import record_device  # lazily, as _superseded_by imports the runner

    registry = get_registry()
    by_method: dict[tuple, list[dict]] = {}
    for r in records:
        by_method.setdefault(method_of(r["job"]), []).append(r)
    rows, searched, seeded = [], {}, {}
    for key, recs in by_method.items():
        n = len(recs)
        flags = []
        summaries = [r.get("search_summary") or {} for r in recs]
        trials = sorted({int(s["n_trials"]) if "n_trials" in s else len(r.get("search") or []) for s, r in zip(summaries, recs)})
        if key[3] == LEGACY_PROTOCOL and any(r.get("search") for r in recs):
            flags.append("random search")
        subsampled = [s["rows"] for s, r in zip(summaries, recs)
                      if s.get("rows") and s.get("n_trials") and s["rows"] < (r.get("n_rows") or {}).get("train", 0)]
        if subsampled:
            flags.append(f"search on {min(subsampled):,} rows")
        profiles = {r["job"]["profile"] for r in recs}
        bounded = [p for p in profiles if _fit_max_rows(key[0], p)]
        if bounded:
            flags.append(f"fit on {min(_fit_max_rows(key[0], p) for p in bounded):,} rows")
        # beside baselines whose final fit learnt from every training row, a model that stopped on
        # the validation rows and never trained on them learnt from fewer (~90 % on the inner split)
        shares = [s for s in map(_final_fit_share, recs) if s is not None and s < 1]
        if shares:
            flags.append(f"final fit on inner-training rows only ({min(shares):.0%} of training rows)")
        edges: dict[str, int] = {}
        for s, r in zip(summaries, recs):
            limits = _param_limits(key[0], r)
            for name, side in (s.get("edge_params") or {}).items():
                if side in limits.get(name, ()):  # stored before the space declared the limit
                    continue
                edges[f"{name} {side}"] = edges.get(f"{name} {side}", 0) + 1
        flags += [f"edge: {e} ({c}/{n})" for e, c in sorted(edges.items())]
        regression = [r for r in recs if r.get("task") == "regression"]
        if regression and key[2] != EXTERNAL_LABEL and key[0] != "constant":
            try:
                model_cls = registry.model(key[0])
                itself = getattr(model_cls, "scales_target_itself", False)
                learns = getattr(model_cls, "learns_from_labels", True)
            except Exception:  # a model no longer installed: judge by its records alone
                itself, learns = False, True
            # a zero-shot head learns nothing from these labels, so no scaling is owed to it
            if learns and all(r.get("target_scaling") is None for r in regression):
                flags.append("target scaled by the model itself" if itself else "raw target")
        # tabular baselines read drug pairs in both orders by default; one pooling the drugs instead
        # (the SVM, to keep a kernel fit affordable) reads a different design, and the board says so
        pooled = {str((r.get("params") or {}).get("combine")) for r in recs} & {"mean", "sum"}
        if pooled and _is_tabular(key[0]):
            flags.append(f"drugs pooled ({'/'.join(sorted(pooled))}), not both orders")
        # a text or foundation encoder used as a fixed feature extractor is not the fine-tuned method
        strategies = {str((r.get("params") or {}).get("strategy")) for r in recs} & {"frozen", "lora"}
        if strategies:
            flags.append(f"encoder {'/'.join(sorted(strategies))}" + (" (head only)" if strategies == {"frozen"} else ""))
        # the same method either way, but timings and the last digits differ: a reader comparing
        # fit seconds (or rerunning a fold here) is told which folds ran elsewhere
        devices = Counter(kind for kind in map(record_device, recs) if kind != "cpu")
        flags += [f"computed on {'a GPU' if kind == 'cuda' else kind} ({c}/{n})" for kind, c in sorted(devices.items())]
        constant = sum(bool(r.get("constant_prediction")) for r in recs)
        if constant and key[0] != "constant":
            flags.append(f"constant prediction ({constant}/{n})")
        # a record that says whether its validation value was still improving at the cap is flagged
        # only when it was (synbench.neural.stop_reason); an older record only says it hit the cap
        logs = [r["training"] for r in recs if isinstance(r.get("training"), dict)]
        improving = sum(bool(t.get("improving_at_cap")) for t in logs if t.get("stopped") == "cap")
        capped = sum(t.get("stopped") == "cap" and "improving_at_cap" not in t for t in logs)
        if improving:
            flags.append(f"capped while improving ({improving}/{n})")
        if capped:
            flags.append(f"stopped at its cap ({capped}/{n})")
        # a record the current code would recompute (its profile or search ranges changed since it
        # ran) stands on the board until a run of its job replaces it, and says so meanwhile
        outdated: dict[str, int] = {}
        for r in recs:
            what = _superseded_by(r)
            if what:
                outdated[what] = outdated.get(what, 0) + 1
        flags += [f"superseded: earlier {what} ({c}/{n})" for what, c in sorted(outdated.items())]
        rows.append(dict(zip(METHOD_COLS, key), trials="/".join(map(str, trials)), flags="; ".join(flags)))
        searched[key] = max(trials)
        seeds_of: dict[str, set] = {}  # dataset/target -> the seeds the method ran there
        for r in recs:
            seeds_of.setdefault(f"{r['job'].get('dataset', '')}/{r['job'].get('target', '')}", set()).add(r["job"].get("seed", 0))
        seeded[key] = {cell: len(s) for cell, s in seeds_of.items()}
    # unequal search on one board: a method searched with fewer trials than another (e.g. a network
    # run with its published settings beside searched baselines) says so
    compared = {k: t for k, t in searched.items() if k[0] != "constant" and k[2] != EXTERNAL_LABEL}
    most = max(compared.values(), default=0)
    for row, key in zip(rows, by_method):
        if key in compared and compared[key] < most:
            note = "not searched" if compared[key] == 0 else f"{compared[key]} search trials"
            row["flags"] = "; ".join(filter(None, [f"{note} (others up to {most})", row["flags"]]))
    # unequal repeats: a mean over fewer seeds than another method's (--seeds) is a noisier estimate
    # of the same quantity, and a paired test can only pair the seeds both ran
    most_seeds = max((n for k, cells in seeded.items() if k in compared for n in cells.values()), default=1)
    for row, key in zip(rows, by_method):
        cells = seeded.get(key, {})
        if key in compared and cells and min(cells.values()) < most_seeds:
            counts = sorted(set(cells.values()))
            note = (f"{counts[0]} seed{'s' if counts[0] > 1 else ''}" if len(counts) == 1 else
                    "seeds " + ", ".join(f"{n} on {cell}" for cell, n in sorted(cells.items())))
            row["flags"] = "; ".join(filter(None, [row["flags"], f"{note} (others up to {most_seeds})"]))
    return pd.DataFrame(rows, columns=METHOD_COLS + ["trials", "flags"])


def _is_tabular(model: str) -> bool:
    from .tabular import TabularModel

    try:
        return issubclass(get_registry().model(model), TabularModel)
    except Exception:  # a model no longer installed
        return False


def _final_fit_share(record: dict) -> float | None:
    """The share of a job's training rows (inner training + validation) its final model learnt
    from. A record from before ``final_fit_rows`` is judged by what its model does with the stored
    parameters (None when the model is no longer installed)."""
    n_rows = record.get("n_rows") or {}
    train, valid = int(n_rows.get("train", 0)), int(n_rows.get("valid", 0))
    rows = record.get("final_fit_rows")
    if rows is None:
        on_valid = _trains_on_validation_rows(record["job"]["model"], json_dumps(record.get("params") or {}))
        if on_valid is None:
            return None
        rows = train + (valid if on_valid else 0)
    return rows / (train + valid) if train + valid else None


@functools.lru_cache(maxsize=None)
def _trains_on_validation_rows(model: str, params_json: str) -> bool | None:
    try:
        cls = get_registry().model(model)
        known = set(cls.param_names())  # a parameter renamed or dropped since leaves its default
        return bool(cls(**{k: v for k, v in json.loads(params_json).items() if k in known}).trains_on_validation_rows())
    except Exception:  # a model no longer installed, or a value it no longer takes
        return None


def _superseded_by(record: dict) -> str | None:
    """What changed since ``record`` ran such that its job's next run recomputes it ("search
    ranges", "profile settings"), or None (:func:`synbench.runner.drift`). A record from
    before protocols (labelled ``table1 (v0)``) is a configuration of its own that no plan
    recomputes, and a model no longer installed has nothing to compare with: both None."""
    from .runner import Job, drift

    if "protocol" not in record.get("job", {}):
        return None
    try:
        found = drift(Job.from_dict(record["job"]), record)
    except Exception:  # a record this version cannot rebuild a job from
        return None
    return found[0] if found else None


def _param_limits(model: str, record: dict) -> dict[str, tuple]:
    """The sides of each searched parameter that are its own limits, from the model's current
    declaration (a model no longer installed declares none). A range the record searched that is
    not today's declares none: its edge is not today's limit (TabNet's n_steps once started at 3,
    where 1 is the limit now)."""
    try:
        space = get_registry().model(model).space_for(record["job"].get("protocol", ""), record.get("task"))
    except Exception:
        return {}
    searched = (record.get("search_summary") or {}).get("space") or {}
    return {name: getattr(spec, "limits", ()) for name, spec in space.items()
            if name not in searched or searched[name] == str(spec)}


def _fit_max_rows(model: str, profile: str) -> int | None:
    try:
        return get_registry().model(model).profiles[profile].fit_max_rows
    except Exception:  # a model or profile no longer installed
        return None


def cell_folds(frame: pd.DataFrame) -> pd.Series:
    """The folds of each (dataset, target, split) cell of a tidy metrics frame: every fold its split
    declares (the records' ``n_folds``), so a grid stored half-way is partial for every method, not
    complete; where records declare none, every fold any method has."""
    keys = ["dataset", "target", "split"]
    folds = frame.groupby(keys)["fold"].nunique()
    if "n_folds" in frame.columns:
        declared = pd.to_numeric(frame["n_folds"], errors="coerce").groupby([frame[k] for k in keys]).max()
        folds = np.fmax(folds, declared.reindex(folds.index)).astype(int)
    return folds.rename("cell_folds")


def build(metrics: pd.DataFrame, metric_names=None, registry=None, records: list[dict] | None = None) -> Leaderboard:
    """Summarise a tidy metrics frame (see ``Store.metrics_frame``); with the job ``records``, the
    board also shows each method's search trials and flags (see :func:`method_flags`)."""
    registry = registry or get_registry()
    known = {e.name: e.obj for e in registry.entries("metric")}
    if metric_names is None:
        metric_names = [m.name for m in known.values() if m.headline]
    frame = metrics[metrics["metric"].isin(metric_names)]
    frame = frame.assign(**{c: d for c, d in (("protocol", ""), ("seed", 0)) if c not in frame.columns})
    if frame.empty:
        return Leaderboard(pd.DataFrame(columns=METHOD_COLS + ["dataset", "target", "metric", "mean", "std", "n_folds",
                                                               "n_failed", "expected", "metric_order"]),
                           pd.DataFrame(columns=METHOD_COLS + ["metric", "avg_rank", "n_ranked", "n_cells"]))
    keys = METHOD_COLS + ["dataset", "target", "split", "metric"]
    frame = frame.copy()
    # A correlation left undefined by a constant prediction (records written before constant
    # predictions were scored 0) is a failed fold: it counts as 0 in the mean, never dropped from it.
    failed = frame["metric"].isin(CORRELATION_METRICS) & frame["value"].isna()
    frame["failed"] = failed
    frame.loc[failed, "value"] = 0.0
    summary = frame.groupby(keys, dropna=False).agg(
        mean=("value", lambda v: float(np.mean(v[np.isfinite(v)])) if np.isfinite(v).any() else float("nan")),
        std=("value", lambda v: float(np.std(v[np.isfinite(v)], ddof=1)) if np.isfinite(v).sum() > 1 else float("nan")),
        n_folds=("value", "size"),
        n_defined=("value", lambda v: int(np.isfinite(v).sum())),
        n_failed=("failed", "sum"),
        n_seeds=("seed", "nunique"),
    ).reset_index()
    # with --seeds every (seed, fold) is one value; a method is complete when each of its seeds has
    # every fold of the cell
    folds = cell_folds(frame).reset_index()
    summary = summary.merge(folds, on=["dataset", "target", "split"])
    summary["expected"] = summary["cell_folds"] * summary["n_seeds"].clip(lower=1)
    summary = summary.drop(columns="cell_folds")
    summary["metric_order"] = summary["metric"].map({n: i for i, n in enumerate(metric_names)})

    # Rank within each (dataset, target, metric) among complete methods; NaN (undefined) ranks last.
    summary["rank"] = np.nan
    for _, idx in summary.groupby(["dataset", "target", "split", "metric"]).groups.items():
        cell = summary.loc[idx]
        complete = cell[cell["n_folds"] == cell["expected"]]
        higher = known[cell["metric"].iloc[0]].higher_is_better
        worst = -np.inf if higher else np.inf
        score = complete["mean"].where(complete["n_defined"] == complete["n_folds"], worst).fillna(worst)
        summary.loc[complete.index, "rank"] = score.rank(ascending=not higher, method="average")
    ranks = summary.groupby(METHOD_COLS + ["metric"], dropna=False)["rank"].agg(avg_rank="mean", n_ranked="count").reset_index()
    # the cells of each metric in which any method is ranked: an average over fewer of them is partial
    ranked = summary.loc[summary["rank"].notna(), ["metric", "dataset", "target", "split"]].drop_duplicates()
    ranked_cells = ranked["metric"].value_counts()
    ranks["n_cells"] = ranks["metric"].map(ranked_cells).fillna(0).astype(int)
    return Leaderboard(summary, ranks, method_flags(records) if records is not None else None)


def rank_order(ranks: pd.DataFrame, index_cols) -> tuple[pd.DataFrame, list]:
    """The average ranks laid out one column per metric (index: ``index_cols``), each shown as a
    number where the method is ranked in every cell of that metric and as ``"1.00 (1/3 cells)"``
    where it is ranked in only some; and the methods best first: by the mean of their complete
    average ranks over metrics, then those with partial ones only (by their mean), then the rest.
    A method that has run one cell of three is never placed above methods ranked on all three."""
    full = ranks["n_ranked"] == ranks["n_cells"]
    shown = ranks.assign(shown=[a if f or not np.isfinite(a) else f"{a:.2f} ({k}/{n} cells)"
                                for a, f, k, n in zip(ranks["avg_rank"], full, ranks["n_ranked"], ranks["n_cells"])])
    table = shown.pivot_table(index=index_cols, columns="metric", values="shown", aggfunc="first", dropna=False)
    complete = ranks.assign(avg_rank=ranks["avg_rank"].where(full)).pivot_table(
        index=index_cols, columns="metric", values="avg_rank", dropna=False).mean(axis=1, skipna=True)
    partial = ranks.pivot_table(index=index_cols, columns="metric", values="avg_rank", dropna=False).mean(axis=1, skipna=True)
    keys = pd.DataFrame({"tier": np.where(complete.notna(), 0, np.where(partial.notna(), 1, 2)),
                         "score": complete.fillna(partial)}).reindex(table.index)
    return table, list(keys.sort_values(["tier", "score"], kind="stable").index)


def provenance_markdown(records: list[dict], invocations: list[dict]) -> str:
    """What reproduces a store's numbers: commands, versions, commits, seeds, profiles, data checksums."""
    from .md_escape import md_code, md_text  # commands, names, options and paths render as text only

    def distinct(values):
        return sorted({json_dumps(v) for v in values})

    lines = ["# Provenance", "", "Built from the job records in this store; rebuild the tables with "
             "`synbench leaderboard <this directory>`.", "", "## Commands", ""]
    # a resumed run that found every job stored ran nothing: count it instead of listing it
    idle = [inv for inv in invocations if inv.get("pending") == 0]
    lines += [f"- {md_code(inv.get('command', ''))} ({md_text(inv.get('started_at', ''))}, {md_text(inv.get('jobs', '?'))} jobs"
              + (f", {inv['pending']} not yet stored)" if "pending" in inv else ")")
              for inv in invocations if inv.get("pending") != 0] or ["- (none logged)"]
    if idle:
        lines.append(f"- and {len(idle)} re-run(s) that found every job already stored")
    lines += ["", "## Jobs", "", f"- {len(records)} finished jobs"]
    for label, values in (
        ("datasets", [r["job"]["dataset"] for r in records]),
        ("models", [r["job"]["model"] for r in records]),
        ("featurizers", ["+".join(r["job"]["featurizers"]) or "(none)" for r in records]),
        ("profiles", [r["job"]["profile"] for r in records]),
        ("split schemes", [r["job"]["split"] for r in records]),
        ("seeds", [r["job"]["seed"] for r in records]),
        ("git commits", [r["provenance"]["git_commit"] for r in records]),
        ("devices", [r["resources"].get("device", "cpu") for r in records]),
    ):
        lines.append(f"- {label}: {', '.join(md_text(v) for v in distinct(values))}")
    lines += ["", "## Package versions", ""]
    for versions in distinct([r["provenance"]["versions"] for r in records]):
        lines.append(f"- {md_text(versions)}")
    lines += _plugin_package_lines(records)
    lines += ["", "## Data checksums (SHA-256)", ""]
    checksums = {}
    for r in records:
        checksums.update(r["provenance"]["data_checksums"])
    lines += [f"- {md_code(path)}: {md_code(digest)}" for path, digest in sorted(checksums.items())]
    machines = distinct([r["provenance"]["machine"] for r in records])
    lines += ["", "## Machines", ""] + [f"- {md_text(m)}" for m in machines]
    return "\n".join(lines) + "\n"


def _plugin_package_lines(records: list[dict]) -> list[str]:
    """'- plugins from my-pkg 1.0: model knn, featurizer onehot', one line per package (or unpackaged
    module, with its file and source hash) that produced a result."""
    used: dict[str, set[str]] = {}
    for r in records:
        prov = r["provenance"]
        plugins = prov.get("plugins") or [{"kind": "model", "name": r["job"]["model"], "package": prov.get("plugin_package"),
                                           "version": prov.get("plugin_version"), "file": prov.get("plugin_file")}]
        for p in plugins:
            if not p.get("package"):
                continue  # predictions made outside synbench
            origin = f"{p['package']} {p['version']}" + (f" ({p.get('module', '')}, {p['file']})" if p.get("file") else "")
            used.setdefault(origin, set()).add(f"{p['kind']} {p['name']}")
    return [f"- plugins from {origin}: {', '.join(sorted(names))}" for origin, names in sorted(used.items())]


def json_dumps(value) -> str:
    import json

    return value if isinstance(value, str) else json.dumps(value, sort_keys=True)
