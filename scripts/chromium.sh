#!/usr/bin/env bash
# Make sure a headless-capable Chromium is installed for the browser tests. Idempotent.
#
#   bash scripts/chromium.sh
#
# - CHROMIUM_PATH (default /usr/bin/chromium): if it runs (`--version`), nothing is done.
# - Otherwise, on Debian/Ubuntu, as root or with passwordless sudo, Debian's chromium
#   package is installed with apt-get (plus fonts, so screenshots show text), the same way
#   scripts/services.sh installs PostgreSQL and NATS. The tests never download a browser
#   of their own.
# - CHROMIUM_TIMEOUT (seconds, default 600) bounds the install.
#
# Exits non-zero with a message on stderr when Chromium cannot be made available.
set -euo pipefail

export DEBIAN_FRONTEND=noninteractive

CHROMIUM=${CHROMIUM_PATH:-/usr/bin/chromium}
TIMEOUT="${CHROMIUM_TIMEOUT:-600}"
PACKAGES=(chromium fonts-liberation fonts-dejavu-core fonts-noto-color-emoji)

log() { printf 'chromium: %s\n' "$*" >&2; }
die() {
    printf 'chromium: ERROR: %s\n' "$*" >&2
    exit 1
}

chromium_runs() {
    [[ -x $CHROMIUM ]] && timeout 30 "$CHROMIUM" --headless --no-sandbox --version >/dev/null 2>&1 </dev/null
}

if chromium_runs; then
    exit 0
fi

if [[ -n ${CHROMIUM_PATH:-} && $CHROMIUM != /usr/bin/chromium ]]; then
    die "CHROMIUM_PATH=$CHROMIUM does not run ('$CHROMIUM --version' failed). Point it at a working Chromium, or unset it to use Debian's /usr/bin/chromium."
fi

log "Chromium is not installed at $CHROMIUM; installing Debian's chromium package"
command -v apt-get >/dev/null 2>&1 ||
    die "there is no apt-get here (not Debian/Ubuntu): install Chromium yourself and set CHROMIUM_PATH to it"

SUDO=()
if [[ $(id -u) -ne 0 ]]; then
    if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
        SUDO=(sudo -n)
    else
        die "installing chromium needs root (or passwordless sudo): run 'apt-get install -y chromium' as root, or set CHROMIUM_PATH to a Chromium you have"
    fi
fi

log "apt-get update"
timeout "$TIMEOUT" "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq </dev/null ||
    die "apt-get update failed (or took over ${TIMEOUT}s)"
log "apt-get install ${PACKAGES[*]}"
timeout "$TIMEOUT" "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold "${PACKAGES[@]}" </dev/null ||
    die "apt-get install ${PACKAGES[*]} failed (or took over ${TIMEOUT}s)"

chromium_runs || die "chromium was installed but '$CHROMIUM --headless --version' still fails"
log "installed: $("$CHROMIUM" --version 2>/dev/null | head -n 1)"
