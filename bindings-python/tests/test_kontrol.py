"""Kontrol from Python: run a Kontrol, register kites to it, find them with tokens, call them."""

from __future__ import annotations

import asyncio
from pathlib import Path
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
    assert Kontrol(make_kite("kontrol")).storage == "memory"
    kontrol = Kontrol(make_kite("kontrol"), heartbeat_interval=1.0)
    with pytest.raises(RuntimeError, match="start"):
        kontrol.new_kite_key("x")
    with pytest.raises(RuntimeError, match="start the kite"):
        await make_kite("lonely").register()


async def register_and_find(kontrol: Kontrol, make_kite: MakeKite, owner: str) -> Kite:
    """A ``math`` kite of ``owner`` registers to ``kontrol``; another kite finds it there and
    calls it with Kontrol's token. Returns the math kite."""
    assert kontrol.url is not None
    key = await kontrol.new_kite_key(owner)
    math = make_kite("math", kite_key=key, username=owner, kontrol_url=kontrol.url)

    @math.handle("square")
    async def square(req: Request, n: float) -> float:
        return n * n

    await math.start(port=0)
    assert (await math.register())["url"] == math.url
    key = await kontrol.new_kite_key("bob")
    caller = make_kite("caller", kite_key=key, username="bob", kontrol_url=kontrol.url)
    [c] = await caller.get_kites(
        username=owner, environment=math.kite.environment, name="math"
    )
    assert c.remote_kite.id == math.kite.id
    await c.dial()
    try:
        assert await c.tell("square", 4) == 16.0
    finally:
        c.close()
    return math


async def test_sqlite_storage_keeps_the_key_pair(make_kite: MakeKite, tmp_path: Path) -> None:
    path = tmp_path / "state" / "kontrol.db"  # the directory is created too
    spec = f"sqlite:{path}"
    first = Kontrol(make_kite("kontrol", username="kontrol"), storage=spec)
    assert first.storage == spec and spec in repr(first)
    await first.start(port=0)
    try:
        public_key = await first.public_key()
        key = await first.new_kite_key("alice")
        await register_and_find(first, make_kite, "alice")
    finally:
        first.close()
    assert path.exists()

    # A Kontrol started again on the file signs with the same key pair, so the kite keys it
    # signed before still work.
    second = Kontrol(make_kite("kontrol", username="kontrol"), storage=f"sqlite://{path}")
    await second.start(port=0)
    try:
        assert await second.public_key() == public_key
        assert second.url is not None
        again = make_kite("math", kite_key=key, username="alice", kontrol_url=second.url)
        await again.start(port=0)
        assert (await again.register())["url"] == again.url
        await register_and_find(second, make_kite, "carol")
    finally:
        second.close()


@pytest.mark.parametrize(
    "spec, says",
    [
        ("cassandra", "unknown storage"),
        ("sqlite:", "sqlite:PATH"),
        ("postgres://kontrol:hunter2@db/kontrol?sslmode=require", "TLS"),
        ("postgres://db.example/kontrol", "user name"),
        ("etcd://127.0.0.1:2379", "cargo feature `etcd`"),
    ],
)
async def test_bad_storage_specs_are_refused_clearly(
    make_kite: MakeKite, spec: str, says: str
) -> None:
    with pytest.raises(ValueError, match=says) as raised:
        Kontrol(make_kite("kontrol"), storage=spec)
    assert "hunter2" not in str(raised.value)


async def test_unopenable_storage_fails_at_start(make_kite: MakeKite, tmp_path: Path) -> None:
    (tmp_path / "kontrol.db").mkdir()  # a directory where the database file should be
    kontrol = Kontrol(make_kite("kontrol"), storage=f"sqlite:{tmp_path / 'kontrol.db'}")
    with pytest.raises(ValueError, match="sqlite"):
        await kontrol.start(port=0)
    kontrol.close()


async def test_postgres_storage(make_kite: MakeKite, postgres_url: str) -> None:
    with_password = postgres_url.replace("postgres@", "postgres:pw@")  # trust: not checked
    kontrol = Kontrol(make_kite("kontrol", username="kontrol"), storage=with_password)
    assert kontrol.storage.startswith("postgres://postgres:***@127.0.0.1:")
    await kontrol.start(port=0)
    try:
        public_key = await kontrol.public_key()
        await register_and_find(kontrol, make_kite, "alice")
    finally:
        kontrol.close()
    # The key pair lives in the database: a Kontrol started again on it uses the same one.
    again = Kontrol(make_kite("kontrol", username="kontrol"), storage=postgres_url)
    await again.start(port=0)
    try:
        assert await again.public_key() == public_key
    finally:
        again.close()
