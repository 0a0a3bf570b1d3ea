#!/usr/bin/env python3
"""Calls the math kite: ``square`` a few numbers, ``echo`` a value, and shows a remote error.

    python examples/python/math_client.py --url http://127.0.0.1:3636/kite
"""

from __future__ import annotations

import argparse
import asyncio

from kite_rs import Kite, KiteError


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://127.0.0.1:3636/kite")
    args = parser.parse_args()
    me = Kite("math-client", "1.0.0")
    async with me.client(args.url) as math:
        for n in (2, 3.5, 12):
            print(f"square({n}) = {await math.tell('square', n, timeout=5.0)}")
        print(f"echo -> {await math.tell('echo', {'hello': ['kite', 1, True, None]})}")
        try:
            await math.tell("square", "not a number")
        except KiteError as e:
            print(f"square('not a number') failed: {e.kind}: {e.message}")


if __name__ == "__main__":
    asyncio.run(main())
