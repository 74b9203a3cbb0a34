#!/usr/bin/env python3
"""Differential compat tests: real .NET is the oracle (issue: .NET side by side).

For each scenario, tests/dotnet/trace/Program.cs (run on the .NET SDK) and its port to
ringsock::compat (tests/dotnet/trace_port.cpp, the `compat_trace` program) print a trace of what
a caller observes; the traces must be identical, except for a difference listed in KNOWN below
(each one named in the README's "Porting from .NET"). With --inject the port changes one line on
purpose and the run must catch it: the check that this script can fail.

Prints a doctest-style summary line that tests/run counts ("test cases: N | P passed | F failed").
Without `dotnet` on PATH it says so and counts nothing.
"""
import argparse
import difflib
import os
import shutil
import subprocess
import sys

SCENARIOS = ["accept_loop", "accept_validation", "receive_concurrent", "udp", "dispose_pending",
             "accept_buffer", "begin_accept_chain", "op_validation", "apm_not_connected",
             "connect_with_buffer", "disconnect_reuse"]

# scenario -> {.NET line: ringsock line}: the documented differences (README, "Porting from .NET").
KNOWN = {
    # "Accept with a buffer works on Linux (Linux .NET throws PlatformNotSupportedException)".
    "accept_buffer": {"accept with buffer: type=PlatformNotSupportedException param=-":
                      "accept with buffer pending=True"},
}


def run(cmd, env=None, timeout=60):
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout)
    except subprocess.TimeoutExpired:
        return None, f"{' '.join(cmd)} ran past {timeout} s"
    if p.returncode != 0:
        return None, f"{' '.join(cmd)} exited {p.returncode}: {p.stderr.strip()[-400:]}"
    if not p.stdout.strip():
        return None, f"{' '.join(cmd)} printed no trace"
    return p.stdout.splitlines(), None


def has_sdk10():
    try:
        out = subprocess.run(["dotnet", "--list-sdks"], capture_output=True, text=True, timeout=60).stdout
    except (OSError, subprocess.TimeoutExpired):
        return False
    return any(line.startswith("10.") for line in out.splitlines())


def build_dotnet(out):
    here = os.path.dirname(os.path.abspath(__file__))
    env = dict(os.environ, DOTNET_CLI_TELEMETRY_OPTOUT="1", DOTNET_NOLOGO="1",
               DOTNET_SKIP_FIRST_TIME_EXPERIENCE="1")
    # The intermediate files go beside the output, not into the source tree.
    obj = os.path.join(os.path.abspath(out), "obj") + os.sep
    p = subprocess.run(["dotnet", "build", os.path.join(here, "trace", "Trace.csproj"), "-c", "Release",
                        "-o", out, f"-p:BaseIntermediateOutputPath={obj}", "-nologo", "-v", "q"],
                       capture_output=True, text=True, env=env, timeout=600)
    if p.returncode != 0:
        sys.exit(f"difftest: dotnet build failed:\n{p.stdout[-2000:]}{p.stderr[-2000:]}")
    return env


def compare(name, dotnet, port):
    known = KNOWN.get(name, {})
    stale = [k for k in known if k not in dotnet]
    if stale:  # .NET no longer does what the README says differs: the list must be mended
        return False, "documented difference no longer seen in .NET's trace: " + "; ".join(stale)
    port_as_dotnet = [next((k for k, v in known.items() if v == line), line) for line in port]
    if dotnet == port_as_dotnet:
        return True, ""
    diff = "\n".join(difflib.unified_diff(dotnet, port, ".NET", "ringsock::compat", lineterm=""))
    return False, diff


def only_the_injected_line(dotnet, port):
    """--inject: exactly one line differs, and it is the changed one."""
    if len(dotnet) != len(port):
        return False
    changed = [(a, b) for a, b in zip(dotnet, port) if a != b]
    return len(changed) == 1 and changed[0][1] == "receive error=0 bytes=0"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", required=True, help="the compat_trace program")
    ap.add_argument("--out", required=True, help="where the C# program is built")
    ap.add_argument("--inject", action="store_true", help="the port differs on purpose: expect a failure")
    ap.add_argument("--only", default="")
    args = ap.parse_args()
    if shutil.which("dotnet") is None or not has_sdk10():
        print("difftest: no .NET 10 SDK (dotnet on PATH): the differential .NET tests are skipped")
        print("[doctest] test cases: 0 | 0 passed | 0 failed | 0 skipped")
        return 77  # meson: skipped
    unknown = [s for s in args.only.split(",") if s and s not in SCENARIOS]
    if unknown:
        sys.exit(f"difftest: no such scenario: {', '.join(unknown)}")
    env = build_dotnet(args.out)
    dll = os.path.join(args.out, "Trace.dll")
    scenarios = [s for s in SCENARIOS if not args.only or s in args.only.split(",")]
    penv = dict(os.environ)
    if args.inject:
        penv["RINGSOCK_TRACE_INJECT"] = "1"
    passed = failed = 0
    for s in scenarios:
        dotnet, err = run(["dotnet", dll, s], env=env)
        port, perr = run([args.port, s], env=penv)
        if err or perr:
            ok, diff = False, err or perr
        else:
            ok, diff = compare(s, dotnet, port)
        if args.inject and s == "dispose_pending":
            # The injected line must be caught, and be the only difference.
            caught = not ok and not (err or perr) and only_the_injected_line(dotnet, port)
            ok = caught
            print(f"{'PASS' if ok else 'FAIL'} {s} (--inject: {'only the changed line was caught' if ok else 'not caught as expected'})")
            if diff:
                print(diff)
        else:
            print(f"{'PASS' if ok else 'FAIL'} {s}")
            if not ok:
                print(diff)
            elif args.only:
                print("\n".join(dotnet))
        passed += ok
        failed += not ok
    print(f"[doctest] test cases: {passed + failed} | {passed} passed | {failed} failed | 0 skipped")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
