"""Interop with peers nobody here wrote (``tests/interop/SCENARIOS.md``).

- a Python kite (``peers/interop_server.py``) called by the Go reference client and by the
  kite.js client (raw websocket and SockJS);
- the Python client (``peers/interop_client.py``) calling the Go reference server;
- the Python client calling the Python kite.

Credentials: a throwaway Kontrol key pair (``openssl``), kite keys and tokens signed with it by
the Go mint tool (the reference's claims type and JWT library). The Go programs are built by
``tests/interop/go/build.sh`` and kite.js installed by ``npm ci`` (``scripts/setup.sh`` does
both); a missing peer fails these tests rather than skipping them.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional

import pytest

ROOT = Path(__file__).resolve().parents[2]
PEERS = Path(__file__).resolve().parent / "peers"
GO_BIN = ROOT / "tests" / "interop" / "go" / "bin"
KITEJS = ROOT / "tests" / "interop" / "kitejs"
READY_TIMEOUT = 30.0
CLIENT_TIMEOUT = 90.0

SCENARIOS = [
    "square",
    "echoObject",
    "echoScalar",
    "echoNull",
    "callback",
    "nested",
    "fail",
    "methodNotFound",
    "argumentError",
    "ping",
    "systemInfo",
    "heartbeat",
    "callMeBack",
    "secretWithKey",
    "secretWithToken",
    "secretWithout",
    "limited",
]


@dataclass
class Creds:
    kontrol_pub: Path
    server_key: Path
    client_key: Path
    token: str


def need(path: Path, how: str) -> Path:
    if not path.exists():
        pytest.fail(f"{path} is missing: {how}")
    return path


@pytest.fixture(scope="session")
def creds(tmp_path_factory: pytest.TempPathFactory) -> Creds:
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.fail("openssl is needed to make the test Kontrol key pair")
    d = tmp_path_factory.mktemp("creds")
    priv, pub = d / "kontrol.pem", d / "kontrol_pub.pem"
    subprocess.run([openssl, "genrsa", "-out", str(priv), "2048"], check=True, capture_output=True)
    subprocess.run(
        [openssl, "rsa", "-in", str(priv), "-pubout", "-out", str(pub)],
        check=True,
        capture_output=True,
    )
    mint = need(GO_BIN / "mint", "run tests/interop/go/build.sh (scripts/setup.sh does)")

    def run(*args: str) -> str:
        out = subprocess.run(
            [str(mint), "--private-key", str(priv), "--issuer", "testuser", *args],
            check=True,
            capture_output=True,
            text=True,
        )
        return out.stdout.strip()

    server_key = d / "server.key"
    server_key.write_text(run("--kind", "kitekey", "--username", "testuser"))
    client_key = d / "client.key"
    client_key.write_text(run("--kind", "kitekey", "--username", "carol"))
    token = run(
        "--kind",
        "token",
        "--username",
        "dave",
        "--audience",
        "/testuser/unknown/interop",
        "--ttl",
        "1h",
    )
    return Creds(pub, server_key, client_key, token)


class Server:
    """A test server process; its stderr goes to a temporary file (for failure reports)."""

    def __init__(self, cmd: List[str], cwd: Optional[Path] = None) -> None:
        self.log = tempfile.TemporaryFile(mode="w+")
        self.proc = subprocess.Popen(
            cmd,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.log,
            text=True,
            cwd=cwd,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        try:
            self.url: str = json.loads(line)["url"]
        except (ValueError, KeyError):
            self.stop()
            pytest.fail(f"{cmd[0]} printed no ready line: {line!r}\n{self.stderr()}")

    def stderr(self) -> str:
        self.log.seek(0)
        return self.log.read()[-4000:]

    def stop(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self.log.close()


@pytest.fixture
def python_server(creds: Creds) -> Iterator[Server]:
    s = Server(
        [
            sys.executable,
            str(PEERS / "interop_server.py"),
            "--kontrol-key",
            str(creds.kontrol_pub),
            "--kite-key",
            str(creds.server_key),
        ]
    )
    yield s
    s.stop()


@pytest.fixture
def go_server(creds: Creds) -> Iterator[Server]:
    binary = need(GO_BIN / "server", "run tests/interop/go/build.sh (scripts/setup.sh does)")
    s = Server(
        [
            str(binary),
            "--kontrol-key",
            str(creds.kontrol_pub),
            "--kite-key",
            str(creds.server_key),
        ]
    )
    yield s
    s.stop()


def run_client(
    cmd: List[str], creds: Creds, cwd: Optional[Path] = None
) -> Dict[str, Dict[str, Any]]:
    out = subprocess.run(
        [*cmd, "--kite-key", str(creds.client_key), "--token", creds.token],
        capture_output=True,
        text=True,
        timeout=CLIENT_TIMEOUT,
        cwd=cwd,
    )
    lines: Dict[str, Dict[str, Any]] = {}
    for line in out.stdout.splitlines():
        try:
            v = json.loads(line)
        except ValueError:
            continue
        if isinstance(v, dict) and "scenario" in v:
            lines[v["scenario"]] = v
    if not lines:
        pytest.fail(f"{cmd[0]} ran no scenario (exit {out.returncode}):\n{out.stderr[-4000:]}")
    return lines


def check(
    lines: Dict[str, Dict[str, Any]], known: Optional[Dict[str, Dict[str, Any]]] = None
) -> None:
    known = known or {}
    assert sorted(lines) == sorted(SCENARIOS), "every scenario must run"
    failures = []
    for name in SCENARIOS:
        line = lines[name]
        if name in known:
            want = known[name]
            got = line.get("error") or {}
            if line["ok"] or {k: got.get(k) for k in want} != want:
                failures.append(f"{name}: expected the known failure {want}, got {line}")
        elif not line["ok"]:
            failures.append(f"{name}: {line}")
    assert not failures, "\n".join(failures)


@pytest.mark.parametrize("transport", ["WebSocket", "XHRPolling"])
def test_go_client_against_python_kite(
    python_server: Server, creds: Creds, transport: str
) -> None:
    client = need(GO_BIN / "client", "run tests/interop/go/build.sh (scripts/setup.sh does)")
    check(run_client([str(client), "--url", python_server.url, "--transport", transport], creds))


@pytest.mark.parametrize("mode", ["raw", "sockjs-WebSocket", "sockjs-XHRPolling"])
def test_kitejs_client_against_python_kite(python_server: Server, creds: Creds, mode: str) -> None:
    need(KITEJS / "node_modules", "run npm ci in tests/interop/kitejs (scripts/setup.sh does)")
    node = shutil.which("node")
    if node is None:
        pytest.fail("node is needed for the kite.js client")
    if mode == "raw":
        cmd = [node, "client.js", "--url", f"{python_server.url}/websocket"]
    else:
        transport = mode.split("-", 1)[1]
        cmd = [node, "client.js", "--url", python_server.url, "--sockjs", "--transport", transport]
    check(run_client(cmd, creds, cwd=KITEJS))


@pytest.mark.parametrize("transport", ["WebSocket", "XHRPolling"])
def test_python_client_against_go_server(go_server: Server, creds: Creds, transport: str) -> None:
    cmd = [
        sys.executable,
        str(PEERS / "interop_client.py"),
        "--url",
        go_server.url,
        "--transport",
        transport,
    ]
    check(run_client(cmd, creds))


def test_python_client_against_python_kite(python_server: Server, creds: Creds) -> None:
    cmd = [sys.executable, str(PEERS / "interop_client.py"), "--url", python_server.url]
    check(run_client(cmd, creds))


def test_peers_are_where_the_docs_say() -> None:
    assert (ROOT / "tests" / "interop" / "SCENARIOS.md").exists()
    assert os.access(PEERS / "interop_server.py", os.R_OK)
