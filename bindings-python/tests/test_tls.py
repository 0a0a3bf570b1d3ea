"""TLS from Python: a kite served over HTTPS with a certificate of a CA made for the test
(``openssl``), called by a Python client that trusts the CA through ``KITE_TLS_CA_FILE``
(read by the core when the kite is created), over websocket and XHR polling; without the CA
the dial fails at once with a ``tlsError`` naming the URL."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any, Callable, Tuple

import pytest

from kite_rs import Kite, KiteError, Request

pytestmark = pytest.mark.asyncio

MakeKite = Callable[..., Kite]
WAIT = 10.0


def openssl(*args: Any) -> None:
    subprocess.run(["openssl", *map(str, args)], check=True, capture_output=True)


@pytest.fixture
def pki(tmp_path: Path) -> Tuple[Path, Path, Path]:
    """(ca.pem, server.pem, server-key.pem): a CA and a certificate for 127.0.0.1 it signed."""
    if shutil.which("openssl") is None:
        pytest.fail("openssl is needed to make the test CA")
    ca_key, ca = tmp_path / "ca-key.pem", tmp_path / "ca.pem"
    key, csr, cert = tmp_path / "server-key.pem", tmp_path / "server.csr", tmp_path / "server.pem"
    ext = tmp_path / "ext.cnf"
    ext.write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", ca_key, "-out", ca, "-days", "2", "-subj", "/CN=kite test CA")  # fmt: skip
    openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", key, "-out", csr, "-subj", "/CN=127.0.0.1")  # fmt: skip
    openssl("x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key, "-CAcreateserial",
            "-out", cert, "-days", "2", "-extfile", ext)  # fmt: skip
    return ca, cert, key


async def test_python_client_over_tls(
    make_kite: MakeKite, pki: Tuple[Path, Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    ca, cert, key = pki
    server = make_kite("math", tls_cert=str(cert), tls_key=str(key))

    @server.handle("square", auth=False)
    async def square(req: Request, n: float) -> float:
        return n * n

    await asyncio.wait_for(server.start(), WAIT)
    url = server.url
    assert url is not None and url.startswith("https://127.0.0.1:"), url

    monkeypatch.setenv("KITE_TLS_CA_FILE", str(ca))
    caller = make_kite("caller")
    for transport in ("WebSocket", "XHRPolling"):
        c = caller.client(url, transport=transport)
        await asyncio.wait_for(c.dial(timeout=5), WAIT)
        assert await asyncio.wait_for(c.tell("square", 9), WAIT) == 81
        c.close()

    # A kite that does not trust the CA: a tlsError naming the URL, at once.
    monkeypatch.delenv("KITE_TLS_CA_FILE")
    stranger = make_kite("stranger")
    c = stranger.client(url, transport="WebSocket")
    t0 = time.monotonic()
    with pytest.raises(KiteError) as info:
        await asyncio.wait_for(c.dial(timeout=5), WAIT)
    assert time.monotonic() - t0 < 4
    assert info.value.kind == "tlsError"
    assert url in str(info.value) and "unknown authority" in str(info.value)
