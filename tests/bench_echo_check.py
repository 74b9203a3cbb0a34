#!/usr/bin/env python3
"""A bench server's echo mode echoes every byte and survives clients that misbehave.

For the server command given as argv[1:] (started as `COMMAND... echo 0`, which prints `PORT n`):
  1. 8 clients at once each send 40 messages of 1 to 20,000 random bytes, one at a time, and get
     each back byte for byte;
  2. a client streams 2 MiB while it reads, and gets all of it back in order;
  3. a client that half-closes after its message gets the echo and then end of stream;
  4. 20 clients reset their connection (SO_LINGER 0) with a message in flight;
  5. the server still echoes afterwards, and once every client has gone its open sockets are back
     to what they were after a first client (nothing of a connection is kept).
`--cap N COMMAND...` (the SocketAsyncEventArgs servers, started as `COMMAND... echo 0 N`) checks
their connection cap instead: N clients are served, one more is not served while they stay, and
is served once one of them leaves.
Every socket has a 10 s timeout; the server is stopped by its PID at the end."""
import os
import random
import socket
import struct
import sys
import threading
import time

from bench_server import BenchServer, report


def connect(port):
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def recv_exactly(s, n):
    data = b""
    while len(data) < n:
        b = s.recv(min(65536, n - len(data)))
        if not b:
            break
        data += b
    return data


def messages(port, seed, failures):
    rnd = random.Random(seed)
    try:
        with connect(port) as s:
            for i in range(40):
                msg = rnd.randbytes(rnd.randint(1, 20000))
                s.sendall(msg)
                if recv_exactly(s, len(msg)) != msg:
                    failures.append(f"1: client {seed}, message {i}: the echo differs")
                    return
    except OSError as e:
        failures.append(f"1: client {seed}: {e}")


def stream(port, failures):
    data = random.Random(7).randbytes(2 << 20)
    got = []
    with connect(port) as s:
        def reader():
            got.append(recv_exactly(s, len(data)))
        t = threading.Thread(target=reader)
        t.start()
        s.sendall(data)
        t.join(20)
    if not got or got[0] != data:
        failures.append(f"2: 2 MiB stream: {len(got[0]) if got else 0} bytes came back, or they differ")


def open_fds(pid):
    """The server's open sockets (a runtime may open other files lazily, .NET its assemblies)."""
    n = 0
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            n += os.readlink(f"/proc/{pid}/fd/{fd}").startswith("socket:")
        except OSError:
            pass  # closed meanwhile
    return n


def settled_fds(pid, at_most=None, seconds=5.0):
    """The server's descriptor count once it stops changing (or drops to at_most)."""
    prev, stable, deadline = -1, 0, time.time() + seconds
    while time.time() < deadline:
        cur = open_fds(pid)
        if at_most is not None and cur <= at_most:
            return cur
        stable = stable + 1 if cur == prev else 0
        if stable >= 5 and at_most is None:
            return cur
        prev = cur
        time.sleep(0.1)
    return open_fds(pid)


def echoes(s, msg, timeout):
    s.settimeout(timeout)
    try:
        s.sendall(msg)
        return recv_exactly(s, len(msg)) == msg
    except socket.timeout:
        return False
    finally:
        s.settimeout(10)


def cap_check(port, cap, failures):
    served = [connect(port) for _ in range(cap)]
    for i, s in enumerate(served):
        if not echoes(s, b"served %d" % i, 5):
            failures.append(f"cap: client {i} of {cap} was not served")
    extra = connect(port)
    extra.settimeout(0.5)
    extra.sendall(b"one too many")
    try:
        early = extra.recv(100)
        failures.append(f"cap: client {cap + 1} was served beyond the cap ({early!r})")
    except socket.timeout:
        pass
    extra.settimeout(5)
    served.pop(0).close()
    try:
        if recv_exactly(extra, 12) != b"one too many":
            failures.append(f"cap: client {cap + 1} was not served once a client left")
    except socket.timeout:
        failures.append(f"cap: client {cap + 1} was not served within 5 s of a client leaving")
    for s in served + [extra]:
        s.close()


def serve_check(proc, port, failures):
    """Steps 1 to 5 of the module docstring."""
    with connect(port) as s:
        if not echoes(s, b"first", 5):
            failures.append("0: the first client was not echoed")
    baseline = settled_fds(proc.pid)
    if baseline < 1:  # the listener at least: else /proc could not be read and step 5 checks nothing
        failures.append(f"0: {baseline} sockets counted in /proc/{proc.pid}/fd with the server listening")
    threads = [threading.Thread(target=messages, args=(port, i, failures)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    stream(port, failures)
    with connect(port) as s:
        s.sendall(b"half-closed")
        s.shutdown(socket.SHUT_WR)
        back = b""
        while True:
            b = s.recv(4096)
            if not b:
                break
            back += b
        if back != b"half-closed":
            failures.append(f"3: half-close: got {back!r} before end of stream")
    for _ in range(20):
        s = connect(port)
        s.sendall(os.urandom(3000))
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        s.close()
    messages(port, 99, failures)
    if proc.poll() is not None:
        failures.append(f"5: the server exited ({proc.returncode})")
    else:
        left = settled_fds(proc.pid, at_most=baseline)
        if left > baseline:
            failures.append(f"5: {left} sockets open once every client left, {baseline} before")


def main():
    args = sys.argv[1:]
    cap = None
    if args[:1] == ["--cap"]:
        cap, args = int(args[1]), args[2:]
        if cap < 1:
            sys.exit("bench_echo_check: --cap takes a count of at least 1")
    failures = []
    with BenchServer(args + ["echo", "0"] + ([str(cap)] if cap else [])) as srv:
        if srv.port is None:
            print(f"{srv.name}: no PORT line")
            return 1
        try:
            if cap:
                cap_check(srv.port, cap, failures)
                return report(srv.name, failures, f"{cap} served, one more waits until one leaves")
            serve_check(srv.proc, srv.port, failures)
        except OSError as e:
            failures.append(f"{e}")
    return report(srv.name, failures, "messages, 2 MiB stream, half-close and resets: all echoed, "
                  "still serving, sockets back")


if __name__ == "__main__":
    sys.exit(main())
