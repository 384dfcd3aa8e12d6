"""Runs Schemathesis against a single-node platform of its own (see scripts/api-fuzz.sh).

usage: api-fuzz.py ST_BINARY [--full]
"""

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TIMEOUT = float(os.environ.get("API_FUZZ_TIMEOUT", "60"))
PG = os.environ.get("API_FUZZ_PG_URL", "postgres://postgres@127.0.0.1:5432")


def log(msg):
    print(f"api-fuzz: {msg}", file=sys.stderr, flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def chat_binary():
    if os.environ.get("CHAT_BIN"):
        return os.environ["CHAT_BIN"]
    log("cargo build -p platform --bin chat")
    out = subprocess.run(
        ["cargo", "build", "-q", "-p", "platform", "--bin", "chat", "--message-format=json-render-diagnostics"],
        cwd=ROOT, check=True, stdout=subprocess.PIPE, text=True,
    ).stdout
    exe = ""
    for line in out.splitlines():
        m = json.loads(line)
        if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["name"] == "chat":
            exe = m["executable"]
    if not exe:
        raise SystemExit("api-fuzz: ERROR: cargo reported no chat binary")
    return exe


def call(base, method, path, body=None, token=None, expect=None):
    req = urllib.request.Request(base + path, method=method)
    if body is not None:
        req.data = json.dumps(body).encode()
        req.add_header("content-type", "application/json")
    if token:
        req.add_header("authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=10) as res:
            status, text = res.status, res.read().decode()
    except urllib.error.HTTPError as e:
        status, text = e.code, e.read().decode()
    if expect is not None and status != expect:
        raise SystemExit(f"api-fuzz: ERROR: {method} {path}: {status}, expected {expect}: {text}")
    return json.loads(text) if text else None


def wait_ready(base, proc):
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"api-fuzz: ERROR: chat exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(base + "/readyz", timeout=2) as res:
                if res.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.3)
    raise SystemExit(f"api-fuzz: ERROR: chat was not ready on {base} within {TIMEOUT:.0f} s")


def main():
    st, full = sys.argv[1], "--full" in sys.argv[2:]
    examples = int(os.environ.get("API_FUZZ_EXAMPLES", "300" if full else "15"))
    run = secrets.token_hex(4)
    db, stream = f"chat_fuzz_{run}", f"CHAT_FUZZ_{run}"
    work = tempfile.mkdtemp(prefix="api-fuzz.")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = dict(
        os.environ,
        APP_DATABASE_URL=f"{PG}/{db}",
        APP_STREAM_NAME=stream,
        APP_SUBJECT_PREFIX=f"fuzz{run}",
        APP_DATA_DIR=os.path.join(work, "data"),
        APP_JWT_SECRET=secrets.token_hex(32),
        APP_LISTEN=f"127.0.0.1:{port}",
        APP_SEARCH_BACKEND="tantivy",
        RUST_LOG=os.environ.get("RUST_LOG", "warn"),
    )
    chat_log = open(os.path.join(work, "chat.log"), "w")
    proc = subprocess.Popen([chat_binary()], env=env, stdout=chat_log, stderr=subprocess.STDOUT)
    ok = False
    try:
        log(f"chat on {base} (database {db}, stream {stream})")
        wait_ready(base, proc)
        password = "correct horse battery"
        alice = call(base, "POST", "/v1/auth/register", {"username": f"alice_{run}", "password": password}, expect=201)
        bob = call(base, "POST", "/v1/auth/register", {"username": f"bob_{run}", "password": password}, expect=201)
        token = alice["access_token"]
        room = call(base, "POST", "/v1/rooms", {"name": "fuzzed", "visibility": "public"}, token, 201)["room_id"]
        sent = call(base, "POST", f"/v1/rooms/{room}/messages", {"body": "hello fuzz"}, token, 201)
        config = os.path.join(work, "schemathesis.toml")
        with open(os.path.join(ROOT, "scripts", "api-fuzz.toml")) as f:
            template = f.read()
        with open(config, "w") as f:
            f.write(template)
            # Real ids, so that operations get past "not found" to their logic (each still
            # gets generated ids too, in the coverage phase).
            f.write("\n[parameters]\n")
            f.write(f'room_id = "{room}"\nmessage_id = "{sent["message_id"]}"\nuser_id = "{bob["user_id"]}"\n')
        cmd = [
            st, "--config-file", config, "run", f"{base}/openapi.json",
            "--url", base,
            "-H", f"Authorization: Bearer {token}",
            "--checks", "all",
            "--phases", "examples,coverage,fuzzing",
            "--max-examples", str(examples),
            # One worker: CPython before 3.11.8 can raise "AST constructor recursion depth
            # mismatch" when Hypothesis describes strategies from two threads at once.
            "--workers", "1",
            "--seed", os.environ.get("API_FUZZ_SEED", str(secrets.randbelow(2**32))),
            "--no-color",
        ]
        log(f"st run, {examples} cases per operation, every check")
        rc = subprocess.run(cmd, cwd=work, env=dict(os.environ, SCHEMATHESIS_HOOKS="")).returncode
        if proc.poll() is not None:
            raise SystemExit(f"api-fuzz: ERROR: chat died during the run (exit {proc.returncode})")
        panics = [line for line in open(os.path.join(work, "chat.log")) if "panicked" in line]
        if panics:
            raise SystemExit("api-fuzz: ERROR: chat panicked:\n" + "".join(panics[:5]))
        if rc != 0:
            raise SystemExit(f"api-fuzz: ERROR: schemathesis reported failures (exit {rc}); see above")
        ok = True
        log("0 failures")
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        chat_log.close()
        if not ok:
            with open(os.path.join(work, "chat.log")) as f:
                tail = f.readlines()[-20:]
            log("last lines of the platform's log:\n" + "".join(tail))
        subprocess.run(["psql", "-q", "-X", f"{PG}/postgres", "-c", f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)'],
                       check=False, stdout=subprocess.DEVNULL)
        subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "prometheus-check.py"), "delete-stream",
                        "127.0.0.1", "4222", stream], check=False)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
