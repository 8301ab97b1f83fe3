#!/usr/bin/env bash
# Rebuilds every reference store's leaderboard, provenance and report, and the report over all
# three stores, from the stored records alone (nothing is retrained). Both reference_runs scripts
# end with it; run it by hand after stopping them part-way.
set -euo pipefail
cd "$(dirname "$0")/.."
STORES=(results/d1-oneil-cpu results/d3-deepdds-cpu results/oneil-zip-cpu)
for store in "${STORES[@]}"; do
    synbench leaderboard "$store" > /dev/null
    synbench report "$store" --out "$store/report.html"
done
synbench report "${STORES[@]}" --out results/report.html
