"""Kontrol from Python: run a Kontrol, register kites to it, find them with tokens, call them."""

from __future__ import annotations

import asyncio
from typing import Any, Callable, Dict

import pytest

from kite_rs import AuthenticationError, Kite, KiteError, Kontrol, Request

pytestmark = pytest.mark.asyncio
MakeKite = Callable[..., Kite]


async def test_register_find_and_call(make_kite: MakeKite) -> None:
    kontrol = Kontrol(make_kite("kontrol", username="kontrol"))
    port = await kontrol.start(port=0)
    assert kontrol.url == f"http://127.0.0.1:{port}/kite"
    try:
        math_key = await kontrol.new_kite_key("alice")
        caller_key = await kontrol.new_kite_key("bob")

        math = make_kite("math", kite_key=math_key, username="alice")
        assert math.username == "alice"

        @math.handle("square")  # authenticated: callers need a token from Kontrol
        async def square(req: Request, n: float) -> float:
            return n * n

        registered = asyncio.Event()
        results: Dict[str, Any] = {}

        @math.on_register
        def on_register(result: Dict[str, Any]) -> None:
            results.update(result)
            registered.set()

        await math.start(port=0)
        answer = await math.register()
        assert answer["url"] == math.url
        await asyncio.wait_for(registered.wait(), 10)
        assert results["url"] == math.url
        assert (await math.register_forever())["url"] == math.url

        caller = make_kite("caller", kite_key=caller_key, username="bob")
        env = math.kite.environment  # fields go general to specific: no gaps
        clients = await caller.get_kites(username="alice", environment=env, name="math")
        assert len(clients) == 1
        c = clients[0]
        assert c.remote_kite.name == "math" and c.remote_kite.username == "alice"
        assert c.auth is not None and c.auth.type == "token"
        await c.dial()
        try:
            assert await c.tell("square", 3) == 9.0
            c.auth = None
            with pytest.raises(AuthenticationError):
                await c.tell("square", 3)
        finally:
            c.close()

        token = await caller.get_token(c.remote_kite)
        assert token.count(".") == 2
        assert (await caller.get_token(c.remote_kite, force=True)).count(".") == 2
        assert await caller.get_key() == await kontrol.public_key()

        with pytest.raises(KiteError):
            await caller.get_kites(username="alice", environment=env, name="nothing-like-this")
    finally:
        kontrol.close()


async def test_kontrol_needs_a_start_and_known_storage(make_kite: MakeKite) -> None:
    with pytest.raises(ValueError, match="storage"):
        Kontrol(make_kite("kontrol"), storage="cassandra")
    kontrol = Kontrol(make_kite("kontrol"), heartbeat_interval=1.0)
    with pytest.raises(RuntimeError, match="start"):
        kontrol.new_kite_key("x")
    with pytest.raises(RuntimeError, match="start the kite"):
        await make_kite("lonely").register()
