#!/usr/bin/env bash
# The OpenAPI document is the truth: Schemathesis (PyPI) against a real single-node platform.
#
#   bash scripts/api-fuzz.sh            # the short tier (scripts/test.sh runs it)
#   bash scripts/api-fuzz.sh --full     # the full tier: many more cases per operation
#
# 1. Installs Schemathesis (pinned) into a virtualenv outside the clone
#    (${CHAT_CACHE_DIR:-/var/tmp/chat-cache}/schemathesis-<version>), once.
# 2. Starts `chat` (CHAT_BIN, or built with cargo, honouring CARGO_TARGET_DIR) on its own
#    database, stream, subject prefix, data directory and free loopback port (scripts/api-fuzz.py).
# 3. Registers two people, a room with a message, and runs `st run` over every operation with
#    a valid token and every check (scripts/api-fuzz.toml says which answers each check
#    accepts, and why). Any failure of any check fails the script.
# 4. Cleans up: stops the platform, drops the database, deletes the stream.
#
# API_FUZZ_EXAMPLES overrides the cases per operation (short tier 15, full tier 300).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VERSION=4.32.5
CACHE="${CHAT_CACHE_DIR:-/var/tmp/chat-cache}"
VENV="$CACHE/schemathesis-$VERSION"

log() { printf 'api-fuzz: %s\n' "$*" >&2; }
die() {
    printf 'api-fuzz: ERROR: %s\n' "$*" >&2
    exit 1
}

command -v python3 >/dev/null 2>&1 || die "python3 is needed (apt-get install python3 python3-venv)"
# A virtualenv cannot move (its scripts name their interpreter), so it is built in place and
# marked complete last; an interrupted install is started again.
if [[ ! -e $VENV/.complete ]]; then
    log "installing schemathesis $VERSION into $VENV"
    mkdir -p "$CACHE"
    rm -rf "$VENV"
    python3 -m venv "$VENV" ||
        die "python3 -m venv failed (Debian: apt-get install python3-venv)"
    "$VENV/bin/pip" install -q --disable-pip-version-check "schemathesis==$VERSION" </dev/null ||
        die "pip install schemathesis==$VERSION failed (is PyPI reachable?)"
    touch "$VENV/.complete"
fi

bash "$ROOT/scripts/services.sh" || die "PostgreSQL and NATS are not available (scripts/services.sh)"
exec "$VENV/bin/python" "$ROOT/scripts/api-fuzz.py" "$VENV/bin/st" "$@"
