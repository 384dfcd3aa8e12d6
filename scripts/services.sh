#!/usr/bin/env bash
# Make sure PostgreSQL and NATS (with JetStream) are reachable. Idempotent.
#
#   bash scripts/services.sh
#
# - Local defaults (127.0.0.1:5432 and 127.0.0.1:4222): if both already answer,
#   nothing is done. Otherwise, on Debian/Ubuntu, as root or with passwordless
#   sudo, missing packages (postgresql) are installed with apt-get, a current
#   nats-server is built once (scripts/nats-server.sh; Debian's package otherwise), and
#   the servers are started the same way this project's machines start them.
# - Overrides: APP_DATABASE_URL / DATABASE_URL and APP_NATS_URL / NATS_URL. A URL
#   pointing anywhere other than the local default host:port is only checked for
#   reachability; nothing is installed or started for it.
# - SERVICES_TIMEOUT (seconds, default 30) bounds every wait.
#
# Exits non-zero with a message on stderr when a service cannot be reached.
set -euo pipefail

export DEBIAN_FRONTEND=noninteractive

TIMEOUT="${SERVICES_TIMEOUT:-30}"
PG_DEFAULT_HOST=127.0.0.1
PG_DEFAULT_PORT=5432
NATS_DEFAULT_HOST=127.0.0.1
NATS_DEFAULT_PORT=4222
NATS_BIN=/usr/sbin/nats-server
NATS_STORE=/var/lib/nats-server
NATS_LOG=/var/log/nats-server.log

log() { printf 'services: %s\n' "$*" >&2; }
die() {
    printf 'services: ERROR: %s\n' "$*" >&2
    exit 1
}

# ---------------------------------------------------------------- probes ----

# tcp_open HOST PORT: true if a TCP connection to HOST:PORT succeeds within 2 s.
tcp_open() {
    local host=$1 port=$2
    host=${host#[}
    host=${host%]}
    # shellcheck disable=SC2016 # expanded by the inner bash
    timeout 2 bash -c 'exec 3<>"/dev/tcp/$1/$2"' _ "$host" "$port" 2>/dev/null
}

# nats_info HOST PORT: print the server's INFO line (empty if none).
nats_info() {
    local host=$1 port=$2
    host=${host#[}
    host=${host%]}
    # shellcheck disable=SC2016 # expanded by the inner bash
    timeout 3 bash -c 'exec 3<>"/dev/tcp/$1/$2" || exit 1; IFS= read -r -t 2 line <&3 && printf "%s\n" "$line"' \
        _ "$host" "$port" 2>/dev/null || true
}

# pg_ready URL_OR_EMPTY HOST PORT: true if the PostgreSQL server answers.
# pg_isready reports a server that answers as ready even when the database in
# the URL does not exist yet or the credentials are wrong; that is intended.
pg_ready() {
    local url=$1 host=$2 port=$3
    if command -v pg_isready >/dev/null 2>&1; then
        if [[ -n $url ]]; then
            pg_isready -q -t 2 -d "$url" >/dev/null 2>&1
        else
            pg_isready -q -t 2 -h "$host" -p "$port" >/dev/null 2>&1
        fi
    else
        tcp_open "$host" "$port"
    fi
}

# wait_for SECONDS DESCRIPTION CMD...: retry CMD once a second until it succeeds.
wait_for() {
    local secs=$1 what=$2
    shift 2
    local deadline=$((SECONDS + secs))
    until "$@"; do
        if ((SECONDS >= deadline)); then
            return 1
        fi
        sleep 1
    done
    log "$what is reachable"
}

# ------------------------------------------------------------ URL parsing ----

# parse_url URL DEFAULT_PORT: print "HOST PORT" of the first host in URL.
# Handles scheme://[user[:pass]@]host[:port][/path][?query], IPv6 in brackets,
# and comma-separated server lists (the first entry is used).
parse_url() {
    local url=$1 default_port=$2 rest hostport host port
    rest=${url#*://}
    rest=${rest%%/*}
    rest=${rest%%\?*}
    rest=${rest%%,*}
    hostport=${rest##*@}
    if [[ $hostport == \[* ]]; then
        host=${hostport%%]*}]
        port=${hostport#"$host"}
        port=${port#:}
    elif [[ $hostport == *:* ]]; then
        host=${hostport%%:*}
        port=${hostport#*:}
    else
        host=$hostport
        port=
    fi
    [[ -n $host ]] || host=localhost
    [[ -n $port ]] || port=$default_port
    printf '%s %s\n' "$host" "$port"
}

is_local_default() {
    local host=$1 port=$2 default_port=$3
    [[ $port == "$default_port" ]] || return 1
    case $host in
    127.0.0.1 | localhost | '[::1]' | ::1) return 0 ;;
    *) return 1 ;;
    esac
}

# ------------------------------------------------------ privileged helpers ----

SUDO=()
need_root() {
    if [[ $(id -u) -eq 0 ]]; then
        SUDO=()
    elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
        SUDO=(sudo -n)
    else
        die "$1 needs root (or passwordless sudo). Start PostgreSQL on 127.0.0.1:5432 and NATS with JetStream on 127.0.0.1:4222 yourself, or use 'docker compose up' (see docker-compose.yaml)."
    fi
}

APT_UPDATED=0
apt_install() {
    command -v apt-get >/dev/null 2>&1 ||
        die "'$*' is not installed and there is no apt-get here (not Debian/Ubuntu). Install and start it yourself, or use 'docker compose up'."
    need_root "installing $*"
    if ((APT_UPDATED == 0)); then
        log "apt-get update"
        "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq </dev/null ||
            die "apt-get update failed"
        APT_UPDATED=1
    fi
    log "apt-get install $*"
    "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold "$@" </dev/null ||
        die "apt-get install $* failed"
}

# ------------------------------------------------------------- PostgreSQL ----

pg_version() {
    # Newest installed major version that has a config directory.
    find /etc/postgresql -mindepth 1 -maxdepth 1 -type d -printf '%f\n' 2>/dev/null | sort -V | tail -n 1
}

pg_trust_localhost() {
    local ver=$1 hba
    hba=/etc/postgresql/$ver/main/pg_hba.conf
    [[ -f $hba ]] || die "no $hba after installing PostgreSQL"
    if "${SUDO[@]}" grep -Eq '^[[:space:]]*host[[:space:]]+all[[:space:]]+postgres[[:space:]]+127\.0\.0\.1/32[[:space:]]+trust' "$hba"; then
        return 0
    fi
    log "fresh PostgreSQL: allowing trust auth for user postgres from 127.0.0.1 in $hba"
    # pg_hba.conf is first-match, so the trust lines go before every other rule.
    local tmp
    tmp=$(mktemp)
    {
        printf '# Added by scripts/services.sh (development only): local trust for postgres.\n'
        printf 'host    all             postgres        127.0.0.1/32            trust\n'
        printf 'host    all             postgres        ::1/128                 trust\n'
        "${SUDO[@]}" cat "$hba"
    } >"$tmp"
    "${SUDO[@]}" cp "$tmp" "$hba"
    rm -f "$tmp"
    "${SUDO[@]}" chown postgres:postgres "$hba" 2>/dev/null || true
    "${SUDO[@]}" chmod 640 "$hba" 2>/dev/null || true
}

# pg_login: true if user postgres can log in over TCP without a password (what the
# tests and the default settings use). Without psql, assume it can.
pg_login() {
    command -v psql >/dev/null 2>&1 || return 0
    PGCONNECT_TIMEOUT=3 psql -w -X -q -h "$PG_DEFAULT_HOST" -p "$PG_DEFAULT_PORT" -U postgres \
        -d postgres -c 'SELECT 1' >/dev/null 2>&1 </dev/null
}

# A PostgreSQL that answers but refuses user postgres without a password (a machine
# whose image ships a running cluster with the packaged pg_hba.conf): add the trust
# lines and reload.
ensure_local_login() {
    pg_login && return 0
    local ver
    ver=$(pg_version)
    [[ -n $ver && -f /etc/postgresql/$ver/main/pg_hba.conf ]] ||
        die "PostgreSQL at $PG_DEFAULT_HOST:$PG_DEFAULT_PORT refuses user postgres without a password, and there is no local /etc/postgresql/*/main/pg_hba.conf to change. Allow it, or set APP_DATABASE_URL and TEST_DATABASE_URL with credentials."
    need_root "allowing user postgres to log in from 127.0.0.1"
    pg_trust_localhost "$ver"
    "${SUDO[@]}" pg_ctlcluster --skip-systemctl-redirect "$ver" main reload </dev/null ||
        die "pg_ctlcluster $ver main reload failed"
    wait_for "$TIMEOUT" "PostgreSQL login as postgres" pg_login ||
        die "user postgres still cannot log in at $PG_DEFAULT_HOST:$PG_DEFAULT_PORT without a password after adding trust lines to /etc/postgresql/$ver/main/pg_hba.conf"
}

ensure_local_postgres() {
    if pg_ready "" "$PG_DEFAULT_HOST" "$PG_DEFAULT_PORT"; then
        log "PostgreSQL is reachable at $PG_DEFAULT_HOST:$PG_DEFAULT_PORT"
        ensure_local_login
        return 0
    fi
    log "PostgreSQL is not answering at $PG_DEFAULT_HOST:$PG_DEFAULT_PORT; starting it"
    need_root "starting PostgreSQL"

    local fresh=0 ver
    if ! command -v pg_ctlcluster >/dev/null 2>&1 || [[ -z $(pg_version) ]]; then
        apt_install postgresql
        fresh=1
    fi
    ver=$(pg_version)
    [[ -n $ver ]] || die "PostgreSQL is installed but /etc/postgresql has no version directory"
    if [[ ! -d /etc/postgresql/$ver/main ]]; then
        log "creating cluster $ver/main"
        "${SUDO[@]}" pg_createcluster "$ver" main </dev/null || die "pg_createcluster $ver main failed"
        fresh=1
    fi
    if ((fresh)); then
        pg_trust_localhost "$ver"
    fi

    # Same command as the machine's own start-up. It fails harmlessly when the
    # cluster is already running (a reload below then picks up pg_hba changes).
    if ! "${SUDO[@]}" pg_ctlcluster --skip-systemctl-redirect "$ver" main start </dev/null; then
        log "pg_ctlcluster start returned non-zero (already running?); continuing"
        if ((fresh)); then
            "${SUDO[@]}" pg_ctlcluster --skip-systemctl-redirect "$ver" main reload </dev/null || true
        fi
    fi

    wait_for "$TIMEOUT" "PostgreSQL at $PG_DEFAULT_HOST:$PG_DEFAULT_PORT" \
        pg_ready "" "$PG_DEFAULT_HOST" "$PG_DEFAULT_PORT" ||
        die "PostgreSQL did not answer on $PG_DEFAULT_HOST:$PG_DEFAULT_PORT within ${TIMEOUT}s (see /var/log/postgresql/postgresql-$ver-main.log)"
    ensure_local_login
}

check_remote_postgres() {
    local url=$1 host=$2 port=$3
    log "PostgreSQL URL points at $host:$port (not the local default): only checking reachability"
    wait_for "$TIMEOUT" "PostgreSQL at $host:$port" pg_ready "$url" "$host" "$port" ||
        die "PostgreSQL at $host:$port (from the database URL) did not answer within ${TIMEOUT}s. Start it, or unset APP_DATABASE_URL/DATABASE_URL to use the local default."
}

# ------------------------------------------------------------------- NATS ----

warn_if_no_jetstream() {
    local host=$1 port=$2 info
    info=$(nats_info "$host" "$port")
    if [[ -n $info && $info != *'"jetstream":true'* ]]; then
        log "WARNING: the NATS server at $host:$port does not advertise JetStream (start it with -js)"
    fi
}

ensure_local_nats() {
    if tcp_open "$NATS_DEFAULT_HOST" "$NATS_DEFAULT_PORT"; then
        log "NATS is reachable at $NATS_DEFAULT_HOST:$NATS_DEFAULT_PORT"
        warn_if_no_jetstream "$NATS_DEFAULT_HOST" "$NATS_DEFAULT_PORT"
        return 0
    fi
    log "NATS is not answering at $NATS_DEFAULT_HOST:$NATS_DEFAULT_PORT; starting it"
    need_root "starting NATS"
    # A current nats-server (scripts/nats-server.sh builds it once with go install); Debian's
    # package only when that cannot be had (it warns why that is worse).
    local bin
    if ! bin=$(bash "$(dirname "${BASH_SOURCE[0]}")/nats-server.sh"); then
        apt_install nats-server
        bin=$NATS_BIN
    fi
    [[ -x $bin ]] || die "$bin is missing after installing nats-server"
    NATS_BIN=$bin
    command -v start-stop-daemon >/dev/null 2>&1 || die "start-stop-daemon not found (package dpkg)"
    "${SUDO[@]}" mkdir -p "$NATS_STORE"
    # Same command as the machine's own start-up.
    "${SUDO[@]}" start-stop-daemon --start --oknodo --background --exec "$NATS_BIN" -- \
        -a "$NATS_DEFAULT_HOST" -p "$NATS_DEFAULT_PORT" -js -sd "$NATS_STORE" -l "$NATS_LOG" </dev/null ||
        die "start-stop-daemon could not start $NATS_BIN"

    wait_for "$TIMEOUT" "NATS at $NATS_DEFAULT_HOST:$NATS_DEFAULT_PORT" \
        tcp_open "$NATS_DEFAULT_HOST" "$NATS_DEFAULT_PORT" ||
        die "NATS did not answer on $NATS_DEFAULT_HOST:$NATS_DEFAULT_PORT within ${TIMEOUT}s (see $NATS_LOG)"
    warn_if_no_jetstream "$NATS_DEFAULT_HOST" "$NATS_DEFAULT_PORT"
}

check_remote_nats() {
    local host=$1 port=$2
    log "NATS URL points at $host:$port (not the local default): only checking reachability"
    wait_for "$TIMEOUT" "NATS at $host:$port" tcp_open "$host" "$port" ||
        die "NATS at $host:$port (from the NATS URL) did not accept a TCP connection within ${TIMEOUT}s. Start it, or unset APP_NATS_URL/NATS_URL to use the local default."
    warn_if_no_jetstream "$host" "$port"
}

# ------------------------------------------------------------------- main ----

# Every distinct URL the environment names is checked; none named means the
# local defaults.
pg_urls=()
for u in "${APP_DATABASE_URL:-}" "${DATABASE_URL:-}"; do
    [[ -n $u ]] || continue
    [[ ${#pg_urls[@]} -gt 0 && ${pg_urls[0]} == "$u" ]] && continue
    pg_urls+=("$u")
done
nats_urls=()
for u in "${APP_NATS_URL:-}" "${NATS_URL:-}"; do
    [[ -n $u ]] || continue
    [[ ${#nats_urls[@]} -gt 0 && ${nats_urls[0]} == "$u" ]] && continue
    nats_urls+=("$u")
done

local_pg=0
remote_pg=()
if ((${#pg_urls[@]} == 0)); then
    local_pg=1
else
    for u in "${pg_urls[@]}"; do
        read -r h p < <(parse_url "$u" "$PG_DEFAULT_PORT")
        if is_local_default "$h" "$p" "$PG_DEFAULT_PORT"; then
            local_pg=1
        else
            remote_pg+=("$u")
        fi
    done
fi

local_nats=0
remote_nats=()
if ((${#nats_urls[@]} == 0)); then
    local_nats=1
else
    for u in "${nats_urls[@]}"; do
        read -r h p < <(parse_url "$u" "$NATS_DEFAULT_PORT")
        if is_local_default "$h" "$p" "$NATS_DEFAULT_PORT"; then
            local_nats=1
        else
            remote_nats+=("$u")
        fi
    done
fi

if ((local_pg)); then
    ensure_local_postgres
fi
for u in ${remote_pg[@]+"${remote_pg[@]}"}; do
    read -r h p < <(parse_url "$u" "$PG_DEFAULT_PORT")
    check_remote_postgres "$u" "$h" "$p"
done

if ((local_nats)); then
    ensure_local_nats
fi
for u in ${remote_nats[@]+"${remote_nats[@]}"}; do
    read -r h p < <(parse_url "$u" "$NATS_DEFAULT_PORT")
    check_remote_nats "$h" "$p"
done

log "ok"
