#!/usr/bin/env python3
"""Benchmark of the Python binding: calls/s, p50/p99 and server CPU per call of kites whose
handlers are Python (``async def`` and plain ``def``), beside the Rust-handler kite and the Go
reference kite, under the same load generator in the same run.

    python bindings-python/bench/bench.py                  # 1x1, 8x16, 64x1
    python bindings-python/bench/bench.py --case 8x16 --seconds 5

This runs the peer benchmark, ``benches/kite_bench/`` (one load generator for every
server, see the README's "Benchmarks"), with this interpreter for the Python servers
(``examples/python/math.py``), so kite-rs must be installed in it (``pip install .``).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path
from typing import List, Optional

ROOT = Path(__file__).resolve().parents[2]


def main(argv: Optional[List[str]] = None) -> int:
    p = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    p.add_argument("--servers", default="python,python-def,rust,go",
                   help="comma-separated: python, python-def, rust, go, kitejs, node")
    p.add_argument("--case", help="only this case, e.g. 8x16")
    p.add_argument("--seconds", type=float, default=3.0, help="seconds measured per case")
    args = p.parse_args(argv)
    cmd = [
        "cargo", "run", "--release", "-q", "-p", "kite-rs-bench", "--bin", "kite-bench", "--",
        "--servers", args.servers,
        "--python", sys.executable,
        "--memory-connections", "0",
        "--seconds", str(args.seconds),
    ]
    if args.case:
        cmd += ["--case", args.case]
    return subprocess.run(cmd, cwd=ROOT).returncode


if __name__ == "__main__":
    sys.exit(main())
