#!/usr/bin/env python3
"""The bench HTTP servers (bench/servers/http_min.h) cap request headers at 8 KiB.

For the server command given as argv[1:] (started as `COMMAND... http 0`, which prints `PORT n`):
  1. a normal request is answered 200; three pipelined in one write (the last one with
     "Connection: close") get three answers, then end of stream;
  2. 9,000 header bytes with no end: the answer is 431 and the connection is closed;
  3. a 256 KiB flood with no end: the connection ends (431 or reset), never a 200;
  4. the server still answers a normal request afterwards.
Every socket has a 5 s timeout; the server is stopped by its PID at the end."""
import socket
import sys

from bench_server import BenchServer, report

REQ = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"


def connect(port):
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    s.settimeout(5)
    return s


def read_all(s):
    """Everything until end of stream; (data, how it ended)."""
    data = b""
    try:
        while True:
            b = s.recv(65536)
            if not b:
                return data, "eof"
            data += b
    except ConnectionResetError:
        return data, "reset"
    except socket.timeout:
        return data, "timeout"


def normal_request(port):
    with connect(port) as s:
        s.sendall(REQ)
        got = b""
        while b"Hello, World!" not in got:
            b = s.recv(4096)
            if not b:
                break
            got += b
        return got.startswith(b"HTTP/1.1 200")


def main():
    failures = []
    with BenchServer(sys.argv[1:] + ["http", "0"]) as srv:
        if srv.port is None:
            print(f"{srv.name}: no PORT line")
            return 1
        port = srv.port
        if not normal_request(port):
            failures.append("1: a normal request was not answered 200")

        with connect(port) as s:  # pipelined: two keep-alive requests and a close, in one write
            s.sendall(REQ + REQ + b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            data, how = read_all(s)
            if data.count(b"HTTP/1.1 200 OK") != 3 or data.count(b"Hello, World!") != 3 or how != "eof":
                failures.append(f"1: three pipelined requests: got {data[:80]!r}..., ended by {how}")

        with connect(port) as s:
            s.sendall(b"GET / HTTP/1.1\r\nX-Big: " + b"a" * 9000)
            data, how = read_all(s)
            if not data.startswith(b"HTTP/1.1 431") or how != "eof":
                failures.append(f"2: 9,000 header bytes: got {data[:40]!r}, ended by {how}")

        with connect(port) as s:
            try:
                s.sendall(b"GET / HTTP/1.1\r\nX-Flood: " + b"f" * (256 * 1024))
            except (BrokenPipeError, ConnectionResetError):
                pass  # the server closed before taking it all: expected
            data, how = read_all(s)
            if b"200" in data or how == "timeout":
                failures.append(f"3: a flood: got {data[:40]!r}, ended by {how}")
            elif not data.startswith(b"HTTP/1.1 431"):
                print(f"{srv.name}: 3: the flood ended by {how} before the 431 was read (allowed)")

        if not normal_request(port):
            failures.append("4: the server did not answer after the oversized requests")
    return report(srv.name, failures, "200, pipelined, 431 + close, flood closed, still serving")


if __name__ == "__main__":
    sys.exit(main())
