#!/usr/bin/env bash
# Rebuilds every reference store's leaderboard, provenance and report, and the report over all
# three stores, from the stored records alone (nothing is retrained). Both reference_runs scripts
# end with it; run it by hand after stopping them part-way.
set -euo pipefail
cd "$(dirname "$0")/.."
STORES=(results/d1-oneil-cpu results/d3-deepdds-cpu results/oneil-zip-cpu)
# the classical baselines on D3's replicate-grouped folds (a store of its own: other folds)
[ -f results/d3-deepdds/store.json ] && STORES+=(results/d3-deepdds)
# diagnostics (single folds measuring why a baseline falls short) and the tissue-transfer scenarios
[ -f results/d1-diagnostics/store.json ] && STORES+=(results/d1-diagnostics)
[ -f results/d1-transfer/store.json ] && STORES+=(results/d1-transfer)
# cross-dataset: trained on the O'Neil ZIP scores, tested on CLOUD and FORCINA
[ -f results/oneil-zip-cross/store.json ] && STORES+=(results/oneil-zip-cross)
for store in "${STORES[@]}"; do
    synbench leaderboard "$store" > /dev/null
    synbench report "$store" --out "$store/report.html"
done
synbench report results/d1-oneil-cpu results/d3-deepdds-cpu results/oneil-zip-cpu --out results/report.html
