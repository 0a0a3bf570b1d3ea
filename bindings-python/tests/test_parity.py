"""What the Rust API has and the Python binding gained to match it: custom authenticators,
HTTP routes beside /kite, register_http_forever and the Kontrol key renewer."""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.request
from typing import Any, Callable, Dict, Optional, Tuple

import pytest

from kite_rs import Auth, AuthenticationError, HttpRequest, Kite, KiteInfo, Kontrol, Request

pytestmark = pytest.mark.asyncio
MakeKite = Callable[..., Kite]


def fetch(
    method: str, url: str, body: Optional[bytes] = None
) -> Tuple[int, Dict[str, str], bytes]:
    """A plain HTTP request (urllib, in a thread: the kite serves on this loop)."""
    req = urllib.request.Request(url, data=body, method=method)
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, {k.lower(): v for k, v in r.headers.items()}, r.read()
    except urllib.error.HTTPError as e:
        return e.code, {k.lower(): v for k, v in e.headers.items()}, e.read()


async def test_routes_beside_kite(make_kite: MakeKite) -> None:
    k = make_kite("web")
    seen: Dict[str, Any] = {}

    def health(req: HttpRequest) -> str:
        return "ok"

    async def hook(req: HttpRequest) -> Tuple[int, Any, Dict[str, str]]:
        seen.update(method=req.method, path=req.path, query=req.query, body=req.body)
        seen["type"] = req.headers.get("content-type")
        return 201, {"got": json.loads(req.body)}, {"x-hook": "1"}

    def boom(req: HttpRequest) -> str:
        raise RuntimeError("route bug")

    assert k.add_route("GET", "/health", health) is health
    k.add_route("POST", "/hooks/push", hook)
    k.add_route("GET", "/boom", boom)
    k.add_route("DELETE", "/nothing", lambda req: None)
    with pytest.raises(ValueError, match="exists already"):
        k.add_route("GET", "/health", health)
    with pytest.raises(ValueError, match="/kite"):
        k.add_route("GET", "/kite/x", health)
    with pytest.raises(ValueError, match="literal"):
        k.add_route("GET", "/users/{id}", health)
    with pytest.raises(ValueError, match="method"):
        k.add_route("BREW", "/tea", health)

    port = await k.start(port=0)
    base = f"http://127.0.0.1:{port}"
    status, headers, body = await asyncio.to_thread(fetch, "GET", f"{base}/health")
    assert (status, body) == (200, b"ok")
    assert headers["content-type"].startswith("text/plain")

    status, headers, body = await asyncio.to_thread(
        fetch, "POST", f"{base}/hooks/push?from=test", b'{"a": [1, 2]}'
    )
    assert status == 201
    assert headers["x-hook"] == "1"
    assert headers["content-type"] == "application/json"
    assert json.loads(body) == {"got": {"a": [1, 2]}}
    assert seen["method"] == "POST" and seen["path"] == "/hooks/push"
    assert seen["query"] == "from=test" and seen["body"] == b'{"a": [1, 2]}'

    status, _, body = await asyncio.to_thread(fetch, "GET", f"{base}/boom")
    assert (status, body) == (500, b"internal error")
    status, _, body = await asyncio.to_thread(fetch, "DELETE", f"{base}/nothing")
    assert (status, body) == (204, b"")
    status, _, _ = await asyncio.to_thread(fetch, "GET", f"{base}/missing")
    assert status == 404
    # The kite's own service is still there.
    status, _, body = await asyncio.to_thread(fetch, "GET", f"{base}/kite/info")
    assert status == 200 and b"websocket" in body


async def test_custom_authenticator(make_kite: MakeKite) -> None:
    server = make_kite("vault")
    checks = []

    async def secret(auth: Auth, caller: KiteInfo, local: KiteInfo) -> str:
        checks.append((auth.type, caller.name, local.name))
        if auth.key != "open sesame":
            raise ValueError("wrong password")
        return "ali-baba"

    assert server.add_authenticator("secret", secret) is secret

    @server.handle("whoami")  # authenticated
    async def whoami(req: Request) -> str:
        return req.username

    await server.start(port=0)
    assert server.url is not None
    caller = make_kite("caller")
    good = caller.client(server.url, auth=Auth("secret", "open sesame"))
    bad = caller.client(server.url, auth=Auth("secret", "guess"))
    await good.dial(timeout=10)
    await bad.dial(timeout=10)
    try:
        assert await good.tell("whoami") == "ali-baba"
        with pytest.raises(AuthenticationError, match="wrong password"):
            await bad.tell("whoami")
        assert ("secret", "caller", "vault") in checks
    finally:
        good.close()
        bad.close()


async def test_register_http_forever_and_key_renewer(make_kite: MakeKite) -> None:
    kontrol = Kontrol(make_kite("kontrol", username="kontrol"))
    await kontrol.start(port=0)
    try:
        key = await kontrol.new_kite_key("alice")
        math = make_kite("math", kite_key=key, username="alice")
        await math.start(port=0)
        result = await asyncio.wait_for(math.register_http_forever(), 30)
        assert result["url"] == math.url
        with pytest.raises(ValueError):
            math.key_renewer(0)
        # The renewer adopts a rotated key: tokens Kontrol signs with it are then accepted.
        math.key_renewer(0.05)

        @math.handle("square")
        async def square(req: Request, n: float) -> float:
            return n * n

        await kontrol.rotate_key()
        caller = make_kite("caller", kite_key=await kontrol.new_kite_key("bob"))
        [c] = await caller.get_kites(username="alice", environment="unknown", name="math")
        await c.dial(timeout=10)
        try:
            deadline = asyncio.get_running_loop().time() + 10
            while True:
                try:
                    assert await c.tell("square", 3) == 9
                    break
                except AuthenticationError:
                    if asyncio.get_running_loop().time() > deadline:
                        raise
                    await asyncio.sleep(0.05)
        finally:
            c.close()
    finally:
        kontrol.close()
