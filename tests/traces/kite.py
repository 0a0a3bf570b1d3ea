"""A Python kite of core/tests/tracing_bindings.rs, with tracing on (spans exported to
``OTEL_EXPORTER_OTLP_ENDPOINT``): ``kite.py leaf`` serves ``leaf`` (answers 42); ``kite.py
middle URL`` serves ``middle``, which returns what ``leaf`` of the kite at URL answers.
Prints ``{"url": …}`` once serving; when stdin closes, closes, sends its spans and exits."""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any, List, Optional

from kite_rs import Client, Kite, Request, flush_traces


async def main(argv: List[str]) -> None:
    kite = Kite(argv[0], "1.0.0", ip="127.0.0.1", tracing=True)
    to_leaf: Optional[Client] = None
    if argv[0] == "leaf":

        @kite.handle("leaf", auth=False)
        async def leaf(req: Request) -> int:
            return 42

    else:
        to_leaf = kite.client(argv[1], transport="WebSocket")

        @kite.handle("middle", auth=False)
        async def middle(req: Request) -> Any:
            assert to_leaf is not None
            return await to_leaf.tell("leaf")

    await kite.start(0)
    if to_leaf is not None:
        await to_leaf.dial(timeout=10)
    print(json.dumps({"url": kite.url}), flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    if to_leaf is not None:
        to_leaf.close()
    kite.close()
    if not flush_traces():
        sys.exit("no OTLP exporter: OTEL_EXPORTER_OTLP_ENDPOINT is not set")


asyncio.run(main(sys.argv[1:]))
