"""The limits per peer are options of the Python kite (the README's "Limits per peer"): each
is checked by what a peer meets when it is reached, over raw SockJS XHR polling."""

from __future__ import annotations

import asyncio
import json
import urllib.request
import uuid
from typing import Any, Callable, List

import pytest

from kite_rs import Kite, Request

pytestmark = pytest.mark.asyncio

MakeKite = Callable[..., Kite]
WAIT = 10.0


def post(url: str, body: bytes = b"") -> str:
    req = urllib.request.Request(url, data=body, method="POST")
    with urllib.request.urlopen(req, timeout=WAIT) as r:
        answer: bytes = r.read()
        return answer.decode()


async def open_session(kite_url: str) -> str:
    """Opens an XHR session; returns its first frame."""
    return await asyncio.to_thread(post, f"{kite_url}/000/{uuid.uuid4().hex}/xhr")


async def test_sessions_per_client_is_an_option(make_kite: MakeKite) -> None:
    k = make_kite("limits", disable_authentication=True, max_sessions_per_client=2)
    await k.start(port=0)
    assert k.url is not None
    assert [await open_session(k.url) for _ in range(2)] == ["o\n", "o\n"]
    assert await open_session(k.url) == 'c[1013,"Too many sessions"]\n'


async def test_callbacks_per_connection_is_an_option(make_kite: MakeKite) -> None:
    k = make_kite("limits", disable_authentication=True, max_callbacks=3)

    @k.handle("functions")
    async def functions(req: Request, n: int) -> List[Any]:
        return [lambda: None for _ in range(n)]

    await k.start(port=0)
    assert k.url is not None
    base = f"{k.url}/000/{uuid.uuid4().hex}"
    assert (await asyncio.to_thread(post, base + "/xhr")) == "o\n"

    async def call(rid: int, n: int) -> Any:
        msg = {"method": "functions", "callbacks": {str(rid): [0, "responseCallback"]},
               "arguments": [{"kite": {"name": "raw"}, "withArgs": [n],
                              "responseCallback": "[Function]"}]}
        await asyncio.to_thread(post, base + "/xhr_send", json.dumps([json.dumps(msg)]).encode())
        while True:
            frame = await asyncio.to_thread(post, base + "/xhr")
            if frame.startswith("a"):
                for m in map(json.loads, json.loads(frame[1:])):
                    if m.get("method") == rid:
                        return m["arguments"][0]

    assert (await call(1, 2))["error"] is None
    refused = (await call(2, 5))["error"]
    assert refused["type"] == "requestLimitError", refused


async def test_bad_limits_name_the_option() -> None:
    with pytest.raises(ValueError, match="trustedProxies"):
        Kite("limits", "1.0.0", trusted_proxies=["proxy.example"])
    with pytest.raises(ValueError, match="maxCallbacks"):
        Kite("limits", "1.0.0", max_callbacks=-1)
