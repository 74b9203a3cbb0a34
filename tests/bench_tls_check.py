#!/usr/bin/env python3
"""W8's ringsock peer (bench/servers/ringsock_tls_server.cpp) against Python's ssl module: two
keep-alive requests and a Connection: close one in one write get three answers, then the
server's close_notify and the end; 8 concurrent keep-alive clients of 200 requests each are all
answered; oversized headers get 431; garbage instead of a ClientHello and a peer that vanishes
mid-handshake end only their connection; the server's open sockets drop back afterwards.
    bench_tls_check.py RINGSOCK_TLS_SERVER"""
import os
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import threading

REQ = b"GET / HTTP/1.1\r\nHost: bench\r\n\r\n"
CLOSE = b"GET / HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n"


def fail(msg):
    print("FAIL:", msg)
    sys.exit(1)


def tls_connect(port, ctx):
    raw = socket.create_connection(("127.0.0.1", port), timeout=10)
    # A TCP end without close_notify raises SSLEOFError instead of reading as b"".
    return ctx.wrap_socket(raw, server_hostname="localhost", suppress_ragged_eofs=False)


def read_until_end(s):
    data = b""
    while True:
        try:
            b = s.recv(65536)
        except ssl.SSLEOFError:
            return data, False  # TCP end without close_notify
        if not b:
            return data, True  # close_notify
        data += b


def open_sockets(pid):
    return sum(1 for fd in os.listdir(f"/proc/{pid}/fd")
               if os.readlink(f"/proc/{pid}/fd/{fd}").startswith("socket:"))


def main():
    if not shutil.which("openssl"):
        print("skipped: no openssl command")
        sys.exit(77)
    work = tempfile.mkdtemp(prefix="ringsock-bench-tls-")
    cert, key = os.path.join(work, "cert.pem"), os.path.join(work, "key.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                    "-nodes", "-keyout", key, "-out", cert, "-days", "1", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"], check=True, capture_output=True)
    server = subprocess.Popen([sys.argv[1], cert, key], stdout=subprocess.PIPE, text=True)
    try:
        line = server.stdout.readline()
        if not line.startswith("PORT "):
            fail(f"no PORT line: {line!r}")
        port = int(line.split()[1])
        ctx = ssl.create_default_context(cafile=cert)
        baseline = open_sockets(server.pid)

        # Pipelined: two keep-alive answers and a close one, then close_notify.
        with tls_connect(port, ctx) as s:
            s.sendall(REQ + REQ + CLOSE)
            data, clean = read_until_end(s)
        if data.count(b"HTTP/1.1 200") != 3 or b"Connection: close" not in data:
            fail(f"pipelined answers: {data[:300]!r}")
        if not clean:
            fail("the server ended without close_notify")

        # Concurrent keep-alive clients.
        errors = []

        def client():
            try:
                with tls_connect(port, ctx) as s:
                    for _ in range(200):
                        s.sendall(REQ)
                        got = b""
                        while b"Hello, World!" not in got:
                            b = s.recv(4096)
                            if not b:
                                raise RuntimeError("closed early")
                            got += b
            except Exception as e:  # noqa: BLE001 - reported below
                errors.append(repr(e))
        threads = [threading.Thread(target=client) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if errors:
            fail(f"keep-alive clients: {errors[:3]}")

        # Headers too long: 431, then the end.
        with tls_connect(port, ctx) as s:
            s.sendall(b"GET / HTTP/1.1\r\nX-Long: " + b"a" * 20000 + b"\r\n\r\n")
            data, _ = read_until_end(s)
        if not data.startswith(b"HTTP/1.1 431"):
            fail(f"oversized headers: {data[:200]!r}")

        # Garbage instead of a ClientHello, and a handshake cut in the middle.
        with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
            raw.sendall(b"GET / HTTP/1.1\r\n\r\n")
            raw.settimeout(10)
            while raw.recv(4096):
                pass
        with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
            raw.sendall(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03")  # a ClientHello's start

        # Still serving, and nothing left open.
        with tls_connect(port, ctx) as s:
            s.sendall(CLOSE)
            data, _ = read_until_end(s)
        if b"HTTP/1.1 200" not in data:
            fail("not serving after the bad clients")
        for _ in range(100):
            if open_sockets(server.pid) <= baseline:
                break
            threading.Event().wait(0.05)
        else:
            fail(f"sockets open: {open_sockets(server.pid)}, baseline {baseline}")
        print("bench tls server: ok")
    finally:
        server.kill()
        server.wait()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
