#!/usr/bin/env bash
# The neural and BAITSAO reference results in results/, one job at a time. Resumable like
# reference_runs.sh: stored jobs are skipped, and the pre-trained checkpoint is made only once.
# Run it beside reference_runs.sh on a two-core machine (each stream single-threaded). In all it is
# some 40 CPU-hours here (a DeepSynergy or MARSY fold on D1 takes about 40 minutes on one thread), so
# it spans several sessions, each picking up where the last stored job left off:
#
#   SYNBENCH_DATA_DIR=../shared/data SYNBENCH_THREADS=1 nohup benchmarks/reference_runs_neural.sh > neural.log 2>&1 &
set -uo pipefail
cd "$(dirname "$0")/.."
CHEM_EXPR=(-f chem:n_bits=256 -f expression:n_genes=500)
CKPT=results/checkpoints/baitsao-cloud-forcina-cpu.pt

# SYNBENCH_DRY_RUN=1 shows what each command has done, has locked and has left, and runs nothing
DRY_RUN=${SYNBENCH_DRY_RUN:+--dry-run}
run() { echo "== synbench run $*"; synbench run "$@" --profile cpu --no-constant $DRY_RUN || echo "!! failed: $*"; }

# first one fold of every neural baseline with its published inputs, so that each model has a
# stored, measured fold early; the five-fold commands below skip these jobs
run -d d1-oneil -t loewe -m marsy "${CHEM_EXPR[@]}" --folds 0 --out results/d1-oneil-cpu
run -d d3-deepdds -m deepdds --folds 0 --out results/d3-deepdds-cpu
run -d d1-oneil -t loewe -m tabnet --folds 0 --out results/d1-oneil-cpu
run -d d1-oneil -t loewe -m bert --folds 0 --out results/d1-oneil-cpu
run -d d1-oneil -t loewe -m deepsynergy "${CHEM_EXPR[@]}" --folds 0 --out results/d1-oneil-cpu
run -d d1-oneil -t loewe_gt30 -m deepdds --folds 0 --out results/d1-oneil-cpu

# BAITSAO from scratch on D1 (both targets; each job trains the multi-task network)
run -d d1-oneil -m baitsao --out results/d1-oneil-cpu

# pre-training on the CLOUD and FORCINA screens, without any D1 combination, for -ft and -zs
if [ ! -f "$CKPT" ] && [ -z "$DRY_RUN" ]; then
    mkdir -p "$(dirname "$CKPT")"
    echo "== synbench pretrain -> $CKPT"
    synbench pretrain -d drugcomb-cloud,drugcomb-forcina --exclude-overlap d1-oneil --profile cpu --out "$CKPT" \
        || echo "!! pretrain failed"
fi
run -d d1-oneil -m baitsao-ft -p checkpoint="$CKPT" --out results/d1-oneil-cpu
run -d d1-oneil -t loewe -m baitsao-zs -p checkpoint="$CKPT" --out results/d1-oneil-cpu

# BAITSAO on D3 and on the O'Neil ZIP scores: from scratch, fine-tuned, and zero-shot where the
# checkpoint has a head for the target (DrugComb's ZIP head for the O'Neil ZIP scores; it has no
# classification head, so D3 and Loewe>30 have no zero-shot entry)
run -d d3-deepdds -m baitsao --out results/d3-deepdds-cpu
run -d oneil-drugcomb -t zip -m baitsao --out results/oneil-zip-cpu
run -d oneil-drugcomb -t zip -m baitsao-zs -p checkpoint="$CKPT" --out results/oneil-zip-cpu
run -d d3-deepdds -m baitsao-ft -p checkpoint="$CKPT" --out results/d3-deepdds-cpu
run -d oneil-drugcomb -t zip -m baitsao-ft -p checkpoint="$CKPT" --out results/oneil-zip-cpu

# the neural baselines with their published inputs, all five folds; D1 first, then D3 and ZIP
# (DeepDDS is a classifier and MARSY a regressor, so each runs on the targets of its kind)
run -d d3-deepdds -m deepdds --out results/d3-deepdds-cpu
run -d d1-oneil -m tabnet --out results/d1-oneil-cpu
run -d d1-oneil -t loewe -m marsy "${CHEM_EXPR[@]}" --out results/d1-oneil-cpu
run -d d1-oneil -m bert --out results/d1-oneil-cpu
run -d d1-oneil -m deepsynergy "${CHEM_EXPR[@]}" --out results/d1-oneil-cpu
run -d d1-oneil -t loewe_gt30 -m deepdds --out results/d1-oneil-cpu
run -d d3-deepdds -m tabnet,bert --out results/d3-deepdds-cpu
run -d d3-deepdds -m deepsynergy "${CHEM_EXPR[@]}" --out results/d3-deepdds-cpu
run -d oneil-drugcomb -t zip -m tabnet,bert --out results/oneil-zip-cpu
run -d oneil-drugcomb -t zip -m marsy,deepsynergy "${CHEM_EXPR[@]}" --out results/oneil-zip-cpu

[ -n "$DRY_RUN" ] || benchmarks/rebuild_results.sh
