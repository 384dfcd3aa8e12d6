#!/usr/bin/env bash
# Print the path of a current nats-server, installing it once when needed:
#
#   bash scripts/nats-server.sh
#
# - The pinned version (below) is built with `go install` from the Go module proxy into
#   ${CHAT_CACHE_DIR:-/var/tmp/chat-cache}/go-bin (outside the clone; ~2 min once, then
#   nothing). A lock makes concurrent callers wait for one build.
# - Why not Debian's package: it ships nats-server 2.9.10 (2022), whose file store loses
#   a stream deleted and re-created under the same name ("error opening msg block file
#   1.blk: no such file or directory"): the relay re-creates a deleted stream and could
#   never fill it again (found by the chaos battery, R3b; see RELIABILITY.md).
# - Without Go (or when the build fails), Debian's /usr/sbin/nats-server is printed
#   instead, with a loud warning on stderr; nothing is printed and the exit status is 1
#   when there is no nats-server at all.
# - NATS_SERVER, when set, is printed as it is (an operator's choice wins).
set -euo pipefail

VERSION=v2.15.2
CACHE="${CHAT_CACHE_DIR:-/var/tmp/chat-cache}"
GOBIN_DIR="$CACHE/go-bin"
BIN="$GOBIN_DIR/nats-server-$VERSION"
DEBIAN=/usr/sbin/nats-server
TIMEOUT="${NATS_INSTALL_TIMEOUT:-600}"

log() { printf 'nats-server.sh: %s\n' "$*" >&2; }

if [[ -n ${NATS_SERVER:-} ]]; then
    printf '%s\n' "$NATS_SERVER"
    exit 0
fi

fallback() {
    if [[ -x $DEBIAN ]]; then
        log "!!! WARNING: $*; using Debian's $DEBIAN ($("$DEBIAN" --version 2>/dev/null || echo '?')),"
        log "!!! whose file store cannot re-create a deleted stream (R3b in RELIABILITY.md)."
        printf '%s\n' "$DEBIAN"
        exit 0
    fi
    log "ERROR: $*, and there is no $DEBIAN either (apt-get install nats-server)"
    exit 1
}

if [[ ! -x $BIN ]]; then
    command -v go >/dev/null 2>&1 || fallback "go is not installed, so nats-server $VERSION cannot be built"
    mkdir -p "$GOBIN_DIR"
    exec 9>"$GOBIN_DIR/.nats-server.lock"
    flock -w "$TIMEOUT" 9 || fallback "another build of nats-server held the lock for ${TIMEOUT}s"
    if [[ ! -x $BIN ]]; then
        log "building nats-server $VERSION with go install (once; cached in $GOBIN_DIR)"
        tmp=$(mktemp -d "$GOBIN_DIR/build.XXXXXX")
        if GOBIN="$tmp" GOPATH="${GOPATH:-$CACHE/gopath}" GOFLAGS=-modcacherw \
            timeout "$TIMEOUT" go install "github.com/nats-io/nats-server/v2@$VERSION" >&2; then
            mv "$tmp/nats-server" "$BIN"
            rm -rf "$tmp"
        else
            rm -rf "$tmp"
            fallback "go install github.com/nats-io/nats-server/v2@$VERSION failed"
        fi
    fi
fi
printf '%s\n' "$BIN"
