#!/usr/bin/env bash
# Times the README's main job (the strong classical board on D1, both targets, `quick` profile,
# two worker processes) from a fresh store and a cold feature cache, and prints the board.
#
#   SYNBENCH_DATA_DIR=../shared/data benchmarks/main_job.sh
set -euo pipefail
cd "$(dirname "$0")/.."
STORE=$(mktemp -d)/store
export SYNBENCH_CACHE_DIR=$(mktemp -d)
start=$(date +%s)
synbench run -d d1-oneil -m lasso,elastic-net,svm,treecomb,random-forest --profile quick \
    --executor process -j 2 --out "$STORE"
end=$(date +%s)
synbench leaderboard "$STORE" --no-write
python - "$STORE" <<'PY'
import json, sys
from pathlib import Path
from collections import defaultdict
seconds = defaultdict(float)
for p in Path(sys.argv[1], "jobs").glob("*/record.json"):
    r = json.loads(p.read_text())
    seconds[r["job"]["model"]] += sum(v for k, v in r["timing"].items() if k.endswith("_seconds"))
for model, s in sorted(seconds.items(), key=lambda kv: -kv[1]):
    print(f"{model:15s} {s:8.0f} s of job time (both workers together)")
PY
echo "wall: $((end - start)) s"
