"""The README's result tables, built from the committed reference stores.

Two blocks of README.md are generated here and nowhere else, between ``<!-- NAME:begin -->`` and
``<!-- NAME:end -->`` markers:

- ``headline``: every current method on the three reference stores (D1 Loewe PCC, D1 Loewe > 30
  ROC-AUC, D3 ROC-AUC, O'Neil ZIP PCC), mean ± sample sd over every stored fold and seed, with the
  board's flags. Methods of the superseded ``table1 (v0)`` runs are left out (their board is in
  each store's leaderboard).
- ``transfer``: D1 Loewe tissue few-shot PCC per target tissue, from ``results/d1-transfer``, for
  the rows whose six tissues are all stored; the others are listed as running.

    python benchmarks/readme_tables.py            # print both blocks
    python benchmarks/readme_tables.py --write    # replace them in README.md
    python benchmarks/readme_tables.py --check    # exit 1 if README.md differs (tests/test_reference_results.py)
"""

from __future__ import annotations

import argparse
import re
import statistics
import sys
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
HEADLINE_STORES = ("d1-oneil-cpu", "d3-deepdds", "oneil-zip-cpu")
HEADLINE_CELLS = (("d1-oneil", "loewe", "pcc", "D1 Loewe PCC"), ("d1-oneil", "loewe_gt30", "roc_auc", "D1 Loewe > 30 ROC-AUC"),
                  ("d3-deepdds", "synergy", "roc_auc", "D3 ROC-AUC"), ("oneil-drugcomb", "zip", "pcc", "O'Neil ZIP PCC"))
TRANSFER_STORE = "d1-transfer"
TRANSFER_ORDER = ("synergy-transfer", "synergy-transfer-joint", "lasso", "elastic-net", "svm", "random-forest",
                  "treecomb", "baitsao", "constant")
TRANSFER_NAMES = {"treecomb": "treecomb (XGBoost)", "baitsao": "baitsao (same 12 trials)"}


def _stores(names):
    from synbench.store import Store

    return [Store(REPO / "results" / name, create=False) for name in names]


def _inputs(featurizers: str) -> str:
    return " + ".join(f.split(":")[0] for f in featurizers.split("+")) if featurizers else "—"


def _cell(row) -> str:
    if row is None:
        return ""
    text = f"{row['mean']:.3f} ± {row['std']:.3f}" if row["n_folds"] > 1 else f"{row['mean']:.3f}"
    notes = []
    if row["n_seeds"] > 1:
        notes.append(f"{int(row['n_seeds'])} seeds")
    if row["n_failed"]:
        notes.append(f"{int(row['n_failed'])} constant, scored 0")
    if row["n_folds"] < row["expected"]:
        notes.append(f"{int(row['n_folds'])}/{int(row['expected'])} runs")
    return text + (f" ({'; '.join(notes)})" if notes else "")


def headline() -> str:
    from synbench import leaderboard as lb

    combined = lb.combine(_stores(HEADLINE_STORES))
    board = lb.build(combined.metrics, ["pcc", "roc_auc"], records=combined.records)
    summary = board.summary
    summary = summary[~summary["protocol"].str.contains("v0", regex=False)]
    wide = board.wide()
    flags = {tuple(r[c] for c in lb.METHOD_COLS): r["flags"] for _, r in wide.iterrows()}
    cells = {}
    for _, row in summary.iterrows():
        cells[(*(row[c] for c in lb.METHOD_COLS), row["dataset"], row["target"], row["metric"])] = row
    header = ["model", "settings", "inputs", "protocol", *(c[3] for c in HEADLINE_CELLS), "flags"]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    for _, method in wide.iterrows():
        key = tuple(method[c] for c in lb.METHOD_COLS)
        row_cells = [_cell(cells.get((*key, d, t, m))) for d, t, m, _ in HEADLINE_CELLS]
        if not any(row_cells) or (key[0] == "constant" and key[3] != "strong"):  # one constant row: it searches nothing
            continue
        model, featurizers, profile, protocol = key
        settings = profile.replace("cpu", "", 1).strip() if profile.startswith("cpu") else profile
        lines.append("| " + " | ".join([model, f"`{settings}`" if settings else "", _inputs(featurizers), protocol,
                                        *row_cells, flags.get(key, "")]) + " |")
    return "\n".join(lines)


def transfer() -> str:
    (store,) = _stores([TRANSFER_STORE])
    pcc, mse = defaultdict(dict), defaultdict(list)
    for record in store.records():
        job = record["job"]
        if job["seed"] != 0 or job["params"] or not job["split"].startswith("tissue-few-shot"):
            continue
        key = (job["split"].split("=")[-1], job["model"])
        pcc[key][record["fold_group"]] = 0.0 if record.get("constant_prediction") else record["metrics"]["pcc"]
        mse[key].append(record["metrics"]["mse"])
    tissues = sorted({t for values in pcc.values() for t in values})
    header = ["F", "model", *tissues, "mean ± sd over tissues", "MSE"]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    running = []
    fractions = sorted({f for f, _ in pcc}, key=float)
    models = [m for m in TRANSFER_ORDER if any((f, m) in pcc for f in fractions)]
    models += sorted({m for _, m in pcc} - set(models))
    for fraction in fractions:
        for model in models:
            values = pcc.get((fraction, model))
            if not values:
                continue
            if len(values) < len(tissues):
                running.append(f"{model} at F = {fraction} ({len(values)}/{len(tissues)} tissues)")
                continue
            scores = [values[t] for t in tissues]
            constant = model == "constant"
            mean = "0" if constant else f"{statistics.mean(scores):.3f} ± {statistics.stdev(scores):.3f}"
            lines.append(f"| {fraction} | {TRANSFER_NAMES.get(model, model)} | "
                         + " | ".join("0" if constant else f"{x:.3f}" for x in scores)
                         + f" | {mean} | {statistics.mean(mse[(fraction, model)]):.1f} |")
    if running:
        lines.append("")
        lines.append("Not in the table yet (stored so far): " + "; ".join(running) + ".")
    return "\n".join(lines)


BLOCKS = {"headline": headline, "transfer": transfer}


def replace_blocks(text: str, blocks: dict[str, str]) -> str:
    for name, body in blocks.items():
        pattern = re.compile(rf"(<!-- {name}:begin[^>]*-->\n).*?(<!-- {name}:end -->)", re.S)
        if not pattern.search(text):
            raise SystemExit(f"error: the README has no '<!-- {name}:begin -->' ... '<!-- {name}:end -->' block")
        text = pattern.sub(lambda m: m.group(1) + body + "\n" + m.group(2), text)
    return text


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--write", action="store_true", help="replace the blocks in README.md")
    mode.add_argument("--check", action="store_true", help="exit 1 if README.md's blocks differ from the stores")
    parser.add_argument("--readme", type=Path, default=README, help="the README to check or write (default: the project's)")
    args = parser.parse_args(argv)
    blocks = {name: build() for name, build in BLOCKS.items()}
    if not (args.write or args.check):
        for name, body in blocks.items():
            print(f"<!-- {name} -->\n{body}\n")
        return 0
    current = args.readme.read_text(encoding="utf-8")
    updated = replace_blocks(current, blocks)
    if args.check:
        if updated != current:
            stale = [n for n in blocks if replace_blocks(current, {n: blocks[n]}) != current]
            print(f"{args.readme.name}'s generated tables differ from the stores: {', '.join(stale)} "
                  "(python benchmarks/readme_tables.py --write)")
            return 1
        return 0
    args.readme.write_text(updated, encoding="utf-8")
    print(f"{args.readme}: " + ", ".join(blocks) + " rebuilt")
    return 0


if __name__ == "__main__":
    sys.exit(main())
