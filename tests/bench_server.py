"""A bench server under test (tests/bench_echo_check.py, tests/http_cap_check.py): started as
`COMMAND... ARGS`, which prints `PORT n` once listening, and stopped by its PID at the end."""
import subprocess


class BenchServer:
    def __init__(self, cmd):
        self.name = " ".join(cmd)
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline().split()
        self.port = int(line[1]) if len(line) == 2 and line[0] == "PORT" else None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.proc.terminate()
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        return False


def report(server, failures, what):
    """Prints each failure, or `what` when there is none; the exit status."""
    for f in failures:
        print(f"{server}: FAILED {f}")
    if not failures:
        print(f"{server}: {what}")
    return 1 if failures else 0
