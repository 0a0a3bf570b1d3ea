"""WebRTC signalling and proxies from Python: a Kontrol with ``use_webrtc`` relays
``send_webrtc`` messages to the destination's own ``kite.handleWebRTC`` method, bad messages
raise ``ArgumentError``, and the relay forgets a kite that leaves; ``register_to_proxy`` and
``register_to_tunnel`` through the reference's ``reverseproxy`` and ``tunnelproxy``
(``tests/interop/go/bin/proxypeer``, built by ``tests/interop/go/build.sh``), and
``register_to_tunnel`` through our ``kite-tunnelproxy`` binary (``cargo build --bin
kite-tunnelproxy``), give public URLs that callers reach (ours over websocket and XHR, with
callbacks)."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Tuple

import pytest

from kite_rs import ArgumentError, GenericError, Kite, KiteError, Kontrol, Request

pytestmark = pytest.mark.asyncio
MakeKite = Callable[..., Kite]
ROOT = Path(__file__).resolve().parents[2]
PROXYPEER = ROOT / "tests" / "interop" / "go" / "bin" / "proxypeer"
TARGET = Path(os.environ.get("CARGO_TARGET_DIR") or ROOT / "target")
TUNNELPROXY = TARGET / "debug" / "kite-tunnelproxy"


async def until(check: Callable[[], bool]) -> None:
    for _ in range(2000):
        if check():
            return
        await asyncio.sleep(0.01)
    assert check()


async def test_webrtc_signalling_through_kontrol(make_kite: MakeKite) -> None:
    kontrol = Kontrol(make_kite("kontrol", username="kontrol", use_webrtc=True))
    await kontrol.start(port=0)
    try:
        a = make_kite("alice", kite_key=await kontrol.new_kite_key("alice"), username="alice")
        b = make_kite("bob", kite_key=await kontrol.new_kite_key("bob"), username="bob")
        to_a: asyncio.Queue[Dict[str, Any]] = asyncio.Queue()
        to_b: asyncio.Queue[Dict[str, Any]] = asyncio.Queue()

        @a.handle("kite.handleWebRTC")
        async def on_a(req: Request, msg: Dict[str, Any]) -> None:
            await to_a.put(msg)

        @b.handle("kite.handleWebRTC")
        async def on_b(req: Request, msg: Dict[str, Any]) -> None:
            if msg.get("payload") == "fail":
                raise RuntimeError("bob says no")
            await to_b.put(msg)

        with pytest.raises(GenericError, match="dst not registered"):
            await a.send_webrtc({"type": "OFFER", "dst": b.id})
        await b.send_webrtc({"type": "ANSWER", "dst": a.id, "payload": {"sdp": "v=0"}})
        got = await asyncio.wait_for(to_a.get(), 10)
        assert got == {"type": "ANSWER", "src": b.id, "dst": a.id, "payload": {"sdp": "v=0"}}
        await a.send_webrtc({"type": "offer", "dst": b.id})
        assert (await asyncio.wait_for(to_b.get(), 10))["src"] == a.id
        with pytest.raises(KiteError, match="bob says no"):
            await a.send_webrtc({"type": "CANDIDATE", "dst": b.id, "payload": "fail"})
        assert kontrol.kite.webrtc_peers() == sorted([a.id, b.id])

        with pytest.raises(ArgumentError, match="invalid signalling type"):
            await a.send_webrtc({"type": "JOIN", "dst": b.id})
        with pytest.raises(ArgumentError, match="want an object"):
            await a.send_webrtc("OFFER")
        with pytest.raises(ArgumentError, match="expected a string"):
            await a.send_webrtc({"type": "OFFER", "dst": 42})

        b.close()
        await until(lambda: kontrol.kite.webrtc_peers() == [a.id])
        with pytest.raises(GenericError, match="dst not registered"):
            await a.send_webrtc({"type": "LEAVE", "dst": b.id})
        a.close()
        await until(lambda: kontrol.kite.webrtc_peers() == [])
    finally:
        kontrol.close()


class Proxy:
    """The reference's proxy as a process (killed at the end)."""

    def __init__(self, which: str, kontrol_pub: Path, tmp: Path) -> None:
        if not PROXYPEER.exists():
            pytest.fail(f"{PROXYPEER} is missing: run tests/interop/go/build.sh")
        args = [str(PROXYPEER), which, "--kontrol-key", str(kontrol_pub)]
        if which == "tunnel":
            openssl = shutil.which("openssl")
            if openssl is None:
                pytest.fail("openssl is needed to make the tunnel proxy's key pair")
            priv, pub = tmp / "tunnel.pem", tmp / "tunnel_pub.pem"
            subprocess.run([openssl, "genrsa", "-out", str(priv), "2048"], check=True, capture_output=True)
            subprocess.run(
                [openssl, "rsa", "-in", str(priv), "-pubout", "-out", str(pub)],
                check=True,
                capture_output=True,
            )
            args += ["--public-key", str(pub), "--private-key", str(priv)]
        self.proc = subprocess.Popen(
            args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
        )
        assert self.proc.stdout is not None
        self.url: str = json.loads(self.proc.stdout.readline())["url"]

    def stop(self) -> None:
        self.proc.kill()
        self.proc.wait()
        for pipe in (self.proc.stdin, self.proc.stdout):
            if pipe is not None:
                pipe.close()


@pytest.fixture
def proxies(tmp_path: Path) -> Iterator[Callable[[str, Path], Proxy]]:
    started: List[Proxy] = []

    def start(which: str, kontrol_pub: Path) -> Proxy:
        p = Proxy(which, kontrol_pub, tmp_path)
        started.append(p)
        return p

    yield start
    for p in started:
        p.stop()


async def test_register_to_proxy_and_tunnel(
    make_kite: MakeKite, proxies: Callable[[str, Path], Proxy], tmp_path: Path
) -> None:
    kontrol = Kontrol(make_kite("kontrol", username="kontrol"))
    await kontrol.start(port=0)
    try:
        pub = tmp_path / "kontrol_pub.pem"
        pub.write_text(await kontrol.public_key())
        key = await kontrol.new_kite_key("alice")

        def math(name: str) -> Kite:
            k = make_kite(name, kite_key=key, username="alice")

            @k.handle("square")
            async def square(req: Request, n: float) -> float:
                return n * n

            return k

        caller = make_kite("caller", kite_key=await kontrol.new_kite_key("bob"), username="bob")

        async def square_at(url: str, n: float) -> Any:
            c = caller.client(url)
            await c.dial(timeout=10)
            try:
                return await c.tell("square", n)
            finally:
                c.close()

        reverse = proxies("reverse", pub)
        behind = math("behind")
        await behind.start(port=0)
        public = await asyncio.wait_for(behind.register_to_proxy(proxy_url=reverse.url), 20)
        assert public.endswith(f"/proxy/{behind.id}")
        assert await square_at(public, 3) == 9.0

        tunnel = proxies("tunnel", pub)
        private = math("private")  # never started: only dials out
        public = await asyncio.wait_for(private.register_to_tunnel(proxy_url=tunnel.url), 20)
        assert public.endswith(f"/proxy?kiteID={private.id}")
        assert await square_at(public, 4) == 16.0
    finally:
        kontrol.close()


async def start_tunnelproxy(home: Path) -> Tuple[asyncio.subprocess.Process, str]:
    """Our ``kite-tunnelproxy`` on 127.0.0.1, port 0, with ``home`` as ``KITE_HOME``; its URL."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("KITE_")}
    env.update(KITE_HOME=str(home), RUST_LOG="warn")
    proc = await asyncio.create_subprocess_exec(
        str(TUNNELPROXY), "-ip", "127.0.0.1", "-port", "0",
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env,
    )
    assert proc.stdout is not None
    prefix = "kite-tunnelproxy listening on "
    try:
        while True:
            line = (await asyncio.wait_for(proc.stdout.readline(), 60)).decode()
            if not line:
                pytest.fail("kite-tunnelproxy exited before it was ready")
            if line.startswith(prefix):
                return proc, line[len(prefix):].strip()
    except BaseException:
        proc.kill()
        await proc.wait()
        raise


async def test_register_to_our_tunnel_proxy_over_websocket_and_xhr(
    make_kite: MakeKite, tmp_path: Path
) -> None:
    if not TUNNELPROXY.exists():
        pytest.fail(f"{TUNNELPROXY} is missing: run cargo build --bin kite-tunnelproxy")
    kontrol = Kontrol(make_kite("kontrol", username="kontrol"))
    await kontrol.start(port=0)
    proc = None
    try:
        # The proxy trusts kite keys from this Kontrol through its own kite.key.
        (tmp_path / "kite.key").write_text(await kontrol.new_kite_key("kontrol"))
        proc, proxy_url = await start_tunnelproxy(tmp_path)
        alice = await kontrol.new_kite_key("alice")
        private = make_kite("private", kite_key=alice, username="alice")

        @private.handle("twice")
        async def twice(req: Request, n: float, back: Any) -> float:
            await back(n * 2)
            return n * 2

        registered = private.register_to_tunnel(proxy_url=proxy_url, retry=0.5)
        public = await asyncio.wait_for(registered, 20)
        assert public.endswith(f"/proxy/{private.id}")
        assert private.url is None, "the kite never listens"
        caller = make_kite("caller", kite_key=await kontrol.new_kite_key("bob"), username="bob")
        for transport in ("WebSocket", "XHRPolling"):
            got: asyncio.Queue[float] = asyncio.Queue()
            c = caller.client(public, transport=transport)
            await c.dial(timeout=10)
            try:
                assert await c.tell("twice", 21, got.put_nowait) == 42.0
                assert await asyncio.wait_for(got.get(), 10) == 42.0
            finally:
                c.close()
        env = private.kite.environment
        found = await caller.get_kites(username="alice", environment=env, name="private")
        assert [c.url for c in found] == [public]
    finally:
        kontrol.close()
        if proc is not None:
            proc.terminate()
            await proc.wait()
