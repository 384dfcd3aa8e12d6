#!/usr/bin/env bash
# ORY Hydra (Apache 2.0) as a real OpenID Connect provider, for the single-sign-on tests:
#
#   bash scripts/hydra.sh                  # print the path of the binary (building it once)
#   eval "$(bash scripts/hydra.sh start)"  # start one; prints `export HYDRA_PUBLIC_URL=…`,
#                                          # HYDRA_ADMIN_URL, OIDC_ISSUER, OIDC_CLIENT_ID,
#                                          # OIDC_CLIENT_SECRET, OIDC_REDIRECT_URI, HYDRA_PID
#                                          # and HYDRA_DIR lines
#   bash scripts/hydra.sh stop [DIR]       # stop the one in DIR (default: $HYDRA_DIR)
#
# - The pinned version (below; Hydra v2.3.0) is built from the Go module proxy into
#   ${CHAT_CACHE_DIR:-/var/tmp/chat-cache}/go-bin, like scripts/seaweedfs.sh (outside the
#   clone; once, 3.5-4 min on 2 cores that were also busy with another build: 14 s to
#   download ~190 modules, 200-220 s to compile; it leaves a 42 MB binary (stripped) and
#   ~400 MB of module sources and zips in $GOPATH/pkg/mod, GOPATH defaulting to
#   ${CHAT_CACHE_DIR}/gopath; Go's build cache is a throwaway one in the build directory,
#   ~500 MB, removed with it). Not with `go install MODULE@VERSION` nor by building in the
#   module's own directory: Hydra's go.mod has replace directives, one of them to
#   ./internal/httpclient, which the published module does not contain. So a scratch module
#   is made (go mod init), given the other replace (gobuffalo/pop => Ory's fork, as Hydra's
#   own build has it), `go get -tool github.com/ory/hydra/v2@v2.3.0` resolves everything else
#   (hydra-client-go, used by the CLI commands only, comes from the proxy at the v2.2.1 Hydra
#   requires), and `go build -tags sqlite,sqlite_omit_load_extension` builds it (the tags
#   compile in SQLite, which the in-memory store is; that needs cgo, so a C compiler).
#   Go >= 1.24 (for `go get -tool`; Hydra's go.mod asks for 1.22) is enough: Go 1.26.8 here
#   builds it, and no GOTOOLCHAIN download is needed. A lock makes concurrent callers wait
#   for one build. There is no fallback: without Go or cc it fails with a message. HYDRA_BIN,
#   when set, is used as it is.
# - `start` writes a configuration (DIR/hydra.yml, mode 600) to a new temporary directory and
#   runs `hydra serve all --dev --sqa-opt-out -c DIR/hydra.yml` there, without the caller's
#   environment (env -i: Hydra reads every config key from environment variables too, so a
#   stray DSN, URLS_* or SECRETS_* would change it; HOME and TMPDIR are DIR):
#     * dev mode, plain HTTP, loopback only (127.0.0.1), public and admin ports on free random
#       ports in 20000-32767 (a start that loses a port to a concurrent process is retried on
#       other ports, 3 attempts); the admin API has no authentication (none in Hydra itself);
#     * dsn: memory (SQLite in memory, migrated at every start; nothing on disk, no other
#       server; the data dies with the process);
#     * urls.self.issuer = HYDRA_PUBLIC_URL = http://127.0.0.1:PORT/ (with the trailing
#       slash, which Hydra keeps: the discovery document's `issuer` and the tokens' `iss` are
#       exactly that; OIDC_ISSUER is taken from the discovery document);
#     * urls.login / urls.consent = ORIGIN/hydra/login and ORIGIN/hydra/consent, ORIGIN being
#       the scheme, host and port of the redirect URI; nothing needs to serve them (see below);
#     * a fresh random secrets.system (32 bytes); cookies without Secure, SameSite=Lax, named
#       …_dev (dev mode); no telemetry (--sqa-opt-out and sqa.opt_out), no tracing, log level
#       info to DIR/hydra.log; token lifetimes Hydra's defaults (ID and access token 1 h,
#       refresh token 720 h, authorization code 10 min, login/consent request 30 min); opaque
#       access tokens; PKCE optional (S256 or plain honoured when sent).
#   It waits (at most HYDRA_START_TIMEOUT, 60 s) for the admin /health/ready and the public
#   discovery document, fetches the JWKS once (the first reads generate the RS256 keys of ID
#   and access tokens, ~1.5 s, so that tests do not pay it), then creates one OAuth2 client
#   through the admin API (POST /admin/clients): grant types authorization_code and refresh_token,
#   response type code, scope "openid profile email", token_endpoint_auth_method
#   client_secret_basic (HTTP Basic with client id and secret at /oauth2/token), redirect URI
#   HYDRA_REDIRECT_URI (default http://127.0.0.1:8080/v1/auth/oidc/callback), a client id
#   chosen by Hydra (a UUID) and a fresh random secret. Needs curl. ~0.3 s until ready, ~2 s
#   with the key and the client; ~60 MB RSS idle.
# - How a test plays the identity provider's login and consent UI (no browser). Follow no
#   redirect automatically (nothing serves ORIGIN/hydra/…: read Location instead), and keep
#   the cookies Hydra sets on its public URL (an HttpOnly CSRF cookie per step,
#   ory_hydra_login_csrf_dev_N then ory_hydra_consent_csrf_dev_N): without them steps 3 and
#   5 end in a redirect to the redirect URI with error=request_forbidden ("No CSRF value
#   available in the session cookie"). Errors of the request itself (a scope the client may
#   not ask for, …) also come back as error=… on the redirect URI.
#     1. GET $HYDRA_PUBLIC_URL/oauth2/auth?response_type=code&client_id=…&redirect_uri=…
#          &scope=openid+profile+email&state=…&nonce=…&code_challenge=…&code_challenge_method=S256
#        → 302 to ORIGIN/hydra/login?login_challenge=LC (sets the login CSRF cookie);
#     2. PUT $HYDRA_ADMIN_URL/admin/oauth2/auth/requests/login/accept?login_challenge=LC
#          {"subject":"user-123","remember":false}
#        → {"redirect_to":"…/oauth2/auth?…&login_verifier=…"};
#     3. GET that redirect_to (with the cookies) → 302 to ORIGIN/hydra/consent?consent_challenge=CC;
#     4. PUT $HYDRA_ADMIN_URL/admin/oauth2/auth/requests/consent/accept?consent_challenge=CC
#          {"grant_scope":["openid","profile","email"],
#           "session":{"id_token":{"email":"a@example.com","preferred_username":"alice"}}}
#        → {"redirect_to":"…/oauth2/auth?…&consent_verifier=…"};
#     5. GET that redirect_to (with the cookies) → 303 to OIDC_REDIRECT_URI?code=…&scope=…&state=…;
#     6. POST $HYDRA_PUBLIC_URL/oauth2/token (Basic client id:secret) grant_type=authorization_code
#          &code=…&redirect_uri=…&code_verifier=… → access_token (opaque, ory_at_…), id_token
#          (RS256; sub, nonce, aud=[client id], iss=OIDC_ISSUER, exp=iat+3600, plus the
#          session's id_token claims, which /userinfo also returns). A code works once (a
#          second exchange: 400 invalid_grant). No refresh_token: Hydra issues one only for a
#          granted offline_access (or offline) scope, which this client's scope does not
#          allow (asking for it ends in error=invalid_scope).
#   A rejection is PUT …/login/reject or …/consent/reject with {"error":"access_denied"}.
# - `stop` sends SIGTERM to the PID recorded in DIR (only if that process is a hydra started
#   with DIR's configuration), waits up to 10 s, then SIGKILL, and removes DIR.
set -euo pipefail

VERSION=v2.3.0
MODULE=github.com/ory/hydra/v2
# The replace directive of Hydra's own go.mod that `go get -tool` would not honour.
POP_REPLACE=github.com/gobuffalo/pop/v6=github.com/ory/pop/v6@v6.2.1-0.20241121111754-e5dfc0f3344b
TAGS=sqlite,sqlite_omit_load_extension
CACHE="${CHAT_CACHE_DIR:-/var/tmp/chat-cache}"
GOBIN_DIR="$CACHE/go-bin"
BIN="$GOBIN_DIR/hydra-$VERSION"
INSTALL_TIMEOUT="${HYDRA_INSTALL_TIMEOUT:-1800}"
START_TIMEOUT="${HYDRA_START_TIMEOUT:-60}"
REDIRECT_URI="${HYDRA_REDIRECT_URI:-http://127.0.0.1:8080/v1/auth/oidc/callback}"
SCOPE="openid profile email"

log() { printf 'hydra.sh: %s\n' "$*" >&2; }
die() {
    log "ERROR: $*"
    exit 1
}

# The steps of the build, in the scratch directory $1 (binary() runs them as
# `hydra.sh __build DIR` under timeout, which ends the whole process group).
build_in() {
    local tmp=$1
    export GOPATH="${GOPATH:-$CACHE/gopath}" GOCACHE="$tmp/gocache" GOFLAGS="-modcacherw -buildvcs=false"
    export CGO_ENABLED=1
    mkdir "$tmp/mod"
    cd "$tmp/mod"
    go mod init chat-hydra-build >&2
    go mod edit -replace "$POP_REPLACE"
    go get -tool "$MODULE@$VERSION" >&2
    nice -n 10 go build -tags "$TAGS" -trimpath \
        -ldflags "-s -w -X $MODULE/driver/config.Version=$VERSION" -o "$tmp/hydra" "$MODULE" >&2
}

# The binary's path, building it once when needed.
binary() {
    if [[ -n ${HYDRA_BIN:-} ]]; then
        [[ -x $HYDRA_BIN ]] || die "HYDRA_BIN=$HYDRA_BIN is not an executable"
        printf '%s\n' "$HYDRA_BIN"
        return
    fi
    if [[ ! -x $BIN ]]; then
        command -v go >/dev/null 2>&1 ||
            die "go is not installed, so Hydra $VERSION cannot be built (apt-get install golang-go, or set HYDRA_BIN)"
        local gov
        gov=$(go env GOVERSION 2>/dev/null | sed -n 's/^go\([0-9]*\.[0-9]*\).*/\1/p')
        [[ $(printf '%s\n1.24\n' "$gov" | sort -V | head -n 1) == 1.24 ]] ||
            die "go ${gov:-?} is too old to build Hydra $VERSION this way (needs >= 1.24, for go get -tool)"
        command -v "${CC:-cc}" >/dev/null 2>&1 ||
            die "no C compiler (${CC:-cc}): Hydra's SQLite store needs cgo (apt-get install gcc, or set HYDRA_BIN)"
        mkdir -p "$GOBIN_DIR"
        exec 9>"$GOBIN_DIR/.hydra.lock"
        flock -w "$INSTALL_TIMEOUT" 9 || die "another build of Hydra held the lock for ${INSTALL_TIMEOUT}s"
        if [[ ! -x $BIN ]]; then
            log "building Hydra $VERSION with go get -tool and go build (once; cached in $GOBIN_DIR)"
            local tmp
            tmp=$(mktemp -d "$GOBIN_DIR/build.XXXXXX")
            if timeout "$INSTALL_TIMEOUT" bash "${BASH_SOURCE[0]}" __build "$tmp" && [[ -x $tmp/hydra ]]; then
                mv "$tmp/hydra" "$BIN"
                chmod -R u+w "$tmp" 2>/dev/null || true
                rm -rf "$tmp"
            else
                chmod -R u+w "$tmp" 2>/dev/null || true
                rm -rf "$tmp"
                die "building $MODULE@$VERSION failed (or took over ${INSTALL_TIMEOUT}s); see above"
            fi
        fi
        exec 9>&-
    fi
    printf '%s\n' "$BIN"
}

# random_hex, port_in_use, free_ports, terminate.
source "$(dirname "${BASH_SOURCE[0]}")/lib/servers.sh"

# The string value of the top-level FIELD in Hydra's compact JSON on stdin.
json_string() { sed -n "s/.*\"$1\":\"\\([^\"]*\\)\".*/\\1/p" | head -n 1; }

show_log() {
    log "the end of its log ($1/hydra.log):"
    tail -n 30 "$1/hydra.log" 2>/dev/null | sed 's/^/    /' >&2 || true
}

# Kill DIR's server at once (a failed start; nothing in it is kept) and remove DIR.
discard() {
    kill -KILL "$2" 2>/dev/null || true
    wait "$2" 2>/dev/null || true
    rm -rf "$1"
}

start() {
    local bin dir pid deadline attempt ports public admin public_url admin_url origin discovery
    local issuer secret system response client_id
    bin=$(binary)
    command -v curl >/dev/null 2>&1 || die "curl is needed to wait for Hydra and create its client"
    [[ $START_TIMEOUT =~ ^[0-9]+$ ]] || die "HYDRA_START_TIMEOUT=$START_TIMEOUT is not a number of seconds"
    local re='^(https?://[^/?#"\\[:space:]]+)(/[^?#"\\[:space:]]*)?$'
    [[ $REDIRECT_URI =~ $re ]] ||
        die "HYDRA_REDIRECT_URI=$REDIRECT_URI is not an absolute http(s) URL without query or fragment"
    origin=${BASH_REMATCH[1]}
    system=$(random_hex 32)
    secret=$(random_hex 24)

    for attempt in 1 2 3; do
        ports=$(free_ports 2)
        read -r public admin <<<"$ports"
        public_url="http://127.0.0.1:$public/"
        admin_url="http://127.0.0.1:$admin/"
        dir=$(mktemp -d "${TMPDIR:-/tmp}/chat-hydra.XXXXXX")
        (
            umask 077
            cat >"$dir/hydra.yml" <<YAML
# Written by scripts/hydra.sh; see its header.
dev: true
dsn: memory
serve:
  public: { host: 127.0.0.1, port: $public }
  admin: { host: 127.0.0.1, port: $admin }
urls:
  self: { issuer: "$public_url", public: "$public_url", admin: "$admin_url" }
  login: "$origin/hydra/login"
  consent: "$origin/hydra/consent"
secrets:
  system: ["$system"]
webfinger:
  oidc_discovery:
    supported_scope: [profile, email]
    supported_claims: [email, email_verified, name, preferred_username]
log: { level: info, format: text }
sqa: { opt_out: true }
YAML
        )
        (cd "$dir" && exec env -i PATH="/usr/local/bin:/usr/bin:/bin" HOME="$dir" TMPDIR="$dir" \
            "$bin" serve all --dev --sqa-opt-out -c "$dir/hydra.yml" >"$dir/hydra.log" 2>&1 </dev/null) &
        pid=$!
        printf '%s\n' "$pid" >"$dir/pid"
        deadline=$((SECONDS + START_TIMEOUT))
        until curl -fsS --max-time 2 -o /dev/null "${admin_url}health/ready" 2>/dev/null &&
            discovery=$(curl -fsS --max-time 5 "${public_url}.well-known/openid-configuration" 2>/dev/null); do
            if ! kill -0 "$pid" 2>/dev/null; then
                if grep -q 'address already in use' "$dir/hydra.log" && ((attempt < 3)); then
                    log "a port was taken meanwhile (attempt $attempt); retrying on other ports"
                    discard "$dir" "$pid"
                    continue 2
                fi
                log "hydra exited during start-up"
                show_log "$dir"
                discard "$dir" "$pid"
                die "Hydra did not start"
            fi
            if ((SECONDS >= deadline)); then
                log "no answer from ${admin_url}health/ready and the discovery document within ${START_TIMEOUT}s"
                show_log "$dir"
                discard "$dir" "$pid"
                die "Hydra did not become ready"
            fi
            sleep 0.1
        done
        break
    done

    issuer=$(json_string issuer <<<"$discovery")
    if [[ -z $issuer ]] || [[ $issuer != "$public_url" ]]; then
        show_log "$dir"
        discard "$dir" "$pid"
        die "the discovery document's issuer '${issuer}' is not $public_url"
    fi
    # The first JWKS read generates the ID-token signing key (~1.5 s): done here, not in a test.
    if ! curl -fsS --max-time "$START_TIMEOUT" -o /dev/null "${public_url}.well-known/jwks.json"; then
        show_log "$dir"
        discard "$dir" "$pid"
        die "Hydra did not serve its JWKS"
    fi
    if ! response=$(curl -sS --max-time 10 -w '\n%{http_code}' -X POST "${admin_url}admin/clients" \
        -H 'Content-Type: application/json' --data-binary @- <<JSON
{
  "client_name": "chat SSO tests",
  "client_secret": "$secret",
  "grant_types": ["authorization_code", "refresh_token"],
  "response_types": ["code"],
  "scope": "$SCOPE",
  "redirect_uris": ["$REDIRECT_URI"],
  "token_endpoint_auth_method": "client_secret_basic"
}
JSON
    ) || [[ ${response##*$'\n'} != 201 ]] || ! client_id=$(json_string client_id <<<"${response%$'\n'*}") ||
        [[ -z $client_id ]]; then
        log "creating the OAuth2 client failed: ${response:-no answer}"
        show_log "$dir"
        discard "$dir" "$pid"
        die "Hydra did not create the client"
    fi

    log "Hydra $VERSION (pid $pid): public (issuer) $public_url, admin $admin_url," \
        "client $client_id for $REDIRECT_URI; config and log in $dir"
    printf 'export HYDRA_PUBLIC_URL=%q\n' "$public_url"
    printf 'export HYDRA_ADMIN_URL=%q\n' "$admin_url"
    printf 'export OIDC_ISSUER=%q\n' "$issuer"
    printf 'export OIDC_CLIENT_ID=%q\n' "$client_id"
    printf 'export OIDC_CLIENT_SECRET=%q\n' "$secret"
    printf 'export OIDC_REDIRECT_URI=%q\n' "$REDIRECT_URI"
    printf 'export HYDRA_PID=%q\n' "$pid"
    printf 'export HYDRA_DIR=%q\n' "$dir"
}

stop() {
    local dir=${1:-${HYDRA_DIR:-}} pid
    [[ -n $dir ]] || die "stop: give the directory that start printed (HYDRA_DIR)"
    [[ -f $dir/pid && -f $dir/hydra.yml ]] || die "stop: $dir is not a directory made by start"
    pid=$(<"$dir/pid")
    [[ $pid =~ ^[0-9]+$ ]] || die "stop: bad pid file $dir/pid"
    if [[ -r /proc/$pid/cmdline ]] && tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "-c $dir/hydra.yml"; then
        terminate "$pid"
        log "stopped Hydra (pid $pid)"
    else
        log "pid $pid is not a running hydra of $dir (already stopped?)"
    fi
    rm -rf "$dir"
}

case "${1:-path}" in
path) binary ;;
start) start ;;
stop) stop "${2:-}" ;;
__build) build_in "$2" ;;
-h | --help | help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0" ;;
*) die "unknown command ${1}; use start, stop or no argument (see --help)" ;;
esac
