"""Benchmark reports that a reader can use without running anything.

``build(stores)`` reads job records and stored predictions from one or more result stores (the
same loading as ``synbench leaderboard``) and writes the report as Markdown; ``write`` saves it
three ways from that one text, so the formats never disagree:

- ``report.md`` with its plots as PNG files in ``report_figures/`` beside it;
- ``report.html``, the same Markdown rendered by markdown-it-py into one self-contained file
  (plots inlined as base64 PNG, inline CSS, no scripts, fonts or links to fetch).

Nothing is retrained or recomputed from features: tables come from ``harness.leaderboard`` and the
records, plots from ``predictions.parquet``. Output is deterministic (no build timestamp; PNGs
carry no metadata), so rebuilding from the same stores gives byte-identical files.
"""

from __future__ import annotations

import base64
import hashlib
import html
import io
import json
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from . import leaderboard as lb
from . import published as pub
from .errors import ConfigError, StoreError
from .md_escape import Md, md_code, md_text
from .redaction import redact
from .registry import get_registry
from .runner import phase_seconds
from .store import Store

FIGURE_DPI = 100
# Fixed plot style; DejaVu Sans ships with matplotlib, so the images do not depend on system fonts.
RC = {"font.family": "DejaVu Sans", "font.size": 9, "axes.titlesize": 9.5, "axes.labelsize": 9,
      "xtick.labelsize": 8.5, "ytick.labelsize": 8.5, "legend.fontsize": 8, "axes.grid": True,
      "grid.alpha": 0.3, "svg.hashsalt": "synbench", "path.simplify": True}
FOLD_COLOURS = ["#1b9e77", "#d95f02", "#7570b3", "#e7298a", "#66a61e", "#e6ab02", "#a6761d", "#666666"]


# -- loading ---------------------------------------------------------------------------------------
@dataclass
class Runs:
    """Everything the report reads: records, tidy metrics and invocations, by store."""

    roots: list[Path]
    stores: list[Store]
    records: list[dict]
    metrics: pd.DataFrame
    store_of: dict[str, Store]  # job_id -> the store holding its predictions
    duplicates: int = 0  # jobs present in more than one store (the first store's copy is used)

    def predictions(self, job_id: str) -> pd.DataFrame | None:
        path = self.store_of[job_id].jobs_dir / job_id / "predictions.parquet"
        return pd.read_parquet(path) if path.is_file() else None


def load(roots, datasets=None) -> Runs:
    roots = [Path(r) for r in roots]
    stores = [Store(r, create=False, repair=False) for r in roots]  # reads only: moves nothing aside
    combined = lb.combine(stores)  # a job in several stores counts once; conflicting copies are an error
    records, metrics, store_of, duplicates = combined.records, combined.metrics, combined.store_of, combined.duplicates
    if datasets:
        metrics = metrics[metrics["dataset"].isin(datasets)]
        records = [r for r in records if r["job"]["dataset"] in datasets]
    if metrics.empty:
        raise ConfigError(f"no finished jobs in {', '.join(map(str, roots))}" + (f" for {', '.join(datasets)}" if datasets else ""))
    records.sort(key=lambda r: r["job_id"])
    return Runs(roots, stores, records, metrics, store_of, duplicates)


# -- the document ----------------------------------------------------------------------------------
@dataclass
class Figure:
    name: str  # file name (PNG) inside the figures folder
    png: bytes
    alt: str
    caption: str


@dataclass
class Report:
    title: str
    parts: list = field(default_factory=list)  # Markdown strings and Figures, in order

    def add(self, *texts: str) -> None:
        self.parts.extend(texts)

    @property
    def figures(self) -> list[Figure]:
        return [p for p in self.parts if isinstance(p, Figure)]

    def markdown(self, image_src) -> str:
        out = []
        for p in self.parts:
            if isinstance(p, Figure):
                out.append(f"![{md_text(p.alt)}]({image_src(p)})\n\n*{md_text(p.caption)}*\n")
            else:
                out.append(p.rstrip("\n") + "\n")
        return "\n".join(out)

    def to_markdown(self, figures_dir: str) -> str:
        return self.markdown(lambda f: f"{figures_dir}/{f.name}") + f"\n{REPORT_MARK}\n"

    def to_html(self) -> str:
        from markdown_it import MarkdownIt

        text = self.markdown(lambda f: "data:image/png;base64," + base64.b64encode(f.png).decode("ascii"))
        md = MarkdownIt("commonmark", {"html": False}).enable("table")
        tokens = md.parse(text)
        _only_own_links(tokens)
        seen = set()
        for i, tok in enumerate(tokens):
            if tok.type == "heading_open":  # anchors for the contents list, as GitHub makes them
                slug = base = _slug(tokens[i + 1].content)
                n = 1
                while slug in seen:
                    slug, n = f"{base}-{n}", n + 1
                seen.add(slug)
                tok.attrSet("id", slug)
        body = md.renderer.render(tokens, md.options, {})
        body = body.replace(" ± ", "\u00a0±\u00a0")  # keep "mean ± std" on one line in table cells
        return HTML_PAGE.format(title=html.escape(redact(self.title)), css=CSS, body=body)


def _only_own_links(tokens) -> None:
    """Second line of defence behind the escaping: the page stays self-contained whatever text
    reached the Markdown. Only images inlined as data: PNGs and links to this page's own anchors
    survive; any other image becomes its alt text and any other link its text."""
    for tok in tokens:
        if tok.type != "inline" or not tok.children:
            continue
        kept, depth = [], 0
        for child in tok.children:
            if child.type == "image" and not str(child.attrGet("src") or "").startswith("data:image/png;base64,"):
                child.type, child.tag, child.content, child.children = "text", "", child.content, None
            elif child.type == "link_open" and not str(child.attrGet("href") or "").startswith("#"):
                depth += 1
                continue
            elif child.type == "link_close" and depth:
                depth -= 1
                continue
            kept.append(child)
        tok.children = kept


def _slug(text: str) -> str:
    text = re.sub(r"[`*]", "", text.strip().lower())
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif;
       margin: 0; color: #1f2328; background: #fff; line-height: 1.5; font-size: 15px; }
main { max-width: 1120px; margin: 0 auto; padding: 24px 32px 64px; }
h1 { font-size: 1.9em; border-bottom: 2px solid #d0d7de; padding-bottom: .25em; }
h2 { font-size: 1.45em; margin-top: 2.2em; border-bottom: 1px solid #d0d7de; padding-bottom: .2em; }
h3 { font-size: 1.15em; margin-top: 1.6em; }
h4 { font-size: 1em; margin-top: 1.3em; }
table { border-collapse: collapse; margin: .6em 0 1.2em; font-size: 13px; display: block;
        overflow-x: auto; max-width: 100%; }
th, td { border: 1px solid #d0d7de; padding: 4px 9px; text-align: left; vertical-align: top; }
th { background: #f3f5f7; }
tbody tr:nth-child(even) td { background: #fafbfc; }
code { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, "Liberation Mono", monospace;
       font-size: 88%; background: #f3f5f7; padding: 0 3px; border-radius: 3px; overflow-wrap: anywhere; }
li { overflow-wrap: anywhere; }
img { max-width: 100%; height: auto; display: block; margin: .8em 0 .2em; }
p > em:only-child { color: #57606a; font-size: 13px; }
blockquote { margin: .8em 0; padding: .4em 1em; border-left: 4px solid #d4a72c; background: #fff8e5; }
"""

HTML_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="synbench report">
<title>{title}</title>
<style>{css}</style>
</head>
<body>
<main>
{body}</main>
</body>
</html>
"""


# -- formatting helpers ----------------------------------------------------------------------------
def md_table(header: list[str], rows: list[list]) -> str:
    """A Markdown table; cells are text (escaped) unless the harness built them as :class:`Md`."""
    def cell(v) -> str:
        if isinstance(v, Md):
            return v.replace("|", "\\|").replace("\n", " ")
        return md_text(v)

    lines = ["| " + " | ".join(cell(h) for h in header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def _num(v, digits=3) -> str:
    return "n/a" if v is None or not np.isfinite(v) else f"{v:.{digits}f}"


def _signed(v, digits=3) -> str:
    return "n/a" if v is None or not np.isfinite(v) else f"{v:+.{digits}f}"


def _signed_g(v) -> str:
    return "n/a" if v is None or not np.isfinite(v) else f"{v:+.4g}"


def _published(v: float) -> str:
    return f"{v:.2f}" if abs(v) < 10 else f"{v:g}"  # papers print two decimals for correlations and AUCs


def _secs(v) -> str:
    if not np.isfinite(v):
        return ""
    if v < 0.01:
        return "<0.01"
    return f"{v:.2f}" if v < 10 else f"{v:.1f}" if v < 1000 else f"{v:,.0f}"


def _p(v) -> str:
    return "n/a" if not np.isfinite(v) else f"{v:.3g}"


def _fig_name(*parts) -> str:
    return "-".join(re.sub(r"[^A-Za-z0-9_.]+", "-", str(p)).strip("-") for p in parts) + ".png"


def _method_key(row) -> tuple:
    return tuple(row[c] for c in lb.METHOD_COLS)


class Labels:
    """Short method names for plots and tables: the model name, plus its featurizers or profile only
    where the same model appears with more than one of them."""

    def __init__(self, metrics: pd.DataFrame):
        keys = sorted(set(map(tuple, metrics[lb.METHOD_COLS].astype(str).to_numpy())))
        self.names = {}
        for model, feats, profile, protocol in keys:
            variants = [k for k in keys if k[0] == model]
            extra = [feats or "no featurizer"] if len({k[1] for k in variants}) > 1 else []
            extra += [profile] if len({k[2] for k in variants}) > 1 else []
            extra += [protocol] if len({k[3] for k in variants}) > 1 else []
            if profile == lb.EXTERNAL_LABEL and profile not in extra:  # always marked, not only beside variants
                extra.append(profile)
            self.names[(model, feats, profile, protocol)] = f"{model} ({'; '.join(extra)})" if extra else model
        palette = ["#4c72b0", "#dd8452", "#55a868", "#c44e52", "#8172b3", "#937860", "#da8bc3", "#8c8c8c", "#ccb974", "#64b5cd"]
        ordered = sorted(self.names, key=self.names.get)
        self.colour = {k: palette[i % len(palette)] for i, k in enumerate(ordered)}
        # past ten methods the colours repeat, so curves drawn on one axis also differ in dash
        self.linestyle = {k: ["-", "--", "-.", ":"][(i // len(palette)) % 4] for i, k in enumerate(ordered)}

    def __call__(self, row) -> str:
        return self.names[tuple(str(v) for v in _method_key(row))]


# -- plots -----------------------------------------------------------------------------------------
def _new_figure(width, height):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure as MplFigure

    fig = MplFigure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)  # Agg, no pyplot: no global state, no display needed
    return fig


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=FIGURE_DPI, metadata={"Software": None})  # no version stamp: stable bytes
    return buf.getvalue()


def box_plot(cell: pd.DataFrame, order: list[tuple], labels: Labels, metrics: list, title: str) -> bytes:
    """One panel per metric, one horizontal box per method over its folds, folds as coloured points."""
    import matplotlib

    with matplotlib.rc_context(RC):
        n_methods, folds = len(order), sorted(cell["fold"].unique())
        ncols = min(len(metrics), 3)
        nrows = -(-len(metrics) // ncols)
        fig = _new_figure(4.6 * ncols, nrows * (0.42 * n_methods + 1.3) + 0.5)
        # one method order for every panel, so the names are printed once per row of panels
        axes = fig.subplots(nrows, ncols, squeeze=False, sharey=True).ravel()
        offsets = {f: (i - (len(folds) - 1) / 2) * min(0.09, 0.5 / max(len(folds), 1)) for i, f in enumerate(folds)}
        for ax, metric in zip(axes, metrics):
            data, positions, colours, px, py, pc = [], [], [], [], [], []
            for i, key in enumerate(order):
                vals = cell[(cell["metric"] == metric.name) & (cell["method"] == key)]
                finite = vals[np.isfinite(vals["value"])]
                y = n_methods - 1 - i  # best at the top
                if len(finite):
                    data.append(finite["value"].to_numpy())
                    positions.append(y)
                    colours.append(labels.colour[key])
                px += list(finite["value"])
                py += [y + offsets[f] for f in finite["fold"]]
                pc += [FOLD_COLOURS[folds.index(f) % len(FOLD_COLOURS)] for f in finite["fold"]]
                if len(finite) < len(vals) or not len(vals):
                    note = "undefined on every fold" if not len(finite) else f"{len(finite)}/{len(vals)} folds defined"
                    ax.annotate(note, (0.01, y + 0.31), xycoords=("axes fraction", "data"), ha="left", va="bottom",
                                fontsize=7, color="#6e7781")
            if px:
                ax.scatter(px, py, s=16, c=pc, edgecolor="white", linewidth=0.4, zorder=3)
            if data:
                boxes = ax.boxplot(data, positions=positions, orientation="horizontal", widths=0.55, patch_artist=True,
                                   showfliers=False, medianprops={"color": "black", "linewidth": 1.2})
                for patch, colour in zip(boxes["boxes"], colours):
                    patch.set_facecolor(colour)
                    patch.set_alpha(0.35)
            ax.set_yticks(range(n_methods), [labels.names[k] for k in reversed(order)])
            ax.set_ylim(-0.7, n_methods - 0.3)
            ax.set_title(f"{metric.name} ({'higher' if metric.higher_is_better else 'lower'} is better)")
            ax.grid(axis="y", visible=False)
        for ax in axes[len(metrics):]:
            ax.set_visible(False)
        handles = [matplotlib.lines.Line2D([], [], marker="o", linestyle="", color=FOLD_COLOURS[i % len(FOLD_COLOURS)], label=f"fold {f}")
                   for i, f in enumerate(folds)]
        fig.legend(handles=handles, loc="outside lower center", ncol=min(len(folds), 8), frameon=False)
        fig.suptitle(title, fontsize=10.5)
        return _png(fig)


def _wrap_label(label: str, width: int) -> str:
    """Break a long method name before its featurizers and after each '+', so that it fits over a
    narrow panel."""
    lines = []
    for token in re.split(r"(?<=\+)|(?= \()", label):
        if lines and len(lines[-1]) + len(token) <= width:
            lines[-1] += token
        else:
            lines.append(token.strip())
    return "\n".join(lines)


def scatter_plot(pooled: list[tuple[str, np.ndarray, np.ndarray, str, str]], target: str, pcc_fn, title: str) -> bytes:
    """Predicted vs observed per method, pooled over folds, with the pooled PCC in each title."""
    import matplotlib

    with matplotlib.rc_context(RC):
        ncols = min(len(pooled), 4)
        nrows = -(-len(pooled) // ncols)
        fig = _new_figure(3.1 * ncols, 3.0 * nrows + 0.4)
        axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
        # Shared axes across panels, but the predicted range is not stretched to the observed one:
        # models shrink towards the mean, and an equal-aspect plot would squash every cloud flat.
        x_lo, x_hi = _padded(np.concatenate([t[1] for t in pooled]))
        y_lo, y_hi = _padded(np.concatenate([t[2] for t in pooled]))
        for ax, (label, y, p, colour, _) in zip(axes, pooled):
            ax.scatter(y, p, s=3, alpha=0.2, color=colour, linewidths=0, rasterized=True)
            lo, hi = max(x_lo, y_lo), min(x_hi, y_hi)
            if lo < hi:
                ax.plot([lo, hi], [lo, hi], color="#444", linewidth=0.8, linestyle="--")
            pcc = pcc_fn(y, p)
            stat = f"PCC {pcc:.3f}" if np.isfinite(pcc) else "PCC n/a (constant prediction)"
            name = _wrap_label(label, 30)
            ax.set_title(f"{name}\n{stat}, n = {len(y):,}")
            ax.set_xlim(x_lo, x_hi)
            ax.set_ylim(y_lo, y_hi)
            ax.set_xlabel(f"observed {target}")
            ax.set_ylabel("predicted")
        for ax in axes[len(pooled):]:
            ax.set_visible(False)
        fig.suptitle(title, fontsize=10.5)
        return _png(fig)


def _padded(values: np.ndarray, frac: float = 0.03) -> tuple[float, float]:
    lo, hi = float(np.min(values)), float(np.max(values))
    pad = frac * (hi - lo) or 1.0
    return lo - pad, hi + pad


def roc_plot(pooled: list[tuple[str, np.ndarray, np.ndarray, str, str]], fold_auc: dict, title: str) -> bytes:
    """ROC curve per method from the predictions of all folds pooled."""
    import matplotlib
    from sklearn.metrics import roc_auc_score, roc_curve

    with matplotlib.rc_context(RC):
        fig = _new_figure(6.4, 5.4 + 0.17 * len(pooled))
        ax = fig.subplots()
        ax.plot([0, 1], [0, 1], color="#888", linewidth=0.8, linestyle=(0, (1, 3)), label="chance")
        for label, y, p, colour, linestyle in pooled:
            fpr, tpr, _ = roc_curve(y, p)
            auc = roc_auc_score(y, p)
            ax.plot(fpr, tpr, color=colour, linestyle=linestyle, linewidth=1.6,
                    label=f"{label}: pooled AUC {auc:.3f}, fold mean {_num(fold_auc.get(label, np.nan))}")
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1.01)
        ax.set_aspect("equal")
        ax.set_xlabel("false positive rate")
        ax.set_ylabel("true positive rate")
        fig.legend(loc="outside lower center", ncol=1, frameon=False)
        ax.set_title(title)
        return _png(fig)


# -- statistics ------------------------------------------------------------------------------------
# where each torch model's training log keeps its validation curve (one value per epoch)
CURVE_PATHS = (("selection", "val_loss"), ("val_loss",), ("history", "valid_loss"), ("valid_loss",), ("valid_metric",),
               ("valid_curve",), ("pretrain", "val_loss"))


def validation_curve(training) -> list[float] | None:
    """A job's validation curve from its training log (DeepSynergy's first phase, Synergy
    Transfer's pre-training), or None when the log holds none."""
    for path in CURVE_PATHS:
        node = training
        for key in path:
            node = node.get(key) if isinstance(node, dict) else None
        if isinstance(node, list) and len(node) > 1 and all(isinstance(v, (int, float)) for v in node):
            return [float(v) for v in node]
    return None


def _first(log: dict, *keys: str) -> str:
    """The first of ``keys`` the training log holds (networks count epochs, boosting trees)."""
    return next((str(log[k]) for k in keys if log.get(k) is not None), "")


def curves_plot(curves: dict[str, list[tuple[int, list[float], int | None]]], title: str) -> bytes:
    """One panel per method: the validation curve of every fold, a dot at its best epoch."""
    import matplotlib

    with matplotlib.rc_context(RC):
        ncols = min(len(curves), 3)
        nrows = -(-len(curves) // ncols)
        fig = _new_figure(4.4 * ncols, 2.9 * nrows + 0.5)
        axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
        for ax, (name, runs) in zip(axes, curves.items()):
            for fold, curve, best in runs:
                colour = FOLD_COLOURS[fold % len(FOLD_COLOURS)]
                ax.plot(range(1, len(curve) + 1), curve, color=colour, linewidth=1.1, label=f"fold {fold}")
                if best and 1 <= best <= len(curve):
                    ax.plot([best], [curve[best - 1]], "o", color=colour, markersize=4)
            ax.set_title(_wrap_label(name, 44), fontsize=9)
            ax.set_xlabel("epoch")
            ax.set_ylabel("validation value")
        for ax in axes[len(curves):]:
            ax.set_visible(False)
        folds = sorted({f for runs in curves.values() for f, _, _ in runs})
        handles = [matplotlib.lines.Line2D([], [], color=FOLD_COLOURS[f % len(FOLD_COLOURS)], label=f"fold {f}") for f in folds]
        fig.legend(handles=handles, loc="outside lower center", ncol=min(len(folds), 8), frameon=False)
        fig.suptitle(title, fontsize=10.5)
        return _png(fig)


def _trainable(trainable: float, total: float) -> str:
    """'110,977 of 22.8 M (0.49%)': the weights a model trains, where its record says."""
    if not np.isfinite(trainable):
        return ""
    if not np.isfinite(total) or total <= 0:
        return f"{trainable:,.0f}"
    return f"{trainable:,.0f} of {total / 1e6:.1f} M ({100 * trainable / total:.2g}%)"


def corrected_resampled_t(d: np.ndarray, test_train_ratio: float) -> float:
    """Two-sided p of the Nadeau & Bengio (2003) corrected resampled t-test on paired differences
    from cross-validation: the variance is inflated by (1/n + n_test/n_train) because the training
    sets of the folds overlap (a plain paired t-test on folds is too liberal)."""
    from scipy.stats import t as student_t

    n = len(d)
    if n < 2:
        return float("nan")
    var = float(np.var(d, ddof=1))
    if var == 0:
        return 0.0 if np.mean(d) != 0 else 1.0
    stat = float(np.mean(d)) / np.sqrt((1.0 / n + test_train_ratio) * var)
    return float(2 * student_t.sf(abs(stat), df=n - 1))


def test_partitions(runs: "Runs") -> dict[tuple, str]:
    """(dataset, split, seed, fold) -> a digest of that fold's test rows, from the stores' split tables.

    Seeds of a scheme with fixed test folds (a dataset's published folds, a tissue as the fold) give
    the same test rows again; seeds of a random scheme draw new ones. The paired tests need to know
    which: a seed on the same test fold repeats a measurement, it is not another resample."""
    partitions: dict[tuple, str] = {}
    seen = set()
    for record in runs.records:
        job = record["job"]
        dataset, split, seed = job["dataset"], job["split"], job.get("seed", 0)
        if (dataset, split, job.get("n_folds"), seed) in seen or record["job_id"] not in runs.store_of:
            continue
        seen.add((dataset, split, job.get("n_folds"), seed))
        # no table: each (seed, fold) counts as its own resample
        for fold, rows in (runs.store_of[record["job_id"]].test_folds(dataset, split, job.get("n_folds"), seed) or {}).items():
            partitions[(dataset, split, seed, fold)] = hashlib.sha256("\n".join(sorted(rows)).encode()).hexdigest()[:16]
    return partitions


def _separates(values: pd.Series, labels: pd.Series) -> bool:
    """Whether ``labels`` (0/1, same rows) are ``values > t`` for some threshold t: every positive above every negative."""
    if not values.index.equals(labels.index) or values.isna().any() or labels.nunique() != 2:
        return False
    return bool(values[labels == 1].min() > values[labels == 0].max())


def ranked_from_regression(runs: "Runs", models=None) -> pd.DataFrame:
    """Regression jobs scored as rankings of a classification target derived from theirs by a threshold.

    A classification target counts as derived from a regression target of the same dataset and split
    when, on every (seed, fold) both have, the stored true values of the regression target separate the
    stored labels (every positive above every negative): D1's Loewe > 30 from Loewe. Each regression
    job's predicted scores are then ranked against those labels (ROC-AUC), which is how a regression
    method can quote a classification figure. One row per (method, seed, fold), read from the stored
    predictions only; ``models`` limits the regression jobs read to those models."""
    jobs = runs.metrics.drop_duplicates("job_id")
    rows = []
    for (dataset, split), group in jobs.groupby(["dataset", "split"], sort=True):
        regression = group[(group["task"] == "regression") & (group["model"] != "constant")]
        if models is not None:
            regression = regression[regression["model"].isin(models)]
        for target, classified in group[group["task"] == "classification"].groupby("target"):
            # every job of a (seed, fold) holds the same test rows and labels: one read each
            labels = {key: runs.predictions(g["job_id"].iloc[0]) for key, g in classified.groupby(["seed", "fold"])}
            labels = {key: p["y_true"].astype(float).sort_index() for key, p in labels.items() if p is not None}
            for source, regressed in regression.groupby("target"):
                ranked = _rank_against(runs, regressed[[k in labels for k in zip(regressed["seed"], regressed["fold"])]], labels)
                rows += [{**row, "dataset": dataset, "split": split, "target": target, "source": source} for row in ranked]
    return pd.DataFrame(rows, columns=[*lb.METHOD_COLS, "dataset", "split", "target", "source", "seed", "fold", "ranked"])


def _rank_against(runs: "Runs", jobs: pd.DataFrame, labels: dict) -> list[dict]:
    """Each regression job's ROC-AUC against its (seed, fold)'s ``labels``; none at all unless every
    job's stored true values separate those labels (the target is then no threshold of this one)."""
    from sklearn.metrics import roc_auc_score

    rows = []
    for _, job in jobs.iterrows():
        predictions = runs.predictions(job["job_id"])
        if predictions is None:
            continue
        y = labels[(job["seed"], job["fold"])]
        if not _separates(predictions["y_true"].astype(float).sort_index(), y):
            return []
        rows.append({**{c: job[c] for c in lb.METHOD_COLS}, "seed": job["seed"], "fold": job["fold"],
                     "ranked": float(roc_auc_score(y, predictions["y_pred"].astype(float).reindex(y.index)))})
    return rows


def _ranked_cell(ranked: pd.DataFrame, row) -> str:
    """The best complete regression run of a baseline-strength row's model and protocol, ranked against its target."""
    mine = ranked[(ranked["model"] == row["model"]) & (ranked["protocol"] == row["protocol"])
                  & (ranked["dataset"] == row["dataset"]) & (ranked["target"] == row["target"])]
    if mine.empty:
        return ""
    per_method = mine.groupby([*lb.METHOD_COLS, "source"])["ranked"].agg(["mean", "std", "count"]).reset_index()
    best = per_method[per_method["count"] == per_method["count"].max()].sort_values("mean", ascending=False).iloc[0]
    spread = f" ± {_num(best['std'])}" if best["count"] > 1 else ""
    return (f"{_num(best['mean'])}{spread} ({md_text(best['source'])}, {int(best['count'])} runs; "
            f"{best['mean'] - row['published']:+.3f})")


def paired_tests(metrics: pd.DataFrame, summary: pd.DataFrame, labels: Labels, partitions: dict | None = None) -> pd.DataFrame:
    """Best method of each (dataset, target, split, metric) cell against every other method, paired
    by (seed, fold) over the folds both have with a defined value: the Nadeau-Bengio corrected
    resampled t-test and the Wilcoxon signed-rank test (both two-sided). The constant baseline is
    never "best": it is the floor every method is read against.

    ``partitions`` (:func:`test_partitions`) names each (dataset, split, seed, fold)'s test rows:
    the differences of seeds that share a test fold are averaged into one before testing, so ``n``
    counts distinct test folds (a dataset's published folds under three seeds: five, not fifteen);
    seeds that drew other folds are repetitions of the cross-validation and each counts. Without
    it every (seed, fold) counts as its own resample. ``pairs`` is the number of (seed, fold) pairs."""
    from scipy.stats import wilcoxon

    rows = []
    known = {e.name: e.obj for e in get_registry().entries("metric")}
    metrics = metrics.assign(**({"seed": 0} if "seed" not in metrics.columns else {}))
    # as on the leaderboard, a correlation left undefined by a constant prediction is a failed fold: 0
    failed = metrics["metric"].isin(lb.CORRELATION_METRICS) & metrics["value"].isna()
    metrics = metrics.assign(value=metrics["value"].where(~failed, 0.0))
    for (dataset, target, split, metric), cell in summary.groupby(["dataset", "target", "split", "metric"], sort=True):
        ranked = cell[cell["rank"].notna() & (cell["model"] != "constant")].sort_values(["rank"] + lb.METHOD_COLS, kind="stable")
        if ranked.empty:
            continue
        best = _method_key(ranked.iloc[0])
        values = metrics[(metrics["dataset"] == dataset) & (metrics["target"] == target) & (metrics["split"] == split)
                         & (metrics["metric"] == metric)]
        n_folds = max(values["fold"].nunique(), 2)
        ratio = 1.0 / (n_folds - 1)  # k-fold CV: each test fold is 1/(k-1) the size of its training set
        by_method = {k: g.set_index(["seed", "fold"])["value"] for k, g in values.groupby(lb.METHOD_COLS)}
        higher = known[metric].higher_is_better
        for _, other_row in cell.sort_values(["rank"] + lb.METHOD_COLS, na_position="last", kind="stable").iterrows():
            other = _method_key(other_row)
            if other == best:
                continue
            a, b = by_method[best], by_method[other]
            shared = sorted(f for f in a.index.intersection(b.index) if np.isfinite(a[f]) and np.isfinite(b[f]))
            # one difference per distinct test fold: seeds on the same test rows are averaged
            by_partition: dict[str, list[float]] = {}
            for seed, fold in shared:
                part = (partitions or {}).get((dataset, split, int(seed), int(fold)), f"seed {seed} fold {fold}")
                by_partition.setdefault(part, []).append(a[(seed, fold)] - b[(seed, fold)])
            d = np.array([float(np.mean(v)) for v in by_partition.values()])
            p = p_nb = float("nan")
            if len(d) >= 2 and np.any(d != 0):
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")  # small-sample notes; the caveat is stated in the report
                    p = float(wilcoxon(d, alternative="two-sided").pvalue)
                p_nb = corrected_resampled_t(d, ratio)
            rows.append({
                "dataset": dataset, "target": target, "split": split, "metric": metric,
                "best": labels.names[tuple(map(str, best))], "other": labels.names[tuple(map(str, other))],
                "n": len(d), "pairs": len(shared), "mean_diff": float(d.mean()) if len(d) else float("nan"),
                "best_better": int(np.sum(d > 0) if higher else np.sum(d < 0)), "p": p, "p_nb": p_nb,
                "identical": bool(len(d) and not np.any(d != 0)),
            })
    return pd.DataFrame(rows)


# -- the report ------------------------------------------------------------------------------------
def build(roots, metric_names=None, datasets=None, title=None, command=None, published_path=None) -> Report:
    registry = get_registry()
    runs = load(roots, datasets)
    metrics = runs.metrics.copy()
    board = lb.build(metrics, metric_names, records=runs.records)
    if board.summary.empty:
        raise ConfigError("none of the chosen metrics is in the stored results")
    names = list(dict.fromkeys(board.summary.sort_values("metric_order")["metric"]))
    labels = Labels(metrics)
    metrics["method"] = [tuple(map(str, k)) for k in metrics[lb.METHOD_COLS].to_numpy()]
    summary = board.summary.copy()
    summary["method"] = [tuple(map(str, k)) for k in summary[lb.METHOD_COLS].to_numpy()]
    known = {e.name: e.obj for e in registry.entries("metric")}
    cells = summary[["dataset", "target", "split"]].drop_duplicates().sort_values(["dataset", "target", "split"])
    task_of = {(r["job"]["dataset"], r["job"]["target"]): r["task"] for r in runs.records}

    datasets_seen = sorted(metrics["dataset"].unique())
    title = redact(title or f"synbench report: {', '.join(datasets_seen)}")
    rep = Report(title)
    rep.add(f"# {md_text(title)}")
    finished = sorted(r["provenance"].get("finished_at", "") for r in runs.records if r["provenance"].get("finished_at"))
    intro = [
        f"Built only from stored results: {len(runs.records)} finished jobs (job records and their test-fold predictions) "
        f"in {', '.join(md_code(r) for r in runs.roots)}. Nothing was retrained; every number and plot below is derived "
        "from those files" + (f", and rebuilding with {md_code(command)} gives the same report." if command else "."),
    ]
    if finished:
        intro.append(f"Jobs finished between {finished[0]} and {finished[-1]} (as recorded).")
    if runs.duplicates:
        intro.append(f"{runs.duplicates} jobs appear in more than one store with the same predictions; each is counted once.")
    rep.add(" ".join(intro))
    group_of = {r["job_id"]: r["fold_group"] for r in runs.records if r.get("fold_group")}
    coverage = {(r["job"]["dataset"], r["job"]["split"]): r["coverage"] for r in runs.records if r.get("coverage")}
    # iterative models that recorded why they stopped (synbench.neural.stop_reason)
    trained = [r for r in runs.records if isinstance(r.get("training"), dict) and r["training"].get("stopped")]
    sections = ["Summary", "Leaderboard"] + (["Per held-out group"] if group_of else []) + (
        ["Test-set coverage"] if coverage else []) + ["Fold-level results", "Predictions"] + (
        ["Training"] if trained else []) + ["Paired tests", "Baseline strength", "Published figures",
                "Runtime and memory", "Selected hyperparameters", "Provenance"]
    rep.add("Contents: " + " · ".join(f"[{s}](#{_slug(s)})" for s in sections))

    # -- summary
    rep.add("## Summary")
    rows = []
    for _, c in cells.iterrows():
        recs = [r for r in runs.records if (r["job"]["dataset"], r["job"]["target"], r["job"]["split"]) == (c["dataset"], c["target"], c["split"])]
        folds = sorted({r["job"]["fold"] for r in recs})
        tested = {}
        for r in recs:
            tested[r["job"]["fold"]] = r.get("n_rows", {}).get("test", 0)
        rows.append([c["dataset"], c["target"], task_of.get((c["dataset"], c["target"]), ""), c["split"],
                     f"{len(folds)} ({', '.join(map(str, folds))})", f"{sum(tested.values()):,}",
                     len({lb.method_of(r["job"]) for r in recs})])
    rep.add(md_table(["dataset", "target", "task", "split", "folds", "test rows (all folds)", "methods"], rows))
    ds_rows = []
    for name in datasets_seen:
        try:
            cls = registry.dataset(name)
            ds_rows.append([name, cls.description, cls.reference])
        except Exception:  # a dataset whose plugin is not installed here: its results still report
            ds_rows.append([name, "(plugin not installed)", ""])
    rep.add("Datasets (descriptions from the installed plugins):", md_table(["dataset", "description", "reference"], ds_rows))
    m_rows = []
    for key in sorted(labels.names, key=labels.names.get):
        model, feats, profile, protocol = key
        try:
            cls = registry.model(model)
            desc, ref = cls.description, cls.reference
        except Exception:
            desc, ref = "(plugin not installed)", ""
        if profile == lb.EXTERNAL_LABEL:
            desc, ref = Md("predictions made outside synbench, scored on the same folds by `synbench score`"), ""
        # options such as checkpoint paths are long unbroken tokens: as code they may wrap anywhere
        m_rows.append([labels.names[key], Md(" + ".join(md_code(f) for f in feats.split("+"))) if feats else "(none)",
                       md_code(profile), md_text(protocol or "-"), Md(f"{md_text(desc)}; {md_text(ref)}") if ref else md_text(desc)])
    rep.add("Methods (a method is a model with its featurizers, profile and search protocol: `strong` searches the ranges "
            "a careful practitioner would use on a standardised target, `table1` BAITSAO's published ranges on the raw "
            "target, `table1 (v0)` marks records written before protocols existed, searched at random with per-model trial "
            "counts):",
            md_table(["method", "featurizers", "profile", "protocol", "description and reference"], m_rows))
    rep.add("Metrics:", "\n".join(f"- `{n}`: {known[n].description} ({known[n].task}; {'higher' if known[n].higher_is_better else 'lower'} is better)"
                                  for n in names) + "\n")

    # -- leaderboard
    rep.add("## Leaderboard",
            "Mean ± sample standard deviation (ddof = 1) over the test folds. "
            "Average ranks per metric are taken over the dataset/target cells of the table; a method missing folds "
            "of a cell shows how many it has and is not ranked there; a fold on which a method predicted one constant "
            "has failed and scores a correlation of 0, counted in the mean. With several seeds every (seed, fold) is one "
            "value. The `trials` column gives each method's search trials and `flags` what makes its comparison "
            "unequal (fewer search trials or seeds than another method of the board, search on a subsample, a chosen value on the edge of its range, a raw target, constant "
            "predictions, a frozen or LoRA-adapted encoder, training that hit its cap while its validation value was "
            "still improving, a final model that learnt from the inner-training rows only, beside methods whose final fit "
            "learnt from every training row). Methods are "
            "listed best first by the mean of "
            "their average ranks over the metrics they are ranked on in every cell; a method ranked in only some "
            "cells of a metric shows how many (`1.00 (1/3 cells)`) and is listed after those ranked in all. Each method's featurizers and profile are in the "
            "Methods table above; `synbench leaderboard` prints the same numbers.")
    for dataset in datasets_seen:
        wide = lb.build(runs.metrics[runs.metrics["dataset"] == dataset], metric_names,
                        records=[r for r in runs.records if r["job"]["dataset"] == dataset]).wide()
        cols = [c for c in wide.columns if c not in lb.METHOD_COLS]
        rows = [[labels(r)] + [lb._cell(r[c]) for c in cols] for _, r in wide.iterrows()]
        rep.add(f"### {md_text(dataset)}", md_table(["method"] + [c.removeprefix(f"{dataset}/") for c in cols], rows))
    if len(datasets_seen) > 1:
        ranks = board.ranks.copy()
        ranks["method"] = [labels(r) for _, r in ranks.iterrows()]
        # best first by the mean of the complete average ranks over every metric (not by the first
        # column alone); a method ranked in only some of a metric's cells says so and comes after
        wide, order = lb.rank_order(ranks, "method")
        ranked = set(ranks.loc[ranks["avg_rank"].notna(), "method"])  # a method ranked nowhere has no row
        wide = wide.loc[[m for m in order if m in ranked], [m for m in names if m in wide.columns]]
        rep.add("### Average rank across all datasets",
                "A method ranked in only some of a metric's dataset/target cells shows how many (`2.00 (1/3 cells)`) "
                "and is listed after the methods ranked in all of them.",
                md_table(["method"] + [f"avg rank {m}" for m in wide.columns],
                         [[i] + [v if isinstance(v, str) else _num(v, 2) for v in row]
                          for i, row in zip(wide.index, wide.to_numpy())]))

    # -- cross-dataset coverage: which test entities the training dataset never had (a score on
    # unseen drugs and cell lines is a different claim from one on seen ones)
    if coverage:
        rows = []
        for (dataset, split), cov in sorted(coverage.items()):
            drugs, cells_ = cov.get("drugs", {}), cov.get("cell_lines", {})
            unseen = list(cells_.get("unseen", [])) + list(drugs.get("unseen", []))
            rows.append([dataset, split, f"{cov.get('test_rows', 0):,}", f"{cov.get('test_rows_with_unseen', 0):,}",
                         f"{drugs.get('n_unseen', 0)} of {drugs.get('test', 0)}", f"{cells_.get('n_unseen', 0)} of {cells_.get('test', 0)}",
                         ", ".join(unseen[:4]) + (f" (+{len(unseen) - 4} more)" if len(unseen) > 4 else "")])
        rep.add("## Test-set coverage",
                "Cross-dataset jobs (`--split cross:TRAIN_DATASET`) train on one dataset and test on another. Per test "
                "dataset: the test drugs and cell lines that no training row holds, and the test rows that hold at least "
                "one of them (as stored in each job record).",
                md_table(["test dataset", "split", "test rows", "rows with an unseen entity", "unseen drugs",
                          "unseen cell lines", "e.g."], rows))

    # -- per held-out group: under the tissue schemes a fold is one target tissue, so the fold-level
    # numbers are the per-tissue results (a mean over tissues hides which ones transfer)
    if group_of:
        rep.add("## Per held-out group",
                "Under `leave-tissue-out` and `tissue-few-shot` each fold holds out one tissue: its test rows are that "
                "tissue's combinations. Each cell is a method's score on one target tissue (mean over seeds where there "
                "are several); the last column is the mean over tissues, as on the leaderboard; methods with every "
                "tissue best first, then a method still missing tissues, its mean marked with how many it has (a mean "
                "over other tissues is not comparable).")
        for _, c in cells.iterrows():
            cell = metrics[(metrics["dataset"] == c["dataset"]) & (metrics["target"] == c["target"]) & (metrics["split"] == c["split"])]
            cell = cell.assign(group=cell["job_id"].map(group_of)).dropna(subset=["group"])
            for metric in [m for m in names if m in set(cell["metric"])]:
                values = cell[cell["metric"] == metric]
                table = values.pivot_table(index="method", columns="group", values="value", aggfunc="mean")
                # a fold is one tissue: every tissue the split declares, also while every method is partial
                n_groups = int(lb.cell_folds(values).iloc[0])
                have = table.notna().sum(axis=1)
                table = table.assign(_partial=(have < n_groups).astype(int), _mean=table.mean(axis=1)).sort_values(
                    ["_partial", "_mean"], ascending=[True, not known[metric].higher_is_better], kind="stable")
                rows = [[labels.names[m]] + [_num(v) for v in row[:-2]]
                        + [_num(row[-1]) + ("" if have[m] == n_groups else f" ({have[m]}/{n_groups} groups)")]
                        for m, row in zip(table.index, table.to_numpy())]
                rep.add(f"### {md_text(c['dataset'])} / {md_text(c['target'])} [{md_text(c['split'])}] {metric}",
                        md_table(["method"] + [str(g) for g in table.columns[:-2]] + ["mean over groups"], rows))

    # -- box plots
    rep.add("## Fold-level results",
            "One box per method over its test folds (box: quartiles, line: median, whiskers: 1.5 IQR), each fold as a "
            "point coloured by fold so that pairs can be followed across methods; methods ordered by their rank on the "
            "first metric, best at the top (cf. BAITSAO Fig. 3a).")
    for _, c in cells.iterrows():
        cell = metrics[(metrics["dataset"] == c["dataset"]) & (metrics["target"] == c["target"]) & (metrics["split"] == c["split"])]
        cell_names = [m for m in names if m in set(cell["metric"])]
        if not cell_names:
            continue
        first = summary[(summary["dataset"] == c["dataset"]) & (summary["target"] == c["target"]) & (summary["split"] == c["split"])
                        & (summary["metric"] == cell_names[0])]
        # ranked methods first; unranked ones (missing folds) after them, by their mean
        first = first.assign(score=-first["mean"] if known[cell_names[0]].higher_is_better else first["mean"])
        order = list(first.sort_values(["rank", "score", "method"], na_position="last", kind="stable")["method"])
        png = box_plot(cell[cell["metric"].isin(cell_names)], order, labels, [known[m] for m in cell_names],
                       f"{c['dataset']} / {c['target']} ({c['split']} split)")
        rep.add(f"### {md_text(c['dataset'])} / {md_text(c['target'])}")
        rep.add(Figure(_fig_name("box", c["dataset"], c["target"], c["split"]), png, f"box plots {c['dataset']} {c['target']}",
                       f"Per-fold {', '.join(cell_names)} on {c['dataset']} / {c['target']}."))

    # -- predictions
    rep.add("## Predictions",
            "From the stored test-fold predictions (`predictions.parquet`), pooled over folds: every row appears once, "
            "predicted by the model of the fold in which it was held out. Pooled values can differ from the fold means "
            "in the leaderboard.")
    pcc_fn, any_pred = known["pcc"].fn, False
    for _, c in cells.iterrows():
        task = task_of.get((c["dataset"], c["target"]))
        recs = [r for r in runs.records if (r["job"]["dataset"], r["job"]["target"], r["job"]["split"]) == (c["dataset"], c["target"], c["split"])]
        by_method: dict[tuple, list] = {}
        for r in recs:
            key = lb.method_of(r["job"])
            pred = runs.predictions(r["job_id"])
            if pred is not None:
                by_method.setdefault(key, []).append(pred)
        if not by_method:
            continue
        order = sorted(by_method, key=lambda k: labels.names[k])
        pooled = []
        for key in order:
            frame = pd.concat(by_method[key]).sort_index()
            frame = frame[np.isfinite(frame["y_true"]) & np.isfinite(frame["y_pred"])]
            pooled.append((labels.names[key], frame["y_true"].to_numpy(), frame["y_pred"].to_numpy(),
                           labels.colour[key], labels.linestyle[key]))
        heading = f"### {md_text(c['dataset'])} / {md_text(c['target'])}"
        if task == "regression":
            rep.add(heading, Figure(_fig_name("scatter", c["dataset"], c["target"], c["split"]),
                                    scatter_plot(pooled, c["target"], pcc_fn, f"{c['dataset']} / {c['target']}: predicted vs observed"),
                                    f"predicted vs observed {c['dataset']} {c['target']}",
                                    "Predicted against observed, one panel per method, all folds pooled; dashed: y = x. "
                                    "PCC in each title is computed on the pooled predictions."))
            any_pred = True
        elif task == "classification":
            pooled = [t for t in pooled if len(np.unique(t[1])) == 2]
            if not pooled:
                continue
            fold_auc = {}
            cell_auc = summary[(summary["dataset"] == c["dataset"]) & (summary["target"] == c["target"])
                               & (summary["split"] == c["split"]) & (summary["metric"] == "roc_auc")]
            for _, r in cell_auc.iterrows():
                fold_auc[labels.names[r["method"]]] = r["mean"]
            rep.add(heading, Figure(_fig_name("roc", c["dataset"], c["target"], c["split"]),
                                    roc_plot(pooled, fold_auc, f"{c['dataset']} / {c['target']}: ROC, folds pooled"),
                                    f"ROC curves {c['dataset']} {c['target']}",
                                    "ROC curve per method from the predicted class-1 probabilities of all folds pooled; the "
                                    "legend gives the pooled AUC and the mean of the per-fold AUCs (the leaderboard value). Pooling mixes folds "
                                    "whose scores are on different scales (for the constant baseline, a different class rate per "
                                    "fold), so its curve need not be the diagonal."))
            any_pred = True
    if not any_pred:
        rep.add("No stored predictions were found for these jobs.")

    # -- training: why each run of an iterative model stopped, and its validation curves (a model
    # that misses its published figure is judged with these in view)
    if trained:
        rep.add("## Training",
                "Why each run of an iterative model stopped (`early stopping`: its own rule; `cap`: the profile's epoch "
                "or round cap; `diverged`), its best epoch or round (the one its stopping rule kept or the refit used) and "
                "the runs stopped at their cap while the validation value was still improving. Below each table, the "
                "validation curve of every fold (the model's own criterion, in its own units), a dot at the best epoch.")
        for _, c in cells.iterrows():
            recs = [r for r in trained if (r["job"]["dataset"], r["job"]["target"], r["job"]["split"]) == (c["dataset"], c["target"], c["split"])]
            if not recs:
                continue
            by_method: dict[tuple, list[dict]] = {}
            for r in recs:
                by_method.setdefault(tuple(map(str, lb.method_of(r["job"]))), []).append(r)
            rows, curves = [], {}
            for key in sorted(by_method, key=lambda k: labels.names.get(k, str(k))):
                logs = sorted(by_method[key], key=lambda r: (r["job"].get("seed", 0), r["job"]["fold"]))
                stops = pd.Series([r["training"]["stopped"] for r in logs]).value_counts()
                rows.append([labels.names.get(key, key[0]), len(logs), ", ".join(f"{k} {v}" for k, v in stops.items()),
                             ", ".join(_first(r["training"], "best_epoch", "best_trees") for r in logs),
                             ", ".join(_first(r["training"], "epochs_run", "trees_grown", "epochs") for r in logs),
                             ", ".join(sorted({_first(r["training"], "max_epochs", "max_trees") for r in logs})),
                             ", ".join(sorted({str(r["training"].get("patience")) for r in logs})),
                             sum(bool(r["training"].get("improving_at_cap")) for r in logs)])
                runs_ = [(r["job"]["fold"], validation_curve(r["training"]), r["training"].get("best_epoch")) for r in logs]
                runs_ = [t for t in runs_ if t[1]]
                if runs_:
                    curves[labels.names.get(key, key[0])] = runs_
            rep.add(f"### {md_text(c['dataset'])} / {md_text(c['target'])} [{md_text(c['split'])}]",
                    md_table(["method", "runs", "stopped", "best epoch (round) per fold", "epochs (rounds) run per fold", "cap", "patience",
                              "capped while improving"], rows))
            if curves:
                rep.add(Figure(_fig_name("curves", c["dataset"], c["target"], c["split"]),
                               curves_plot(curves, f"{c['dataset']} / {c['target']}: validation curves"),
                               f"validation curves {c['dataset']} {c['target']}",
                               "Validation value per epoch (boosting: per round) of every fold's final fit, one panel per "
                               "method; the dot marks the epoch the model kept or refit for."))

    # -- paired tests
    rep.add("## Paired tests")
    tests = paired_tests(metrics, summary, labels, test_partitions(runs))
    ns = sorted(set(tests["n"])) if not tests.empty else []
    n_tests = len(tests)
    rep.add("For each dataset/target and metric, the best-ranked method (never the constant baseline) against each other "
            "method, paired by seed and fold over the folds where both have a defined value. Seeds that test on the same "
            "rows (a dataset's published folds, a tissue as the fold) repeat a measurement rather than draw a new resample: "
            "their differences are averaged within each test fold first, so `folds` counts distinct test folds (five "
            "published folds under three seeds are five, not fifteen); seeds that draw new folds count as repetitions. "
            "Difference = best − other, averaged over those folds (for a lower-is-better metric such as MSE a negative "
            "difference favours the best method); \"best better\" counts the folds on which the best method is ahead. "
            "Cross-validation folds are not "
            "independent (their training sets overlap), so a plain paired t-test on them is too liberal: p (NB) is the "
            "Nadeau & Bengio (2003) corrected resampled t-test, whose variance is inflated by (1/n + n_test/n_train), "
            "with n_test/n_train = 1/(k − 1) for k folds; p (Wilcoxon) is the two-sided signed-rank test "
            "(`scipy.stats.wilcoxon`, exact null distribution unless some differences are zero or tied). "
            f"This section makes {n_tests} comparisons and does not correct for multiplicity; at a 0.05 level about "
            f"{0.05 * n_tests:.1f} of them would come out significant by chance alone.")
    if ns:
        minima = ", ".join(f"n = {n}: {2 / 2 ** n:.4g}" for n in ns if n >= 2)
        rep.add(f"> **Caveat.** With n paired folds the smallest two-sided p the Wilcoxon test can give is 2/2^n ({minima}). "
                "With five folds no difference can reach p < 0.05 on it however large and consistent it is; the corrected "
                "t-test can, but its few degrees of freedom make it fragile too. Read p together with the mean difference "
                "and the count of folds won, not as a pass/fail test. The tests are not corrected for multiple comparisons.")
        rows = []
        for _, r in tests.iterrows():
            if r["n"] == 0:
                rows.append([f"{r['dataset']} / {r['target']}", r["metric"], r["best"], r["other"], 0, "", "",
                             "no fold with a defined value for both", ""])
                continue
            rows.append([f"{r['dataset']} / {r['target']}", r["metric"], r["best"], r["other"], r["n"], _signed_g(r["mean_diff"]),
                         f"{r['best_better']}/{r['n']}", "identical on every fold" if r["identical"] else _p(r["p_nb"]),
                         "" if r["identical"] else _p(r["p"])])
        rep.add(md_table(["dataset / target", "metric", "best", "other", "folds", "mean difference", "best better", "p (NB)",
                          "p (Wilcoxon)"], rows))
    else:
        rep.add("Only one method per cell: nothing to compare.")

    # -- published figures
    figures = pub.load(published_path)
    rep.add("## Baseline strength")
    strength = pub.baseline_strength(figures, summary)
    if strength.empty:
        rep.add("No published figure names a synbench baseline on the datasets, targets and metrics of this report.")
    else:
        rep.add(f"A benchmark is only as good as its weakest baseline. Each baseline beside the best figure published for "
                f"its method on the same data, per search protocol (our best complete method over its featurizers, mean "
                f"± std over folds); **short** marks ours more than {pub.STRENGTH_MARGIN} below the published figure, a "
                f"gap to explain, not to accept. The papers' inputs and searches differ from ours (see Published figures).")
        # a variant set with -p is named: the budget label carries its settings after the profile
        rows = [[md_text(r["model"] + (f" ({r['profile'].split(' ', 1)[1]})" if " " in str(r["profile"]) else "")),
                 f"{r['dataset']} / {r['target']}", r["metric"], md_text(r["protocol"] or "-"),
                 f"{_num(r['ours'])} ± {_num(r['ours_std'])}", _published(r["published"]), r["paper"],
                 f"{r['difference']:+.3f}", Md("**short**") if r["short"] else "ok"] for _, r in strength.iterrows()]
        header = ["baseline", "dataset / target", "metric", "protocol", "ours", "published", "source", "difference", ""]
        # a classification figure a regression paper quotes may be its regression network's ranking
        ranked = ranked_from_regression(runs, models=set(strength.loc[strength["metric"] == "roc_auc", "model"]))
        ranked_cells = [_ranked_cell(ranked, r) if r["metric"] == "roc_auc" else "" for _, r in strength.iterrows()]
        if any(ranked_cells):
            sources = sorted({f"{t} from {s}" for t, s in ranked[["target", "source"]].drop_duplicates().to_numpy()})
            rep.add(f"*Ranked from its regression run*: where a classification target is a threshold of a regression "
                    f"target in these stores ({md_text(', '.join(sources))}), the same model and protocol's regression "
                    f"predictions on the same test rows, ranked against the classification labels (ROC-AUC; its best "
                    f"complete method, the difference to the published figure in parentheses): a paper may quote its "
                    f"regression network's classification figure this way.")
            rows = [row + [cell] for row, cell in zip(rows, ranked_cells)]
            header = header + ["ranked from its regression run"]
        rep.add(md_table(header, rows))

    rep.add("## Published figures")
    comparison = pub.compare(figures, summary, labels)
    if comparison.empty:
        known_sets = sorted({f.dataset for f in figures})
        rep.add(f"No published figure concerns the datasets, targets and metrics of this report (figures are kept for "
                f"{', '.join(f'`{d}`' for d in known_sets)} in `datasets/published_results.toml`).")
    else:
        rep.add("Numbers the original papers report on the same data, beside ours: mean ± std over our folds, and in "
                "parentheses the difference ours − published. They are a sanity check, not a target: the protocols differ "
                "as noted under each table, and \"same method\" marks the synbench implementation of the paper's model.")
        for paper in dict.fromkeys(comparison["paper"]):
            shown = sorted(set(comparison.loc[comparison["paper"] == paper, "figure"]))
            figs = [figures[i] for i in shown]
            methods = list(dict.fromkeys(comparison[comparison["figure"] == shown[0]]["method"]))
            methods += [m for m in dict.fromkeys(comparison[comparison["figure"].isin(shown)]["method"]) if m not in methods]
            rows = [[Md("**published**")] + [Md(f"**{_published(f.value)}**") for f in figs]]
            for method in methods:
                row, same = [], False
                for i in shown:
                    hit = comparison[(comparison["figure"] == i) & (comparison["method"] == method)]
                    if hit.empty:
                        row.append("")
                        continue
                    r = hit.iloc[0]
                    same = same or bool(r["same_method"])
                    folds = "" if r["n_defined"] == r["n_folds"] else f", {r['n_defined']}/{r['n_folds']} folds defined"
                    ours = _num(r["ours"]) + (f" ± {_num(r['ours_std'])}" if np.isfinite(r["ours_std"]) else "")
                    row.append(ours if not np.isfinite(r["difference"]) else f"{ours} ({_signed(r['difference'])}{folds})")
                rows.append([method + (" (same method)" if same else "")] + row)
            splits = {f.split for f in figs if f.split}
            rep.add(f"### {md_text(paper)}", md_table(["method"] + [f"{f.dataset}/{f.target} {f.metric}" for f in figs], rows))
            ours_splits = sorted(set(comparison[comparison["figure"].isin(shown)]["split"]))
            if splits and set(ours_splits) != splits:
                rep.add(f"Our split: {', '.join(ours_splits)}; closest to the paper's evaluation: {', '.join(sorted(splits))}.")
            rep.add("\n".join(f"- {f.dataset}/{f.target} {f.metric} = {_published(f.value)}: {f.protocol}" for f in figs) + "\n")
            ref = figs[0]
            rep.add(f"Reference: {ref.citation}" + (f" doi:{ref.doi}" if ref.doi else ""))

    # -- runtime
    rep.add("## Runtime and memory",
            "Per method and dataset/target, from the job records: mean seconds per job for featurisation, hyperparameter "
            "search (on the inner validation split), the final fit and prediction, counting the earlier processes' work for "
            "a job resumed after a stop (kept search trials, kept epochs); total = the sum of all four over all jobs; peak = "
            "the largest resident memory of the job's process (MB); device and threads as recorded. Jobs that ran beside "
            "other work share the CPU, so compare timings only within one invocation. Where a model records how many of "
            "its weights it trains (a text encoder frozen, LoRA-adapted or fully fine-tuned), the last column gives them "
            "beside its total.")
    rt = []
    for r in runs.records:
        j = r["job"]
        model, featurizers, profile, protocol = lb.method_of(j)
        rt.append({"model": model, "featurizers": featurizers, "profile": profile, "protocol": protocol, "dataset": j["dataset"],
                   # a job resumed across processes: every process's share, not the last one's only
                   "target": j["target"], **phase_seconds(r),
                   "peak": r["resources"].get("peak_memory_mb", np.nan), "device": str(r["resources"].get("device", "cpu")),
                   "threads": str(r["resources"].get("threads", "?")),
                   # what a fine-tuning strategy trains (frozen / LoRA / full) is part of its cost
                   "trainable": (r.get("training") or {}).get("trainable_parameters", np.nan),
                   "parameters": (r.get("training") or {}).get("total_parameters", np.nan)})
    rt = pd.DataFrame(rt)
    rt["total"] = rt[["featurize", "search", "fit", "predict"]].sum(axis=1, min_count=1)  # none measured (external): blank
    rows = []
    with_parameters = rt["trainable"].notna().any()
    for key, g in rt.groupby(lb.METHOD_COLS + ["dataset", "target"], sort=True):
        n = len(lb.METHOD_COLS)
        rows.append([labels.names[tuple(map(str, key[:n]))], md_code(key[2]), f"{key[n]} / {key[n + 1]}", len(g), _secs(g["featurize"].mean()),
                     _secs(g["search"].mean()), _secs(g["fit"].mean()), _secs(g["predict"].mean()), _secs(g["total"].sum(min_count=1)),
                     f"{g['peak'].max():,.0f}" if np.isfinite(g["peak"].max()) else "", ", ".join(sorted(set(g["device"]))), ", ".join(sorted(set(g["threads"]), key=str))]
                    + ([_trainable(g["trainable"].max(), g["parameters"].max())] if with_parameters else []))
    rows.sort(key=lambda row: (row[2], row[0]))
    rep.add(md_table(["method", "profile", "dataset / target", "jobs", "featurize s", "search s", "fit s", "predict s",
                      "total s", "peak MB", "device", "threads"] + (["trainable parameters"] if with_parameters else []), rows))
    machines = sorted({json.dumps(r["provenance"].get("machine", {}), sort_keys=True) for r in runs.records})
    if machines:
        descr = []
        for m in map(json.loads, machines):
            descr.append(f"{m.get('cpus', '?')} CPUs, {m.get('processor', '')}, {m.get('platform', '')}, Python {m.get('python', '')}")
        rep.add("Machines (as recorded): " + md_text("; ".join(descr)) + ".")

    # -- selected hyperparameters
    rep.add("## Selected hyperparameters",
            "What the search chose (Optuna TPE; random search in `table1 (v0)` records) on the inner validation split of each training fold (\"fixed by the profile\": "
            "no search, the job record's `params` hold the values used), with epochs run and the best epoch for models "
            "that record a training log (where a model refits on all its training rows after choosing the epoch count, "
            "`epochs` counts both phases and `refit_epochs` the second).")
    by_cell: dict[tuple, list] = {}
    for r in runs.records:
        if r.get("external"):  # predicted elsewhere: no search or training to show
            continue
        j = r["job"]
        by_cell.setdefault((f"{j['dataset']} / {j['target']}", labels.names[lb.method_of(j)]), []).append(r)
    rows = []
    for (cell_name, method), recs in sorted(by_cell.items()):
        recs = sorted(recs, key=lambda r: r["job"]["fold"])
        trials = sorted({len(r.get("search") or []) for r in recs})
        chosen = [", ".join(f"{k}={_short(v)}" for k, v in sorted((r.get("selected_params") or {}).items())) for r in recs]
        logs = [r.get("training") or {} for r in recs]
        training = ["; ".join([f"{k}={_short(log[k])}" for k in ("epochs", "best_epoch") if k in log]
                              # a model that refits on all training rows counts those epochs in "epochs" too
                              + ([f"refit_epochs={log['refit']['epochs']}"] if "epochs" in (log.get("refit") or {}) else []))
                    for log in logs]
        folds = [r["job"]["fold"] for r in recs]
        rows.append([method, cell_name, ", ".join(map(str, trials)),
                     "; ".join(f"fold {f}: {c}" for f, c in zip(folds, chosen)) if any(chosen) else "(fixed by the profile)",
                     "; ".join(f"fold {f}: {t}" for f, t in zip(folds, training)) if any(training) else ""])
    header = ["method", "dataset / target", "trials per fold", "selected", "training"]
    if not any(row[-1] for row in rows):
        header, rows = header[:-1], [row[:-1] for row in rows]
    rep.add(md_table(header, rows))

    # -- provenance
    rep.add("## Provenance")
    for root, store in zip(runs.roots, runs.stores):
        recs = [r for r in runs.records if runs.store_of[r["job_id"]] is store]
        if not recs:
            continue
        text = lb.provenance_markdown(recs, store.invocations())
        lines = text.splitlines()
        if lines and lines[0].startswith("# Provenance"):
            lines = lines[1:]
        shifted = [("##" + line) if line.startswith("## ") else line for line in lines]
        rep.add(f"### Store {md_code(root)}", "\n".join(shifted) + "\n")
    return rep


def _short(v) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


REPORT_MARK = "<!-- written by synbench report -->"
# what marks a file as a synbench report: the mark, the HTML generator tag, or (reports written
# before either existed) the opening sentence every report has
_REPORT_SIGNS = (REPORT_MARK, '<meta name="generator" content="synbench report">', "Built only from stored results:")
_FIGURE_FILE = re.compile(r"^(box|roc|scatter)-[A-Za-z0-9_.-]+\.png$")


def _written_by_report(path: Path) -> bool:
    try:
        with open(path, "rb") as fh:
            head = fh.read(1 << 16)
        with open(path, "rb") as fh:
            fh.seek(max(0, path.stat().st_size - 4096))
            tail = fh.read()
    except OSError:
        return False
    return any(sign.encode() in head or sign.encode() in tail for sign in _REPORT_SIGNS)


def check_out(out: Path) -> Path:
    """The report's .html path, refused where writing it (or the Markdown beside it) would replace
    a file that is not a synbench report: a user's own file is never overwritten."""
    out = Path(out)
    if out.suffix.lower() != ".html":
        raise ConfigError(f"--out must name an .html file (the Markdown is written beside it), got '{out}'")
    if out.is_dir():
        raise ConfigError(f"--out {out} is a directory; name the .html file to write")
    for path in (out, out.with_suffix(".md")):
        if path.is_dir():
            raise ConfigError(f"{path} is a directory; the report would be written there")
        if path.exists() and not _written_by_report(path):
            raise ConfigError(f"{path} exists and was not written by synbench report; choose another --out or move it")
    return out


def write(report: Report, out: Path) -> list[Path]:
    """Write ``out`` (.html), the Markdown beside it and its figures folder; returns the paths."""
    out = check_out(out)
    figures_dir = out.parent / f"{out.stem}_figures"
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        figures_dir.mkdir(exist_ok=True)
        for stale in figures_dir.glob("*.png"):  # figures of an earlier build that this one no longer has
            # only files named as the report names its figures: a user's own PNG stays
            if stale.name not in {f.name for f in report.figures} and _FIGURE_FILE.match(stale.name):
                stale.unlink()
        for f in report.figures:
            (figures_dir / f.name).write_bytes(f.png)
        md_path = out.with_suffix(".md")
        md_path.write_text(report.to_markdown(figures_dir.name), encoding="utf-8")
        out.write_text(report.to_html(), encoding="utf-8")
    except OSError as exc:
        raise StoreError(f"cannot write the report to {out}: {exc.strerror or exc}") from None
    return [out, md_path, figures_dir]
