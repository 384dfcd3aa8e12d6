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
bench_settings open_loop
bin=target/release
cleanup() {
    stop_server
    reset_bench
}
trap cleanup EXIT

mkdir -p "$OUT"
for run in $(seq 1 "$RUNS"); do
    reset_bench
    APP_LISTEN=$LISTEN "$bin/$BIN" >"$OUT/run-$run-$BIN.log" 2>&1 &
    pid=$!
    wait_ready "$LISTEN"
    "$bin/loadgen" --out "$OUT/run-$run" send --url "http://$LISTEN" --clients "$CLIENTS" \
        --rate "$RATE" --duration "$DURATION" >"$OUT/run-$run-send.txt" 2>&1
    stop_server
    "$bin/loadgen" --out "$OUT/run-$run" baseline-pg --clients 64 --rate "$RATE" \
        --duration "$DURATION" >"$OUT/run-$run-baseline-pg.txt" 2>&1
    api=$(grep '^open' "$OUT/run-$run-send.txt")
    pg=$(sed -n '/^----/{n;p}' "$OUT/run-$run-baseline-pg.txt" | head -1)
    slow=$(grep -c 'slow group commit' "$OUT/run-$run-$BIN.log" || true)
    echo "run $run  $BIN: $api  slow group commits: $slow"
    echo "run $run  raw PostgreSQL: $pg"
done
