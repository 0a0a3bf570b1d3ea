"""The GIL is held only to run Python: while a handler keeps the GIL to itself, the kite's
Rust side still serves other calls (here ``kite.ping`` from another process)."""

from __future__ import annotations

import asyncio
import mmap
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

import pytest

from kite_rs import Kite, Request

pytestmark = pytest.mark.asyncio

PINGER = """
import asyncio, sys
from pathlib import Path
from kite_rs import Kite

async def main() -> None:
    url, go, done = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
    c = Kite("pinger", "1.0.0").client(url)
    await c.dial(timeout=10)
    print("dialed", flush=True)
    while not go.exists():
        await asyncio.sleep(0.01)
    assert await c.tell("kite.ping", timeout=10) == "pong"
    with done.open("r+b") as f:
        f.write(b"1")

asyncio.run(main())
"""


async def test_rust_io_continues_while_python_holds_the_gil(
    make_kite: Callable[..., Kite], tmp_path: Path
) -> None:
    k = make_kite("gil")

    @k.handle("hog", auth=False)
    def hog(req: Request, go: str, done: str) -> bool:
        # Keeps the GIL: no other Python thread gets it during the loop (30 s switch
        # interval), and the loop makes no call that releases it (the flag is read from
        # shared memory, not with a system call).
        with open(done, "r+b") as f, mmap.mmap(f.fileno(), 1) as flag:
            old = sys.getswitchinterval()
            sys.setswitchinterval(30.0)
            try:
                Path(go).write_text("go")
                deadline = time.monotonic() + 20
                while time.monotonic() < deadline:
                    if flag[0] == ord("1"):
                        return True
                return False
            finally:
                sys.setswitchinterval(old)

    await k.start(port=0)
    go, done = tmp_path / "go", tmp_path / "done"
    done.write_bytes(b"0")
    pinger = subprocess.Popen(
        [sys.executable, "-c", PINGER, k.url or "", str(go), str(done)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert pinger.stdout is not None
        loop = asyncio.get_running_loop()
        assert (await loop.run_in_executor(None, pinger.stdout.readline)).strip() == "dialed"
        c = make_kite("caller").client(k.url or "")
        await c.dial()
        try:
            # The other process pinged and got "pong" while `hog` held the GIL.
            assert await c.tell("hog", str(go), str(done), timeout=30) is True
        finally:
            c.close()
        assert await loop.run_in_executor(None, pinger.wait, 30) == 0
    finally:
        if pinger.poll() is None:
            pinger.kill()
            pinger.wait()
        if pinger.stdout is not None:
            pinger.stdout.close()
