#!/usr/bin/env bash
# Run the chat platform locally (the README's one run command):
#
#   bash scripts/run.sh [[--] extra args for the binary]
#   bash scripts/run.sh rebuild (--all | NAME...)   # blue/green rebuild beside a running one
#
# Makes sure PostgreSQL and NATS JetStream are up (scripts/services.sh), then
# runs the single-node platform (`cargo run --release -p platform --bin chat`: command API,
# relay, projector and query API in one process) in the foreground; Ctrl-C stops it.
#
# Environment (all optional):
#   APP_LISTEN        listen address, default 127.0.0.1:8080
#   APP_JWT_SECRET    default: a dev secret generated once into .local/jwt-secret
#   APP_DATABASE_URL  default (in the binary): postgres://postgres@127.0.0.1:5432/chat
#                     (the binary creates the database and runs migrations itself)
#   APP_DATA_DIR      default .local/data (the embedded search index)
#   APP_WEB_DIR       the built web client served at `/`, default web/dist (built first,
#                     when needed, by scripts/web.sh; needs Node.js >= 20.19 with npm)
#   APP_NATS_URL, APP_STREAM_NAME, APP_SUBJECT_PREFIX, RUST_LOG (default info)
#   CHAT_RUN_PACKAGE  cargo package to run, default platform (single node)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

bash "$ROOT/scripts/services.sh"

export APP_LISTEN="${APP_LISTEN:-127.0.0.1:8080}"
# The data directory (the embedded search index), outside version control.
export APP_DATA_DIR="${APP_DATA_DIR:-$ROOT/.local/data}"
export RUST_LOG="${RUST_LOG:-info}"

if [[ -z ${APP_JWT_SECRET:-} ]]; then
    secret_file="$ROOT/.local/jwt-secret"
    if [[ ! -s $secret_file ]]; then
        mkdir -p "$ROOT/.local"
        (
            umask 077
            # 48 random bytes, hex-encoded: 96 characters, no shell-special characters.
            od -An -tx1 -N48 /dev/urandom | tr -d ' \n' >"$secret_file.tmp"
            mv "$secret_file.tmp" "$secret_file"
        )
        echo "run: generated a development JWT secret in .local/jwt-secret" >&2
    fi
    APP_JWT_SECRET=$(<"$secret_file")
    export APP_JWT_SECRET
fi

package="${CHAT_RUN_PACKAGE:-platform}"
if [[ ${1:-} == -- ]]; then
    shift
fi

# A wildcard listen address is reachable locally through the loopback address.
host=${APP_LISTEN%:*}
port=${APP_LISTEN##*:}
case $host in
0.0.0.0 | '' | '[::]' | '::') host=127.0.0.1 ;;
esac
url="http://$host:$port"

if [[ ${1:-} != rebuild ]]; then
    # The web client, served by the binary at `/`: install and build it when needed.
    export APP_WEB_DIR="${APP_WEB_DIR:-$ROOT/web/dist}"
    if [[ $APP_WEB_DIR == "$ROOT/web/dist" ]] && ! bash "$ROOT/scripts/web.sh" build; then
        echo "run: WARNING: the web client could not be built (see above); the API runs, but $url/ will not serve the client" >&2
    fi
fi

if [[ ${1:-} == rebuild ]]; then
    echo "run: building $package (release) and rebuilding: $*" >&2
else
    echo "run: building and starting $package (release); it will listen on $url" >&2
    echo "run:   web client: $url/   health: $url/healthz   metrics: $url/metrics   API spec: $url/openapi.json" >&2
    echo "run:   press Ctrl-C to stop" >&2
fi

exec cargo run --release -p "$package" ${1+-- "$@"}
