#!/usr/bin/env python3
"""Each public header compiles on its own (no hidden dependency on what a user included first).

usage: header_check.py INCLUDE_DIR COMPILER [ARGS...]
"""
import pathlib
import subprocess
import sys

include = pathlib.Path(sys.argv[1])
compiler = sys.argv[2:]
failed = 0
headers = sorted(p for p in include.rglob("*.hpp") if "testing" not in p.parts)
for h in headers:
    rel = h.relative_to(include)
    src = f'#include "{rel}"\n'
    r = subprocess.run(compiler + ["-std=c++20", "-fsyntax-only", "-Wall", "-Wextra", "-Werror",
                                   "-I", str(include), "-x", "c++", "-"],
                       input=src, text=True, capture_output=True)
    if r.returncode != 0:
        failed += 1
        print(f"FAILED: {rel}\n{r.stderr[:2000]}")
print(f"{len(headers) - failed} of {len(headers)} headers compile alone")
sys.exit(1 if failed else 0)
