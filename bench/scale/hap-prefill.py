#!/usr/bin/env python3
"""Pre-fill an HAProxy stick table over its stats socket, for bench/scale.sh.

    hap-prefill.py SOCKET TABLE N [SERVER_IDS]     (SERVER_IDS: "1,2", round robin)

Streams N `set table TABLE key K data.server_id S` commands down one connection in
interactive (prompt) mode, a reader thread draining the answers, then prints how many
entries the table holds and how long it took. Keys are 32 hex characters, distinct and
deterministic (i times an odd 128-bit constant, a bijection mod 2^128).
"""
import socket
import sys
import threading
import time

sock_path, table, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
servers = [int(s) for s in (sys.argv[4] if len(sys.argv) > 4 else "1,2").split(",")]
MUL = 0x9E3779B97F4A7C15F39CC0605CEDC835
MASK = (1 << 128) - 1


def used():
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(30)
    s.connect(sock_path)
    s.sendall(b"show table\n")
    out = b""
    while chunk := s.recv(65536):
        out += chunk
    for line in out.decode().splitlines():
        if line.startswith(f"# table: {table},"):
            return int(line.rsplit("used:", 1)[1].split()[0])
    raise SystemExit(f"no table {table} in: {out!r}")


s = socket.socket(socket.AF_UNIX)
s.connect(sock_path)
errors = []


def drain():
    buf = b""
    while chunk := s.recv(1 << 20):
        # Successful `set table` answers nothing; anything but prompts is an error.
        buf = (buf + chunk).replace(b"\n> ", b"").replace(b"> ", b"").strip(b"\n")
        if buf and len(errors) < 5:
            errors.append(buf[:200])
        buf = b""


reader = threading.Thread(target=drain, daemon=True)
reader.start()
t0 = time.time()
s.sendall(b"prompt\n")
CHUNK = 5000
for start in range(0, n, CHUNK):
    lines = [
        "set table %s key %032x data.server_id %d\n"
        % (table, (i * MUL) & MASK, servers[i % len(servers)])
        for i in range(start, min(start + CHUNK, n))
    ]
    s.sendall("".join(lines).encode())
s.sendall(b"quit\n")
reader.join(timeout=600)
s.close()
elapsed = time.time() - t0
if errors:
    raise SystemExit(f"haproxy answered: {errors}")
have = used()
print(f"hap-prefill: {n} set table in {elapsed:.1f} s ({n / elapsed:.0f}/s); table {table} holds {have}")
