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
DB=chat_bench_sealing
export APP_DATABASE_URL=postgres://postgres@127.0.0.1:5432/$DB
export APP_STREAM_NAME=BENCH_SEALING APP_SUBJECT_PREFIX=benchseal
export APP_JWT_SECRET=bench-sealing-secret-0123456789abcdef RUST_LOG=warn
# The load generator registers and sends as hundreds of users from one address.
export APP_RATE_LIMIT_ENABLED=false
bin=${CARGO_TARGET_DIR:-target}/release
pid=
stop() {
    if [[ -n $pid ]]; then kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
    pid=
}
cleanup() {
    stop
    drop_database_and_stream "$DB" "$APP_STREAM_NAME"
}
trap cleanup EXIT

mkdir -p "$OUT"
for run in $(seq 1 "$RUNS"); do
    for seal in ${ORDER:-true false}; do
        drop_database_and_stream "$DB" "$APP_STREAM_NAME"
        APP_SEAL_PERSONAL_DATA=$seal APP_LISTEN=$LISTEN "$bin/command-api" \
            >"$OUT/$seal-$run-command-api.log" 2>&1 &
        pid=$!
        wait_ready "$LISTEN"
        "$bin/loadgen" --out "$OUT/$seal-$run" send --url "http://$LISTEN" \
            --clients "$CLIENTS" --duration "$DURATION" >"$OUT/$seal-$run-send.txt" 2>&1
        stop
        echo "run $run  sealing $seal:"
        grep -E '^closed' "$OUT/$seal-$run-send.txt" | sed 's/^/    /' || cat "$OUT/$seal-$run-send.txt"
    done
    "$bin/loadgen" --out "$OUT/pg-$run" baseline-pg --clients 64 \
        --duration "$DURATION" >"$OUT/pg-$run-baseline.txt" 2>&1
    echo "run $run  raw PostgreSQL (64 clients):"
    sed -n '/^----/{n;p}' "$OUT/pg-$run-baseline.txt" | head -1 | sed 's/^/    /'
done
