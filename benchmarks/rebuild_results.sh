#!/usr/bin/env bash
# Rebuilds every reference store's leaderboard, provenance and report, and the report over the
# three reference stores, from the stored records alone (nothing is retrained). Both reference_runs scripts
# end with it; run it by hand after stopping them part-way.
set -euo pipefail
cd "$(dirname "$0")/.."
# D3's reference results are on folds that keep replicates together (results/d3-deepdds); the
# earlier folds let replicates straddle train and test (results/d3-deepdds-cpu, kept with its own report)
STORES=(results/d1-oneil-cpu results/d3-deepdds results/oneil-zip-cpu results/d3-deepdds-cpu)
# diagnostics (single folds measuring why a baseline falls short) and the tissue-transfer scenarios
[ -f results/d1-diagnostics/store.json ] && STORES+=(results/d1-diagnostics)
[ -f results/d1-transfer/store.json ] && STORES+=(results/d1-transfer)
# cross-dataset: trained on the O'Neil ZIP scores, tested on CLOUD and FORCINA
[ -f results/oneil-zip-cross/store.json ] && STORES+=(results/oneil-zip-cross)
# BERT's training strategies (frozen, LoRA, full) at one reduced budget
[ -f results/bert-strategies/store.json ] && STORES+=(results/bert-strategies)
for store in "${STORES[@]}"; do
    synbench leaderboard "$store" > /dev/null
    synbench report "$store" --out "$store/report.html"
done
synbench report results/d1-oneil-cpu results/d3-deepdds results/oneil-zip-cpu --out results/report.html
# every number just written, recomputed from the stored predictions (and, with the data at hand,
# the stored labels and data checksums against the data): exits 1 naming any disagreement
if [ -n "${SYNBENCH_DATA_DIR:-}" ]; then synbench verify "${STORES[@]}"; else synbench verify "${STORES[@]}" --no-data; fi
