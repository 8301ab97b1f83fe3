#!/usr/bin/env bash
# The reference job streams in the background: start, pause, resume, stop, status.
#
#   SYNBENCH_DATA_DIR=../shared/data benchmarks/streams.sh start [baselines neural transfer]
#   benchmarks/streams.sh pause [STREAM ...]   # SIGSTOP (every stream by default): a benchmark or the test suite gets the cores
#   benchmarks/streams.sh resume [STREAM ...]  # SIGCONT
#   benchmarks/streams.sh stop [STREAM ...]    # SIGTERM: jobs in flight end, their locks are removed; their
#                                              # finished search trials stay in jobs/.search-*.json
#   benchmarks/streams.sh start STREAM         # while others run: joins them on their frozen copy
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

signal_all() {  # SIG [NAME ...]: each stream is a process group of its own (setsid): the signal reaches every job in it
    local sig=$1; shift
    running | while read -r name pid; do
        [ $# -eq 0 ] || [[ " $* " == *" $name "* ]] || continue
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
        if running | grep -q "^$name "; then echo "error: stream '$name' is running; stop it first" >&2; exit 2; fi
    done
    # the package (PYTHONPATH=pkg) first, so that a broken or foreign install of synbench cannot answer
    frozen() { PYTHONPATH=$STREAMS_DIR/pkg python -m synbench.cli "$@"; }
    if [ -n "$(running)" ]; then
        # streams still running import from the frozen copy as their jobs start: it must not change
        # under them, so the new streams join it (restart every stream to run newer code)
        [ -d "$STREAMS_DIR/pkg/synbench" ] || { echo "error: streams are running but $STREAMS_DIR/pkg is gone" >&2; exit 1; }
        echo "joining the running streams ($(running | cut -d' ' -f1 | tr '\n' ' ')) on their frozen copy, revision $(cat "$STREAMS_DIR/pkg/synbench/SOURCE_REVISION" 2>/dev/null)"
    else
        rm -rf "$STREAMS_DIR/pkg"
        python -m pip install --quiet --disable-pip-version-check --root-user-action=ignore --no-deps --no-build-isolation --target "$STREAMS_DIR/pkg" "$REPO" \
            || { echo "error: could not install a frozen copy of the package into $STREAMS_DIR/pkg" >&2; exit 1; }
        # the copy has no .git: stamp the checkout's commit into it, so that every record it writes names it
        PYTHONPATH=$STREAMS_DIR/pkg python -c "import sys; from pathlib import Path; from synbench.provenance import REVISION_FILE, source_commit
import synbench; (Path(synbench.__file__).parent / REVISION_FILE).write_text((source_commit(Path(sys.argv[1])) or '') + '\n')" "$REPO" \
            || { echo "error: could not stamp the source revision into $STREAMS_DIR/pkg" >&2; exit 1; }
        : > "$PIDS"
    fi
    preload=""
    blas=$(frozen blas 2>&1) || { echo "error: the frozen copy cannot run 'synbench blas': $blas" >&2; exit 1; }
    if grep -q "generic kernels" <<< "$blas"; then
        preload=$(frozen blas --build-shim | sed -n 's/^built \([^;]*\);.*/\1/p')
        [ -n "$preload" ] || { echo "error: MKL runs its generic kernels here and the shim could not be built" >&2; exit 1; }
    fi
    for name in "${streams[@]}"; do
        log=$STREAMS_DIR/logs/$name.log
        echo "=== start $(date -u +%FT%TZ) on $(cat "$STREAMS_DIR/pkg/synbench/SOURCE_REVISION" 2>/dev/null)${preload:+ with the MKL shim}" >> "$log"
        LD_PRELOAD=$preload PYTHONPATH=$STREAMS_DIR/pkg SYNBENCH_THREADS=1 setsid nohup "benchmarks/reference_runs_$name.sh" >> "$log" 2>&1 &
        grep -v "^$name " "$PIDS" > "$PIDS.new" 2>/dev/null; echo "$name $!" >> "$PIDS.new"; mv "$PIDS.new" "$PIDS"
        echo "$name: started (pid $!, log $log)${preload:+ with the MKL shim}"
    done
    ;;
pause) shift; signal_all STOP "$@" ;;
resume) shift; signal_all CONT "$@" ;;
stop) shift; signal_all TERM "$@" ;;
status)
    for log in "$STREAMS_DIR"/logs/*.log; do
        [ -f "$log" ] || continue
        printf '%s: %s\n' "$(basename "$log" .log)" "$(tail -c 2000 "$log" | tr '\r' '\n' | grep -v '^$' | tail -n 1)"
    done
    running | sed 's/^/running: /'
    ;;
*) echo "usage: $0 start|pause|resume|stop [STREAM ...] | status" >&2; exit 2 ;;
esac
