#!/usr/bin/env bash
# The fault battery (RELIABILITY.md): every scenario R1-R9 against processes it owns
# (its own PostgreSQL cluster, nats-server and platform roles), judged by an oracle
# replayed from the PostgreSQL log.
#
#   bash scripts/chaos.sh                            # the short tier (scripts/test.sh runs it)
#   bash scripts/chaos.sh --release --tier full      # the full tier: RELIABILITY.md's figures
#   bash scripts/chaos.sh r4-postgres                # one scenario (see `chaos --help`)
#
# Needs the PostgreSQL server binaries (initdb, pg_ctl; scripts/services.sh installs
# them) and a nats-server (scripts/nats-server.sh). Builds the role binaries and the
# harness (debug builds, or release ones with --release as the first argument: the full
# tier measures what operators run), then runs it. Honours CARGO_TARGET_DIR. A failed
# scenario keeps its processes' logs in $TMPDIR/chaos-*.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

NATS_SERVER=$(bash "$ROOT/scripts/nats-server.sh") || {
    echo "chaos.sh: no nats-server (see scripts/nats-server.sh)" >&2
    exit 1
}
export NATS_SERVER

profile=debug
build=()
if [[ ${1:-} == --release ]]; then
    shift
    profile=release
    build=(--release)
fi
cargo build --quiet "${build[@]}" -p chaos -p command-api -p projector -p query-api --bins
target="${CARGO_TARGET_DIR:-$ROOT/target}"
exec "$target/$profile/chaos" "$@"
