#!/usr/bin/env python3
"""Runs the echo workloads of README.md "Benchmarks" against each server, interleaved, and reports ratios.

Each server runs pinned to CPU 0, the load generator to CPU 1. Two figures per cell:
throughput (units/s) and the server core's CPU time per unit of work (busy time of CPU 0 from
/proc/stat, so kernel and softirq work done for the server count too). Ratios are to raw-uring,
paired within a round, then the median over rounds is reported with the min-max of the raw
figures. Nothing here asserts a timing: it measures and reports.

The .NET peers (bench/dotnet, built by bench/run when a .NET 10 SDK is on PATH) run beside their
ports to ringsock::compat (compat-saea, compat-apm); a second table gives each port's ratios to
its .NET original, paired within a round. A .NET peer gets one more second of load before it is
measured, so that the JIT's tiered compilation has settled, as in a server that has run a while.
"""
import argparse
import csv
import datetime
import os
import platform
import re
import shutil
import signal
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import time

# The .NET peers and their ports: (dotnet peer, its port to ringsock::compat).
DOTNET_PAIRS = [("dotnet-saea", "compat-saea"), ("dotnet-apm", "compat-apm")]
DOTNET_DLL = os.path.join("dotnet", "dotnet_servers.dll")  # under the build folder (bench/run)
DOTNET_ENV = {"DOTNET_CLI_TELEMETRY_OPTOUT": "1", "DOTNET_NOLOGO": "1"}  # --dotnet-inline adds one


def dotnet_built(build):
    return shutil.which("dotnet") is not None and os.path.exists(os.path.join(build, DOTNET_DLL))


ECHO_SERVERS = ["raw-uring", "ringsock", "ringsock-copy", "epoll", "asio-uring", "compat-saea", "compat-apm",
                "dotnet-saea", "dotnet-apm"]
HTTP_SERVERS = ECHO_SERVERS + ["nginx"]
WORKLOADS = [
    # id, title, kind, arguments, unit, servers
    ("W1", "ping-pong 64 B x50", "loadgen", ["pingpong", "50", "64"], "msg", ECHO_SERVERS),
    ("W2", "ping-pong 4 KiB x50", "loadgen", ["pingpong", "50", "4096"], "msg", ECHO_SERVERS),
    ("W3", "accept churn x32", "loadgen", ["churn", "32"], "conn", ECHO_SERVERS),
    ("W4", "stream 64 KiB x8", "loadgen", ["stream", "8", "65536"], "MB", ECHO_SERVERS),
    ("W5", "HTTP keep-alive c64", "wrk", ["-c64"], "req", HTTP_SERVERS),
    ("W6", "HTTP close c32", "wrk", ["-c32", "-H", "Connection: close"], "req", HTTP_SERVERS),
    ("W7", "W1 with 10,000 idle", "idle", ["pingpong", "50", "64"], "msg", ECHO_SERVERS),
    # HTTPS: ringsock::tls against nginx's TLS (one worker), both on this OpenSSL with its
    # default TLS 1.3 suite; ratios to nginx-tls (BASE).
    ("W8", "HTTPS keep-alive c64", "wrk-tls", ["-c64"], "req", ["ringsock-tls", "nginx-tls"]),
]
# The server each workload's ratios are taken to.
BASE = {"W8": "nginx-tls"}
# W8's certificate and key (made by main() with the openssl command, in a temporary folder).
TLS_FILES = {}
# ringsock-copy: the same server with receive_async into a 4 KiB buffer per connection (the mode
# suffix) instead of the README's borrowed receive.
MODE_SUFFIX = {"ringsock-copy": "-copy"}
BINARIES = {"raw-uring": "raw_uring_server", "ringsock": "ringsock_server", "ringsock-copy": "ringsock_server",
            "ringsock-tls": "ringsock_tls_server",
            "epoll": "epoll_server", "asio-uring": "asio_server", "compat-saea": "compat_saea_server",
            "compat-apm": "compat_apm_server"}
IDLE_CONNS = 10_000


def cpu0_busy():
    """Busy and total jiffies of CPU 0."""
    with open("/proc/stat") as f:
        for line in f:
            if line.startswith("cpu0 "):
                v = [int(x) for x in line.split()[1:]]
                idle = v[3] + v[4]
                return sum(v) - idle, sum(v)
    raise RuntimeError("no cpu0 in /proc/stat")


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_listening(port, timeout=5.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return True
        except OSError:
            time.sleep(0.02)
    return False


class Server:
    """A server process we started (pinned to CPU 0); stopped by its PID."""

    def __init__(self, build, name, mode):
        self.name = name
        self.prefix = None
        if name in ("nginx", "nginx-tls"):
            self.prefix = tempfile.mkdtemp(prefix="ringsock-nginx-")
            self.port = free_port()
            conf = open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "nginx.conf.in")).read()
            tls = (f" ssl;\n    ssl_certificate {TLS_FILES['cert']};\n    ssl_certificate_key {TLS_FILES['key']};\n"
                   "    ssl_protocols TLSv1.2 TLSv1.3;\n    ssl_session_cache off") if name == "nginx-tls" else ""
            conf = (conf.replace("@PREFIX@", self.prefix).replace("@PORT@", str(self.port))
                    .replace("@TLS@", tls))
            path = os.path.join(self.prefix, "nginx.conf")
            open(path, "w").write(conf)
            self.p = subprocess.Popen(["taskset", "-c", "0", shutil.which("nginx") or "/usr/sbin/nginx",
                                       "-c", path, "-p", self.prefix], stdout=subprocess.DEVNULL,
                                      stderr=subprocess.DEVNULL)
            if not wait_listening(self.port):
                self.stop()
                raise RuntimeError("nginx did not start")
            return
        if name.startswith("dotnet-"):  # dotnet_servers saea|apm echo|http
            cmd = [shutil.which("dotnet"), os.path.join(build, DOTNET_DLL), name[len("dotnet-"):], mode]
        elif name == "ringsock-tls":
            cmd = [os.path.join(build, "bench", BINARIES[name]), TLS_FILES["cert"], TLS_FILES["key"]]
        else:
            cmd = [os.path.join(build, "bench", BINARIES[name]), mode + MODE_SUFFIX.get(name, "")]
        self.p = subprocess.Popen(["taskset", "-c", "0"] + cmd, stdout=subprocess.PIPE, text=True,
                                  env=dict(os.environ, **DOTNET_ENV))
        line = self.p.stdout.readline()
        if not line.startswith("PORT "):
            self.stop()
            raise RuntimeError(f"{name} did not start: {line!r}")
        self.port = int(line.split()[1])

    def stop(self):
        self.p.send_signal(signal.SIGTERM)
        try:
            self.p.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.p.kill()
            self.p.wait()
        if self.prefix:
            shutil.rmtree(self.prefix, ignore_errors=True)


def verify_asio_uses_io_uring(pid):
    """The asio-uring peer must really run on io_uring: an io_uring fd and no epoll fd."""
    kinds = [os.readlink(f"/proc/{pid}/fd/{fd}") for fd in os.listdir(f"/proc/{pid}/fd")]
    if not any("io_uring" in k for k in kinds) or any("eventpoll" in k for k in kinds):
        raise RuntimeError(f"asio-uring is not on io_uring: {kinds}")


def loadgen(build, args, port, seconds, cpus="1"):
    cmd = (["taskset", "-c", cpus, os.path.join(build, "bench", "loadgen"), args[0], "127.0.0.1",
            str(port)] + args[1:] + [str(seconds)])
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60)
    if out.returncode != 0:
        raise RuntimeError(f"loadgen failed ({out.returncode}): {out.stderr.strip()}")
    return dict(kv.split("=", 1) for kv in out.stdout.split())


def check_http(port, tls=False):
    """Two keep-alive answers, then a Connection: close answer after which the server closes."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        s = raw
        if tls:
            ctx = ssl.create_default_context(cafile=TLS_FILES["cert"])
            s = ctx.wrap_socket(raw, server_hostname="localhost")
        req = b"GET / HTTP/1.1\r\nHost: bench\r\n\r\n"
        s.sendall(req + req + b"GET / HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n")
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    answers = data.count(b"HTTP/1.1 200 OK")
    if answers != 3 or data.count(b"Hello, World!") != 3:
        raise RuntimeError(f"bad HTTP answers: {data[:300]!r}")


def wrk(args, port, seconds, cpus="1", threads=1, scheme="http"):
    cmd = (["taskset", "-c", cpus, shutil.which("wrk") or "wrk", f"-t{threads}", f"-d{max(1, int(round(seconds)))}s"]
           + args + [f"{scheme}://127.0.0.1:{port}/"])
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60)
    if out.returncode != 0:
        raise RuntimeError(f"wrk failed: {out.stderr.strip()}")
    m = re.search(r"(\d+) requests in ([\d.]+)(ms|s|m)", out.stdout)
    scale = {"ms": 1e-3, "s": 1.0, "m": 60.0}[m.group(3)]
    units, secs = float(m.group(1)), float(m.group(2)) * scale
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out.stdout)
    if bad:
        raise RuntimeError(f"wrk saw {bad.group(1)} bad responses")
    return {"units": units, "seconds": secs, "per_second": units / secs}


def measure(build, server, workload, seconds):
    kind, args = workload[2], workload[3]
    srv = Server(build, server, "http" if kind.startswith("wrk") else "echo")
    idle = None
    extra = {}
    scheme = "https" if kind == "wrk-tls" else "http"
    try:
        if server == "asio-uring":
            verify_asio_uses_io_uring(srv.p.pid)
        if kind.startswith("wrk"):
            check_http(srv.port, tls=kind == "wrk-tls")  # the answers parse; also warms the server up
            if kind == "wrk-tls":
                wrk(args, srv.port, 0.5, scheme=scheme)  # the handshakes out of the timed part
        else:
            loadgen(build, args, srv.port, 0.3)  # correctness check (every byte verified) + warm-up
        if server.startswith("dotnet-"):  # let tiered compilation settle (module docstring)
            if kind == "wrk":
                wrk(args, srv.port, 1.0)
            else:
                loadgen(build, args, srv.port, 1.0)
        if kind == "idle":
            rss0 = rss_kib(srv.p.pid)
            idle = subprocess.Popen(["taskset", "-c", "1", os.path.join(build, "bench", "loadgen"), "idle",
                                     "127.0.0.1", str(srv.port), str(IDLE_CONNS), "3600"],
                                    stdout=subprocess.PIPE, text=True)
            line = idle.stdout.readline()
            if not line.startswith("READY") or int(line.split()[1]) != IDLE_CONNS:
                raise RuntimeError(f"idle connections: {line!r}")
            # Let the server accept them all and settle.
            prev, stable = -1, 0
            while stable < 3:
                time.sleep(0.2)
                cur = rss_kib(srv.p.pid)
                stable = stable + 1 if cur == prev else 0
                prev = cur
            extra["kib_per_conn"] = (prev - rss0) / IDLE_CONNS
        b0, t0 = cpu0_busy()
        r = (wrk(args, srv.port, seconds, scheme=scheme) if kind.startswith("wrk")
             else loadgen(build, args, srv.port, seconds))
        b1, t1 = cpu0_busy()
    finally:
        if idle:
            idle.kill()
            idle.wait()
        srv.stop()
    hz = os.sysconf("SC_CLK_TCK")
    units = float(r["units"])
    busy_s = (b1 - b0) / hz
    m = {
        "units": units,
        "seconds": float(r["seconds"]),
        "per_second": float(r["per_second"]),
        "busy_s": busy_s,
        "cpu_util": (b1 - b0) / max(1, t1 - t0),
        "cpu_us_per_unit": busy_s * 1e6 / units if units else float("nan"),
        "p50_us": float(r.get("p50_us", "nan")),
        "p99_us": float(r.get("p99_us", "nan")),
        "kib_per_conn": extra.get("kib_per_conn", float("nan")),
    }
    return m


def fmt(x, digits=1):
    if x != x:
        return "-"
    if x >= 1000:
        return f"{x:,.0f}"
    return f"{x:.{digits}f}"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default="build-bench")
    ap.add_argument("--quick", action="store_true", help="one short round of each cell")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=4.0)
    ap.add_argument("--only", default="", help="comma-separated workload ids, e.g. W1,W3")
    ap.add_argument("--dotnet-inline", action="store_true",
                    help="run the .NET peers with DOTNET_SYSTEM_NET_SOCKETS_INLINE_COMPLETIONS=1 (callbacks "
                         "on the epoll thread, no thread-pool hop: the mode ringsock::compat mirrors)")
    args = ap.parse_args()
    if args.dotnet_inline:
        DOTNET_ENV["DOTNET_SYSTEM_NET_SOCKETS_INLINE_COMPLETIONS"] = "1"
    rounds, seconds = (1, 0.5) if args.quick else (args.rounds, args.seconds)
    workloads = [w for w in WORKLOADS if not args.only or w[0] in args.only.split(",")]
    if not dotnet_built(args.build):
        print("bench: no .NET peers (bench/run builds them when a .NET 10 SDK is on PATH): "
              "dotnet-saea and dotnet-apm are skipped")
        gone = {d for d, _ in DOTNET_PAIRS}
        workloads = [w[:5] + ([s for s in w[5] if s not in gone],) for w in workloads]
    if os.cpu_count() < 2:
        print("bench: needs 2 CPUs (server on 0, load generator on 1)", file=sys.stderr)
        return 1
    tls_dir = None
    if any(w[0] == "W8" for w in workloads):
        if not (shutil.which("openssl") and os.path.exists(os.path.join(args.build, "bench", "ringsock_tls_server"))):
            print("bench: W8 needs the openssl command and bench/ringsock_tls_server (OpenSSL 3, "
                  "libssl-dev): skipped")
            workloads = [w for w in workloads if w[0] != "W8"]
        else:  # a certificate for this run only
            tls_dir = tempfile.mkdtemp(prefix="ringsock-bench-tls-")
            TLS_FILES.update(cert=os.path.join(tls_dir, "cert.pem"), key=os.path.join(tls_dir, "key.pem"))
            subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                            "-nodes", "-keyout", TLS_FILES["key"], "-out", TLS_FILES["cert"], "-days", "1",
                            "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
                           check=True, capture_output=True)

    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    outdir = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")
    os.makedirs(outdir, exist_ok=True)
    machine = (f"{platform.node()} | {os.cpu_count()} CPUs | Linux {platform.release()} | "
               f"{subprocess.run(['c++', '--version'], capture_output=True, text=True).stdout.splitlines()[0]}")
    if args.dotnet_inline and dotnet_built(args.build):
        machine += " | .NET peers with inline completions"
    print(f"bench: {rounds} round(s) x {len(workloads)} workloads, "
          f"{seconds:g} s each; server on CPU 0, loadgen on CPU 1\nbench: {machine}")

    samples = []  # dicts with round, workload, server and the measures
    for rnd in range(rounds):
        for w in workloads:
            servers = w[5]
            order = servers[rnd % len(servers):] + servers[:rnd % len(servers)]
            for s in order:
                m = measure(args.build, s, w, seconds)
                m.update(round=rnd + 1, workload=w[0], server=s)
                samples.append(m)
                mem = f", {m['kib_per_conn']:.1f} KiB/idle conn" if m["kib_per_conn"] == m["kib_per_conn"] else ""
                print(f"  round {rnd + 1} {w[0]} {s:10s} {fmt(m['per_second'])} {w[4]}/s, "
                      f"server CPU {m['cpu_util'] * 100:.0f}%, {fmt(m['cpu_us_per_unit'], 2)} us/{w[4]}{mem}",
                      flush=True)

    if tls_dir:
        shutil.rmtree(tls_dir, ignore_errors=True)
    csv_path = os.path.join(outdir, f"samples-{stamp}.csv")
    keys = ["round", "workload", "server", "units", "seconds", "per_second", "busy_s", "cpu_util",
            "cpu_us_per_unit", "p50_us", "p99_us", "kib_per_conn"]
    with open(csv_path, "w", newline="") as f:
        wr = csv.DictWriter(f, fieldnames=keys)
        wr.writeheader()
        for m in samples:
            wr.writerow({k: m[k] for k in keys})

    def cell(w, s, key):
        return [m[key] for m in samples if m["workload"] == w and m["server"] == s]

    def paired(w, s, base, key):
        """Median over rounds of s / base, each ratio within one round."""
        per_round = []
        for rnd in range(1, rounds + 1):
            a = [m[key] for m in samples if m["workload"] == w and m["server"] == s and m["round"] == rnd]
            b = [m[key] for m in samples if m["workload"] == w and m["server"] == base and m["round"] == rnd]
            if a and b and a[0] > 0 and b[0] > 0:  # NaN or a negative RSS change: no ratio
                per_round.append(a[0] / b[0])
        return statistics.median(per_round) if per_round else float("nan")

    def ratio(w, s, key):
        return paired(w, s, BASE.get(w, "raw-uring"), key)

    lines = []
    lines.append(f"ringsock bench {stamp} — {machine}")
    lines.append(f"{rounds} round(s), {seconds:g} s per cell, medians (min–max); ratios to raw-uring "
                 "(W8: to nginx-tls) paired within a round (throughput: higher is better; CPU/unit: lower "
                 "is better)")
    lines.append("")
    lines.append("| workload | server | throughput | ratio | server CPU per unit | ratio | p99 RTT | memory |")
    lines.append("|---|---|---:|---:|---:|---:|---:|---:|")
    chart = {}
    for w in workloads:
        for s in w[5]:
            tp = cell(w[0], s, "per_second")
            cpu = cell(w[0], s, "cpu_us_per_unit")
            p99 = cell(w[0], s, "p99_us")
            rt, rc = ratio(w[0], s, "per_second"), ratio(w[0], s, "cpu_us_per_unit")
            chart.setdefault(s, []).append((w[0], rt, rc))
            kib = cell(w[0], s, "kib_per_conn")
            mem = f"{statistics.median(kib):.1f} KiB/conn" if kib and kib[0] == kib[0] else "-"
            lines.append(
                f"| {w[0]} {w[1]} | {s} | {fmt(statistics.median(tp))} {w[4]}/s ({fmt(min(tp))}–{fmt(max(tp))}) "
                f"| {rt:.2f} | {fmt(statistics.median(cpu), 2)} µs/{w[4]} ({fmt(min(cpu), 2)}–{fmt(max(cpu), 2)}) "
                f"| {rc:.2f} | {fmt(statistics.median(p99)) + ' µs' if p99 and p99[0] == p99[0] else '-'} | {mem} |")
    pairs = [(d, c) for d, c in DOTNET_PAIRS if any(d in w[5] for w in workloads)]
    if pairs:
        lines.append("")
        lines.append("Coming from .NET: each port to ringsock::compat against its .NET original, medians of "
                     "ratios paired within a round (CPU per unit and memory: lower is better for the port)")
        lines.append("")
        lines.append("| workload | pair | throughput port/.NET | CPU per unit port/.NET | memory port/.NET |")
        lines.append("|---|---|---:|---:|---:|")
        for w in workloads:
            for d, c in pairs:
                if d not in w[5] or c not in w[5]:
                    continue
                r = {key: paired(w[0], c, d, key) for key in ("per_second", "cpu_us_per_unit", "kib_per_conn")}
                mem = f"{r['kib_per_conn']:.2f}" if r["kib_per_conn"] == r["kib_per_conn"] else "-"
                lines.append(f"| {w[0]} {w[1]} | {c} / {d} | {r['per_second']:.2f} | {r['cpu_us_per_unit']:.2f} "
                             f"| {mem} |")
    table = "\n".join(lines)
    print()
    print(table)
    with open(os.path.join(outdir, f"table-{stamp}.md"), "w") as f:
        f.write(table + "\n")

    micro = os.path.join(args.build, "bench", "micro")
    if os.path.exists(micro) and not args.only:
        print("\nbench: micro-benchmarks (Google Benchmark)", flush=True)
        out = subprocess.run(["taskset", "-c", "0", micro, f"--benchmark_min_time={0.1 if args.quick else 0.5}"],
                             capture_output=True, text=True, timeout=600)
        rows = [l for l in out.stdout.splitlines() if l.startswith(("Benchmark", "BM_"))]
        print("\n".join(rows))
        with open(os.path.join(outdir, f"micro-{stamp}.txt"), "w") as f:
            f.write(out.stdout)

    crossover = os.path.join(args.build, "bench", "zc_crossover")
    if os.path.exists(crossover) and not args.only:
        print("\nbench: zero-copy send against copying send over loopback, process CPU per MB "
              "(bench/zc_crossover.c; median of the rounds)", flush=True)
        out = subprocess.run(["taskset", "-c", "0,1", crossover, "32" if args.quick else "256",
                              "1" if args.quick else str(args.rounds)],
                             capture_output=True, text=True, timeout=600)
        print(out.stdout.rstrip())
        if out.returncode != 0:
            print(f"bench: zc_crossover failed: {out.stderr.strip()}")
        with open(os.path.join(outdir, f"zc-crossover-{stamp}.md"), "w") as f:
            f.write(out.stdout)

    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        fig, axes = plt.subplots(1, 2, figsize=(11, 4))
        ids = [w[0] for w in workloads]
        names = HTTP_SERVERS
        width = 0.8 / len(names)
        for i, s in enumerate(names):
            got = {r[0]: r for r in chart.get(s, [])}
            xs = [j + i * width for j, wid in enumerate(ids) if wid in got]
            axes[0].bar(xs, [got[wid][1] for wid in ids if wid in got], width, label=s)
            axes[1].bar(xs, [got[wid][2] for wid in ids if wid in got], width, label=s)
        for ax, title in zip(axes, ["throughput / raw-uring (higher is better)",
                                    "server CPU per unit / raw-uring (lower is better)"]):
            ax.set_xticks([j + width * (len(names) - 1) / 2 for j in range(len(ids))], ids)
            ax.axhline(1.0, color="grey", linewidth=0.8)
            ax.set_title(title, fontsize=10)
        axes[0].legend(fontsize=8)
        fig.suptitle(f"ringsock bench {stamp}", fontsize=10)
        fig.tight_layout()
        png = os.path.join(outdir, f"ratios-{stamp}.png")
        fig.savefig(png, dpi=100)
        print(f"\nbench: samples {csv_path}\nbench: chart {png}")
    except ImportError:
        print(f"\nbench: samples {csv_path} (no chart: python3-matplotlib missing)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
