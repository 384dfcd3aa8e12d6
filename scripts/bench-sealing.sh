#!/usr/bin/env bash
# What sealing personal data costs a send (issue #18, ADR 23): closed-loop `loadgen send`
# against a freshly started write side, runs alternating APP_SEAL_PERSONAL_DATA=true and
# false, each pair followed by raw PostgreSQL one-row commits (`loadgen baseline-pg`) so the
# figures have a baseline from the same minutes. Prints one line per run; JSON and plots go
# to OUT/<mode>-N. Uses its own database and stream, dropped before each run.
#
#   cargo build --release -p command-api -p loadgen
#   scripts/bench-sealing.sh        # RUNS=3 CLIENTS=64,256 DURATION=10s ORDER="true false" OUT=bench-results/sealing
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/bench-lib.sh
RUNS=${RUNS:-3}
CLIENTS=${CLIENTS:-64,256}
OUT=${OUT:-bench-results/sealing}
DURATION=${DURATION:-10s}
LISTEN=${LISTEN:-127.0.0.1:8181}
bench_settings sealing
bin=${CARGO_TARGET_DIR:-target}/release
cleanup() {
    stop_server
    reset_bench
}
trap cleanup EXIT

mkdir -p "$OUT"
for run in $(seq 1 "$RUNS"); do
    for seal in ${ORDER:-true false}; do
        reset_bench
        APP_SEAL_PERSONAL_DATA=$seal APP_LISTEN=$LISTEN "$bin/command-api" \
            >"$OUT/$seal-$run-command-api.log" 2>&1 &
        pid=$!
        wait_ready "$LISTEN"
        "$bin/loadgen" --out "$OUT/$seal-$run" send --url "http://$LISTEN" \
            --clients "$CLIENTS" --duration "$DURATION" >"$OUT/$seal-$run-send.txt" 2>&1
        stop_server
        echo "run $run  sealing $seal:"
        grep -E '^closed' "$OUT/$seal-$run-send.txt" | sed 's/^/    /' || cat "$OUT/$seal-$run-send.txt"
    done
    "$bin/loadgen" --out "$OUT/pg-$run" baseline-pg --clients 64 \
        --duration "$DURATION" >"$OUT/pg-$run-baseline.txt" 2>&1
    echo "run $run  raw PostgreSQL (64 clients):"
    sed -n '/^----/{n;p}' "$OUT/pg-$run-baseline.txt" | head -1 | sed 's/^/    /'
done
