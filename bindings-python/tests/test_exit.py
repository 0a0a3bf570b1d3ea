"""Stopping a kite program never crashes: hundreds of real processes stopped by a timer, by
Ctrl-C (SIGINT) and by SIGTERM, each of which must exit with the status the README documents
(0), without dying by a signal, without ``Fatal Python error`` and without a Rust panic.

The programs are the README's smallest ones (``Kite.run``, and ``asyncio.run`` around
``start``/``serve``) and ``examples/python/math.py`` (async and ``--sync`` handlers, some runs
after ``math_client.py`` called it). A signal is sent only once the program said it is ready
(its URL on stdout, or the core's ``serving`` log line), never after a sleep.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import List, Tuple

import pytest

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples" / "python"

# `Kite.run` until a timer, SIGINT or SIGTERM stops it; ready once the core logs "serving".
RUN = """\
import logging, sys, threading
from kite_rs import Kite
logging.basicConfig(level=logging.INFO)
k = Kite("exit", "1.0.0", ip="127.0.0.1")
if sys.argv[1] == "timer":
    threading.Timer(float(sys.argv[2]), k.close).start()
k.run(port=0)
"""

# `asyncio.run` around start/serve; closed by `loop.call_later` or stopped by Ctrl-C.
SERVE = """\
import asyncio, sys
from kite_rs import Kite

async def main() -> None:
    k = Kite("exit", "1.0.0", ip="127.0.0.1")

    @k.handle("square", auth=False)
    async def square(req, n: float) -> float:
        return n * n

    await k.start(port=0)
    print(k.url, flush=True)
    if sys.argv[1] == "timer":
        asyncio.get_running_loop().call_later(float(sys.argv[2]), k.close)
    await k.serve()

try:
    asyncio.run(main())
except KeyboardInterrupt:
    pass
"""

BAD = ("Fatal Python error", "panicked", "not initialized", "Traceback", "Segmentation")


@dataclass
class Case:
    """One process to start and stop."""

    program: List[str]
    stop: str  # "timer" (the program stops itself), "SIGINT" or "SIGTERM"
    ready: str  # "stdout": a URL line; "stderr": the "serving" log line; "none"
    call: bool = False  # run math_client.py against it before stopping it


def run_case(case: Case) -> Tuple[Case, int, str]:
    """Runs one case; returns it with the exit status (-9: hung, killed) and the output."""
    env = dict(os.environ, PYTHONUNBUFFERED="1", PYTHONFAULTHANDLER="1")
    env.pop("KITE_KONTROL_URL", None)
    p = subprocess.Popen(
        case.program,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        preexec_fn=_default_signals,
    )
    # A watchdog instead of a read timeout: a hung child is killed and reported.
    watchdog = threading.Timer(60, p.kill)
    watchdog.start()
    seen: List[str] = []
    try:
        url = None
        if case.ready != "none":
            stream = p.stdout if case.ready == "stdout" else p.stderr
            assert stream is not None
            for line in stream:
                seen.append(line)
                if case.ready == "stdout" and "http" in line:
                    url = line[line.index("http") :].strip()
                    break
                if case.ready == "stderr" and "serving" in line:
                    break
        if case.call and url is not None:
            c = subprocess.run(
                [sys.executable, str(EXAMPLES / "math_client.py"), "--url", url],
                capture_output=True,
                text=True,
                env=env,
                timeout=60,
            )
            seen.append(c.stdout + c.stderr)
            if c.returncode != 0:
                seen.append(f"math_client.py exited {c.returncode}\n")
        if case.stop != "timer" and p.poll() is None:
            p.send_signal(getattr(signal, case.stop))
        out, err = p.communicate()
    finally:
        watchdog.cancel()
    return case, p.returncode, "".join(seen) + out + err


def _default_signals() -> None:
    """In the child: SIGINT and SIGTERM as a terminal would deliver them. A test run started in
    the background of a non-interactive shell (`cmd &`, nohup, some CI runners) inherits
    SIGINT ignored, and Python then installs no KeyboardInterrupt handler at all."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def cases() -> List[Case]:
    py = sys.executable
    math = str(EXAMPLES / "math.py")
    rng = random.Random(10)
    out: List[Case] = []
    for stop in ("timer", "SIGINT", "SIGTERM"):
        for _ in range(40):
            delay = f"{rng.uniform(0.0, 0.3):.3f}"
            ready = "none" if stop == "timer" else "stderr"
            out.append(Case([py, "-c", RUN, stop, delay], stop, ready))
    for stop, n in (("timer", 30), ("SIGINT", 20)):
        for _ in range(n):
            delay = f"{rng.uniform(0.0, 0.2):.3f}"
            out.append(Case([py, "-c", SERVE, stop, delay], stop, "stdout"))
    for sync in ([], ["--sync"]):
        for stop in ("SIGINT", "SIGTERM"):
            for i in range(12):
                out.append(Case([py, math, "--port", "0", *sync], stop, "stdout", call=i % 3 == 0))
    return out


def test_every_way_of_stopping_exits_cleanly() -> None:
    all_cases = cases()
    assert len(all_cases) >= 200
    failures = []
    with ThreadPoolExecutor(max_workers=6) as pool:
        for case, status, output in pool.map(run_case, all_cases):
            bad = [b for b in BAD if b in output]
            if status != 0 or bad:
                failures.append((case.program[1:], case.stop, status, bad, output[-2000:]))
    assert not failures, (
        f"{len(failures)} of {len(all_cases)} runs did not exit cleanly; first: {failures[0]}"
    )


@pytest.mark.parametrize("stop", ["SIGINT", "SIGTERM"])
def test_run_exits_zero_on_signal(stop: str) -> None:
    case, status, output = run_case(
        Case([sys.executable, "-c", RUN, stop, "0"], stop, "stderr")
    )
    assert status == 0, output
    assert "serving" in output
