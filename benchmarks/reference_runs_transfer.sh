#!/usr/bin/env bash
# Transfer: across datasets, and to understudied tissues on D1 (Loewe), resumable like the other
# reference scripts. Tissues: every
# tissue of D1's cell lines is a fold; `tissue-few-shot:fraction=F` trains on every other tissue plus
# a fraction F of the target tissue's drug pairs and tests on the rest of that tissue.
# Synergy Transfer (pre-train on the source tissues, fine-tune on the target's few shots) against
# the same network trained once on everything it may see, the strong classical baselines and
# BAITSAO, whose text embeddings of cell lines are meant to carry over to unseen tissues.
#
#   SYNBENCH_DATA_DIR=../shared/data SYNBENCH_THREADS=1 nohup benchmarks/reference_runs_transfer.sh > transfer.log 2>&1 &
set -uo pipefail
cd "$(dirname "$0")/.."
DRY_RUN=${SYNBENCH_DRY_RUN:+--dry-run}
STORE=results/d1-transfer
run() { echo "== synbench run $*"; synbench run "$@" --profile cpu $DRY_RUN || echo "!! failed: $*"; }

# Cross-dataset: train on the O'Neil ZIP scores (DrugComb's pipeline), test on the CLOUD and FORCINA
# ZIP scores from the same pipeline. Neither has expression for its one cell line, so every model
# reads the text-description embeddings, the one input that covers both sides; the coverage of
# each test set (nearly every drug and the cell line unseen) is stored and in the report.
CROSS=(-d drugcomb-cloud,drugcomb-forcina -t zip --split cross:oneil-drugcomb --out results/oneil-zip-cross)
run "${CROSS[@]}" -m lasso,elastic-net,svm,treecomb,random-forest -f llm-description
# the tissue few-shot networks (minutes per job) before BAITSAO's cross-dataset search (hours)
for split in tissue-few-shot:fraction=0 tissue-few-shot:fraction=0.1 tissue-few-shot:fraction=0.3; do
    run -d d1-oneil -t loewe -m synergy-transfer,synergy-transfer-joint,lasso --split "$split" --out $STORE
done
run "${CROSS[@]}" -m baitsao --no-constant

# then, in each scenario, the strongest classical baseline on D1 (XGBoost) and BAITSAO, the
# comparison the scenario asks about (do text embeddings of cell lines carry over to a tissue seen
# little or not at all?), before the other strong classical baselines
for split in tissue-few-shot:fraction=0 tissue-few-shot:fraction=0.1 tissue-few-shot:fraction=0.3; do
    run -d d1-oneil -t loewe -m treecomb --split "$split" --out $STORE
    run -d d1-oneil -t loewe -m baitsao --split "$split" --out $STORE
done
for split in tissue-few-shot:fraction=0 tissue-few-shot:fraction=0.1 tissue-few-shot:fraction=0.3; do
    run -d d1-oneil -t loewe -m svm,random-forest,elastic-net --split "$split" --out $STORE
done

[ -n "$DRY_RUN" ] || { synbench leaderboard $STORE; synbench leaderboard results/oneil-zip-cross; }

# BERT's training strategies side by side (issue: frozen vs LoRA vs full). Full or LoRA fine-tuning
# at 512 tokens over every row is some 20-30 CPU-hours a fold (plugins/models/bert.py), so here all
# three share one reduced budget, the same for each: 128 tokens, 5 epochs of 1,600 fresh training
# rows, 400 validation rows, no search (each at its strategy's usual learning rate: 1e-4 to
# fine-tune every weight, 1e-3 for LoRA's adapters and for a frozen encoder's head), fold 0 of D1
# Loewe and of D3, in a store of their own. The records hold each one's cost (wall and CPU time,
# peak memory, trainable parameters).
BERT_BUDGET=(-p max_length=128 -p rows_per_epoch=1600 -p epochs=5 -p valid_rows=400 -p warmup=0.1 --trials 0 --folds 0 --no-constant)
for data in "d1-oneil -t loewe" "d3-deepdds"; do
    for strategy in "frozen -p lr=1e-3" "lora -p lr=1e-3" "full -p lr=1e-4"; do
        # shellcheck disable=SC2086 # the dataset, target and strategy words split on purpose
        run -d $data -m bert "${BERT_BUDGET[@]}" -p strategy=$strategy --out results/bert-strategies
    done
done

# BAITSAO single-task (the equal-training-signal control) runs here, on the second core,
# ahead of the baselines' seeds: the neural stream reaches it hours later and skips every job this
# stream has stored or holds a lock on.
run -d d1-oneil -m baitsao -p task_mode=single --out results/d1-oneil-cpu

# Its own queue done, this stream lends its core to the classical baselines' queue, the longest
# that is left: a second worker on reference_runs_baselines.sh, which skips every job stored or
# locked by the baselines stream (each job is claimed with a lock file), so the two share its jobs.
[ -n "$DRY_RUN" ] || benchmarks/reference_runs_baselines.sh

# The baselines' queue done, the core goes to the neural queue, the longest of all: a second worker
# on reference_runs_neural.sh, sharing its jobs through the same locks (a job with kept training
# state resumes on whichever worker claims it next).
[ -n "$DRY_RUN" ] || benchmarks/reference_runs_neural.sh
