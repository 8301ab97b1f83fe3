#!/usr/bin/env bash
# Rebuilds every reference store's leaderboard, provenance and report, and the report over the
# three reference stores, from the stored records alone (nothing is retrained). Both reference_runs scripts
# end with it; run it by hand after stopping them part-way.
set -euo pipefail
cd "$(dirname "$0")/.."
# D3's reference results are on folds that keep replicates together (results/d3-deepdds); the
# earlier folds let replicates straddle train and test (results/d3-deepdds-cpu, kept with its own report)
STORES=(results/d1-oneil-cpu results/d3-deepdds results/oneil-zip-cpu results/d3-deepdds-cpu)
# diagnostics (single folds measuring why a baseline falls short), the tissue-transfer scenarios,
# cross-dataset (trained on the O'Neil ZIP scores, tested on CLOUD and FORCINA) and BERT's training
# strategies (frozen, LoRA, full) at one reduced budget: each counts once it holds a finished job (a
# store is created when its first job starts, so a stream's first job in flight leaves one with none)
for store in results/d1-diagnostics results/d1-transfer results/oneil-zip-cross results/bert-strategies; do
    if compgen -G "$store/jobs/*/record.json" > /dev/null; then STORES+=("$store"); fi
done
for store in "${STORES[@]}"; do
    synbench leaderboard "$store" > /dev/null
    synbench report "$store" --out "$store/report.html"
done
synbench report results/d1-oneil-cpu results/d3-deepdds results/oneil-zip-cpu --out results/report.html
# every number just written, recomputed from the stored predictions (and, with the data at hand,
# the stored labels and data checksums against the data): exits 1 naming any disagreement
if [ -n "${SYNBENCH_DATA_DIR:-}" ]; then synbench verify "${STORES[@]}"; else synbench verify "${STORES[@]}" --no-data; fi
