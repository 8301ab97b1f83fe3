#!/usr/bin/env bash
# How fast a foreground command runs beside the background job streams (benchmarks/streams.sh):
# the same small workload (a two-thread torch matmul loop and MLP training steps, a scikit-learn
# Lasso fit, a pandas group-by; about 2 s on a quiet machine) timed with the streams paused, running
# at normal priority and running at nice 19 (how `start` runs them), the three states alternating
# over ROUNDS rounds so that a slow spell hits all alike. Leaves the streams running at nice 19.
#
#   benchmarks/streams.sh status && ROUNDS=3 benchmarks/foreground_share.sh
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-3}
benchmarks/streams.sh status | awk '/^running: / { found = 1 } END { exit !found }' || { echo "error: no stream is running (benchmarks/streams.sh start)" >&2; exit 2; }
trap 'benchmarks/streams.sh resume > /dev/null; benchmarks/streams.sh nice 19 > /dev/null' EXIT

workload() {
    python - <<'PY'
import time
import numpy as np, pandas as pd, torch
from sklearn.linear_model import Lasso
torch.manual_seed(0); rng = np.random.default_rng(0)
start = time.perf_counter()
a, b = torch.randn(512, 512), torch.randn(512, 512)
for _ in range(100):
    a @ b
net = torch.nn.Sequential(torch.nn.Linear(1000, 512), torch.nn.ReLU(), torch.nn.Linear(512, 1))
opt = torch.optim.Adam(net.parameters())
x, y = torch.randn(256, 1000), torch.randn(256, 1)
for _ in range(30):
    opt.zero_grad(); torch.nn.functional.mse_loss(net(x), y).backward(); opt.step()
X = rng.random((3000, 300)); Lasso(alpha=1e-3, max_iter=300).fit(X, rng.random(3000))
frame = pd.DataFrame({"k": rng.integers(0, 1000, 200_000), "v": rng.random(200_000)})
for _ in range(5):
    frame.groupby("k")["v"].agg(["mean", "std"])
print(f"{time.perf_counter() - start:.2f}")
PY
}

declare -A seconds
for round in $(seq "$ROUNDS"); do
    for state in paused normal nice19; do
        case $state in
        paused) benchmarks/streams.sh pause > /dev/null ;;
        normal) benchmarks/streams.sh resume > /dev/null; benchmarks/streams.sh nice 0 > /dev/null ;;
        nice19) benchmarks/streams.sh resume > /dev/null; benchmarks/streams.sh nice 19 > /dev/null ;;
        esac
        sleep 2
        t=$(workload)
        seconds[$state]="${seconds[$state]:-} $t"
        echo "round $round $state: $t s"
    done
done
for state in paused normal nice19; do
    median=$(tr ' ' '\n' <<< "${seconds[$state]}" | grep . | sort -g | awk '{v[NR] = $1} END {print v[int((NR + 1) / 2)]}')
    echo "$state: median $median s over $ROUNDS rounds (${seconds[$state]# })"
done
