"""Figures the original papers report, kept as data (``datasets/published_results.toml``).

The report sets them beside our numbers for the same dataset, target and metric; they are a
sanity check, not a target, because every paper's protocol differs from synbench's in some way
that each entry's ``protocol`` note states.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd

from .errors import DataError

PUBLISHED_FILE = "published_results.toml"
REQUIRED = ("paper", "dataset", "target", "metric", "value", "protocol")


@dataclass(frozen=True)
class PublishedFigure:
    paper: str  # short citation, e.g. "DeepSynergy (Preuer et al. 2018)"
    citation: str
    doi: str
    model: str  # the synbench model implementing the paper's method, "" if none
    dataset: str
    target: str
    metric: str
    value: float
    split: str
    protocol: str


def load(path: str | Path | None = None) -> list[PublishedFigure]:
    """Read the packaged figures, or those in ``path`` (same format)."""
    if path is None:
        path = Path(str(resources.files("synbench.manifests").joinpath(PUBLISHED_FILE)))
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise DataError(f"published figures file {path} not found") from None
    except tomllib.TOMLDecodeError as exc:
        raise DataError(f"published figures file {path} is not valid TOML: {exc}") from None
    papers = raw.get("papers", {})
    figures = []
    for i, entry in enumerate(raw.get("figures", [])):
        missing = [k for k in REQUIRED if k not in entry]
        if missing:
            raise DataError(f"{path}: figure {i + 1} lacks {', '.join(missing)}")
        if entry["paper"] not in papers:
            raise DataError(f"{path}: figure {i + 1} names paper '{entry['paper']}', which has no [papers.{entry['paper']}] table")
        paper = papers[entry["paper"]]
        figures.append(PublishedFigure(
            paper=paper.get("short", entry["paper"]), citation=paper.get("citation", ""), doi=paper.get("doi", ""),
            model=entry.get("model", ""), dataset=entry["dataset"], target=entry["target"], metric=entry["metric"],
            value=float(entry["value"]), split=entry.get("split", ""), protocol=entry["protocol"],
        ))
    return figures


def compare(figures: list[PublishedFigure], summary: pd.DataFrame, method_label) -> pd.DataFrame:
    """One row per published figure x our method on the same dataset, target and metric.

    ``summary`` is ``Leaderboard.summary`` (mean over folds per method and cell); ``method_label``
    maps a summary row to the name shown. Figures with no matching cell are left out.
    """
    rows = []
    for i, fig in enumerate(figures):
        ours = summary[(summary["dataset"] == fig.dataset) & (summary["target"] == fig.target) & (summary["metric"] == fig.metric)]
        ours = ours.sort_values(["rank", "mean"], na_position="last", kind="stable")
        for _, r in ours.iterrows():
            mean = float(r["mean"])
            rows.append({
                "figure": i, "paper": fig.paper, "dataset": fig.dataset, "target": fig.target, "metric": fig.metric,
                "published": fig.value, "method": method_label(r), "same_method": bool(fig.model) and r["model"] == fig.model,
                "ours": mean, "ours_std": float(r["std"]), "n_folds": int(r["n_folds"]), "n_defined": int(r["n_defined"]),
                "difference": mean - fig.value if np.isfinite(mean) else float("nan"),
                "split": r["split"], "paper_split": fig.split,
            })
    return pd.DataFrame(rows)


STRENGTH_MARGIN = 0.02


def baseline_strength(figures: list[PublishedFigure], summary: pd.DataFrame, margin: float = STRENGTH_MARGIN) -> pd.DataFrame:
    """Each baseline beside its best published figure on the same dataset, target and metric:
    for every search protocol of the model, our best complete method (over featurizers), the
    difference, and whether ours falls more than ``margin`` short. A shortfall is a bug to explain
    until a measurement says otherwise. ``profile`` is the chosen method's budget label: it names
    the ``-p`` settings when a variant (e.g. DeepDDS's published last-epoch schedule) is the best."""
    best: dict[tuple, PublishedFigure] = {}
    for fig in figures:
        if not fig.model or fig.metric not in ("pcc", "roc_auc", "spearman", "auprc"):  # higher-is-better only
            continue
        key = (fig.model, fig.dataset, fig.target, fig.metric)
        if key not in best or fig.value > best[key].value:
            best[key] = fig
    rows = []
    for (model, dataset, target, metric), fig in sorted(best.items()):
        ours = summary[(summary["model"] == model) & (summary["dataset"] == dataset) & (summary["target"] == target)
                       & (summary["metric"] == metric) & (summary["n_folds"] == summary["expected"])]
        protocol_col = ours["protocol"] if "protocol" in ours.columns else pd.Series("", index=ours.index)
        for protocol, group in ours.groupby(protocol_col, sort=True):
            top = group.sort_values("mean", ascending=False).iloc[0]
            diff = float(top["mean"]) - fig.value
            rows.append({"model": model, "dataset": dataset, "target": target, "metric": metric, "protocol": protocol,
                         "featurizers": top["featurizers"], "profile": top.get("profile", ""),
                         "ours": float(top["mean"]), "ours_std": float(top["std"]),
                         "published": fig.value, "paper": fig.paper, "difference": diff, "short": diff < -margin})
    return pd.DataFrame(rows, columns=["model", "dataset", "target", "metric", "protocol", "featurizers", "profile", "ours", "ours_std",
                                       "published", "paper", "difference", "short"])
