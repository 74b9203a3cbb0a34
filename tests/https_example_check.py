#!/usr/bin/env python3
"""The HTTPS example (tests/examples/https_server.cpp) against real clients: curl over one
keep-alive connection, Python's ssl module with pipelined requests and Connection: close, a
request that does not parse (400), plain HTTP on the TLS port (the server goes on), then SIGTERM
(exit 0). The certificate is made here, with the openssl command.
    https_example_check.py HTTPS_SERVER"""
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile

HELLO = b"Hello, World!"


def fail(msg):
    print("FAIL:", msg)
    sys.exit(1)


def main():
    exe = sys.argv[1]
    for tool in ("openssl", "curl"):
        if not shutil.which(tool):
            print(f"skipped: no {tool} command")
            sys.exit(77)
    work = tempfile.mkdtemp(prefix="ringsock-https-")
    cert, key = os.path.join(work, "cert.pem"), os.path.join(work, "key.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                    "-nodes", "-keyout", key, "-out", cert, "-days", "1", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
                   check=True, capture_output=True)
    server = subprocess.Popen([exe, cert, key], stdout=subprocess.PIPE, text=True)
    try:
        line = server.stdout.readline()
        if not line.startswith("https on "):
            fail(f"no address line: {line!r}")
        port = int(line.rsplit(":", 1)[1])
        base = f"https://localhost:{port}"

        # curl: two requests on one keep-alive connection.
        r = subprocess.run(["curl", "-sS", "-v", "--cacert", cert, "--max-time", "10",
                            f"{base}/a", f"{base}/b"], capture_output=True, timeout=30)
        if r.returncode != 0 or r.stdout != HELLO * 2:
            fail(f"curl: rc {r.returncode}, body {r.stdout!r}, {r.stderr[-400:]!r}")
        if b"Re-using existing connection" not in r.stderr and b"Reusing existing connection" not in r.stderr:
            fail("curl did not keep the connection")
        if b"ALPN: server accepted http/1.1" not in r.stderr and b"ALPN, server accepted to use http/1.1" not in r.stderr:
            fail("ALPN http/1.1 was not accepted")
        print("curl: 2 requests on one connection, ALPN http/1.1")

        ctx = ssl.create_default_context(cafile=cert)
        # Python: two keep-alive requests and a Connection: close one in one write.
        with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
            with ctx.wrap_socket(raw, server_hostname="localhost") as s:
                s.sendall(b"GET /1 HTTP/1.1\r\nHost: x\r\n\r\n" b"GET /2 HTTP/1.1\r\nHost: x\r\n\r\n"
                          b"GET /3 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                got = b""
                while True:
                    chunk = s.recv(65536)
                    if not chunk:
                        break  # the server's close_notify: a clean end (ssl raises otherwise)
                    got += chunk
        if got.count(HELLO) != 3 or got.count(b"Connection: close") != 1:
            fail(f"pipelined: {got!r}")
        print("python: 3 pipelined answers, then close_notify")

        # A request that does not parse: 400, then the end.
        with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
            with ctx.wrap_socket(raw, server_hostname="localhost") as s:
                s.sendall(b"NOT HTTP AT ALL\r\n\r\n")
                got = b""
                while True:
                    chunk = s.recv(65536)
                    if not chunk:
                        break
                    got += chunk
        if not got.startswith(b"HTTP/1.1 400"):
            fail(f"bad request: {got!r}")
        print("python: 400 for a request that does not parse")

        # Plain HTTP on the TLS port: that connection fails, the server goes on.
        subprocess.run(["curl", "-sS", "--max-time", "5", f"http://127.0.0.1:{port}/"],
                       capture_output=True, timeout=30)
        r = subprocess.run(["curl", "-sS", "--cacert", cert, "--max-time", "10", f"{base}/after"],
                           capture_output=True, timeout=30)
        if r.stdout != HELLO:
            fail(f"after plain HTTP: {r.stdout!r} {r.stderr!r}")
        print("plain HTTP on the TLS port refused; the next client is served")

        server.send_signal(signal.SIGTERM)
        rc = server.wait(timeout=15)
        if rc != 0:
            fail(f"exit status {rc} after SIGTERM")
        print("SIGTERM: exit 0")
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
        shutil.rmtree(work, ignore_errors=True)


main()
