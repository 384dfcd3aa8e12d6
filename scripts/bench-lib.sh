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
