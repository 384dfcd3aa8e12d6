#!/usr/bin/env bash
# SeaweedFS as a real S3-compatible server, for the attachments feature's blobs (stored in S3
# through the object_store crate) in tests and local runs:
#
#   bash scripts/seaweedfs.sh                  # print the path of the binary (installing it once)
#   eval "$(bash scripts/seaweedfs.sh start)"  # start one; prints `export S3_ENDPOINT=…`,
#                                              # S3_ACCESS_KEY_ID, S3_SECRET_ACCESS_KEY, S3_BUCKET,
#                                              # S3_REGION, SEAWEEDFS_PID and SEAWEEDFS_DIR lines
#   bash scripts/seaweedfs.sh stop [DIR]       # stop the one in DIR (default: $SEAWEEDFS_DIR)
#
# - The pinned version (below; SeaweedFS 4.53 at commit 7506e5f9) is built from the Go module
#   proxy into ${CHAT_CACHE_DIR:-/var/tmp/chat-cache}/go-bin, like scripts/centrifugo.sh
#   (outside the clone; ~6 min on 2 cores once, leaving a 160 MB binary, ~2 GB of module
#   sources in $GOPATH/pkg/mod and ~2 GB in Go's build cache; then nothing). Not with `go install
#   MODULE/weed@VERSION`: the module's go.mod has a replace directive, which `go install
#   pkg@version` refuses; so the module is fetched with `go mod download` (into
#   $GOPATH/pkg/mod, GOPATH defaulting to ${CHAT_CACHE_DIR}/gopath) and its ./weed is built
#   with `go build` in there, which honours the replace. A lock makes concurrent callers wait
#   for one build. There is no fallback: without Go (>= 1.26.6, what the module's go.mod asks
#   for) it fails with a message. SEAWEEDFS_BIN, when set, is used as it is.
# - `start` makes a new temporary directory and runs one process in it with the master,
#   volume server, filer and S3 gateway, in one of two modes (SEAWEEDFS_MODE; default auto):
#     * mini (`weed mini`, its WebDAV gateway and admin UI off): ready in ~5 s, gone ~2 s
#       after SIGTERM. But it keeps 1% of the disk free, not configurable: on a fuller disk
#       its volume server takes no writes;
#     * server (`weed server -s3 -master.peers=none`): keeps only 256 MiB free
#       (-volume.minFreeSpace), but needs ~13 s until it takes a first object (its filer
#       waits out a peer scan on a fresh store, which mini skips). Without -master.peers=none
#       it would take ~15 s to exit on SIGTERM;
#     * auto: mini, unless the disk holding DIR has less than 2% free (then server, said on
#       stderr).
#   The server:
#     * listens on loopback only (-ip=127.0.0.1 -ip.bind=127.0.0.1), on free random ports in
#       20000-32767, below Linux's ephemeral range (HTTP and gRPC of the master, volume
#       server, filer, S3 gateway and, in mini, the admin server it runs for its maintenance
#       worker); a start that loses a port to a concurrent process is retried on other ports
#       (3 attempts);
#     * has one S3 identity (DIR/s3.json, -s3.config) with a fresh random access key and
#       secret and the Admin, Read, List, Tagging and Write actions, and no anonymous
#       identity: every request must be signed (SigV4; S3_REGION=us-east-1 is printed for
#       clients). Only the S3 port checks signatures: the master, volume and filer ports are
#       open to local processes, as SeaweedFS's always are;
#     * is small: 64 MB volumes (-master.volumeSizeLimitMB), not preallocated, grown one at a
#       time per bucket (DIR/master.toml; the default grows 7), at most 100 (-volume.max); no
#       telemetry, no metrics port, no Iceberg or Lance listener (~140 MB RSS);
#     * reads its own master.toml and an empty security.toml first (-config_dir), has HOME=DIR,
#       and runs without the caller's AWS_*, WEED_*, SENTRY_* and S3_* variables, so that
#       ~/.seaweedfs and the caller's environment do not change it (AWS_ACCESS_KEY_ID would add
#       an admin identity, SENTRY_DSN would report to that Sentry); other files in
#       /etc/seaweedfs/ (e.g. filer.toml) would still be read: there are none here;
#     * keeps its data in DIR/data, its log in DIR/weed.log, the filer's and gateway's Unix
#       sockets in DIR (the gRPC ones are fixed by SeaweedFS: /tmp/seaweedfs-*-grpc-PORT.sock).
#   It waits (at most SEAWEEDFS_START_TIMEOUT, 60 s) until a signed PUT creates the bucket
#   SEAWEEDFS_BUCKET (default chat), and until one object can be written, read back and
#   deleted in it (the first write waits for the filer to join the cluster and grows the
#   bucket's volume). Needs curl >= 7.75 (--aws-sigv4) and sha256sum.
# - `stop` sends SIGTERM to the PID recorded in DIR (only if that process is a weed started
#   with DIR's configuration), waits up to 10 s, then SIGKILL, removes the gRPC sockets of
#   its ports from /tmp, and removes DIR.
set -euo pipefail

VERSION=v0.0.0-20261109003541-7506e5f91cd6
COMMIT=7506e5f9
MODULE=github.com/seaweedfs/seaweedfs
CACHE="${CHAT_CACHE_DIR:-/var/tmp/chat-cache}"
GOBIN_DIR="$CACHE/go-bin"
BIN="$GOBIN_DIR/weed-$VERSION"
INSTALL_TIMEOUT="${SEAWEEDFS_INSTALL_TIMEOUT:-1800}"
START_TIMEOUT="${SEAWEEDFS_START_TIMEOUT:-60}"
BUCKET="${SEAWEEDFS_BUCKET:-chat}"
MODE="${SEAWEEDFS_MODE:-auto}"
MIN_FREE_SPACE=256MiB
REGION=us-east-1

log() { printf 'seaweedfs.sh: %s\n' "$*" >&2; }
die() {
    log "ERROR: $*"
    exit 1
}

# The binary's path, building it once when needed.
binary() {
    if [[ -n ${SEAWEEDFS_BIN:-} ]]; then
        [[ -x $SEAWEEDFS_BIN ]] || die "SEAWEEDFS_BIN=$SEAWEEDFS_BIN is not an executable"
        printf '%s\n' "$SEAWEEDFS_BIN"
        return
    fi
    if [[ ! -x $BIN ]]; then
        command -v go >/dev/null 2>&1 ||
            die "go is not installed, so SeaweedFS $VERSION cannot be built (apt-get install golang-go, or set SEAWEEDFS_BIN)"
        mkdir -p "$GOBIN_DIR"
        exec 9>"$GOBIN_DIR/.seaweedfs.lock"
        flock -w "$INSTALL_TIMEOUT" 9 || die "another build of SeaweedFS held the lock for ${INSTALL_TIMEOUT}s"
        if [[ ! -x $BIN ]]; then
            log "building SeaweedFS $VERSION (weed) with go build (once; cached in $GOBIN_DIR)"
            local tmp src
            tmp=$(mktemp -d "$GOBIN_DIR/build.XXXXXX")
            export GOPATH="${GOPATH:-$CACHE/gopath}" GOFLAGS="-modcacherw -buildvcs=false"
            # The module's source directory in the module cache (downloaded when missing).
            if src=$(cd "$tmp" && timeout "$INSTALL_TIMEOUT" go mod download -json "$MODULE@$VERSION" |
                sed -n 's/^[[:space:]]*"Dir": "\(.*\)",\{0,1\}$/\1/p') &&
                [[ -n $src && -f $src/go.mod ]] &&
                (cd "$src" && timeout "$INSTALL_TIMEOUT" nice -n 10 go build -o "$tmp/weed" \
                    -ldflags "-s -w -X $MODULE/weed/util/version.COMMIT=$COMMIT" ./weed >&2); then
                mv "$tmp/weed" "$BIN"
                rm -rf "$tmp"
            else
                rm -rf "$tmp"
                die "building $MODULE/weed@$VERSION failed (or took over ${INSTALL_TIMEOUT}s); see above"
            fi
        fi
        exec 9>&-
    fi
    printf '%s\n' "$BIN"
}

# random_hex, port_in_use, free_ports, terminate.
source "$(dirname "${BASH_SOURCE[0]}")/lib/servers.sh"

# curl with SigV4 signing; the credentials go through a config file, not the command line.
s3_curl() {
    curl -sS --max-time 5 --aws-sigv4 "aws:amz:$REGION:s3" \
        -K <(printf 'user = "%s:%s"\n' "$S3_KEY" "$S3_SECRET") "$@"
}

# Print the end of DIR's log to stderr (with a hint when the disk is what failed).
show_log() {
    local dir=$1
    log "the end of its log ($dir/weed.log):"
    tail -n 40 "$dir/weed.log" 2>/dev/null | sed 's/^/    /' >&2 || true
    if grep -q 'disk free .* < required' "$dir/weed.log" 2>/dev/null; then
        if [[ $MODE == mini ]]; then
            log "the disk holding $dir has less than the 1% free that mini keeps; free some, set" \
                "TMPDIR to another disk, or use SEAWEEDFS_MODE=server (keeps $MIN_FREE_SPACE)"
        else
            log "the disk holding $dir has less than the $MIN_FREE_SPACE free that SeaweedFS keeps;" \
                "free some, or set TMPDIR to another disk"
        fi
    fi
}

# Kill DIR's server at once (a failed start; nothing in it is kept) and remove what it left.
discard() {
    local dir=$1 pid=$2
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    remove_sockets "$dir"
    rm -rf "$dir"
}

# The gRPC Unix sockets SeaweedFS puts in /tmp for the ports recorded in DIR (those of a
# port that something listens on again belong to that one).
remove_sockets() {
    local dir=$1 port sock
    [[ -f $dir/grpc-ports ]] || return 0
    for port in $(<"$dir/grpc-ports"); do
        [[ $port =~ ^[0-9]+$ ]] || continue
        port_in_use "$port" && continue
        for sock in /tmp/seaweedfs-{master,volume,filer,s3,admin}-grpc-"$port".sock; do
            if [[ -S $sock ]]; then rm -f "$sock"; fi
        done
    done
}

start() {
    local bin dir pid deadline attempt code endpoint curl_version probe body ports size avail var
    local mport mgrpc vport vgrpc fport fgrpc sport sgrpc aport agrpc
    local -a clean_env=() mode_args=()
    bin=$(binary)
    [[ $MODE == auto || $MODE == mini || $MODE == server ]] || die "SEAWEEDFS_MODE=$MODE: use auto, mini or server"
    [[ $BUCKET =~ ^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$ ]] ||
        die "SEAWEEDFS_BUCKET=$BUCKET is not a valid S3 bucket name (3-63 of a-z 0-9 . -)"
    command -v curl >/dev/null 2>&1 || die "curl (>= 7.75, for --aws-sigv4) is needed to create the bucket"
    curl_version=$(curl --version | sed -n '1s/^curl \([0-9.]*\).*/\1/p')
    [[ $(printf '%s\n7.75.0\n' "$curl_version" | sort -V | head -n 1) == 7.75.0 ]] ||
        die "curl $curl_version has no --aws-sigv4 (needs >= 7.75)"
    command -v sha256sum >/dev/null 2>&1 || die "sha256sum (coreutils) is needed to sign the probe object"
    # What must not leak into the server from the caller's environment.
    while IFS= read -r var; do
        clean_env+=(-u "$var")
    done < <(compgen -e | grep -E '^(AWS_|WEED_|SENTRY_|S3_)' || true)
    S3_KEY=$(random_hex 10)
    S3_SECRET=$(random_hex 20)
    if [[ $MODE == auto ]]; then
        MODE=mini
        read -r size avail < <(df -Pk "${TMPDIR:-/tmp}" | awk 'NR == 2 { print $2, $4 }') || true
        if [[ $size =~ ^[0-9]+$ && $avail =~ ^[0-9]+$ ]] && ((avail * 100 < size * 2)); then
            MODE=server
            log "the disk holding ${TMPDIR:-/tmp} has less than 2% free ($((avail / 1024)) MiB)," \
                "where mini would soon refuse writes: server mode"
        fi
    fi

    for attempt in 1 2 3; do
        ports=$(free_ports 10)
        read -r mport mgrpc vport vgrpc fport fgrpc sport sgrpc aport agrpc <<<"$ports"
        endpoint="http://127.0.0.1:$sport"
        dir=$(mktemp -d "${TMPDIR:-/tmp}/chat-seaweedfs.XXXXXX")
        mkdir "$dir/data"
        cat >"$dir/s3.json" <<JSON
{
  "identities": [
    {
      "name": "chat",
      "credentials": [ { "accessKey": "$S3_KEY", "secretKey": "$S3_SECRET" } ],
      "actions": [ "Admin", "Read", "List", "Tagging", "Write" ]
    }
  ]
}
JSON
        chmod 600 "$dir/s3.json"
        cat >"$dir/master.toml" <<'TOML'
# Written by scripts/seaweedfs.sh: one volume at a time per bucket (collection; the default
# grows 7), and no hold on the first allocation (a fresh test cluster has no veteran servers).
[master.volume_growth]
copy_1 = 1
copy_2 = 1
copy_3 = 1
copy_other = 1
allocation_deferral = "0s"
TOML
        : >"$dir/security.toml"
        if [[ $MODE == mini ]]; then
            mode_args=(mini -webdav=false -admin.ui=false -admin.port="$aport" -admin.port.grpc="$agrpc"
                -admin.port.legacy=0)
            printf '%s\n' "$mgrpc $vgrpc $fgrpc $sgrpc $agrpc" >"$dir/grpc-ports"
        else
            mode_args=(server -s3 -master.peers=none -volume.minFreeSpace="$MIN_FREE_SPACE")
            printf '%s\n' "$mgrpc $vgrpc $fgrpc $sgrpc" >"$dir/grpc-ports"
        fi
        (cd "$dir" && exec env "${clean_env[@]}" HOME="$dir" TMPDIR="$dir" \
            "$bin" -logtostderr -config_dir="$dir" "${mode_args[@]}" \
            -ip=127.0.0.1 -ip.bind=127.0.0.1 -dir="$dir/data" \
            -master.port="$mport" -master.port.grpc="$mgrpc" \
            -master.volumeSizeLimitMB=64 -master.telemetry=false \
            -volume.port="$vport" -volume.port.grpc="$vgrpc" \
            -volume.max=100 -volume.preStopSeconds=0 \
            -filer.port="$fport" -filer.port.grpc="$fgrpc" -filer.localSocket="$dir/filer.sock" \
            -s3.port="$sport" -s3.port.grpc="$sgrpc" -s3.localSocket="$dir/s3.sock" \
            -s3.port.iceberg=0 -s3.port.lance=0 -s3.config="$dir/s3.json" \
            >"$dir/weed.log" 2>&1 </dev/null) &
        pid=$!
        printf '%s\n' "$pid" >"$dir/pid"
        deadline=$((SECONDS + START_TIMEOUT))
        # A signed PUT /BUCKET: 200 once the gateway, the filer and the identities are up.
        until code=$(s3_curl -o /dev/null -w '%{http_code}' -X PUT "$endpoint/$BUCKET" 2>/dev/null) &&
            [[ $code == 200 || $code == 409 ]]; do
            if ! kill -0 "$pid" 2>/dev/null; then
                if grep -qE 'address already in use|is not available on' "$dir/weed.log" && ((attempt < 3)); then
                    log "a port was taken meanwhile (attempt $attempt); retrying on other ports"
                    discard "$dir" "$pid"
                    continue 2
                fi
                log "weed exited during start-up"
                show_log "$dir"
                discard "$dir" "$pid"
                die "SeaweedFS did not start"
            fi
            if ((SECONDS >= deadline)); then
                log "no bucket created at $endpoint/$BUCKET within ${START_TIMEOUT}s (last HTTP status ${code:-none})"
                show_log "$dir"
                discard "$dir" "$pid"
                die "SeaweedFS did not become ready"
            fi
            sleep 0.2
        done
        break
    done

    # One object written (once the filer has joined the cluster; the bucket's first volume is
    # grown now), read back and deleted, so that the caller's first write finds it ready.
    probe="$endpoint/$BUCKET/.seaweedfs-sh-probe"
    body=$(random_hex 8)
    until code=$(s3_curl -o /dev/null -w '%{http_code}' -X PUT --data-binary "$body" \
        -H "x-amz-content-sha256: $(printf '%s' "$body" | sha256sum | cut -d' ' -f1)" "$probe" 2>/dev/null) &&
        [[ $code == 200 ]]; do
        if ! kill -0 "$pid" 2>/dev/null || ((SECONDS >= deadline)) ||
            grep -q 'disk free .* < required' "$dir/weed.log"; then
            log "no object could be written to $probe (last HTTP status ${code:-none})"
            show_log "$dir"
            discard "$dir" "$pid"
            die "SeaweedFS does not store objects"
        fi
        sleep 0.2
    done
    if [[ $(s3_curl "$probe" 2>/dev/null) != "$body" ]] ||
        ! code=$(s3_curl -o /dev/null -w '%{http_code}' -X DELETE "$probe" 2>/dev/null) || [[ $code != 204 ]]; then
        log "the probe object $probe could not be read back or deleted (last HTTP status ${code:-none})"
        show_log "$dir"
        discard "$dir" "$pid"
        die "SeaweedFS does not store objects"
    fi

    log "SeaweedFS $("$bin" version 2>/dev/null | sed -n '1s/^version //p'), $MODE mode (pid $pid):" \
        "S3 on $endpoint, bucket $BUCKET; master :$mport, volume :$vport, filer :$fport;" \
        "data and log in $dir"
    printf 'export S3_ENDPOINT=%q\n' "$endpoint"
    printf 'export S3_ACCESS_KEY_ID=%q\n' "$S3_KEY"
    printf 'export S3_SECRET_ACCESS_KEY=%q\n' "$S3_SECRET"
    printf 'export S3_BUCKET=%q\n' "$BUCKET"
    printf 'export S3_REGION=%q\n' "$REGION"
    printf 'export SEAWEEDFS_PID=%q\n' "$pid"
    printf 'export SEAWEEDFS_DIR=%q\n' "$dir"
}

stop() {
    local dir=${1:-${SEAWEEDFS_DIR:-}} pid
    [[ -n $dir ]] || die "stop: give the directory that start printed (SEAWEEDFS_DIR)"
    [[ -f $dir/pid && -f $dir/s3.json && -f $dir/master.toml ]] || die "stop: $dir is not a directory made by start"
    pid=$(<"$dir/pid")
    [[ $pid =~ ^[0-9]+$ ]] || die "stop: bad pid file $dir/pid"
    if [[ -r /proc/$pid/cmdline ]] && tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "-config_dir=$dir "; then
        terminate "$pid"
        log "stopped SeaweedFS (pid $pid)"
    else
        log "pid $pid is not a running weed of $dir (already stopped?)"
    fi
    remove_sockets "$dir"
    rm -rf "$dir"
}

case "${1:-path}" in
path) binary ;;
start) start ;;
stop) stop "${2:-}" ;;
-h | --help | help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0" ;;
*) die "unknown command ${1}; use start, stop or no argument (see --help)" ;;
esac
