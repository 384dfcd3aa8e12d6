#!/usr/bin/env python3
"""Helpers of scripts/prometheus-check.sh (standard library only).

  prometheus-check.py structure DASHBOARD_DIR
      Unique panel ids per dashboard, one datasource uid throughout (the provisioned one),
      a unit (fieldConfig.defaults.unit) and a description on every panel, at least one
      target on every panel.
  prometheus-check.py evaluate PROM_URL DASHBOARD_DIR RULES_FILE
      Every panel target's PromQL and every rule's expression through /api/v1/query; fails
      when a query errors or returns no series. Grafana's interval variables become `1m`.
      A rule's threshold comparisons against a number (`> 0.25`, `== 0`) are removed before
      it is evaluated: a healthy platform fires no alert, so the comparison would filter out
      every series, but what it compares must exist (the metric is exported, the
      expression is valid and selects series).
  prometheus-check.py free-port
  prometheus-check.py ws-subscribe HOST PORT TOKEN ROOM_ID
      A minimal WebSocket client: subscribes to the room from version 0 (the server
      back-fills every event of the room, then sends `subscribed`), prints the number of
      frames received, closes.
  prometheus-check.py delete-stream NATS_HOST NATS_PORT STREAM
      Deletes a JetStream stream through the JetStream API over the NATS protocol.
"""

import glob
import json
import os
import re
import socket
import sys
import time
import urllib.parse
import urllib.request

DATASOURCE_UID = "prometheus"
GRAFANA_VARS = {
    "$__rate_interval": "1m",
    "${__rate_interval}": "1m",
    "$__interval": "1m",
    "${__interval}": "1m",
    "$__range": "5m",
}


def panels(dashboard):
    for p in dashboard.get("panels", []):
        yield p
        yield from p.get("panels", [])  # collapsed rows


def dashboards(directory):
    files = sorted(glob.glob(os.path.join(directory, "*.json")))
    if not files:
        sys.exit(f"no dashboards in {directory}")
    for f in files:
        with open(f) as fh:
            yield os.path.basename(f), json.load(fh)


def structure(directory):
    problems, count = [], 0
    uids = set()
    for name, d in dashboards(directory):
        seen = set()
        for p in panels(d):
            count += 1
            where = f"{name}: panel {p.get('id')} {p.get('title')!r}"
            if p.get("type") == "row":
                continue
            if p.get("id") in seen or p.get("id") is None:
                problems.append(f"{where}: missing or duplicate panel id")
            seen.add(p.get("id"))
            if not (p.get("fieldConfig", {}).get("defaults", {}).get("unit")):
                problems.append(f"{where}: no fieldConfig.defaults.unit")
            if not p.get("description", "").strip():
                problems.append(f"{where}: no description")
            if not p.get("targets"):
                problems.append(f"{where}: no targets")
            for ds in [p.get("datasource")] + [t.get("datasource") for t in p.get("targets", [])]:
                uid = ds.get("uid") if isinstance(ds, dict) else ds
                uids.add(uid)
                if uid != DATASOURCE_UID:
                    problems.append(f"{where}: datasource uid {uid!r}, not {DATASOURCE_UID!r}")
    if len(uids) != 1:
        problems.append(f"more than one datasource uid: {sorted(map(str, uids))}")
    for pr in problems:
        print(f"  {pr}", file=sys.stderr)
    if problems:
        sys.exit(f"dashboard structure: {len(problems)} problem(s)")
    print(f"dashboard structure: {count} panels OK (unique ids, datasource uid "
          f"{DATASOURCE_UID!r}, unit and description on each)")


def query(prom, expr):
    url = prom + "/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            body = json.load(r)
    except urllib.error.HTTPError as e:
        body = json.load(e)
    if body.get("status") != "success":
        return None, f"{body.get('errorType')}: {body.get('error')}"
    result = body["data"]["result"]
    return (len(result) if isinstance(result, list) else 1), None


COMPARISON = re.compile(r"\s*(?:>=|<=|==|!=|>|<)\s*(?:bool\s+)?-?[0-9][0-9.eE+-]*(?![0-9a-zA-Z_\[])")


def without_threshold(expr):
    return COMPARISON.sub("", expr).strip()


def rules(path):
    # The rules file is YAML; this reads the subset it uses (alert names and expressions,
    # single-line or `|` blocks) without a YAML library.
    out, name, lines = [], None, open(path).read().splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        m = re.match(r"\s*- alert:\s*(\S+)", line)
        if m:
            name = m.group(1)
        m = re.match(r"(\s*)expr:\s*(.*)$", line)
        if m and name:
            indent, rest = len(m.group(1)), m.group(2)
            if rest.strip() in ("|", ">", "|-", ">-"):
                block = []
                i += 1
                while i < len(lines) and (not lines[i].strip() or
                                          len(lines[i]) - len(lines[i].lstrip()) > indent):
                    block.append(lines[i].strip())
                    i += 1
                out.append((name, " ".join(b for b in block if b)))
                name = None
                continue
            out.append((name, rest.strip().strip("'\"")))
            name = None
        i += 1
    if not out:
        sys.exit(f"no rules found in {path}")
    return out


def evaluate(prom, directory, rules_file):
    failures, rows = [], []
    n_panels = n_targets = 0
    for name, d in dashboards(directory):
        for p in panels(d):
            if p.get("type") == "row":
                continue
            n_panels += 1
            for t in p.get("targets", []):
                n_targets += 1
                expr = t["expr"]
                for k, v in GRAFANA_VARS.items():
                    expr = expr.replace(k, v)
                n, err = query(prom, expr)
                label = f"{d['uid']} #{p['id']} {p['title']} [{t['refId']}]"
                rows.append((label, n, err))
                if err or not n:
                    failures.append(f"panel {label}: {err or 'no series'}\n      {expr}")
    rule_list = rules(rules_file)
    for name, expr in rule_list:
        stripped = without_threshold(expr)
        n, err = query(prom, stripped)
        rows.append((f"rule {name}", n, err))
        if err or not n:
            failures.append(f"rule {name}: {err or 'no series'}\n      {stripped}")
    width = max(len(r[0]) for r in rows)
    for label, n, err in rows:
        print(f"  {label:<{width}}  {'ERROR ' + err if err else (str(n) + ' series')}")
    print(f"evaluated {n_panels} panels ({n_targets} targets) and {len(rule_list)} rules "
          f"against {prom}")
    if failures:
        for f in failures:
            print(f"  FAILED: {f}", file=sys.stderr)
        sys.exit(f"{len(failures)} of {len(rows)} queries errored or returned no series")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        print(s.getsockname()[1])


def ws_subscribe(host, port, token, room):
    import base64
    deadline = time.monotonic() + 15
    with socket.create_connection((host, int(port)), timeout=10) as s:
        key = base64.b64encode(os.urandom(16)).decode()
        s.sendall((f"GET /v1/ws?access_token={token} HTTP/1.1\r\nHost: {host}:{port}\r\n"
                   f"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                   "Sec-WebSocket-Version: 13\r\n\r\n").encode())
        f = s.makefile("rb")
        status = f.readline().decode()
        if " 101 " not in status:
            sys.exit(f"WebSocket upgrade refused: {status.strip()}")
        while f.readline() not in (b"\r\n", b""):
            pass

        def send(opcode, payload):
            mask = os.urandom(4)
            head = bytes([0x80 | opcode])
            n = len(payload)
            head += bytes([0x80 | n]) if n < 126 else bytes([0x80 | 126]) + n.to_bytes(2, "big")
            s.sendall(head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload)))

        send(1, json.dumps({"type": "subscribe", "room_id": room, "after_version": 0}).encode())
        frames = 0
        while time.monotonic() < deadline:
            b0, b1 = f.read(2)
            n = b1 & 0x7F
            if n == 126:
                n = int.from_bytes(f.read(2), "big")
            elif n == 127:
                n = int.from_bytes(f.read(8), "big")
            payload = f.read(n)
            if b0 & 0x0F == 8:
                sys.exit(f"the server closed the WebSocket: {payload!r}")
            if b0 & 0x0F != 1:
                continue
            frames += 1
            frame = json.loads(payload)
            if frame.get("type") == "error":
                sys.exit(f"WebSocket error frame: {frame}")
            if frame.get("type") == "subscribed":
                send(8, (1000).to_bytes(2, "big"))
                print(frames)
                return
        sys.exit("no `subscribed` frame within 15 s")


def delete_stream(host, port, stream):
    with socket.create_connection((host, int(port)), timeout=10) as s:
        f = s.makefile("rb")
        f.readline()  # INFO
        subject = f"$JS.API.STREAM.DELETE.{stream}"
        s.sendall(b'CONNECT {"verbose":false,"pedantic":false,"headers":false}\r\n'
                  b"SUB _INBOX.promcheck 1\r\n" +
                  f"PUB {subject} _INBOX.promcheck 0\r\n\r\n".encode())
        while True:
            line = f.readline()
            if not line:
                sys.exit("NATS closed the connection")
            if line.startswith(b"PING"):
                s.sendall(b"PONG\r\n")
            elif line.startswith(b"-ERR"):
                sys.exit(f"NATS: {line.decode().strip()}")
            elif line.startswith(b"MSG"):
                size = int(line.split()[-1])
                payload = json.loads(f.read(size + 2)[:size])
                if payload.get("success") or payload.get("error", {}).get("err_code") == 10059:
                    return  # deleted, or there was no such stream
                sys.exit(f"deleting stream {stream}: {payload}")


if __name__ == "__main__":
    cmd, args = sys.argv[1], sys.argv[2:]
    {"structure": structure, "evaluate": evaluate, "free-port": free_port,
     "ws-subscribe": ws_subscribe, "delete-stream": delete_stream}[cmd](*args)
