#!/usr/bin/env bash
# Prove the dashboards and alert rules against a real Prometheus scraping a real platform.
#
#   bash scripts/prometheus-check.sh
#
# 1. Installs Debian's `prometheus` package (prometheus + promtool) with apt-get when either
#    is missing (as root or with passwordless sudo).
# 2. `promtool check rules` and `promtool test rules` on deploy/prometheus/rules/.
# 3. A structural check of deploy/grafana/dashboards/*.json: unique panel ids per dashboard,
#    one datasource uid (the provisioned one) throughout, a unit and a description on every
#    panel.
# 4. Builds and starts a single-node platform (`chat`, honouring CARGO_TARGET_DIR, or
#    CHAT_BIN) on its own database, stream, subject prefix, data dir and free port; starts a
#    Prometheus of its own (temp data dir, free loopback port, 1 s scrapes, the rules
#    loaded) scraping it; drives traffic through the public API with curl; waits until
#    Prometheus has scraped a few times.
# 5. Evaluates every dashboard panel target and every rule expression through
#    /api/v1/query and fails when one errors or returns no series (see
#    scripts/prometheus-check.py for how threshold alerts are evaluated).
# 6. Cleans up: stops both processes, drops the database, deletes the stream, removes the
#    temp dirs (also on failure).
#
# PROMCHECK_TIMEOUT (seconds, default 60) bounds every wait.
set -euo pipefail

export DEBIAN_FRONTEND=noninteractive
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TIMEOUT="${PROMCHECK_TIMEOUT:-60}"
RULES_DIR="$ROOT/deploy/prometheus/rules"
DASH_DIR="$ROOT/deploy/grafana/dashboards"
START=$SECONDS

log() { printf 'prometheus-check: %s\n' "$*" >&2; }
die() {
    printf 'prometheus-check: ERROR: %s\n' "$*" >&2
    exit 1
}

# ------------------------------------------------------------- install ----

SUDO=()
need_root() {
    if [[ $(id -u) -eq 0 ]]; then
        SUDO=()
    elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
        SUDO=(sudo -n)
    else
        die "$1 needs root (or passwordless sudo). Install prometheus and promtool yourself (Debian: apt-get install prometheus)."
    fi
}

ensure_prometheus() {
    if command -v prometheus >/dev/null 2>&1 && command -v promtool >/dev/null 2>&1; then
        return 0
    fi
    command -v apt-get >/dev/null 2>&1 ||
        die "prometheus/promtool are not installed and there is no apt-get here. Install them yourself."
    need_root "installing prometheus"
    log "apt-get update"
    "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq </dev/null ||
        die "apt-get update failed"
    log "apt-get install prometheus"
    # policy-rc.d: the package's own service must not be started (it would take :9090); this
    # script runs a Prometheus of its own.
    local policy=/usr/sbin/policy-rc.d added_policy=0
    if [[ ! -e $policy ]]; then
        printf '#!/bin/sh\nexit 101\n' | "${SUDO[@]}" tee "$policy" >/dev/null
        "${SUDO[@]}" chmod 0755 "$policy"
        added_policy=1
    fi
    local rc=0
    "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold prometheus </dev/null || rc=$?
    if ((added_policy)); then "${SUDO[@]}" rm -f "$policy"; fi
    ((rc == 0)) || die "apt-get install prometheus failed"
    if ! command -v prometheus >/dev/null 2>&1 || ! command -v promtool >/dev/null 2>&1; then
        die "apt-get installed prometheus but prometheus/promtool are not on PATH"
    fi
}

# wait_for SECONDS DESCRIPTION CMD...: retry CMD every 0.5 s until it succeeds or time is up.
wait_for() {
    local secs=$1 what=$2
    shift 2
    local deadline=$((SECONDS + secs))
    until "$@" >/dev/null 2>&1; do
        ((SECONDS < deadline)) || die "timed out after ${secs}s waiting for $what"
        sleep 0.5
    done
}

# ------------------------------------------------------------- cleanup ----

WORK=
CHAT_PID=
PROM_PID=
DB=
STREAM=
NATS_HOST=127.0.0.1
NATS_PORT=4222
PG_URL_BASE=${PROMCHECK_PG_URL:-postgres://postgres@127.0.0.1:5432}
cleanup() {
    local rc=$?
    set +e
    for pid in $PROM_PID $CHAT_PID; do
        if kill -0 "$pid" 2>/dev/null; then
            kill -TERM "$pid" 2>/dev/null
            for _ in $(seq 1 20); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
            kill -KILL "$pid" 2>/dev/null
            wait "$pid" 2>/dev/null
        fi
    done
    if [[ -n $DB ]]; then
        psql -q -X "$PG_URL_BASE/postgres" -c "DROP DATABASE IF EXISTS \"$DB\" WITH (FORCE)" >/dev/null ||
            log "WARNING: could not drop database $DB"
    fi
    if [[ -n $STREAM ]]; then
        python3 "$ROOT/scripts/prometheus-check.py" delete-stream "$NATS_HOST" "$NATS_PORT" "$STREAM" ||
            log "WARNING: could not delete stream $STREAM"
    fi
    if ((rc != 0)) && [[ -n $WORK && -d $WORK ]]; then
        log "last lines of the platform's log:"
        tail -n 20 "$WORK/chat.log" >&2 2>/dev/null
        log "last lines of Prometheus' log:"
        tail -n 10 "$WORK/prometheus.log" >&2 2>/dev/null
    fi
    [[ -n $WORK ]] && rm -rf "$WORK"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ------------------------------------------------------ static checks ----

ensure_prometheus
if [[ ${1:-} == --install-only ]]; then
    exit 0
fi
command -v psql >/dev/null 2>&1 || die "psql is needed to drop the run's database (apt-get install postgresql-client)"
command -v curl >/dev/null 2>&1 || die "curl is needed to drive traffic"

log "promtool check rules"
promtool check rules "$RULES_DIR/chat.rules.yml" || die "promtool check rules failed"
log "promtool test rules"
(cd "$RULES_DIR" && promtool test rules chat.rules.test.yml) || die "promtool test rules failed"
log "promtool check config (deploy/prometheus.yml)"
# The deploy config names the rules by their path in the container; check it with that
# path pointing here.
WORK=$(mktemp -d "${TMPDIR:-/tmp}/prometheus-check.XXXXXX")
sed "s#/etc/prometheus/rules/#$RULES_DIR/#" "$ROOT/deploy/prometheus.yml" >"$WORK/deploy-prometheus.yml"
promtool check config "$WORK/deploy-prometheus.yml" >/dev/null || die "promtool check config deploy/prometheus.yml failed"
log "dashboard structure"
python3 "$ROOT/scripts/prometheus-check.py" structure "$DASH_DIR" || die "the dashboards' structure check failed"

# ------------------------------------------------------------ platform ----

bash "$ROOT/scripts/services.sh" || die "PostgreSQL and NATS are not available (scripts/services.sh)"
if [[ -n ${CHAT_BIN:-} ]]; then
    [[ -x $CHAT_BIN ]] || die "CHAT_BIN=$CHAT_BIN is not an executable"
else
    log "cargo build -p platform --bin chat"
    CHAT_BIN=$(cd "$ROOT" && cargo build -q -p platform --bin chat --message-format=json-render-diagnostics |
        python3 -c 'import json,sys
exe=""
for l in sys.stdin:
    m=json.loads(l)
    if m.get("reason")=="compiler-artifact" and m.get("executable") and m["target"]["name"]=="chat": exe=m["executable"]
print(exe)') || die "cargo build -p platform --bin chat failed"
    [[ -n $CHAT_BIN && -x $CHAT_BIN ]] || die "cargo reported no chat binary"
fi

RUN=$(od -An -N4 -tx1 /dev/urandom | tr -d ' \n')
DB=chat_prom_$RUN
STREAM=CHAT_PROM_$RUN
CHAT_PORT=$(python3 "$ROOT/scripts/prometheus-check.py" free-port)
PROM_PORT=$(python3 "$ROOT/scripts/prometheus-check.py" free-port)
BASE=http://127.0.0.1:$CHAT_PORT
PROM=http://127.0.0.1:$PROM_PORT
mkdir -p "$WORK/data" "$WORK/prom"
JWT_SECRET=$(od -An -N32 -tx1 /dev/urandom | tr -d ' \n') # 64 hex characters
export APP_DATABASE_URL=$PG_URL_BASE/$DB \
    APP_NATS_URL=nats://$NATS_HOST:$NATS_PORT \
    APP_STREAM_NAME=$STREAM \
    APP_SUBJECT_PREFIX=promcheck$RUN \
    APP_DATA_DIR=$WORK/data \
    APP_JWT_SECRET=$JWT_SECRET \
    APP_LISTEN=127.0.0.1:$CHAT_PORT \
    APP_SEARCH_BACKEND=tantivy \
    RUST_LOG=${RUST_LOG:-warn}
log "starting chat on $BASE (database $DB, stream $STREAM)"
"$CHAT_BIN" >"$WORK/chat.log" 2>&1 &
CHAT_PID=$!
wait_for "$TIMEOUT" "chat to be ready on $BASE/readyz" curl -sf "$BASE/readyz"

cat >"$WORK/prometheus.yml" <<YAML
global:
  scrape_interval: 1s
  evaluation_interval: 1s
rule_files:
  - $RULES_DIR/chat.rules.yml
scrape_configs:
  - job_name: chat
    metrics_path: /metrics
    static_configs:
      - targets: ["127.0.0.1:$CHAT_PORT"]
        labels:
          service: chat
YAML
log "starting Prometheus on $PROM"
prometheus --config.file="$WORK/prometheus.yml" --storage.tsdb.path="$WORK/prom" \
    --web.listen-address="127.0.0.1:$PROM_PORT" --storage.tsdb.retention.time=1h \
    >"$WORK/prometheus.log" 2>&1 &
PROM_PID=$!
wait_for "$TIMEOUT" "Prometheus to be ready on $PROM" curl -sf "$PROM/-/ready"

# ------------------------------------------------------------- traffic ----

# api METHOD PATH TOKEN BODY EXPECTED_STATUS: prints the JSON answer.
api() {
    local method=$1 path=$2 token=$3 body=$4 expect=$5 out code
    out=$(curl -s -m 10 -X "$method" -H 'content-type: application/json' \
        ${token:+-H "authorization: Bearer $token"} ${body:+--data "$body"} \
        -w '\n%{http_code}' "$BASE$path") || die "curl $method $path failed"
    code=${out##*$'\n'}
    [[ $code == "$expect" ]] || die "$method $path: status $code, expected $expect: ${out%$'\n'*}"
    printf '%s\n' "${out%$'\n'*}"
}
field() { python3 -c 'import json,sys; print(json.load(sys.stdin)[sys.argv[1]])' "$1"; }

log "driving traffic: register, log in, create a room, send messages, read, search, 4xx, a WebSocket"
alice=$(api POST /v1/auth/register "" '{"username":"alice_'"$RUN"'","password":"correct horse battery"}' 201)
token=$(field access_token <<<"$alice")
api POST /v1/auth/login "" '{"username":"alice_'"$RUN"'","password":"correct horse battery"}' 200 >/dev/null
room=$(api POST /v1/rooms "$token" '{"name":"metrics","visibility":"public"}' 201 | field room_id)
position=0
for i in $(seq 1 20); do
    position=$(api POST "/v1/rooms/$room/messages" "$token" \
        '{"client_msg_id":"m'"$i"'","body":"hello prometheus '"$i"'"}' 201 | field position)
done
api GET "/v1/rooms/$room/messages?min_position=$position" "$token" "" 200 >/dev/null
api GET "/v1/search/messages?q=prometheus" "$token" "" 200 >/dev/null
api POST "/v1/rooms/$room/messages" "$token" '{"client_msg_id":"bad","body":""}' 400 >/dev/null
api GET /v1/rooms/not-a-room/messages "$token" "" 400 >/dev/null
# The live feed: a WebSocket that subscribes to the room from version 0 (the room's events
# back-filled as frames, then `subscribed`).
frames=$(python3 "$ROOT/scripts/prometheus-check.py" ws-subscribe 127.0.0.1 "$CHAT_PORT" "$token" "$room") ||
    die "the WebSocket subscription failed"
log "WebSocket: $frames frames received"
log "rebuilding the search projection (chat rebuild search) for the rebuild panels"
timeout "$TIMEOUT" "$CHAT_BIN" rebuild search >"$WORK/rebuild.log" 2>&1 ||
    die "chat rebuild search failed: $(tail -n 5 "$WORK/rebuild.log")"

# --------------------------------------------------------- evaluation ----

scrapes() {
    curl -sf "$PROM/api/v1/query" --data-urlencode 'query=count_over_time(up{job="chat"}[5m])' |
        python3 -c 'import json,sys; r=json.load(sys.stdin)["data"]["result"]; print(int(r[0]["value"][1]) if r else 0)'
}
enough_scrapes() { (($(scrapes) >= 8)); }
# Two scrapes after the traffic, so every rate has two points that differ.
after_traffic=$(scrapes)
two_more_scrapes() { (($(scrapes) >= after_traffic + 2)); }
wait_for "$TIMEOUT" "Prometheus to scrape chat twice after the traffic" two_more_scrapes
wait_for "$TIMEOUT" "Prometheus to scrape chat 8 times" enough_scrapes
up=$(curl -sf "$PROM/api/v1/query" --data-urlencode 'query=up{job="chat"}' |
    python3 -c 'import json,sys; r=json.load(sys.stdin)["data"]["result"]; print(r[0]["value"][1] if r else "none")')
[[ $up == 1 ]] || die "Prometheus does not see chat up (up=$up)"
log "Prometheus scraped chat $(scrapes) times; evaluating every panel target and rule"
python3 "$ROOT/scripts/prometheus-check.py" evaluate "$PROM" "$DASH_DIR" "$RULES_DIR/chat.rules.yml" ||
    die "a dashboard or rule query failed against the real Prometheus (see above)"
log "OK in $((SECONDS - START))s"
