"""Shared fixtures: kites on 127.0.0.1, port 0, closed after each test."""

from __future__ import annotations

from typing import Any, AsyncIterator, Callable, Iterator, List

import pytest
import pytest_asyncio

from kite_rs import Client, Kite


@pytest.fixture
def make_kite() -> Iterator[Callable[..., Kite]]:
    """Creates kites (username ``testuser``, 127.0.0.1) and closes them after the test."""
    kites: List[Kite] = []

    def make(name: str = "test", version: str = "1.0.0", **kwargs: Any) -> Kite:
        kwargs.setdefault("ip", "127.0.0.1")
        kwargs.setdefault("username", "testuser")
        k = Kite(name, version, **kwargs)
        kites.append(k)
        return k

    yield make
    for k in kites:
        k.close()


@pytest_asyncio.fixture
async def dial(make_kite: Callable[..., Kite]) -> AsyncIterator[Callable[..., Any]]:
    """``await dial(server)`` → a connected client of a fresh caller kite."""
    clients: List[Client] = []

    async def connect(server: Kite, **kwargs: Any) -> Client:
        assert server.url is not None, "start the server first"
        c = make_kite("caller").client(server.url, **kwargs)
        await c.dial(timeout=10)
        clients.append(c)
        return c

    yield connect
    for c in clients:
        c.close()
