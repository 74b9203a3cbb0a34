#!/usr/bin/env python3
"""Runs the echo workloads of BENCH.md against each server, interleaved, and reports ratios.

Each server runs pinned to CPU 0, the load generator to CPU 1. Two figures per cell:
throughput (units/s) and the server core's CPU time per unit of work (busy time of CPU 0 from
/proc/stat, so kernel and softirq work done for the server count too). Ratios are to raw-uring,
paired within a round, then the median over rounds is reported with the min-max of the raw
figures. Nothing here asserts a timing: it measures and reports.
"""
import argparse
import csv
import datetime
import os
import platform
import signal
import statistics
import subprocess
import sys
import time

WORKLOADS = [
    # id, title, loadgen arguments (after HOST PORT), unit
    ("W1", "ping-pong 64 B x50", ["pingpong", None, None, "50", "64"], "msg"),
    ("W2", "ping-pong 4 KiB x50", ["pingpong", None, None, "50", "4096"], "msg"),
    ("W3", "accept churn x32", ["churn", None, None, "32"], "conn"),
    ("W4", "stream 64 KiB x8", ["stream", None, None, "8", "65536"], "MB"),
]
SERVERS = ["raw-uring", "ringsock", "epoll"]
BINARIES = {"raw-uring": "raw_uring_server", "ringsock": "ringsock_server", "epoll": "epoll_server"}


def cpu0_busy():
    """Busy and total jiffies of CPU 0."""
    with open("/proc/stat") as f:
        for line in f:
            if line.startswith("cpu0 "):
                v = [int(x) for x in line.split()[1:]]
                idle = v[3] + v[4]
                return sum(v) - idle, sum(v)
    raise RuntimeError("no cpu0 in /proc/stat")


def start_server(build, name):
    p = subprocess.Popen(["taskset", "-c", "0", os.path.join(build, "bench", BINARIES[name])],
                         stdout=subprocess.PIPE, text=True)
    line = p.stdout.readline()
    if not line.startswith("PORT "):
        p.kill()
        raise RuntimeError(f"{name} did not start: {line!r}")
    return p, line.split()[1]


def stop_server(p):
    p.send_signal(signal.SIGTERM)
    try:
        p.wait(timeout=5)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()


def loadgen(build, args, port, seconds):
    a = list(args)
    a[1], a[2] = "127.0.0.1", port
    cmd = ["taskset", "-c", "1", os.path.join(build, "bench", "loadgen")] + a + [str(seconds)]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 30)
    if out.returncode != 0:
        raise RuntimeError(f"loadgen failed ({out.returncode}): {out.stderr.strip()}")
    return dict(kv.split("=", 1) for kv in out.stdout.split())


def measure(build, server, workload, seconds):
    p, port = start_server(build, server)
    try:
        loadgen(build, workload[2], port, 0.3)  # correctness check (every byte verified) + warm-up
        b0, t0 = cpu0_busy()
        r = loadgen(build, workload[2], port, seconds)
        b1, t1 = cpu0_busy()
    finally:
        stop_server(p)
    hz = os.sysconf("SC_CLK_TCK")
    units = float(r["units"])
    busy_s = (b1 - b0) / hz
    return {
        "units": units,
        "seconds": float(r["seconds"]),
        "per_second": float(r["per_second"]),
        "busy_s": busy_s,
        "cpu_util": (b1 - b0) / max(1, t1 - t0),
        "cpu_us_per_unit": busy_s * 1e6 / units if units else float("nan"),
        "p50_us": float(r.get("p50_us", "nan")),
        "p99_us": float(r.get("p99_us", "nan")),
    }


def fmt(x, digits=1):
    if x != x:
        return "-"
    if x >= 1000:
        return f"{x:,.0f}"
    return f"{x:.{digits}f}"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default="build-bench")
    ap.add_argument("--quick", action="store_true", help="one round of 1 s per cell")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--only", default="", help="comma-separated workload ids, e.g. W1,W3")
    args = ap.parse_args()
    rounds, seconds = (1, 1.0) if args.quick else (args.rounds, args.seconds)
    workloads = [w for w in WORKLOADS if not args.only or w[0] in args.only.split(",")]
    if os.cpu_count() < 2:
        print("bench: needs 2 CPUs (server on 0, load generator on 1)", file=sys.stderr)
        return 1

    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    outdir = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")
    os.makedirs(outdir, exist_ok=True)
    machine = (f"{platform.node()} | {os.cpu_count()} CPUs | Linux {platform.release()} | "
               f"{subprocess.run(['c++', '--version'], capture_output=True, text=True).stdout.splitlines()[0]}")
    print(f"bench: {rounds} round(s) x {len(workloads)} workloads x {len(SERVERS)} servers, "
          f"{seconds:g} s each; server on CPU 0, loadgen on CPU 1\nbench: {machine}")

    samples = []  # dicts with round, workload, server and the measures
    for rnd in range(rounds):
        order = SERVERS[rnd % len(SERVERS):] + SERVERS[:rnd % len(SERVERS)]
        for w in workloads:
            for s in order:
                m = measure(args.build, s, w, seconds)
                m.update(round=rnd + 1, workload=w[0], server=s)
                samples.append(m)
                print(f"  round {rnd + 1} {w[0]} {s:10s} {fmt(m['per_second'])} {w[3]}/s, "
                      f"server CPU {m['cpu_util'] * 100:.0f}%, {fmt(m['cpu_us_per_unit'], 2)} us/{w[3]}",
                      flush=True)

    csv_path = os.path.join(outdir, f"samples-{stamp}.csv")
    keys = ["round", "workload", "server", "units", "seconds", "per_second", "busy_s", "cpu_util",
            "cpu_us_per_unit", "p50_us", "p99_us"]
    with open(csv_path, "w", newline="") as f:
        wr = csv.DictWriter(f, fieldnames=keys)
        wr.writeheader()
        for m in samples:
            wr.writerow({k: m[k] for k in keys})

    def cell(w, s, key):
        return [m[key] for m in samples if m["workload"] == w and m["server"] == s]

    def ratio(w, s, key):
        per_round = []
        for rnd in range(1, rounds + 1):
            a = [m[key] for m in samples if m["workload"] == w and m["server"] == s and m["round"] == rnd]
            b = [m[key] for m in samples if m["workload"] == w and m["server"] == "raw-uring" and m["round"] == rnd]
            if a and b and b[0]:
                per_round.append(a[0] / b[0])
        return statistics.median(per_round) if per_round else float("nan")

    lines = []
    lines.append(f"ringsock bench {stamp} — {machine}")
    lines.append(f"{rounds} round(s), {seconds:g} s per cell, medians (min–max); ratios to raw-uring "
                 "paired within a round (throughput: higher is better; CPU/unit: lower is better)")
    lines.append("")
    lines.append("| workload | server | throughput | ratio | server CPU per unit | ratio | p99 RTT |")
    lines.append("|---|---|---:|---:|---:|---:|---:|")
    chart = {}
    for w in workloads:
        for s in SERVERS:
            tp = cell(w[0], s, "per_second")
            cpu = cell(w[0], s, "cpu_us_per_unit")
            p99 = cell(w[0], s, "p99_us")
            rt, rc = ratio(w[0], s, "per_second"), ratio(w[0], s, "cpu_us_per_unit")
            chart.setdefault(s, []).append((w[0], rt, rc))
            lines.append(
                f"| {w[0]} {w[1]} | {s} | {fmt(statistics.median(tp))} {w[3]}/s ({fmt(min(tp))}–{fmt(max(tp))}) "
                f"| {rt:.2f} | {fmt(statistics.median(cpu), 2)} µs/{w[3]} ({fmt(min(cpu), 2)}–{fmt(max(cpu), 2)}) "
                f"| {rc:.2f} | {fmt(statistics.median(p99)) + ' µs' if p99 and p99[0] == p99[0] else '-'} |")
    table = "\n".join(lines)
    print()
    print(table)
    with open(os.path.join(outdir, f"table-{stamp}.md"), "w") as f:
        f.write(table + "\n")

    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        fig, axes = plt.subplots(1, 2, figsize=(11, 4))
        ids = [w[0] for w in workloads]
        width = 0.8 / len(SERVERS)
        for i, s in enumerate(SERVERS):
            xs = [j + i * width for j in range(len(ids))]
            axes[0].bar(xs, [r[1] for r in chart[s]], width, label=s)
            axes[1].bar(xs, [r[2] for r in chart[s]], width, label=s)
        for ax, title in zip(axes, ["throughput / raw-uring (higher is better)",
                                    "server CPU per unit / raw-uring (lower is better)"]):
            ax.set_xticks([j + width * (len(SERVERS) - 1) / 2 for j in range(len(ids))], ids)
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
