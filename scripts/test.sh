#!/usr/bin/env bash
# Run every check and test of the workspace (the README's one test command):
#
#   bash scripts/test.sh
#
# Steps: services (PostgreSQL + NATS JetStream, OpenSearch for the search contract suite,
# SeaweedFS for the attachment tests on S3, ORY Hydra for the single sign-on tests),
# `events` purity, rustfmt,
# clippy (-D warnings), tests (cargo-nextest when installed, else cargo test),
# and doctests (nextest does not run them); the fault battery's short tier (scripts/chaos.sh);
# the dashboards and alert rules against a real
# Prometheus (scripts/prometheus-check.sh; installs Debian's prometheus when missing); the
# OpenAPI document against the platform (scripts/api-fuzz.sh: Schemathesis from PyPI); then
# the web client's unit tests (Vitest) and
# its browser tests (real platform + Debian's Chromium, installed when missing; see
# scripts/web.sh). Honours CARGO_TARGET_DIR.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

step() { printf '\n==> %s\n' "$*"; }
fail() {
    printf '\ntest.sh: FAILED: %s\n' "$*" >&2
    exit 1
}

echo "test.sh: workspace $ROOT, target dir ${CARGO_TARGET_DIR:-$ROOT/target}"

step "services: PostgreSQL and NATS JetStream (scripts/services.sh)"
bash "$ROOT/scripts/services.sh"

step "nats-server: a current one for the tests that run their own (scripts/nats-server.sh)"
NATS_SERVER=$(bash "$ROOT/scripts/nats-server.sh") || fail "no nats-server for the tests that run their own (scripts/nats-server.sh)"
export NATS_SERVER
echo "NATS_SERVER=$NATS_SERVER"

step "search: an OpenSearch node for the search contract suite (scripts/opensearch.sh)"
if ! bash "$ROOT/scripts/opensearch.sh"; then
    # Loud, but the rest of the suite still runs: the OpenSearch half of the contract suite
    # then prints "OpenSearch: not run" instead of passing.
    printf '\n!!! OpenSearch: not run: scripts/opensearch.sh could not start a node (see above).\n' >&2
    printf '!!! The OpenSearch half of the search contract suite is skipped, not passed.\n\n' >&2
    export CHAT_OPENSEARCH=skip
fi

step "blobs: a SeaweedFS S3 server for the attachment tests (scripts/seaweedfs.sh)"
if seaweed_env=$(bash "$ROOT/scripts/seaweedfs.sh" start); then
    eval "$seaweed_env"
    echo "S3_ENDPOINT=$S3_ENDPOINT (SeaweedFS pid $SEAWEEDFS_PID)"
else
    # Loud, but the rest still runs: the S3 attachment tests then print "NOT RUN".
    printf '\n!!! SeaweedFS: not run: scripts/seaweedfs.sh could not start it (see above).\n' >&2
    printf '!!! The attachment tests on S3 are skipped, not passed.\n\n' >&2
fi

step "sso: an ORY Hydra OpenID Connect provider for the single sign-on tests (scripts/hydra.sh)"
if hydra_env=$(bash "$ROOT/scripts/hydra.sh" start); then
    eval "$hydra_env"
    echo "OIDC_ISSUER=$OIDC_ISSUER (Hydra pid $HYDRA_PID)"
else
    # Loud, but the rest still runs: the single sign-on tests then print "NOT RUN".
    printf '\n!!! Hydra: not run: scripts/hydra.sh could not start it (see above).\n' >&2
    printf '!!! The single sign-on tests are skipped, not passed.\n\n' >&2
fi
# Whatever was started above is stopped on the way out.
stop_servers() {
    if [[ -n "${SEAWEEDFS_DIR:-}" ]]; then
        bash "$ROOT/scripts/seaweedfs.sh" stop "$SEAWEEDFS_DIR" >/dev/null 2>&1 || true
    fi
    if [[ -n "${HYDRA_DIR:-}" ]]; then
        bash "$ROOT/scripts/hydra.sh" stop "$HYDRA_DIR" >/dev/null 2>&1 || true
    fi
}
trap stop_servers EXIT

# The rebuild --all acceptance test replays 50,000 events by default (the acceptance run);
# the suite runs it over 10,000 to keep within its time budget.
export CHAT_REBUILD_EVENTS="${CHAT_REBUILD_EVENTS:-10000}"

step "purity: the events crate must not depend on axum, sqlx, async-nats or tokio"
tree=$(cargo tree -p events -e normal --prefix none --format '{p}') ||
    fail "cargo tree -p events failed"
impure=$(printf '%s\n' "$tree" | grep -E '^(axum|sqlx|async-nats|tokio)([-_][A-Za-z0-9_-]+)? ' | sed 's/ (\*)$//' | sort -u || true)
if [[ -n $impure ]]; then
    printf '%s\n' "$impure" >&2
    fail "the events crate must stay pure (no I/O or runtime crates), but its normal dependencies include the crates above (see: cargo tree -p events -e normal -i <crate>)"
fi
echo "events is pure"

step "format: cargo fmt --all -- --check"
cargo fmt --version >/dev/null 2>&1 || fail "rustfmt is not installed (rustup component add rustfmt)"
cargo fmt --all -- --check || fail "code is not formatted: run 'cargo fmt --all'"

step "lint: cargo clippy --workspace --all-targets --all-features -- -D warnings"
cargo clippy --version >/dev/null 2>&1 || fail "clippy is not installed (rustup component add clippy)"
cargo clippy --workspace --all-targets --all-features -- -D warnings || fail "clippy reported problems"

if cargo nextest --version >/dev/null 2>&1; then
    step "tests: cargo nextest run --workspace --all-features --no-fail-fast"
    cargo nextest run --workspace --all-features --no-fail-fast || fail "tests failed"
    step "doctests: cargo test --workspace --doc --all-features"
    cargo test --workspace --doc --all-features || fail "doctests failed"
else
    step "tests: cargo test --workspace --all-features --no-fail-fast (cargo-nextest not installed)"
    # Every test binary runs even after one failed, so one failure does not hide others.
    cargo test --workspace --all-features --no-fail-fast || fail "tests failed"
fi

step "reliability: the fault battery, short tier (scripts/chaos.sh: R1-R9 against its own PostgreSQL, NATS and roles)"
bash "$ROOT/scripts/chaos.sh" ||
    fail "the fault battery broke a promise (bash scripts/chaos.sh [SCENARIO]; a failed scenario's logs are in \${TMPDIR:-/tmp}/chaos-*)"

# The binary as the tests above built it (a no-op build; see platform_bin in scripts/web.sh),
# for the Prometheus check and the browser tests.
chat_bin=$(bash "$ROOT/scripts/web.sh" platform-bin --reuse-tests) || fail "the platform binary (chat) did not build"

step "observability: dashboards and alert rules against a real Prometheus (scripts/prometheus-check.sh)"
CHAT_BIN="$chat_bin" bash "$ROOT/scripts/prometheus-check.sh" ||
    fail "the dashboards or alert rules failed against a real Prometheus (bash scripts/prometheus-check.sh)"

step "api: the OpenAPI document against the running platform (scripts/api-fuzz.sh: Schemathesis, short tier)"
CHAT_BIN="$chat_bin" bash "$ROOT/scripts/api-fuzz.sh" ||
    fail "Schemathesis found answers the OpenAPI document does not allow (bash scripts/api-fuzz.sh)"

step "web: unit tests (scripts/web.sh test: npm test in web/)"
bash "$ROOT/scripts/web.sh" test || fail "the web client's unit tests failed (cd web && npm test)"

step "web: browser tests (Chromium, client build, the platform binary, then scripts/web.sh e2e: npm run e2e)"
bash "$ROOT/scripts/chromium.sh" || fail "Chromium is not available for the browser tests (scripts/chromium.sh)"
bash "$ROOT/scripts/web.sh" build || fail "the web client did not build (scripts/web.sh build)"
CHAT_BIN="$chat_bin" bash "$ROOT/scripts/web.sh" e2e ||
    fail "the browser tests failed (screenshots, platform logs and failure pictures in web/test-results/; rerun with: CHAT_BIN=$chat_bin bash scripts/web.sh e2e)"

printf '\ntest.sh: all steps passed\n'
