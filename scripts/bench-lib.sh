# Shared by the benchmark scripts (sourced, not run).

# drop_database_and_stream DB STREAM: drops a benchmark's own database and JetStream stream
# (the JetStream API over the plain NATS protocol, so no NATS CLI is needed).
drop_database_and_stream() {
    psql -h 127.0.0.1 -U postgres -qc "DROP DATABASE IF EXISTS $1 WITH (FORCE)" >/dev/null
    python3 - "$2" <<'PY'
import socket, sys
s = socket.create_connection(("127.0.0.1", 4222)); s.recv(4096)
s.sendall(b'CONNECT {"verbose":false}\r\nPUB $JS.API.STREAM.DELETE.%s 0\r\n\r\nPING\r\n' % sys.argv[1].encode())
s.recv(4096); s.close()
PY
}

# wait_ready HOST:PORT: waits up to 30 s for /readyz.
wait_ready() {
    for _ in $(seq 1 100); do curl -sf "http://$1/readyz" >/dev/null && return 0; sleep 0.3; done
    echo "not ready: $1" >&2
    return 1
}

# bench_settings NAME: the environment of a benchmark that starts the servers itself: its own
# database (DB=chat_bench_NAME, dropped by reset_bench), JetStream stream and subjects, a
# fixed JWT secret, quiet logs, and no rate limits (the load generator registers and sends
# as hundreds of users from one address).
bench_settings() {
    DB=chat_bench_$1
    export APP_DATABASE_URL=postgres://postgres@127.0.0.1:5432/$DB
    export APP_STREAM_NAME=BENCH_${1^^} APP_SUBJECT_PREFIX=bench${1//_/}
    export APP_JWT_SECRET=bench-$1-secret-0123456789abcdef RUST_LOG=warn
    export APP_RATE_LIMIT_ENABLED=false
}

# reset_bench: drops the database and stream bench_settings named.
reset_bench() {
    drop_database_and_stream "$DB" "$APP_STREAM_NAME"
}

# stop_server: stops the server whose pid is in $pid (started in the background), if any.
pid=
stop_server() {
    if [[ -n $pid ]]; then kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
    pid=
}
