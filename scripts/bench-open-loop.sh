#!/usr/bin/env bash
# p99 at a fixed rate (issue 2's latency target): RUNS open-loop runs of `loadgen send --rate`
# against a freshly started write side, each followed by raw PostgreSQL one-row commits at
# the same rate (`loadgen baseline-pg --rate`), so every figure has its baseline from the
# same minute. Prints one line per run; JSON and plots go to OUT/run-N.
# Uses its own database and stream, dropped before each run: run it on a machine you
# benchmark on, with nothing else busy.
#
#   cargo build --release -p command-api -p platform -p loadgen
#   scripts/bench-open-loop.sh      # RATE=7000 RUNS=5 CLIENTS=512 BIN=command-api OUT=bench-results/open-loop
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/bench-lib.sh
RATE=${RATE:-7000}
RUNS=${RUNS:-5}
CLIENTS=${CLIENTS:-512}
BIN=${BIN:-command-api}          # or chat: the single node (command API, projector, query API)
OUT=${OUT:-bench-results/open-loop}
DURATION=${DURATION:-10s}
LISTEN=${LISTEN:-127.0.0.1:8180}
DB=chat_bench_open_loop
export APP_DATABASE_URL=postgres://postgres@127.0.0.1:5432/$DB
export APP_STREAM_NAME=BENCH_OPEN_LOOP APP_SUBJECT_PREFIX=benchopen
export APP_JWT_SECRET=bench-open-loop-secret-0123456789abcdef RUST_LOG=warn
# The load generator registers and sends as hundreds of users from one address.
export APP_RATE_LIMIT_ENABLED=false
bin=target/release
pid=
stop() {
    if [[ -n $pid ]]; then kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
    pid=
}
reset() {
    drop_database_and_stream "$DB" "$APP_STREAM_NAME"
}
cleanup() {
    stop
    reset
}
trap cleanup EXIT

mkdir -p "$OUT"
for run in $(seq 1 "$RUNS"); do
    reset
    APP_LISTEN=$LISTEN "$bin/$BIN" >"$OUT/run-$run-$BIN.log" 2>&1 &
    pid=$!
    wait_ready "$LISTEN"
    "$bin/loadgen" --out "$OUT/run-$run" send --url "http://$LISTEN" --clients "$CLIENTS" \
        --rate "$RATE" --duration "$DURATION" >"$OUT/run-$run-send.txt" 2>&1
    stop
    "$bin/loadgen" --out "$OUT/run-$run" baseline-pg --clients 64 --rate "$RATE" \
        --duration "$DURATION" >"$OUT/run-$run-baseline-pg.txt" 2>&1
    api=$(grep '^open' "$OUT/run-$run-send.txt")
    pg=$(sed -n '/^----/{n;p}' "$OUT/run-$run-baseline-pg.txt" | head -1)
    slow=$(grep -c 'slow group commit' "$OUT/run-$run-$BIN.log" || true)
    echo "run $run  $BIN: $api  slow group commits: $slow"
    echo "run $run  raw PostgreSQL: $pg"
done
