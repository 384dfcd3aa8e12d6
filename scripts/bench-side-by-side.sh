#!/usr/bin/env bash
# Live fan-out side by side with Centrifugo (issue #16) in one sitting: for each round and
# each scenario ("rooms:rate", as scripts/bench-fanout.sh), the platform on a freshly
# started `chat` (scripts/bench-fanout.sh), then Centrifugo freshly started
# (scripts/centrifugo.sh), so the two alternate and share whatever the machine is doing.
# Prints one line per run and, at the end, the medians per scenario and system; each run's
# JSON, plots and logs go to OUT/<system>-rooms-of-N-<round>.
#
#   cargo build --release -p platform -p loadgen
#   scripts/bench-side-by-side.sh   # SCENARIOS="100:1000 10:1000 1:100" RUNS=3 BIN=target/release OUT=bench-results/side-by-side
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
SCENARIOS=${SCENARIOS:-100:1000 10:1000 1:100}
RUNS=${RUNS:-3}
BIN=${BIN:-target/release}
OUT=${OUT:-bench-results/side-by-side}
DURATION=${DURATION:-10s}
CENTRIFUGO=$(bash scripts/centrifugo.sh)
mkdir -p "$OUT"

cf_dir=
cleanup() {
    if [[ -n $cf_dir ]]; then bash scripts/centrifugo.sh stop "$cf_dir" || true; fi
}
trap cleanup EXIT

for run in $(seq 1 "$RUNS"); do
    for scenario in $SCENARIOS; do
        rooms=${scenario%:*} rate=${scenario#*:}
        name="rooms-of-$((1000 / rooms))-$run"
        # The platform: bench-fanout.sh names its runs rooms-of-N-1.
        SCENARIOS=$scenario RUNS=1 BIN=$BIN DURATION=$DURATION OUT="$OUT/platform-tmp" \
            bash scripts/bench-fanout.sh >/dev/null
        rm -rf "$OUT/platform-$name"
        mv "$OUT/platform-tmp/rooms-of-$((1000 / rooms))-1" "$OUT/platform-$name"
        mv "$OUT/platform-tmp/rooms-of-$((1000 / rooms))-1.txt" "$OUT/platform-$name.txt"
        rm -rf "$OUT/platform-tmp"
        # Centrifugo, started afresh for the run like the platform.
        eval "$(CENTRIFUGO_BIN=$CENTRIFUGO bash scripts/centrifugo.sh start)"
        cf_dir=$CENTRIFUGO_DIR
        "$BIN/loadgen" --out "$OUT/centrifugo-$name" fanout --target centrifugo \
            --url "$CENTRIFUGO_URL" --api-key "$CENTRIFUGO_API_KEY" \
            --hmac-secret "$CENTRIFUGO_HMAC_SECRET" --server-pid "$CENTRIFUGO_PID" \
            --connections 1000 --rooms "$rooms" --rate "$rate" --duration "$DURATION" \
            >"$OUT/centrifugo-$name.txt" 2>&1
        bash scripts/centrifugo.sh stop "$cf_dir"
        cf_dir=
        python3 - "$OUT" "$name" <<'PY'
import json, sys
out, name = sys.argv[1:]
for system, file in (("platform", "fanout"), ("centrifugo", "fanout-centrifugo")):
    r = json.load(open(f"{out}/{system}-{name}/{file}.json"))
    l, c = r["latency_accept_to_socket"], r["cpu"]
    stack = r.get("stack_cpu") or r["server_cpu"]
    print(f"{name:>18} {system:>10}: accept→socket p50 {l['p50_ms']:7.2f} p99 {l['p99_ms']:7.2f} ms"
          f"  CPU/delivery {r['server_cpu']['us_per_delivery']:6.1f} µs (stack {stack['us_per_delivery']:6.1f})"
          f"  missing {r['deliveries_missing']}  busy {c['busy_cores']:.2f}/2 (loadgen {c['by_process'].get('loadgen', 0):.2f})")
PY
    done
done

python3 - "$OUT" "$RUNS" $SCENARIOS <<'PY'
import json, statistics, sys
out, runs, scenarios = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
print("\n== medians over", runs, "round(s): accept→socket p50 / p99 ms, server CPU µs per delivery (platform: + PostgreSQL, NATS)")
for s in scenarios:
    rooms, rate = s.split(":")
    size = 1000 // int(rooms)
    for system, file in (("platform", "fanout"), ("centrifugo", "fanout-centrifugo")):
        rs = [json.load(open(f"{out}/{system}-rooms-of-{size}-{i}/{file}.json")) for i in range(1, runs + 1)]
        med = lambda f: statistics.median(f(r) for r in rs)
        p99s = ", ".join(f"{r['latency_accept_to_socket']['p99_ms']:.1f}" for r in rs)
        stack = med(lambda r: (r.get("stack_cpu") or r["server_cpu"])["us_per_delivery"])
        print(f"rooms of {size:>4} at {rate:>4} msgs/s {system:>10}: p50 {med(lambda r: r['latency_accept_to_socket']['p50_ms']):6.2f}"
              f"  p99 {med(lambda r: r['latency_accept_to_socket']['p99_ms']):6.1f} ({p99s})"
              f"  CPU {med(lambda r: r['server_cpu']['us_per_delivery']):6.1f} µs ({stack:.1f})")
PY
