#!/usr/bin/env python3
"""Benchmark of the Python binding: calls/s of kites whose handlers are Python (``async def``
and plain ``def``), beside the Rust-handler kite and the Go reference kite, under the same
load generator (``bindings-python/examples/loadgen.rs``) in the same run.

    python bindings-python/bench/bench.py                 # 8x16, 1x1, 64x1
    python bindings-python/bench/bench.py --cases 8x16 --seconds 5

Each server runs as its own process on 127.0.0.1 (port 0) and serves ``square``; the load
generator keeps C connections x K calls in flight. Besides calls/s and latency, the table
shows the server's CPU time per call (user+system, from /proc), which stays meaningful when
other work shares the machine.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

ROOT = Path(__file__).resolve().parents[2]
TARGET = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
LOADGEN = TARGET / "release" / "examples" / "loadgen"
RUST_MATH = TARGET / "release" / "examples" / "math"
GO_SERVER = ROOT / "tests" / "interop" / "go" / "bin" / "server"
PY_MATH = ROOT / "examples" / "python" / "math.py"


def build() -> None:
    for pkg, example in (("kite-rs-python", "loadgen"), ("kite", "math")):
        subprocess.run(
            ["cargo", "build", "--release", "-q", "-p", pkg, "--example", example],
            cwd=ROOT,
            check=True,
        )


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


class Server:
    """A server process; ``url`` is parsed from its first stdout line."""

    def __init__(self, name: str, cmd: List[str]) -> None:
        self.name = name
        self.proc = subprocess.Popen(
            cmd,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        assert self.proc.stdout is not None
        for _ in range(50):
            line = self.proc.stdout.readline()
            m = re.search(r"http://127\.0\.0\.1:\d+/kite", line)
            if m:
                self.url = m.group(0)
                return
            if not line:
                break
        self.stop()
        raise RuntimeError(f"{name}: printed no URL")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def servers(which: List[str]) -> Dict[str, List[str]]:
    py = sys.executable
    all_: Dict[str, List[str]] = {
        "python async def": [py, str(PY_MATH), "--port", "0"],
        "python def": [py, str(PY_MATH), "--port", "0", "--sync"],
        "rust": [str(RUST_MATH), "--port", "0"],
    }
    if GO_SERVER.exists():
        all_["go reference"] = [str(GO_SERVER)]
    return {k: v for k, v in all_.items() if not which or any(w in k for w in which)}


def run_case(
    server: Server, conns: int, inflight: int, seconds: float
) -> Tuple[Dict[str, Any], float]:
    before = cpu_seconds(server.proc.pid)
    out = subprocess.run(
        [
            str(LOADGEN),
            "--url",
            server.url,
            "--connections",
            str(conns),
            "--in-flight",
            str(inflight),
            "--seconds",
            str(seconds),
            "--warmup",
            "0.5",
        ],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    cpu = cpu_seconds(server.proc.pid) - before
    return json.loads(out.strip().splitlines()[-1]), cpu


def main(argv: Optional[List[str]] = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cases", default="8x16,1x1,64x1", help="CxK list")
    p.add_argument("--seconds", type=float, default=3.0)
    p.add_argument("--servers", default="", help="substrings of server names to run")
    p.add_argument("--no-build", action="store_true")
    args = p.parse_args(argv)
    if not args.no_build:
        build()
    cases = [tuple(int(x) for x in c.split("x")) for c in args.cases.split(",")]
    which = [w for w in args.servers.split(",") if w]
    rows = []
    for name, cmd in servers(which).items():
        server = Server(name, cmd)
        try:
            for conns, inflight in cases:
                r, cpu = run_case(server, conns, inflight, args.seconds)
                calls = max(1, r["calls"])
                rows.append(
                    (
                        name,
                        f"{conns}x{inflight}",
                        r["calls_per_s"],
                        r["p50_ms"],
                        r["p99_ms"],
                        cpu / (calls + r["errors"]) * 1e6,
                        r["errors"],
                    )
                )
                print(json.dumps({"server": name, **r, "server_cpu_us_per_call": round(rows[-1][5], 1)}), flush=True)
        finally:
            server.stop()
    print()
    print(f"{'server':<18} {'case':>6} {'calls/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'cpu us/call':>11} {'errors':>6}")
    for name, case, cps, p50, p99, cpu_us, errors in rows:
        print(f"{name:<18} {case:>6} {cps:>9.0f} {p50:>8.2f} {p99:>8.2f} {cpu_us:>11.1f} {errors:>6}")
    load = os.getloadavg()[0]
    print(f"\n(load average {load:.1f} on {os.cpu_count()} CPUs at the end of the run)")


if __name__ == "__main__":
    main()
