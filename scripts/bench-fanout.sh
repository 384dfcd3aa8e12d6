#!/usr/bin/env bash
# Live fan-out (issue #16): `loadgen fanout` against a freshly started single node (`chat`),
# 1,000 sockets, for each scenario in SCENARIOS ("rooms:rate", socket i in room i mod rooms):
# by default rooms of 10, 100 and 1,000 subscribers at 1,000 / 1,000 / 100 msgs/s. Prints
# loadgen's summary of each run; JSON and plots go to OUT/<scenario>-<run>.
# Uses its own database, stream and data directory, dropped before each run: run it on a
# machine you benchmark on, with nothing else busy. Extra environment (APP_BACKGROUND_NICE,
# say) reaches the server.
#
#   cargo build --release -p platform -p loadgen
#   scripts/bench-fanout.sh      # SCENARIOS="100:1000 10:1000 1:100" RUNS=1 BIN=target/release OUT=bench-results/fanout
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/bench-lib.sh
SCENARIOS=${SCENARIOS:-100:1000 10:1000 1:100}
RUNS=${RUNS:-1}
BIN=${BIN:-target/release}
OUT=${OUT:-bench-results/fanout}
DURATION=${DURATION:-10s}
LISTEN=${LISTEN:-127.0.0.1:8190}
bench_settings fanout
data=$(mktemp -d)
export APP_DATA_DIR=$data
reset() {
    reset_bench
    rm -rf "${data:?}"/*
}
cleanup() {
    stop_server
    reset
    rm -rf "$data"
}
trap cleanup EXIT

mkdir -p "$OUT"
for run in $(seq 1 "$RUNS"); do
    for scenario in $SCENARIOS; do
        rooms=${scenario%:*} rate=${scenario#*:}
        name="rooms-of-$((1000 / rooms))-$run"
        reset
        APP_LISTEN=$LISTEN "$BIN/chat" >"$OUT/$name-chat.log" 2>&1 &
        pid=$!
        wait_ready "$LISTEN"
        "$BIN/loadgen" --out "$OUT/$name" fanout --url "http://$LISTEN" --connections 1000 \
            --rooms "$rooms" --rate "$rate" --duration "$DURATION" --server-pid "$pid" \
            >"$OUT/$name.txt" 2>&1
        stop_server
        echo "== $name ($rooms rooms, $rate msgs/s)"
        sed -n "/delivery latency/,/^CPU.*postgres/p" "$OUT/$name.txt"
    done
done
