#!/usr/bin/env python3
"""The interop test server of ``tests/interop/SCENARIOS.md`` on kite_rs (Python handlers).

Prints ``{"port": N, "url": "http://127.0.0.1:N/kite"}`` when ready; exits when stdin
closes or on SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
from pathlib import Path
from typing import Any, Dict, List

from kite_rs import Kite, RemoteFunction, Request


def build(args: argparse.Namespace) -> Kite:
    options: Dict[str, Any] = {"ip": "127.0.0.1"}
    if args.kite_key:
        options["kite_key"] = Path(args.kite_key).read_text().strip()
    if args.kontrol_key:
        options["kontrol_key"] = Path(args.kontrol_key).read_text()
    k = Kite(
        "interop",
        "1.0.0",
        username=args.username,
        kontrol_user=args.kontrol_user,
        **options,
    )

    @k.handle("square", auth=False)
    async def square(req: Request, n: float) -> float:
        return n * n

    @k.handle("echo", auth=False)
    async def echo(req: Request, *args: Any) -> Any:
        return req.with_args  # as sent: a list, kite.js's bare scalar, or None

    @k.handle("callback", auth=False)
    async def callback(req: Request, n: int, fn: RemoteFunction) -> int:
        for i in range(n):
            await fn(i)
        return n

    @k.handle("nested", auth=False)
    async def nested(req: Request, fns: Dict[str, Any]) -> str:
        await fns["a"]("a")
        await fns["b"]["c"][0]("c")
        return "ok"

    @k.handle("fail", auth=False)
    async def fail(req: Request, *args: Any) -> None:
        raise RuntimeError("boom")

    @k.handle("needString", auth=False)
    def need_string(req: Request, s: str) -> str:  # a plain def: runs in a worker thread
        return s

    @k.handle("callMeBack", auth=False)
    async def call_me_back(req: Request, method: str, args: List[Any]) -> Any:
        return await req.client.tell(method, *args)

    @k.handle("secret")
    async def secret(req: Request, *args: Any) -> str:
        return req.username

    @k.handle("limited", auth=False, throttle=(3600.0, 1))
    async def limited(req: Request, *args: Any) -> str:
        return "ok"

    # Like the Go interop server: these default methods are callable without authentication.
    for name in ("kite.systemInfo", "kite.heartbeat"):
        k.method(name).disable_authentication()
    return k


async def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--kontrol-key")
    p.add_argument("--kontrol-user", default="testuser")
    p.add_argument("--username", default="testuser")
    p.add_argument("--kite-key")
    p.add_argument("--port", type=int, default=0)
    args = p.parse_args()
    k = build(args)
    port = await k.start(port=args.port)
    print(json.dumps({"port": port, "url": f"http://127.0.0.1:{port}/kite"}), flush=True)
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, k.close)
    stdin_closed = loop.run_in_executor(None, sys.stdin.buffer.read)
    stdin_closed.add_done_callback(lambda _: k.close())
    await k.wait_closed()


if __name__ == "__main__":
    asyncio.run(main())
    # The stdin reader thread may still block on a stdin that is not closed (SIGTERM).
    sys.stdout.flush()
    import os

    os._exit(0)
