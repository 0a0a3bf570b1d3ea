"""The Python kite in the middle of core/tests/tracing_bindings.rs: ``middle`` calls the
``leaf`` method of the kite at ``argv[1]``, with tracing on (spans exported to
``OTEL_EXPORTER_OTLP_ENDPOINT``). Prints ``{"url": …}`` once serving; when stdin closes,
closes, sends its spans and exits."""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any

from kite_rs import Kite, Request, flush_traces


async def main(leaf_url: str) -> None:
    kite = Kite("middle", "1.0.0", ip="127.0.0.1", tracing=True)
    to_leaf = kite.client(leaf_url, transport="WebSocket")

    @kite.handle("middle", auth=False)
    async def middle(req: Request) -> Any:
        return await to_leaf.tell("leaf")

    await kite.start(0)
    await to_leaf.dial(timeout=10)
    print(json.dumps({"url": kite.url}), flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    to_leaf.close()
    kite.close()
    if not flush_traces():
        sys.exit("no OTLP exporter: OTEL_EXPORTER_OTLP_ENDPOINT is not set")


asyncio.run(main(sys.argv[1]))
