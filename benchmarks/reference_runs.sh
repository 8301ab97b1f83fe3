#!/usr/bin/env bash
# The reference results in results/: every command is resumable (finished jobs are skipped), so
# re-running this script after an interruption continues where it stopped. Runs one job at a time
# so that the per-fold timings in the records are comparable.
#
#   SYNBENCH_DATA_DIR=../shared/data nohup benchmarks/reference_runs.sh > reference.log 2>&1 &
set -uo pipefail
cd "$(dirname "$0")/.."
CHEM_EXPR=(-f chem:n_bits=256 -f expression:n_genes=500)
BASELINES=constant,lasso,treecomb,svm

# SYNBENCH_DRY_RUN=1 shows what each command has done, has locked and has left, and runs nothing
DRY_RUN=${SYNBENCH_DRY_RUN:+--dry-run}
run() { echo "== synbench run $*"; synbench run "$@" --profile cpu $DRY_RUN || echo "!! failed: $*"; }

# classical baselines, chemistry + expression (BAITSAO's baselines read LLM embeddings: next block)
run -d d1-oneil -m $BASELINES "${CHEM_EXPR[@]}" --out results/d1-oneil-cpu
run -d d3-deepdds -m $BASELINES "${CHEM_EXPR[@]}" --out results/d3-deepdds-cpu
run -d oneil-drugcomb -t zip -m $BASELINES "${CHEM_EXPR[@]}" --out results/oneil-zip-cpu

# the same baselines on the LLM-description embeddings
for ds in "d1-oneil results/d1-oneil-cpu" "d3-deepdds results/d3-deepdds-cpu" "oneil-drugcomb results/oneil-zip-cpu"; do
    set -- $ds
    extra=(); [ "$1" = oneil-drugcomb ] && extra=(-t zip)
    run -d "$1" "${extra[@]}" -m lasso,treecomb,svm -f llm-description --out "$2"
done

[ -n "$DRY_RUN" ] || benchmarks/rebuild_results.sh
