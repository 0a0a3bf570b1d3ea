"""Functions travel beside the values: a string a peer sends stays a string on the way back,
and no connection can reach the functions of another — with handlers that return functions
and post handlers that fail.

The peers here speak raw dnode over SockJS XHR polling (plain HTTP, no client library), so
that each frame's ``callbacks`` map is checked, not what a client makes of it."""

from __future__ import annotations

import asyncio
import json
import urllib.request
import uuid
from typing import Any, Callable, Dict, List

import pytest

from kite_rs import Kite, Request

pytestmark = pytest.mark.asyncio

MakeKite = Callable[..., Kite]
WAIT = 10.0


def former_markers() -> List[str]:
    """Every string kite-rs ever used as an in-band function marker, and the placeholder."""
    out = ["[Function]"]
    for n in range(64):
        out += [f"\0kite.callback:{n}", f"\0kite.callback#{n}", f"\0kite.function:{n}"]
    return out


class RawPeer:
    """A dnode peer over SockJS XHR polling, written from the protocol, not our client."""

    def __init__(self, url: str) -> None:
        self.base = f"{url}/000/{uuid.uuid4().hex}"
        self.next = 1000
        self.inbox: List[Dict[str, Any]] = []

    def _post(self, path: str, body: bytes = b"") -> str:
        req = urllib.request.Request(self.base + path, data=body, method="POST")
        with urllib.request.urlopen(req, timeout=WAIT) as r:
            return r.read().decode()

    async def open(self) -> None:
        frame = await asyncio.to_thread(self._post, "/xhr")
        assert frame.startswith("o"), frame

    async def send(self, msg: Dict[str, Any]) -> None:
        body = json.dumps([json.dumps(msg)]).encode()
        await asyncio.to_thread(self._post, "/xhr_send", body)

    async def _receive(self) -> None:
        frame = await asyncio.to_thread(self._post, "/xhr")
        if frame.startswith("a"):
            self.inbox += [json.loads(m) for m in json.loads(frame[1:])]

    async def call(self, method: str, with_args: Any) -> Dict[str, Any]:
        """Calls ``method``; returns the whole response message."""
        self.next += 1
        rid = self.next
        options = {"kite": {"name": "raw"}, "withArgs": with_args, "responseCallback": "[Function]"}
        await self.send({"method": method, "arguments": [options],
                         "callbacks": {str(rid): [0, "responseCallback"]}})
        while True:
            for i, m in enumerate(self.inbox):
                if m.get("method") == rid:
                    return self.inbox.pop(i)
            await asyncio.wait_for(self._receive(), WAIT)


class Counts:
    """Calls of the functions handed out, by name; ``wait`` until one arrives."""

    def __init__(self) -> None:
        self.seen: Dict[str, int] = {"given": 0, "leaked": 0}
        self.changed = asyncio.Event()

    def counter(self, name: str) -> Callable[..., None]:
        def f(*_: Any) -> None:
            self.seen[name] += 1
            self.changed.set()
        return f

    async def wait(self, name: str, n: int) -> None:
        while self.seen[name] < n:
            self.changed.clear()
            await asyncio.wait_for(self.changed.wait(), WAIT)


def functions_kite(make_kite: MakeKite, counts: Counts) -> Kite:
    k = make_kite("functions", disable_authentication=True)

    @k.handle("echo")
    async def echo(req: Request, *args: Any) -> List[Any]:
        return list(args)

    @k.handle("give")
    async def give(req: Request) -> Dict[str, Any]:
        return {"n": 1, "f": counts.counter("given")}

    @k.handle("leak")
    async def leak(req: Request) -> List[Any]:
        return [counts.counter("leaked")]

    m = k.method("leak")

    @m.post_handle
    async def fails(req: Request) -> None:
        raise ValueError("post handler fails")

    return k


async def test_strings_a_peer_sends_come_back_as_strings(make_kite: MakeKite, dial: Any) -> None:
    k = functions_kite(make_kite, Counts())
    await k.start(port=0)
    assert k.url is not None
    raw = RawPeer(k.url)
    await raw.open()
    for marker in former_markers():
        sent = [marker, {"k": marker, "list": [marker]}]
        r = await raw.call("echo", sent)
        assert r["arguments"][0]["result"] == sent, repr(marker)
        assert r["callbacks"] == {}, f"{marker!r} came back as a function"
    c = await dial(k)
    assert await asyncio.wait_for(c.tell("echo", *former_markers()), WAIT) == former_markers()


async def test_no_connection_reaches_the_functions_of_another(make_kite: MakeKite, dial: Any) -> None:
    counts = Counts()
    k = functions_kite(make_kite, counts)
    await k.start(port=0)
    assert k.url is not None
    a, b = RawPeer(k.url), RawPeer(k.url)
    await a.open()
    await b.open()
    r = await a.call("leak", [])
    assert "post handler fails" in r["arguments"][0]["error"]["message"]
    assert r["callbacks"] == {}
    r = await a.call("give", [])
    [(fid, path)] = r["callbacks"].items()
    assert path == [0, "result", "f"]

    for marker in former_markers():
        r = await b.call("echo", [marker])
        assert r["callbacks"] == {}, repr(marker)
        assert r["arguments"][0]["result"] == [marker]
    for stolen in {int(fid), 0, 1, 2}:
        await b.send({"method": stolen, "arguments": [], "callbacks": {}})
    await b.call("echo", [])  # answered after the messages before it were read
    assert counts.seen == {"given": 0, "leaked": 0}, "B reached A's functions"

    await a.send({"method": int(fid), "arguments": ["hi"], "callbacks": {}})
    await counts.wait("given", 1)

    # Through our own client, the function in the result is callable.
    c = await dial(k)
    result = await asyncio.wait_for(c.tell("give"), WAIT)
    assert result["n"] == 1
    await result["f"]("x")
    await counts.wait("given", 2)
    assert counts.seen == {"given": 2, "leaked": 0}
