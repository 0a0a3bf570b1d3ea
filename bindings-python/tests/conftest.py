"""Shared fixtures: kites on 127.0.0.1, port 0, closed after each test; a throwaway
PostgreSQL server for Kontrol storage tests."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from pathlib import Path
from typing import Any, AsyncIterator, Callable, Iterator, List, Optional

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


class PgServer:
    """A throwaway PostgreSQL cluster (``initdb`` in a scratch directory, ``pg_ctl`` on
    127.0.0.1 with a free port and trust authentication), like the core tests'
    ``core/tests/common/postgres.rs``. As root the server runs as the ``postgres`` user, since
    PostgreSQL refuses to run as root."""

    SUPERUSER = "postgres"

    def __init__(self, bin_dir: Path) -> None:
        self.bin = bin_dir
        self.run_as = "postgres" if os.geteuid() == 0 else None
        shm = Path("/dev/shm")
        scratch = shm if shm.is_dir() and os.access(shm, os.W_OK) else None
        self.root = Path(tempfile.mkdtemp(prefix="kite-py-pg-", dir=scratch))
        (self.root / "sock").mkdir()
        if self.run_as:
            shutil.chown(self.root, self.run_as)
            shutil.chown(self.root / "sock", self.run_as)
        self.port = free_port()
        data = str(self.root / "data")
        options = (
            f"-F -p {self.port} -k {self.root / 'sock'} -c listen_addresses=127.0.0.1 "
            "-c synchronous_commit=off -c full_page_writes=off"
        )
        log = str(self.root / "server.log")
        try:
            self._run(
                "initdb", "-D", data, "-U", self.SUPERUSER, "-A", "trust", "-E", "UTF8",
                "--locale=C", "--no-sync",
            )  # fmt: skip
            # -w: returns once the server accepts connections.
            self._run("pg_ctl", "-D", data, "-l", log, "-w", "-t", "60", "-o", options, "start")
        except BaseException:
            shutil.rmtree(self.root, ignore_errors=True)
            raise

    def _command(self, program: str, *args: str) -> List[str]:
        cmd = [str(self.bin / program), *args]
        return ["runuser", "-u", self.run_as, "--", *cmd] if self.run_as else cmd

    def _run(self, program: str, *args: str) -> None:
        r = subprocess.run(self._command(program, *args), capture_output=True, text=True)
        if r.returncode != 0:
            log = self.root / "server.log"
            raise RuntimeError(
                f"{program} failed ({r.returncode}): {r.stdout}{r.stderr}"
                + (f"\nserver log:\n{log.read_text()}" if log.exists() else "")
            )

    def create_database(self) -> str:
        name = f"kite_{uuid.uuid4().hex}"
        self._run(
            "createdb", "-h", "127.0.0.1", "-p", str(self.port), "-U", self.SUPERUSER, name
        )
        return name

    def stop(self) -> None:
        try:
            self._run("pg_ctl", "-D", str(self.root / "data"), "-m", "immediate", "-w", "stop")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)


def find_pg_bin() -> Optional[Path]:
    """``KITE_TEST_PG_BIN``, else the newest ``/usr/lib/postgresql/<version>/bin`` holding
    ``initdb`` (Debian's, installed by ``scripts/setup.sh``), as the core tests look."""
    env = os.environ.get("KITE_TEST_PG_BIN")
    if env:
        return Path(env)
    found = []
    for d in Path("/usr/lib/postgresql").glob("*/bin"):
        if d.parent.name.isdigit() and (d / "initdb").exists():
            found.append((int(d.parent.name), d))
    return max(found)[1] if found else None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    """A real PostgreSQL server for the session; skips only when its binaries are absent."""
    bin_dir = find_pg_bin()
    if bin_dir is None:
        pytest.skip(
            "PostgreSQL server binaries not found under /usr/lib/postgresql/*/bin "
            "(scripts/setup.sh installs them) and KITE_TEST_PG_BIN is not set"
        )
    server = PgServer(bin_dir)
    yield server
    server.stop()


@pytest.fixture
def postgres_url(pg_server: PgServer) -> str:
    """A ``postgres://`` URL of a fresh database on :func:`pg_server`."""
    db = pg_server.create_database()
    return f"postgres://{PgServer.SUPERUSER}@127.0.0.1:{pg_server.port}/{db}?sslmode=disable"
