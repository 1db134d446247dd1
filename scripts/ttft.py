#!/usr/bin/env python3
"""Time to first token: sequential streaming chat requests to one target, timing the
first byte of the response head and the first content event (`"content":"tok`, the
mock's first token) from the moment the request is written.

Usage: ttft.py PORT TOKEN MODEL N [EXTRA_HEADER ...]
Prints: `TTFT n=N head_p50_ms=… head_p99_ms=… content_p50_ms=… content_p99_ms=…`.
Standard library only (the bench runs it with the system python3)."""

import socket
import sys
import time


def one(port, token, model, extra):
    body = ('{"model":"%s","stream":true,"messages":[{"role":"user","content":"hi"}]}' % model).encode()
    head = (
        "POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        "Authorization: Bearer %s\r\nContent-Type: application/json\r\n"
        "Content-Length: %d\r\nConnection: close\r\n%s\r\n"
        % (token, len(body), "".join(h + "\r\n" for h in extra))
    ).encode()
    s = socket.create_connection(("127.0.0.1", port))
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    t0 = time.perf_counter()
    s.sendall(head + body)
    got = b""
    t_head = t_content = None
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        now = time.perf_counter()
        if t_head is None:
            t_head = now
        got += chunk
        if t_content is None and b'"content":"tok' in got:
            t_content = now
            break
    s.close()
    if t_head is None or t_content is None:
        raise SystemExit("no content event from port %d: %r" % (port, got[:300]))
    return (t_head - t0) * 1000, (t_content - t0) * 1000


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(len(xs) * p / 100))]


def main():
    port, token, model, n = int(sys.argv[1]), sys.argv[2], sys.argv[3], int(sys.argv[4])
    extra = sys.argv[5:]
    for _ in range(5):
        one(port, token, model, extra)
    heads, contents = [], []
    for _ in range(n):
        h, c = one(port, token, model, extra)
        heads.append(h)
        contents.append(c)
    print(
        "TTFT n=%d head_p50_ms=%.3f head_p99_ms=%.3f content_p50_ms=%.3f content_p99_ms=%.3f"
        % (n, pct(heads, 50), pct(heads, 99), pct(contents, 50), pct(contents, 99))
    )


if __name__ == "__main__":
    main()
