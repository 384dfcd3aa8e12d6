#!/usr/bin/env bash
# Make the web client ready, and run its tests.
#
#   bash scripts/web.sh [build]        # install dependencies and build web/dist, each only when needed
#   bash scripts/web.sh deps           # only the dependencies (npm ci when needed)
#   bash scripts/web.sh test [args]    # the client's unit tests (npm test, Vitest)
#   bash scripts/web.sh e2e [args]     # the browser tests (npm run e2e): Chromium, services,
#                                      # the client and the platform binary first
#   bash scripts/web.sh platform-bin [--reuse-tests]   # build the platform binary, print its path
#
# - Needs Node.js >= 20.19 with npm (checked, with how to install them when missing).
# - `npm ci` runs only when web/node_modules is missing or older than package-lock.json
#   (a stamp file inside node_modules records the last install).
# - `npm run build` runs only when web/dist/index.html is missing or older than anything
#   it is built from (web/src/**, web/public/**, index.html, vite.config.ts, tsconfig.json,
#   package.json, package-lock.json).
# - e2e: CHAT_BIN names the platform binary; without it, `cargo build -p platform --bin chat`
#   builds ${CARGO_TARGET_DIR:-target}/debug/chat (see platform_bin for --reuse-tests).
#   CHROMIUM_PATH overrides /usr/bin/chromium.
#   Extra args go to Vitest (a file name filters: `web.sh e2e chat`).
#
# Quiet and quick (well under a second) when everything is up to date.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
WEB="$ROOT/web"
STAMP="$WEB/node_modules/.web-sh-installed"
NODE_MIN_MAJOR=20
NODE_MIN_MINOR=19

log() { printf 'web: %s\n' "$*" >&2; }
die() {
    printf 'web: ERROR: %s\n' "$*" >&2
    exit 1
}

check_node() {
    local hint="install Node.js ${NODE_MIN_MAJOR}.${NODE_MIN_MINOR} or newer with npm: Debian's own nodejs package is too old on Debian 12, so use NodeSource's (curl -fsSL https://deb.nodesource.com/setup_20.x | bash - && apt-get install -y nodejs), or nvm (nvm install 20)"
    command -v node >/dev/null 2>&1 || die "node is not installed: $hint"
    command -v npm >/dev/null 2>&1 || die "npm is not installed (node is: $(command -v node)): $hint"
    local version major minor
    version=$(node -p 'process.versions.node' 2>/dev/null) || die "node does not run: $hint"
    IFS=. read -r major minor _ <<<"$version"
    if ((major < NODE_MIN_MAJOR || (major == NODE_MIN_MAJOR && minor < NODE_MIN_MINOR))); then
        die "node $version is too old (Vite 8 needs ${NODE_MIN_MAJOR}.${NODE_MIN_MINOR} or newer): $hint"
    fi
}

ensure_deps() {
    check_node
    [[ -f $WEB/package-lock.json ]] || die "$WEB/package-lock.json is missing"
    if [[ -d $WEB/node_modules && -f $STAMP && ! $WEB/package-lock.json -nt $STAMP && ! $WEB/package.json -nt $STAMP ]]; then
        return 0
    fi
    log "installing dependencies (npm ci in web/)"
    (cd "$WEB" && npm ci --no-audit --no-fund) || die "npm ci failed in $WEB (see above)"
    touch "$STAMP"
}

# needs_build: true (0) when web/dist is missing or older than one of its sources.
needs_build() {
    local index=$WEB/dist/index.html f
    [[ -f $index ]] || return 0
    for f in "$WEB/index.html" "$WEB/vite.config.ts" "$WEB/tsconfig.json" "$WEB/package.json" "$WEB/package-lock.json"; do
        [[ -e $f && $f -nt $index ]] && return 0
    done
    local newer
    newer=$(find "$WEB/src" "$WEB/public" -newer "$index" -print -quit 2>/dev/null || true)
    [[ -n $newer ]]
}

ensure_build() {
    ensure_deps
    [[ -f $WEB/index.html ]] || die "$WEB/index.html is missing: there is no client to build"
    if needs_build; then
        log "building the client (npm run build in web/)"
        (cd "$WEB" && npm run build) || die "the client's build failed (see above)"
        [[ -f $WEB/dist/index.html ]] || die "npm run build did not write $WEB/dist/index.html"
    fi
}

run_unit_tests() {
    ensure_deps
    log "unit tests (npm test in web/)"
    (cd "$WEB" && npm test -- "$@")
}

# chat_executable: reads cargo's JSON messages on stdin, prints the path of the `chat`
# binary it built (or found fresh).
chat_executable() {
    node -e '
        let buf = "";
        process.stdin.on("data", (d) => (buf += d)).on("end", () => {
            let exe = "";
            for (const line of buf.split("\n")) {
                if (!line.startsWith("{")) continue;
                const m = JSON.parse(line);
                if (m.reason === "compiler-artifact" && m.target.name === "chat" && m.target.kind.includes("bin") && !m.profile.test && m.executable) exe = m.executable;
            }
            process.stdout.write(exe);
        });'
}

# platform_bin [--reuse-tests]: builds the platform binary and prints its path.
# --reuse-tests: `cargo test --workspace --all-features --no-run`, which is a no-op right
# after the workspace's tests (scripts/test.sh) and builds the binary for platform's
# integration tests with exactly their features; a plain `cargo build` would rebuild most
# of the workspace there, because dev-dependencies turn on extra features (tokio's
# test-util) in the test build. Without it (or when that yields no binary):
# `cargo build -p platform --bin chat`. Honours CARGO_TARGET_DIR (cargo reports the path).
platform_bin() {
    check_node
    local exe=
    if [[ ${1:-} == --reuse-tests ]]; then
        log "the platform binary, as the tests built it (cargo test --workspace --all-features --no-run)"
        exe=$(cd "$ROOT" && cargo test --workspace --all-features --no-run --message-format=json-render-diagnostics | chat_executable) ||
            die "cargo test --workspace --all-features --no-run failed"
    fi
    if [[ -z $exe ]]; then
        log "building the platform binary (cargo build -p platform --bin chat)"
        exe=$(cd "$ROOT" && cargo build -p platform --bin chat --message-format=json-render-diagnostics | chat_executable) ||
            die "cargo build -p platform --bin chat failed"
    fi
    [[ -n $exe && -x $exe ]] || die "cargo reported no chat binary (got '$exe')"
    printf '%s\n' "$exe"
}

run_e2e() {
    bash "$ROOT/scripts/chromium.sh"
    export CHROMIUM_PATH=${CHROMIUM_PATH:-/usr/bin/chromium}
    bash "$ROOT/scripts/services.sh"
    ensure_build
    if [[ -z ${CHAT_BIN:-} ]]; then
        CHAT_BIN=$(platform_bin) || exit 1
    fi
    [[ -x $CHAT_BIN ]] || die "the platform binary $CHAT_BIN is missing or not executable"
    export CHAT_BIN
    if [[ -f $WEB/tsconfig.e2e.json ]]; then
        (cd "$WEB" && npx --no-install tsc --noEmit -p tsconfig.e2e.json) || die "the browser tests do not typecheck (tsc -p web/tsconfig.e2e.json, see above)"
    fi
    log "browser tests (npm run e2e in web/) with CHAT_BIN=$CHAT_BIN, CHROMIUM_PATH=$CHROMIUM_PATH"
    (cd "$WEB" && npm run e2e -- "$@")
}

cmd=${1:-build}
[[ $# -gt 0 ]] && shift
case $cmd in
build) ensure_build ;;
deps) ensure_deps ;;
test) run_unit_tests "$@" ;;
e2e) run_e2e "$@" ;;
platform-bin) platform_bin "$@" ;;
-h | --help | help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "${BASH_SOURCE[0]}" ;;
*) die "unknown command '$cmd' (build, deps, test, e2e, platform-bin)" ;;
esac
