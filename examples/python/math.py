#!/usr/bin/env python3
"""The math kite in Python: serves ``square`` and ``echo`` without authentication on
127.0.0.1, like the reference's math example.

    python examples/python/math.py --port 3636
    python examples/python/math_client.py --url http://127.0.0.1:3636/kite

Ctrl-C (SIGINT) and SIGTERM stop it cleanly, with exit status 0.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
from typing import Any, List

from kite_rs import Kite, Request


def make_kite(sync: bool = False) -> Kite:
    """The math kite; with ``sync`` its handlers are plain functions (run in worker threads)."""
    k = Kite("math", "1.0.0", ip="127.0.0.1")
    if sync:

        @k.handle("square", auth=False)
        def square_sync(req: Request, n: float) -> float:
            return n * n

        @k.handle("echo", auth=False)
        def echo_sync(req: Request, *args: Any) -> List[Any]:
            return list(args)

    else:

        @k.handle("square", auth=False)
        async def square(req: Request, n: float) -> float:
            return n * n

        @k.handle("echo", auth=False)
        async def echo(req: Request, *args: Any) -> List[Any]:
            return list(args)

    return k


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=3636, help="0 picks a free port")
    parser.add_argument(
        "--sync", action="store_true", help="plain def handlers instead of async def"
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO)
    k = make_kite(sync=args.sync)
    # SIGTERM closes the kite (serve() then returns); Ctrl-C cancels serve(), which closes it.
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, k.close)
    await k.start(port=args.port)
    print(f"math kite listening on {k.url}", flush=True)
    await k.serve()


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass
