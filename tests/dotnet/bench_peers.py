#!/usr/bin/env python3
"""The .NET bench peers (bench/dotnet: dotnet_servers saea|apm) build and serve as their C++ ports do.

Builds bench/dotnet/Servers.csproj in Release into --out, then runs the checks the bench servers
pass (tests/bench_echo_check.py and tests/http_cap_check.py) on `dotnet_servers saea` and
`dotnet_servers apm`, and the connection cap of the saea server (bench_echo_check.py --cap 3). Without a .NET 10 SDK on PATH it says so and exits 77 (meson: skipped).
"""
import argparse
import os
import shutil
import signal
import subprocess
import sys

here = os.path.dirname(os.path.abspath(__file__))
root = os.path.dirname(os.path.dirname(here))


def has_sdk10():
    if shutil.which("dotnet") is None:
        return False
    try:
        out = subprocess.run(["dotnet", "--list-sdks"], capture_output=True, text=True, timeout=60).stdout
    except (OSError, subprocess.TimeoutExpired):
        return False
    return any(line.startswith("10.") for line in out.splitlines())


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True, help="where the C# servers are built")
    args = ap.parse_args()
    if not has_sdk10():
        print("bench_peers: no .NET 10 SDK (dotnet on PATH): the .NET bench peers are not checked")
        print("[doctest] test cases: 0 | 0 passed | 0 failed | 0 skipped")  # tests/run counts nothing
        return 77
    env = dict(os.environ, DOTNET_CLI_TELEMETRY_OPTOUT="1", DOTNET_NOLOGO="1", DOTNET_SKIP_FIRST_TIME_EXPERIENCE="1")
    obj = os.path.join(os.path.abspath(args.out), "obj") + os.sep  # not into the source tree
    p = subprocess.run(["dotnet", "build", os.path.join(root, "bench", "dotnet", "Servers.csproj"), "-c", "Release",
                        "-o", args.out, f"-p:BaseIntermediateOutputPath={obj}", "-nologo", "-v", "q"],
                       capture_output=True, text=True, env=env, timeout=300)
    if p.returncode != 0:
        print(f"bench_peers: dotnet build failed:\n{p.stdout[-3000:]}{p.stderr[-2000:]}")
        return 1
    server = [shutil.which("dotnet"), os.path.join(args.out, "dotnet_servers.dll")]
    failed = 0
    checks = [[check, *server, kind] for kind in ("saea", "apm") for check in ("bench_echo_check.py", "http_cap_check.py")]
    checks.append(["bench_echo_check.py", "--cap", "3", *server, "saea"])
    for check in checks:
        # A session of its own: a check that hangs is killed with the server it started, which
        # would otherwise hold the test's output open.
        p = subprocess.Popen([sys.executable, os.path.join(root, "tests", check[0]), *check[1:]], env=env,
                             start_new_session=True)
        try:
            failed += p.wait(timeout=90) != 0
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()
            print(f"bench_peers: {' '.join(check)} did not end within 90 s")
            failed += 1
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
