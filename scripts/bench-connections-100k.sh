#!/usr/bin/env bash
# 100,000 idle WebSockets on one machine, with memory per connection (issue 3's benchmark).
#
# One process may open at most `ulimit -Hn` files (20,000 on the benchmark machine), so the
# query tier runs as N query-api processes, the scale-out deployment of the README, each
# holding TOTAL/N sockets; one loadgen per process measures that process's RSS.
# Uses its own database and stream, dropped at the start: run it on a machine you benchmark on.
#
#   cargo build --release -p platform -p loadgen -p command-api -p projector -p query-api
#   scripts/bench-connections-100k.sh            # N=6 TOTAL=100000 HOLD=30s OUT=bench-results/connections-100k
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/bench-lib.sh
N=${N:-6}
TOTAL=${TOTAL:-100000}
HOLD=${HOLD:-30s}
OUT=${OUT:-bench-results/connections-100k}
PER=$(((TOTAL + N - 1) / N))
DB=chat_bench_connections
export APP_DATABASE_URL=postgres://postgres@127.0.0.1:5432/$DB
export APP_STREAM_NAME=BENCH_CONNECTIONS APP_SUBJECT_PREFIX=benchconn
export APP_JWT_SECRET=bench-connections-secret-0123456789abcdef RUST_LOG=warn
# The load generator registers thousands of users from one address.
export APP_RATE_LIMIT_ENABLED=false
bin=target/release
pids=()
cleanup() {
    kill "${pids[@]}" 2>/dev/null || true
    sleep 1
    drop_database_and_stream "$DB" "$APP_STREAM_NAME" 2>/dev/null || true
}
trap cleanup EXIT

drop_database_and_stream "$DB" "$APP_STREAM_NAME"
APP_LISTEN=127.0.0.1:8080 "$bin/command-api" >/tmp/bench-command-api.log 2>&1 &
pids+=($!)
wait_ready 127.0.0.1:8080
APP_LISTEN=127.0.0.1:8090 "$bin/projector" >/tmp/bench-projector.log 2>&1 &
pids+=($!)
query=()
for i in $(seq 0 $((N - 1))); do
    APP_LISTEN=127.0.0.1:$((8091 + i)) APP_DB_MAX_CONNECTIONS=4 "$bin/query-api" >"/tmp/bench-query-api-$i.log" 2>&1 &
    pids+=($!)
    query+=($!)
done
for i in $(seq 0 $((N - 1))); do wait_ready "127.0.0.1:$((8091 + i))"; done

mkdir -p "$OUT"
gens=()
for i in $(seq 0 $((N - 1))); do
    "$bin/loadgen" --out "$OUT/query-api-$i" connections --url http://127.0.0.1:8080 \
        --ws-url "http://127.0.0.1:$((8091 + i))" --pid "${query[$i]}" --connections "$PER" \
        --hold "$HOLD" --open-concurrency 64 --timeout 60s >"$OUT/query-api-$i.log" 2>&1 &
    gens+=($!)
done
# Count the sockets open at once, half way through the hold.
sleep 25
held=$(ss -tnH state established "( sport >= :8091 and sport < :$((8091 + N)) )" | wc -l)
wait "${gens[@]}"
echo "WebSockets established at once across $N query-api processes: $held"
for i in $(seq 0 $((N - 1))); do sed -n '/^----/{n;p}' "$OUT/query-api-$i.log" | head -1; done
