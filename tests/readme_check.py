#!/usr/bin/env python3
"""The README's server example must be the compiled example, line for line."""
import pathlib, sys
root = pathlib.Path(sys.argv[1])
src = (root / "tests/examples/echo_server.cpp").read_text().splitlines()
block = src[src.index("// README-BEGIN") + 1 : src.index("// README-END")]
readme = (root / "README.md").read_text()
if "\n".join(block) not in readme:
    print("README.md does not contain the example between README-BEGIN and README-END")
    sys.exit(1)
print(f"README example matches ({len(block)} lines)")
