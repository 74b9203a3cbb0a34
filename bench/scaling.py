#!/usr/bin/env python3
"""Multi-core scaling of the ringsock runtime's server (bench/run --scaling).

The bench server with --threads N (one context, ring and SO_REUSEPORT listener per thread) runs
W1 (ping-pong), W3 (accept churn) and W5 (HTTP keep-alive) with N = 1, 2, 4, ... server threads,
interleaved over the rounds; each cell reports throughput, its speed-up over one thread (paired
within a round), the server's CPU time per unit of work summed over all its threads
(/proc/PID/stat: utime + stime) and that CPU's ratio to one thread's (the cross-thread tax: 1.00
means none), and the server's io_uring_enter calls per unit (its counters, printed when SIGTERM
stops its runtime gracefully). --spread hand_off (or both) measures the N > 1 cells with one
accepting thread handing connections to the others over MSG_RING as well.

CPU layout: on a machine with more than 2 CPUs the server's threads are pinned to the lower half
of the CPUs this process may use and the load generators run one per CPU of the upper half
(W1/W3: one loadgen process per load CPU, results summed; W5: one wrk with a thread per load
CPU). On 2 CPUs nothing is pinned: server and load share both cores, so throughput cannot scale
and only the CPU per unit (the tax) means something.
"""
import argparse
import os
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402  (the same loadgen/wrk runners and HTTP check)

WORKLOADS = [
    ("W1", "ping-pong 64 B x50", "loadgen", ["pingpong", "50", "64"], "msg"),
    ("W3", "accept churn x32", "loadgen", ["churn", "32"], "conn"),
    ("W5", "HTTP keep-alive c64", "wrk", ["-c64"], "req"),
]


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def layout():
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) <= 2:
        return cpus, cpus, False
    half = len(cpus) // 2
    return cpus[:half], cpus[half:], True


def cpu_list(cpus):
    return ",".join(str(c) for c in cpus)


def start_server(build, mode, threads, server_cpus, pin, spread):
    cmd = [os.path.join(build, "bench", "ringsock_server"), mode, "0", "--threads", str(threads)]
    if spread == "hand_off":
        cmd.append("--hand-off")
    if pin:
        cmd = ["taskset", "-c", cpu_list(server_cpus)] + cmd + ["--pin"]
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = p.stdout.readline()
    if not line.startswith("PORT "):
        p.kill()
        raise RuntimeError(f"server did not start: {line!r}")
    return p, int(line.split()[1])


def stop_server(p):
    """Stops the server (SIGTERM: its runtime shuts down gracefully); its counters, or {}."""
    p.terminate()
    try:
        _, err = p.communicate(timeout=10)
    except subprocess.TimeoutExpired:
        p.kill()
        p.communicate()
        return {}
    for line in err.splitlines():
        if line.startswith("STATS "):
            return {k: int(v) for k, v in (x.split("=", 1) for x in line.split()[1:])}
    return {}


def run_load(build, w, port, seconds, load_cpus, pinned):
    """Units and per-second summed over the load generators."""
    kind, args = w[2], w[3]
    if kind == "wrk":
        threads = len(load_cpus) if pinned else 1
        conns = 64 * threads
        r = bench.wrk([f"-c{conns}"], port, seconds, cpu_list(load_cpus), threads)
        return r["units"], r["per_second"]
    gens = load_cpus if pinned else [None]
    procs = []
    for c in gens:
        cmd = [os.path.join(build, "bench", "loadgen"), args[0], "127.0.0.1", str(port)] + args[1:] + [str(seconds)]
        if c is not None:
            cmd = ["taskset", "-c", str(c)] + cmd
        procs.append(subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    units = per_second = 0.0
    for p in procs:
        out, err = p.communicate(timeout=seconds + 60)
        if p.returncode != 0:
            raise RuntimeError(f"loadgen failed ({p.returncode}): {err.strip()}")
        kv = dict(x.split("=", 1) for x in out.split())
        units += float(kv["units"])
        per_second += float(kv["per_second"])
    return units, per_second


def measure(build, w, threads, seconds, server_cpus, load_cpus, pinned, spread):
    mode = "http" if w[2] == "wrk" else "echo"
    p, port = start_server(build, mode, threads, server_cpus, pinned, spread)
    warm = 0.0
    try:
        if w[2] == "wrk":
            bench.check_http(port)
        else:
            warm, _ = run_load(build, w, port, 0.3, load_cpus, pinned)  # every byte verified; warm-up
        c0 = cpu_seconds(p.pid)
        units, per_second = run_load(build, w, port, seconds, load_cpus, pinned)
        c1 = cpu_seconds(p.pid)
    finally:
        stats = stop_server(p)
    # The counters cover the server's whole life: warm-up and check included (a few requests).
    enters = stats.get("enter_calls", 0) / (units + warm) if stats else float("nan")
    return {"units": units, "per_second": per_second, "cpu_us_per_unit": (c1 - c0) * 1e6 / units,
            "enters_per_unit": enters}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default="build-bench")
    ap.add_argument("--threads", default="", help="comma-separated server thread counts (default 1, 2, 4 ... up to the server CPUs)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=4.0)
    ap.add_argument("--only", default="", help="comma-separated workload ids, e.g. W1,W3")
    ap.add_argument("--spread", default="reuse_port", choices=["reuse_port", "hand_off", "both"],
                    help="how the N > 1 servers share the port (1 thread: reuse_port, the baseline)")
    args = ap.parse_args()
    spreads = ["reuse_port", "hand_off"] if args.spread == "both" else [args.spread]

    server_cpus, load_cpus, pinned = layout()
    if args.threads:
        counts = [int(x) for x in args.threads.split(",")]
    else:
        counts, n = [], 1
        while n <= max(2, len(server_cpus)):
            counts.append(n)
            n *= 2
    if pinned and max(counts) > len(server_cpus):
        sys.exit(f"scaling: {max(counts)} threads but {len(server_cpus)} server CPUs")
    if 1 not in counts:
        counts.insert(0, 1)  # the baseline every ratio is paired with
    workloads = [w for w in WORKLOADS if not args.only or w[0] in args.only.split(",")]
    where = (f"server pinned to CPUs {cpu_list(server_cpus)}, load on {cpu_list(load_cpus)}" if pinned
             else f"{len(server_cpus)} CPUs shared by server and load (nothing pinned)")
    print(f"scaling: {where}; threads {counts}; {args.rounds} round(s) of {args.seconds:g} s", flush=True)

    cells = [(n, "reuse_port" if n == 1 else sp) for n in counts for sp in (spreads if n > 1 else [None])]
    samples = {}  # (workload, threads, spread) -> list of per-round results
    for rnd in range(args.rounds):
        for w in workloads:
            for n, sp in cells:
                m = measure(args.build, w, n, args.seconds, server_cpus, load_cpus, pinned, sp)
                samples.setdefault((w[0], n, sp), []).append(m)
                print(f"  round {rnd + 1} {w[0]} threads={n:<3} {sp:<10} {m['per_second']:>12,.0f} {w[4]}/s  "
                      f"{m['cpu_us_per_unit']:.2f} us/{w[4]} server CPU  {m['enters_per_unit']:.3f} enters/{w[4]}",
                      flush=True)

    stamp = time.strftime("%Y%m%d-%H%M%S")
    lines = [f"ringsock scaling {stamp} — {where}",
             f"{args.rounds} round(s), {args.seconds:g} s per cell, medians; ratios to 1 thread paired within a round",
             "",
             "| workload | threads | spread | throughput | speed-up | server CPU per unit (all threads) "
             "| ratio to 1 thread | io_uring_enter per unit |",
             "|---|---:|---|---:|---:|---:|---:|---:|"]
    for w in workloads:
        base = samples[(w[0], 1, "reuse_port")]
        for n, sp in cells:
            s = samples[(w[0], n, sp)]
            speed = statistics.median(x["per_second"] / b["per_second"] for x, b in zip(s, base))
            cpu = statistics.median(x["cpu_us_per_unit"] / b["cpu_us_per_unit"] for x, b in zip(s, base))
            lines.append(f"| {w[0]} {w[1]} | {n} | {sp} | {statistics.median(x['per_second'] for x in s):,.0f} {w[4]}/s "
                         f"| {speed:.2f} | {statistics.median(x['cpu_us_per_unit'] for x in s):.2f} µs/{w[4]} | {cpu:.2f} "
                         f"| {statistics.median(x['enters_per_unit'] for x in s):.3f} |")
    table = "\n".join(lines)
    print()
    print(table)
    out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results", f"scaling-{stamp}.md")
    os.makedirs(os.path.dirname(out), exist_ok=True)
    with open(out, "w") as f:
        f.write(table + "\n")
    print(f"\nscaling: table {out}")


if __name__ == "__main__":
    main()
