#!/usr/bin/env python3
"""A bench server's echo mode echoes every byte and survives clients that misbehave.

For the server command given as argv[1:] (started as `COMMAND... echo 0`, which prints `PORT n`):
  1. 8 clients at once each send 40 messages of 1 to 20,000 random bytes, one at a time, and get
     each back byte for byte;
  2. a client streams 2 MiB while it reads, and gets all of it back in order;
  3. a client that half-closes after its message gets the echo and then end of stream;
  4. 20 clients reset their connection (SO_LINGER 0) with a message in flight;
  5. the server still echoes afterwards.
Every socket has a 10 s timeout; the server is stopped by its PID at the end."""
import os
import random
import socket
import struct
import subprocess
import sys
import threading


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


def main():
    cmd = sys.argv[1:]
    server = " ".join(cmd)
    proc = subprocess.Popen(cmd + ["echo", "0"], stdout=subprocess.PIPE, text=True)
    failures = []
    try:
        line = proc.stdout.readline().split()
        if len(line) != 2 or line[0] != "PORT":
            print(f"{server}: no PORT line")
            return 1
        port = int(line[1])
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
    except OSError as e:
        failures.append(f"{e}")
    finally:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    for f in failures:
        print(f"{server}: FAILED {f}")
    if not failures:
        print(f"{server}: messages, 2 MiB stream, half-close and resets: all echoed, still serving")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
