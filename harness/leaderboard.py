"""Leaderboards: pure functions of stored results, never of a retrained model.

Rows are methods (model, featurizers, profile); columns are (dataset, target, metric) cells of
``mean ± std`` over folds (sample standard deviation, ddof=1), followed by the average rank per
metric across dataset/target pairs (BAITSAO Fig. 3a). A method that does not have every fold of a
cell shows how many it has, and it is not ranked on that cell.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from .registry import get_registry

METHOD_COLS = ["model", "featurizers", "profile"]


def method_of(job: dict) -> tuple[str, str, str]:
    """A method is a model with its featurizers and its budget; hyperparameters fixed with ``-p``
    (an ablation such as ``combine=sum``) are part of the budget label so ablations stay apart."""
    params = job.get("params") or {}
    profile = job["profile"] + ("".join(f" {k}={v}" for k, v in sorted(params.items())) if params else "")
    return job["model"], "+".join(job["featurizers"]), profile


@dataclass
class Leaderboard:
    summary: pd.DataFrame  # tidy: method x dataset x target x metric with mean, std, n_folds, expected, rank
    ranks: pd.DataFrame  # method x metric average rank

    def wide(self) -> pd.DataFrame:
        s = self.summary.copy()
        s["cell"] = [_fmt(m, sd, n, e, d) for m, sd, n, e, d in zip(s["mean"], s["std"], s["n_folds"], s["expected"], s["n_defined"])]
        # The split is part of a cell's identity: name it when it is not the dataset's default or
        # when one dataset/target was run under several schemes (else their cells would collide).
        n_splits = s.groupby(["dataset", "target"])["split"].transform("nunique")
        named = (n_splits > 1) | ~s["split"].isin(["published", "random"])
        s["column"] = s["dataset"] + np.where(named, " [" + s["split"].astype(str) + "]", "") + "/" + s["target"] + " " + s["metric"]
        order = list(dict.fromkeys(s.sort_values(["dataset", "target", "metric_order"])["column"]))
        wide = s.pivot_table(index=METHOD_COLS, columns="column", values="cell", aggfunc="first")[order]
        rank_cols = self.ranks.pivot_table(index=METHOD_COLS, columns="metric", values="avg_rank")
        rank_cols.columns = [f"avg rank {c}" for c in rank_cols.columns]
        wide = wide.join(rank_cols, how="left")
        rank_names = [c for c in wide.columns if c.startswith("avg rank")]
        if rank_names:
            # best first by the mean of the method's average ranks over the metrics it is ranked on:
            # a method still missing the folds of some cells is placed by the cells it has
            overall = wide[rank_names].mean(axis=1, skipna=True)
            wide = wide.assign(_overall=overall).sort_values("_overall", na_position="last", kind="stable")
            wide = wide.drop(columns="_overall")
        return wide.reset_index().astype(object).fillna("")  # object first: "" is no float fill value

    def to_csv(self, path) -> None:
        self.summary.drop(columns=["metric_order"]).to_csv(path, index=False, float_format="%.6g")

    def to_markdown(self) -> str:
        wide = self.wide()
        header = list(wide.columns)
        lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
        for _, row in wide.iterrows():
            lines.append("| " + " | ".join(_cell(v) for v in row) + " |")
        return "\n".join(lines) + "\n"


def _cell(v) -> str:
    if isinstance(v, float):
        return f"{v:.2f}"
    return str(v)


def _fmt(mean, std, n, expected, defined) -> str:
    if not np.isfinite(mean):
        return "n/a"
    text = f"{mean:.3f} ± {std:.3f}" if np.isfinite(std) else f"{mean:.3f}"
    if defined < n:
        text += f" ({defined}/{n} folds defined)"
    return text if n == expected else f"{text} ({n}/{expected} folds)"


def build(metrics: pd.DataFrame, metric_names=None, registry=None) -> Leaderboard:
    """Summarise a tidy metrics frame (see ``Store.metrics_frame``)."""
    registry = registry or get_registry()
    known = {e.name: e.obj for e in registry.entries("metric")}
    if metric_names is None:
        metric_names = [m.name for m in known.values() if m.headline]
    frame = metrics[metrics["metric"].isin(metric_names)]
    if frame.empty:
        return Leaderboard(pd.DataFrame(columns=METHOD_COLS + ["dataset", "target", "metric", "mean", "std", "n_folds", "expected", "metric_order"]),
                           pd.DataFrame(columns=METHOD_COLS + ["metric", "avg_rank"]))
    keys = METHOD_COLS + ["dataset", "target", "split", "metric"]
    # Undefined fold values (PCC of a constant prediction) are left out of mean and std, and the cell
    # says how many folds were defined; such a method still ranks last on that cell.
    summary = frame.groupby(keys, dropna=False)["value"].agg(
        mean=lambda v: float(np.mean(v[np.isfinite(v)])) if np.isfinite(v).any() else float("nan"),
        std=lambda v: float(np.std(v[np.isfinite(v)], ddof=1)) if np.isfinite(v).sum() > 1 else float("nan"),
        n_folds="size",
        n_defined=lambda v: int(np.isfinite(v).sum()),
    ).reset_index()
    expected = frame.groupby(["dataset", "target", "split"])["fold"].nunique().rename("expected").reset_index()
    summary = summary.merge(expected, on=["dataset", "target", "split"])
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
    ranks = summary.groupby(METHOD_COLS + ["metric"], dropna=False)["rank"].mean().rename("avg_rank").reset_index()
    return Leaderboard(summary, ranks)


def provenance_markdown(records: list[dict], invocations: list[dict]) -> str:
    """What reproduces a store's numbers: commands, versions, commits, seeds, profiles, data checksums."""
    def distinct(values):
        return sorted({json_dumps(v) for v in values})

    lines = ["# Provenance", "", "Built from the job records in this store; rebuild the tables with "
             "`synbench leaderboard <this directory>`.", "", "## Commands", ""]
    # a resumed run that found every job stored ran nothing: count it instead of listing it
    idle = [inv for inv in invocations if inv.get("pending") == 0]
    lines += [f"- `{inv['command']}` ({inv.get('started_at', '')}, {inv.get('jobs', '?')} jobs"
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
        lines.append(f"- {label}: {', '.join(distinct(values))}")
    lines += ["", "## Package versions", ""]
    for versions in distinct([r["provenance"]["versions"] for r in records]):
        lines.append(f"- {versions}")
    lines += ["", "## Data checksums (SHA-256)", ""]
    checksums = {}
    for r in records:
        checksums.update(r["provenance"]["data_checksums"])
    lines += [f"- `{path}`: `{digest}`" for path, digest in sorted(checksums.items())]
    machines = distinct([r["provenance"]["machine"] for r in records])
    lines += ["", "## Machines", ""] + [f"- {m}" for m in machines]
    return "\n".join(lines) + "\n"


def json_dumps(value) -> str:
    import json

    return value if isinstance(value, str) else json.dumps(value, sort_keys=True)
