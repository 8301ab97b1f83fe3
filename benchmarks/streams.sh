#!/usr/bin/env bash
# The reference job streams in the background: start, pause, resume, stop, status.
#
#   SYNBENCH_DATA_DIR=../shared/data benchmarks/streams.sh start [baselines neural transfer]
#   benchmarks/streams.sh pause [STREAM ...]   # SIGSTOP (every stream by default): a benchmark or the test suite gets the cores
#   benchmarks/streams.sh resume [STREAM ...]  # SIGCONT
#   benchmarks/streams.sh stop [STREAM ...]    # SIGTERM: jobs in flight end, their locks are removed; their
#                                              # finished search trials stay in jobs/.search-*.json
#   benchmarks/streams.sh start STREAM         # while others run: STREAM alone runs the checkout's code now
#   benchmarks/streams.sh restart [STREAM ...] # each as its job in flight ends: stop, then start on the checkout's code
#   benchmarks/streams.sh nice N [STREAM ...]  # every process of the streams to priority N (they start at 19)
#   benchmarks/streams.sh status    # each stream's last progress line and the revision it runs
#
# `start` refuses code that would not reuse the stores' kept search trials or finished training
# phases (another code digest: a model's module or the shared training code was edited since they
# were computed; or trials proposed by another optuna version); SYNBENCH_REDO_KEPT=1 starts anyway
# and does that work again.
#
# `start` runs each stream on a frozen copy of this checkout's package (pip --target into
# $STREAMS_DIR/pkg-<commit>), so that editing the working tree never changes the code of a job in
# flight. With two or more CPUs the neural stream is pinned to CPU 0 and the others to the rest
# (`cpus_for`). Streams started on the same commit share a copy; a stream restarted after a commit
# gets a copy of its own while the others finish their jobs on theirs (so each can be restarted as
# its job ends, losing no kept progress), and a copy no running stream uses is removed. The
# reference_runs_*.sh scripts and the stores are this checkout's (edit a running script only below
# the line it is on). Each stream runs one job at a time on one thread. On a CPU where MKL runs
# its generic kernels (`synbench blas`), the MKL shim is built and preloaded. Every script is
# resumable: stored jobs are skipped, so `start` after a stop or on a new machine continues where
# they were.
set -uo pipefail
cd "$(dirname "$0")/.."
REPO=$(pwd)
STREAMS_DIR=${STREAMS_DIR:-$REPO/../streams}
PIDS=$STREAMS_DIR/pids
# The streams' cache (features, text embeddings) lives beside their logs, not under ~/.cache: a
# frozen BERT encoding is written in chunks, and a later session on a machine that kept the folder
# beside the checkout resumes it where this one left it. A machine that did not keep it (the
# checkout alone comes back) starts the cache over; the stores hold every finished job either way.
export SYNBENCH_CACHE_DIR=${SYNBENCH_CACHE_DIR:-$STREAMS_DIR/cache}
mkdir -p "$STREAMS_DIR/logs"

running() {  # "name pid copy" of every stream still alive (a reused pid that runs something else is not one)
    [ -f "$PIDS" ] || return 0
    while read -r name pid copy; do
        tr '\0' ' ' 2>/dev/null < "/proc/$pid/cmdline" | grep -q "reference_runs_$name.sh" && echo "$name $pid ${copy:-$STREAMS_DIR/pkg}"
    done < "$PIDS"
}

is_running() {  # NAME: reads every line (grep -q would stop early; the writer's SIGPIPE then fails the pipe under pipefail)
    running | awk -v name="$1" '$1 == name { found = 1 } END { exit !found }'
}

source_revision() {  # HEAD, with +dirty when the package's sources have uncommitted changes
    local head
    head=$(git -C "$REPO" rev-parse HEAD 2>/dev/null) || { echo unknown; return; }
    if [ -n "$(git -C "$REPO" status --porcelain --untracked-files=no -- harness plugins datasets pyproject.toml)" ]; then
        echo "$head+dirty"
    else
        echo "$head"
    fi
}

cpus_for() {  # NAME: the CPUs its stream is pinned to (empty: not pinned)
    # Only a neural job's finished phases outlive a session (its epoch state, hundreds of MB, stays
    # on the machine), so the neural stream gets a core of its own and the others share the rest:
    # unpinned beside two other streams on 2 cores, a DeepSynergy epoch took 4.3 min; pinned, 2.5.
    local n
    n=$(nproc 2>/dev/null || echo 1)
    { command -v taskset > /dev/null && [ "$n" -ge 2 ]; } || return 0
    if [ "$1" = neural ]; then echo 0; else echo "1-$((n - 1))"; fi
}

chosen() {  # NAME [NAME ...]: whether the first is among the rest (no rest: every stream is)
    local name=$1; shift
    [ $# -eq 0 ] || [[ " $* " == *" $name "* ]]
}

signal_all() {  # SIG [NAME ...]: each stream is a process group of its own (setsid): the signal reaches every job in it
    local sig=$1; shift
    running | while read -r name pid _; do
        chosen "$name" "$@" || continue
        kill -s "$sig" -- "-$pid" 2>/dev/null
        # a stopped process keeps a SIGTERM pending until it is continued
        [ "$sig" = TERM ] && kill -s CONT -- "-$pid" 2>/dev/null
        echo "$name: SIG$sig"
    done
}

case "${1:-status}" in
start)
    shift
    streams=("$@")
    ((${#streams[@]})) || streams=(baselines neural transfer)
    for name in "${streams[@]}"; do
        [ -x "benchmarks/reference_runs_$name.sh" ] || { echo "error: no stream '$name' (benchmarks/reference_runs_$name.sh)" >&2; exit 2; }
    done
    [ -n "${SYNBENCH_DATA_DIR:-}" ] || { echo "error: set SYNBENCH_DATA_DIR (the staged public data)" >&2; exit 2; }
    for name in "${streams[@]}"; do
        if is_running "$name"; then echo "error: stream '$name' is running; stop it first" >&2; exit 2; fi
    done
    # one frozen copy per commit: a clean checkout reuses its commit's copy, uncommitted sources get a new one
    revision=$(source_revision)
    copy=$STREAMS_DIR/pkg-${revision:0:12}
    [[ $revision == *+dirty ]] && copy=$copy-dirty-$(date -u +%Y%m%dT%H%M%S)
    if [ "$(cat "$copy/synbench/SOURCE_REVISION" 2>/dev/null)" = "$revision" ]; then
        echo "reusing the frozen copy of $revision ($copy)"
    else
        if running | awk '{print $3}' | grep -qx "$copy"; then
            echo "error: $copy is in use by a running stream but does not hold $revision" >&2; exit 1
        fi
        rm -rf "$copy"
        python -m pip install --quiet --disable-pip-version-check --root-user-action=ignore --no-deps --no-build-isolation --target "$copy" "$REPO" \
            || { echo "error: could not install a frozen copy of the package into $copy" >&2; exit 1; }
        # the copy has no .git: stamp the checkout's commit into it, so that every record it writes names it
        PYTHONPATH=$copy python -c "import sys; from pathlib import Path; from synbench.provenance import REVISION_FILE
import synbench; (Path(synbench.__file__).parent / REVISION_FILE).write_text(sys.argv[1] + '\n')" "$revision" \
            || { echo "error: could not stamp the source revision into $copy" >&2; exit 1; }
    fi
    # the package (PYTHONPATH=copy) first, so that a broken or foreign install of synbench cannot answer
    frozen() { PYTHONPATH=$copy python -m synbench.cli "$@"; }
    preload=""
    blas=$(frozen blas 2>&1) || { echo "error: the frozen copy cannot run 'synbench blas': $blas" >&2; exit 1; }
    if grep -q "generic kernels" <<< "$blas"; then
        preload=$(frozen blas --build-shim | sed -n 's/^built \([^;]*\);.*/\1/p')
        [ -n "$preload" ] || { echo "error: MKL runs its generic kernels here and the shim could not be built" >&2; exit 1; }
    fi
    # Kept work (search trials, a finished training phase) is reused only by the code that computed
    # it: an edit of a model's module or of synbench.base, .neural, .features or .tabular throws it
    # away. A start that would do hours of it again is refused unless asked for.
    foreign=$(PYTHONPATH=$copy python -c 'import sys
from synbench.runner import foreign_kept_work
for jobs in sys.argv[1:]:
    for name, seconds, why in foreign_kept_work(jobs):
        print(f"  {jobs}/{name}: {seconds / 3600:.1f} h ({why})")' results/*/jobs) \
        || { echo "error: the frozen copy could not check the stores' kept work" >&2; exit 1; }
    if [ -n "$foreign" ] && [ -z "${SYNBENCH_REDO_KEPT:-}" ]; then
        echo "error: $revision would not reuse this kept work (other code or another optuna computed it):" >&2
        echo "$foreign" >&2
        echo "start from the commit that computed it, or set SYNBENCH_REDO_KEPT=1 to do that work again" >&2
        exit 1
    fi
    for name in "${streams[@]}"; do
        log=$STREAMS_DIR/logs/$name.log
        cpus=$(cpus_for "$name")
        echo "=== start $(date -u +%FT%TZ) on $revision${preload:+ with the MKL shim}${cpus:+ on CPUs $cpus}" >> "$log"
        # Lowest priority, so that the test suite or a command in the foreground gets the cores almost
        # as if the streams were paused. `nice` alone does nothing against another session where the
        # kernel groups tasks by session (autogroup): the new session's group is niced too. Measured
        # by benchmarks/foreground_share.sh (benchmarks/README.md): its workload took 2.33 s with the
        # streams paused, 13.95 s beside them at normal priority and 2.52 s beside them at nice 19.
        LD_PRELOAD=$preload PYTHONPATH=$copy SYNBENCH_THREADS=1 ${cpus:+taskset -c "$cpus"} setsid nohup nice -n 19 \
            bash -c 'echo 19 2> /dev/null > /proc/self/autogroup; exec "$0"' "benchmarks/reference_runs_$name.sh" >> "$log" 2>&1 &
        { running | grep -v "^$name "; echo "$name $! $copy"; } > "$PIDS.new"; mv "$PIDS.new" "$PIDS"
        echo "$name: started on $revision (pid $!, log $log)${preload:+ with the MKL shim}${cpus:+ on CPUs $cpus}"
    done
    # a copy no running stream imports from any more goes; the copy just started on is kept by name,
    # since a stream forked a moment ago may not yet show its script in /proc/PID/cmdline
    in_use=$(running | awk '{print $3}'; echo "$copy")
    for old in "$STREAMS_DIR"/pkg "$STREAMS_DIR"/pkg-*; do
        if [ -d "$old" ] && ! grep -qx "$old" <<< "$in_use"; then
            rm -rf "$old" && echo "removed the unused frozen copy $old"
        fi
    done
    ;;
restart)
    # A job's kept progress is reused only by the code that computed it, so a stream is restarted
    # between jobs: a watcher in the background waits for the first line of its log, written after
    # now, that ends a job or a command (done, failed, finished, the next command), then stops the
    # stream and starts it again on this checkout's code.
    shift
    streams=("$@")
    ((${#streams[@]})) || streams=(baselines neural transfer)
    [ -n "${SYNBENCH_DATA_DIR:-}" ] || { echo "error: set SYNBENCH_DATA_DIR (the staged public data)" >&2; exit 2; }
    for name in "${streams[@]}"; do
        is_running "$name" || { echo "error: stream '$name' is not running (start it instead)" >&2; exit 2; }
        if kill -0 "$(cat "$STREAMS_DIR/restart-$name.pid" 2>/dev/null)" 2>/dev/null; then
            echo "error: a restart of '$name' is already waiting for its job to end" >&2; exit 2
        fi
    done
    for name in "${streams[@]}"; do
        log=$STREAMS_DIR/logs/$name.log
        offset=$(stat -c %s "$log" 2>/dev/null || echo 0)
        SELF=$REPO/benchmarks/streams.sh NAME=$name LOG=$log OFFSET=$offset setsid nohup bash -c '
            until tail -c +$((OFFSET + 1)) "$LOG" | tr "\r" "\n" | grep -aqE "^(done |failed |finished: |== synbench |!! failed)"; do
                sleep 10
            done
            "$SELF" stop "$NAME"
            while "$SELF" status | grep "^running: $NAME " > /dev/null; do sleep 2; done
            "$SELF" start "$NAME"' >> "$STREAMS_DIR/logs/restarts.log" 2>&1 &
        echo $! > "$STREAMS_DIR/restart-$name.pid"
        echo "$name: restarts on $(source_revision) when its job in flight ends (log $STREAMS_DIR/logs/restarts.log)"
    done
    ;;
nice)
    # N [STREAM ...]: every process of the streams (and their session's autogroup) to priority N;
    # `start` runs them at 19, benchmarks/foreground_share.sh compares 0 and 19
    shift
    level=${1:?usage: $0 nice N [STREAM ...]}; shift
    running | while read -r name pid _; do
        chosen "$name" "$@" || continue
        for member in $(ps -o pid= --sid "$pid"); do
            renice -n "$level" -p "$member" > /dev/null 2>&1
            echo "$level" 2> /dev/null > "/proc/$member/autogroup"
        done
        echo "$name: nice $level"
    done
    ;;
pause) shift; signal_all STOP "$@" ;;
resume) shift; signal_all CONT "$@" ;;
stop) shift; signal_all TERM "$@" ;;
status)
    for log in "$STREAMS_DIR"/logs/*.log; do
        [ -f "$log" ] || continue
        printf '%s: %s\n' "$(basename "$log" .log)" "$(tail -c 2000 "$log" | tr '\r' '\n' | grep -av '^$' | tail -n 1)"
    done
    running | while read -r name pid copy; do
        echo "running: $name (pid $pid) on $(cat "$copy/synbench/SOURCE_REVISION" 2>/dev/null || echo "$copy")"
    done
    ;;
*) echo "usage: $0 start|restart|pause|resume|stop [STREAM ...] | nice N [STREAM ...] | status" >&2; exit 2 ;;
esac
