#!/usr/bin/env bash
# The reference job streams in the background: start, pause, resume, stop, status.
#
#   SYNBENCH_DATA_DIR=../shared/data benchmarks/streams.sh start [baselines neural transfer]
#   benchmarks/streams.sh pause     # SIGSTOP every stream (a benchmark or the test suite gets the cores)
#   benchmarks/streams.sh resume    # SIGCONT
#   benchmarks/streams.sh stop      # SIGTERM: jobs in flight end, their locks are removed; their
#                                   # finished search trials stay in jobs/.search-*.json
#   benchmarks/streams.sh status    # each stream's last progress line
#
# `start` runs the streams on a frozen copy of this checkout's package (pip --target into
# $STREAMS_DIR/pkg), so that editing the working tree never changes the code of a job in flight; the
# reference_runs_*.sh scripts and the stores are this checkout's (edit a running script only below
# the line it is on). Each stream runs one job at a time on one thread. On a CPU where MKL runs its
# generic kernels (`synbench blas`), the MKL shim is built and preloaded. Every script is resumable:
# stored jobs are skipped, so `start` after a stop or on a new machine continues where they were.
set -uo pipefail
cd "$(dirname "$0")/.."
REPO=$(pwd)
STREAMS_DIR=${STREAMS_DIR:-$REPO/../streams}
PIDS=$STREAMS_DIR/pids
mkdir -p "$STREAMS_DIR/logs"

running() {  # "name pid" of every stream still alive (a reused pid that runs something else is not one)
    [ -f "$PIDS" ] || return 0
    while read -r name pid; do
        tr '\0' ' ' < "/proc/$pid/cmdline" 2>/dev/null | grep -q "reference_runs_$name.sh" && echo "$name $pid"
    done < "$PIDS"
}

signal_all() {  # each stream is a process group of its own (setsid): the signal reaches every job in it
    running | while read -r name pid; do
        kill -s "$1" -- "-$pid" 2>/dev/null
        # a stopped process keeps a SIGTERM pending until it is continued
        [ "$1" = TERM ] && kill -s CONT -- "-$pid" 2>/dev/null
        echo "$name: SIG$1"
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
    if [ -n "$(running)" ]; then echo "error: streams are running ($(running | tr '\n' ' ')); stop them first" >&2; exit 2; fi
    rm -rf "$STREAMS_DIR/pkg"
    python -m pip install --quiet --disable-pip-version-check --root-user-action=ignore --no-deps --no-build-isolation --target "$STREAMS_DIR/pkg" "$REPO" \
        || { echo "error: could not install a frozen copy of the package into $STREAMS_DIR/pkg" >&2; exit 1; }
    # the copy has no .git: stamp the checkout's commit into it, so that every record it writes names it
    PYTHONPATH=$STREAMS_DIR/pkg python -c "import sys; from pathlib import Path; from synbench.provenance import REVISION_FILE, source_commit
import synbench; (Path(synbench.__file__).parent / REVISION_FILE).write_text((source_commit(Path(sys.argv[1])) or '') + '\n')" "$REPO" \
        || { echo "error: could not stamp the source revision into $STREAMS_DIR/pkg" >&2; exit 1; }
    preload=""
    if synbench blas 2>/dev/null | grep -q "generic kernels"; then
        preload=$(synbench blas --build-shim | sed -n 's/^built \([^;]*\);.*/\1/p')
    fi
    : > "$PIDS"
    for name in "${streams[@]}"; do
        log=$STREAMS_DIR/logs/$name.log
        echo "=== start $(date -u +%FT%TZ) on $(cat "$STREAMS_DIR/pkg/synbench/SOURCE_REVISION" 2>/dev/null)${preload:+ with the MKL shim}" >> "$log"
        LD_PRELOAD=$preload PYTHONPATH=$STREAMS_DIR/pkg SYNBENCH_THREADS=1 setsid nohup "benchmarks/reference_runs_$name.sh" >> "$log" 2>&1 &
        echo "$name $!" >> "$PIDS"
        echo "$name: started (pid $!, log $log)"
    done
    ;;
pause) signal_all STOP ;;
resume) signal_all CONT ;;
stop) signal_all TERM ;;
status)
    for log in "$STREAMS_DIR"/logs/*.log; do
        [ -f "$log" ] || continue
        printf '%s: %s\n' "$(basename "$log" .log)" "$(tail -c 2000 "$log" | tr '\r' '\n' | grep -v '^$' | tail -n 1)"
    done
    running | sed 's/^/running: /'
    ;;
*) echo "usage: $0 start [STREAM ...] | pause | resume | stop | status" >&2; exit 2 ;;
esac
