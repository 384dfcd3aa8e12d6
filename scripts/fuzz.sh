#!/usr/bin/env bash
# S4's long runs (RELIABILITY.md): the generated-input properties of the decoders, run for
# a fixed time each instead of the suite's 256 cases per property. Proptest draws a new
# random seed per run, so the runs add up to that many distinct inputs.
#
#   bash scripts/fuzz.sh                 # 10 minutes per target, the targets side by side
#   bash scripts/fuzz.sh --minutes 1
#
# Targets: the request-value and stored-event decoders (events/tests/properties.rs) and
# the WebSocket frame decoder (query-api/src/ws/protocol.rs). Release builds; honours
# CARGO_TARGET_DIR. A failing case is printed by proptest with its minimal input, and
# the script exits 1.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

minutes=10
if [[ ${1:-} == --minutes ]]; then
    minutes=${2:?--minutes needs a number}
fi
# Cases per property and run: a run takes a few seconds, so a failure is reported soon.
cases=${FUZZ_CASES_PER_RUN:-20000}

# The test executable of `cargo test <args>`, built in release.
executable() {
    cargo test --release --no-run --message-format=json "$@" 2>/dev/null |
        python3 -c '
import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["test"]:
        print(m["executable"])
'
}

echo "fuzz.sh: building the targets (release)"
cargo test --release --no-run --quiet -p events --test properties -p query-api --lib
events_bin=$(executable -p events --test properties)
frames_bin=$(executable -p query-api --lib)
[[ -x $events_bin && -x $frames_bin ]] || {
    echo "fuzz.sh: could not find the test executables" >&2
    exit 1
}

# run NAME SECONDS EXECUTABLE FILTER: runs the properties matching FILTER until SECONDS
# have passed; prints the runs and cases.
run() {
    local name=$1 seconds=$2 bin=$3 filter=$4
    local until=$((SECONDS + seconds)) runs=0 properties
    properties=$("$bin" --list "$filter" 2>/dev/null | grep -c ': test$')
    while ((SECONDS < until)); do
        if ! PROPTEST_CASES=$cases "$bin" --quiet "$filter" >"/tmp/fuzz-$name.log" 2>&1; then
            cat "/tmp/fuzz-$name.log" >&2
            echo "fuzz.sh: $name FAILED after $runs runs" >&2
            return 1
        fi
        runs=$((runs + 1))
    done
    echo "fuzz.sh: $name: $runs runs × $properties properties × $cases cases" \
        "= $((runs * properties * cases)) cases in ${seconds} s, 0 failures"
}

seconds=$((minutes * 60))
run decoders "$seconds" "$events_bin" "" &
decoders=$!
run frames "$seconds" "$frames_bin" "ws::protocol::tests::any_" &
frames=$!
status=0
wait "$decoders" || status=1
wait "$frames" || status=1
exit "$status"
