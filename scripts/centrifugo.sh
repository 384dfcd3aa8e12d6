#!/usr/bin/env bash
# Centrifugo for the side-by-side fan-out benchmark (issue #16; `loadgen fanout --target centrifugo`):
#
#   bash scripts/centrifugo.sh                 # print the path of the binary (installing it once)
#   eval "$(bash scripts/centrifugo.sh start)"   # start one; prints `export CENTRIFUGO_URL=…`,
#                                              # _API_KEY, _HMAC_SECRET, _PID and _DIR lines
#   bash scripts/centrifugo.sh stop [DIR]      # stop the one in DIR (default: $CENTRIFUGO_DIR)
#
# - The pinned version (below) is built with `go install` from the Go module proxy into
#   ${CHAT_CACHE_DIR:-/var/tmp/chat-cache}/go-bin, like scripts/nats-server.sh (outside the
#   clone; a few minutes once, then nothing). A lock makes concurrent callers wait for one
#   build. There is no fallback: without Go (≥ the version Centrifugo's go.mod asks for) it
#   fails with a message. CENTRIFUGO_BIN, when set, is used as it is.
# - `start` writes its own configuration (Centrifugo v6 keys, read from v6.9.1's
#   internal/configtypes) to a new temporary directory and starts the server there:
#     * loopback only (127.0.0.1), on CENTRIFUGO_PORT or on a free random port;
#     * connection JWTs signed with HS256 by a fresh random secret (client.token.hmac_secret_key);
#     * the server HTTP API (/api) behind a fresh random key (http_api.key);
#     * channels without a namespace may be subscribed to by any client with a valid token
#       (channel.without_namespace.allow_subscribe_for_client); nothing else is allowed
#       to clients (no client publish, presence, join/leave);
#     * the memory engine, no history and no recovery: the platform's `fanout` sockets
#       subscribe live only (no back-fill), so neither side keeps anything for the
#       sockets; the platform's durability (PostgreSQL log, JetStream) is its own cost
#       and is what the CPU figures of both sides show;
#     * ping/pong at Centrifugo's defaults (25 s / 8 s; loadgen answers pings);
#     * /health enabled, usage statistics off, log level warn (to DIR/centrifugo.log).
#   It waits (at most CENTRIFUGO_START_TIMEOUT, 20 s) for /health to answer 200.
# - `stop` sends SIGTERM to the PID recorded in DIR (only if that process is a centrifugo
#   started with DIR's config), waits up to 10 s, then SIGKILL, and removes DIR.
set -euo pipefail

VERSION=v6.9.1
MODULE=github.com/centrifugal/centrifugo/v6
CACHE="${CHAT_CACHE_DIR:-/var/tmp/chat-cache}"
GOBIN_DIR="$CACHE/go-bin"
BIN="$GOBIN_DIR/centrifugo-$VERSION"
INSTALL_TIMEOUT="${CENTRIFUGO_INSTALL_TIMEOUT:-900}"
START_TIMEOUT="${CENTRIFUGO_START_TIMEOUT:-20}"

log() { printf 'centrifugo.sh: %s\n' "$*" >&2; }
die() {
    log "ERROR: $*"
    exit 1
}

# The binary's path, building it once when needed.
binary() {
    if [[ -n ${CENTRIFUGO_BIN:-} ]]; then
        [[ -x $CENTRIFUGO_BIN ]] || die "CENTRIFUGO_BIN=$CENTRIFUGO_BIN is not an executable"
        printf '%s\n' "$CENTRIFUGO_BIN"
        return
    fi
    if [[ ! -x $BIN ]]; then
        command -v go >/dev/null 2>&1 ||
            die "go is not installed, so Centrifugo $VERSION cannot be built (apt-get install golang-go, or set CENTRIFUGO_BIN)"
        mkdir -p "$GOBIN_DIR"
        exec 9>"$GOBIN_DIR/.centrifugo.lock"
        flock -w "$INSTALL_TIMEOUT" 9 || die "another build of Centrifugo held the lock for ${INSTALL_TIMEOUT}s"
        if [[ ! -x $BIN ]]; then
            log "building Centrifugo $VERSION with go install (once; cached in $GOBIN_DIR)"
            local tmp
            tmp=$(mktemp -d "$GOBIN_DIR/build.XXXXXX")
            if GOBIN="$tmp" GOPATH="${GOPATH:-$CACHE/gopath}" GOFLAGS=-modcacherw \
                timeout "$INSTALL_TIMEOUT" nice -n 19 go install \
                -ldflags "-X $MODULE/internal/build.Version=${VERSION#v}" "$MODULE@$VERSION" >&2; then
                mv "$tmp/centrifugo" "$BIN"
                rm -rf "$tmp"
            else
                rm -rf "$tmp"
                die "go install $MODULE@$VERSION failed (or took over ${INSTALL_TIMEOUT}s); see above"
            fi
        fi
        exec 9>&-
    fi
    printf '%s\n' "$BIN"
}

# random_hex, port_in_use, free_ports, terminate.
source "$(dirname "${BASH_SOURCE[0]}")/lib/servers.sh"

start() {
    local bin dir port secret key pid deadline
    bin=$(binary)
    command -v curl >/dev/null 2>&1 || die "curl is needed to wait for /health"
    if [[ -n ${CENTRIFUGO_PORT:-} ]]; then
        port=$CENTRIFUGO_PORT
        port_in_use "$port" && die "port $port is already in use"
    else
        for _ in $(seq 50); do
            port=$((20000 + RANDOM % 40000))
            port_in_use "$port" || break
        done
    fi
    dir=$(mktemp -d "${TMPDIR:-/tmp}/chat-centrifugo.XXXXXX")
    secret=$(random_hex 32)
    key=$(random_hex 16)
    cat >"$dir/config.json" <<EOF
{
  "http_server": { "address": "127.0.0.1", "port": $port },
  "log": { "level": "warn" },
  "engine": { "type": "memory" },
  "client": {
    "token": { "hmac_secret_key": "$secret" }
  },
  "channel": {
    "without_namespace": { "allow_subscribe_for_client": true }
  },
  "http_api": { "key": "$key" },
  "health": { "enabled": true },
  "usage_stats": { "disabled": true },
  "pid_file": "$dir/centrifugo.pid"
}
EOF
    # As many sockets as this shell may open (the benchmark's 1,000 need more than 1,024 files).
    ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
    (cd "$dir" && exec "$bin" --config "$dir/config.json" >"$dir/centrifugo.log" 2>&1 </dev/null) &
    pid=$!
    printf '%s\n' "$pid" >"$dir/pid"
    deadline=$((SECONDS + START_TIMEOUT))
    until curl -fsS --max-time 1 -o /dev/null "http://127.0.0.1:$port/health" 2>/dev/null; do
        if ! kill -0 "$pid" 2>/dev/null; then
            log "Centrifugo exited during start-up; its log ($dir/centrifugo.log):"
            sed 's/^/    /' "$dir/centrifugo.log" >&2 || true
            rm -rf "$dir"
            die "Centrifugo did not start"
        fi
        if ((SECONDS >= deadline)); then
            log "no answer from http://127.0.0.1:$port/health within ${START_TIMEOUT}s; its log:"
            sed 's/^/    /' "$dir/centrifugo.log" >&2 || true
            kill -KILL "$pid" 2>/dev/null || true
            rm -rf "$dir"
            die "Centrifugo did not become healthy"
        fi
        sleep 0.2
    done
    # The server's own record of its PID (the same process: the subshell exec'd it).
    if [[ -s $dir/centrifugo.pid ]] && [[ $(<"$dir/centrifugo.pid") != "$pid" ]]; then
        pid=$(<"$dir/centrifugo.pid")
        printf '%s\n' "$pid" >"$dir/pid"
    fi
    log "Centrifugo $VERSION (pid $pid) on http://127.0.0.1:$port, config and log in $dir"
    printf 'export CENTRIFUGO_URL=%s\n' "http://127.0.0.1:$port"
    printf 'export CENTRIFUGO_API_KEY=%s\n' "$key"
    printf 'export CENTRIFUGO_HMAC_SECRET=%s\n' "$secret"
    printf 'export CENTRIFUGO_PID=%s\n' "$pid"
    printf 'export CENTRIFUGO_DIR=%s\n' "$dir"
}

stop() {
    local dir=${1:-${CENTRIFUGO_DIR:-}} pid
    [[ -n $dir ]] || die "stop: give the directory that start printed (CENTRIFUGO_DIR)"
    [[ -f $dir/pid && -f $dir/config.json ]] || die "stop: $dir is not a directory made by start"
    pid=$(<"$dir/pid")
    [[ $pid =~ ^[0-9]+$ ]] || die "stop: bad pid file $dir/pid"
    if [[ -r /proc/$pid/cmdline ]] && tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "$dir/config.json"; then
        terminate "$pid"
        log "stopped Centrifugo (pid $pid)"
    else
        log "pid $pid is not a running Centrifugo of $dir (already stopped?)"
    fi
    rm -rf "$dir"
}

case "${1:-path}" in
path) binary ;;
start) start ;;
stop) stop "${2:-}" ;;
-h | --help | help) sed -n '2,30p' "$0" | sed 's/^# \{0,1\}//' ;;
*) die "unknown command ${1}; use start, stop or no argument (see --help)" ;;
esac
