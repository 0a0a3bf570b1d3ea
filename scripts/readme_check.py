#!/usr/bin/env python3
"""Runs the documentation: the shell commands and the Rust, Python and Node blocks of
README.md, bindings-python/README.md and bindings-node/README.md, as written, and fails on any
that does not work.

How a document is run:

- Each file gets a scratch ``KITE_HOME`` (and its own scratch directory); its blocks run in
  order, so a server started by one block serves the blocks after it. Servers are stopped at
  the end of the file.
- Fixed ports (``--port 4000``, ``:3636`` in URLs, ``port=3636``) are mapped to free ones, the
  same port to the same free one throughout a file. PostgreSQL's and etcd's default ports are
  served by servers the harness starts the way the Rust tests do (``initdb``/``pg_ctl``,
  ``etcd``), on free ports given to Kontrol through ``KONTROL_POSTGRES_PORT`` and the mapped
  ``--machines`` URL.
- ``cargo run [--release] [--features …] --bin NAME -- ARGS`` and ``--example NAME`` run the
  already built ``target/debug`` binaries (``--bin-dir``); ``kontrol``/``kitectl`` are on
  ``PATH`` from there. Rust blocks are compiled once per file as binaries of a scratch crate
  that depends on ``core/`` and shares the workspace's ``target/`` and ``Cargo.lock`` (only
  the blocks themselves compile). Python blocks run with ``.venv/bin/python``, Node blocks
  with ``node`` from the repository root (the installed addon). A block with a top-level
  ``await`` runs inside an async main, the way a REPL would run it.
- A command or block that exits is a one-shot: it must exit with status 0. One that opens a
  new listening port (or prints ``listening on``, or ``reachable`` for a kite that only dials
  out) and keeps running is a server: it must come up within the time limit, and stays up for
  what follows. A trailing ``&`` only says so: the harness starts the command itself, so a
  server that never comes up, or exits, fails the check.
- The commands of one shell block share what a terminal would keep: variables set or
  exported (``D=…``, ``export KITE_HOME=…``) are set again for each later command of the
  block. Paths under ``/tmp/kite-…`` are moved into the file's scratch directory. A server
  started on a port that an earlier server of the file holds replaces it (a reader would
  have stopped the earlier mesh first).

Skipped by name, each printed with its reason: benchmarks, installs (``pip``/``npm``/``cargo
install``), the test commands themselves (``scripts/test.sh``, ``pytest``, ``node --test``),
the full release build of ``scripts/demo.sh`` (run on its own by CI), and commands that name
other hosts. Any block can opt out just before its fence::

    <!-- readme-check: skip REASON -->

Exit status 0 when everything ran, 1 otherwise.
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOCS = ["README.md", "bindings-python/README.md", "bindings-node/README.md"]
LANGS = {"sh": "sh", "bash": "sh", "shell": "sh", "console": "sh", "rust": "rust",
         "python": "python", "py": "python", "js": "node", "javascript": "node",
         "mjs": "node"}
MARKER = re.compile(r"<!--\s*readme-check:\s*skip\b\s*(.*?)\s*-->")
START_LIMIT = 90.0  # seconds for a one-shot to exit or a server to come up
REGISTER_WAIT = 15.0  # seconds a kite with a kite key gets to report its registration
PG_PORT, ETCD_PORT = 5432, 2379


@dataclass
class Block:
    path: str
    line: int
    lang: str
    text: str
    skip: str | None = None


def blocks(path: Path) -> list[Block]:
    """The fenced blocks of a Markdown file, with their opt-out markers."""
    out: list[Block] = []
    lines = path.read_text().splitlines()
    i = 0
    while i < len(lines):
        m = re.match(r"^(\s*)```\s*([A-Za-z0-9_+-]*)", lines[i])
        if not m:
            i += 1
            continue
        start, lang = i, m.group(2).lower()
        j = i + 1
        while j < len(lines) and not lines[j].strip().startswith("```"):
            j += 1
        body = "\n".join(lines[start + 1:j])
        k = start - 1
        while k >= 0 and not lines[k].strip():
            k -= 1
        marker = MARKER.search(lines[k]) if k >= 0 else None
        if lang in LANGS:
            shown = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path
            out.append(Block(str(shown), start + 1, LANGS[lang], body,
                             marker.group(1) or "marked" if marker else None))
        i = j + 1
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0


PORT_PATTERNS = [
    re.compile(r"(?<=[a-z0-9\]]:)(\d{4,5})\b"),            # host:PORT in URLs
    re.compile(r"(?<=-port[ =])(\d{2,5})\b"),              # --port N, -port=N
    re.compile(r"(?<=port=)(\d{2,5})\b"),                  # port=N (Python keyword)
    re.compile(r"(?<=KITE_PORT=)(\d{2,5})\b"),
]


class Ports:
    """Fixed ports of one document mapped to free ones."""

    def __init__(self) -> None:
        self.map: dict[int, int] = {}

    def get(self, port: int) -> int:
        if port not in self.map:
            self.map[port] = free_port()
        return self.map[port]

    def rewrite(self, text: str) -> str:
        for pat in PORT_PATTERNS:
            text = pat.sub(lambda m: str(self.get(int(m.group(1)))) if int(m.group(1)) else "0",
                           text)
        return text


@dataclass
class Doc:
    """What the blocks of one document share."""
    name: str
    scratch: Path
    env: dict[str, str]
    ports: Ports
    bin_dir: Path
    servers: list[subprocess.Popen] = field(default_factory=list)
    # the ports (mapped) each running server opened, by pid
    held: dict[int, set[int]] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)
    ran: int = 0
    skipped: int = 0


def say(msg: str) -> None:
    print(msg, flush=True)


# ---------------------------------------------------------------- running processes

def run_process(doc: Doc, argv: list[str], what: str, cwd: Path = ROOT,
                kite_home: str | None = None) -> bool:
    """Runs `argv`: a one-shot must exit 0; a server must come up and stays running."""
    before = {p for p in doc.ports.map.values() if port_open(p)}
    log = doc.scratch / f"out-{len(doc.servers)}-{time.monotonic_ns()}.log"
    out = open(log, "w+")
    proc = subprocess.Popen(argv, cwd=cwd, env=doc.env, stdout=out, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + START_LIMIT
    up_at = None
    while True:
        code = proc.poll()
        text = log.read_text(errors="replace")
        if code is not None:
            if code == 0:
                return True
            fail(doc, what, f"exited with status {code}", text)
            return False
        lower = text.lower()
        opened = {p for p in doc.ports.map.values() if p not in before and port_open(p)}
        if "listening on" in lower or "reachable" in lower or opened:
            up_at = up_at or time.monotonic()
            # A kite (it says "kite listening on") with a kite key registers to Kontrol: give
            # it up to REGISTER_WAIT to say so ("registered", or "reachable" through a
            # proxy), so that what follows can find it.
            kite = "kite listening on" in lower
            keyed = (Path(kite_home or doc.env["KITE_HOME"]) / "kite.key").exists()
            if (not (kite and keyed) or "registered" in lower or "reachable" in lower
                    or time.monotonic() - up_at > REGISTER_WAIT):
                doc.servers.append(proc)
                doc.held[proc.pid] = opened
                say(f"      server up (pid {proc.pid})")
                return True
        if time.monotonic() > deadline:
            stop(proc)
            fail(doc, what, f"neither exited nor came up within {START_LIMIT:.0f} s", text)
            return False
        time.sleep(0.1)


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=15)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait()


def fail(doc: Doc, what: str, why: str, output: str) -> None:
    tail = "\n".join(output.strip().splitlines()[-25:])
    doc.failures.append(f"{what}: {why}")
    say(f"      FAIL: {why}\n" + "\n".join("        | " + line for line in tail.splitlines()))


# ---------------------------------------------------------------- shell commands

def commands(text: str) -> list[str]:
    """Logical command lines of a shell block, comments removed."""
    out, cur = [], ""
    for raw in text.splitlines():
        line = raw.rstrip()
        if line.endswith("\\"):
            cur += line[:-1] + " "
            continue
        line = cur + line
        cur = ""
        line = re.sub(r"(^|\s)#.*$", "", line).strip()
        if line.startswith("$ "):
            line = line[2:]
        if line:
            out.append(line)
    return out


def skip_reason(cmd: str) -> str | None:
    words = shlex.split(cmd, comments=True) if cmd else []
    if "scripts/test.sh" in cmd or "pytest" in words or "--test" in words and words[:1] == ["node"]:
        return "the test command itself"
    if re.search(r"bench", cmd):
        return "benchmark"
    if re.search(r"scripts/(fuzz|soak|chaos)\.sh|cargo\s+fuzz\b", cmd):
        return "fuzzing or load run (minutes by design; CI replays the fuzz corpus as a test)"
    if re.match(r"^(sudo\s+)?(\S*/)?(pip3?|npm|cargo|apt-get|apt)\s+(install|i|add|ci)\b", cmd):
        return "an install (the check uses the wheel and addon already built)"
    if "scripts/build-wheel.sh" in cmd:
        return "builds the wheel (scripts/setup.sh built it once; the check uses that one)"
    if "scripts/demo.sh" in cmd:
        return "full release build of the demo (the README's first command, run by hand)"
    if re.match(r"^(git|twine|maturin\s+publish)\b", cmd) or re.search(
            r"scripts/(set-version|release)\.sh|\b(npm|cargo)\s+publish\b", cmd):
        return "a release step (changes the repository, tags or publishes)"
    for host in re.findall(r"[a-z]+://([^/:\s]+)", cmd):
        if host not in ("127.0.0.1", "localhost", "HOST", "[::1]"):
            return f"needs another host ({host})"
    return None


def cargo_run(cmd: str, bin_dir: Path) -> str:
    """`cargo run … --bin X -- ARGS` / `--example X` → the built binary."""
    # Leading `VAR=value` assignments stay in front of the binary.
    env = re.match(r"^((?:[A-Za-z_][A-Za-z0-9_]*=\S*\s+)*)(.*)$", cmd)
    prefix, cmd = (env.group(1), env.group(2)) if env else ("", cmd)
    m = re.match(r"^cargo run\b(.*?)(?:\s--\s(.*))?$", cmd)
    if not m:
        return prefix + cmd
    opts, args = m.group(1), m.group(2) or ""
    b = re.search(r"--bin[ =](\S+)", opts)
    e = re.search(r"--example[ =](\S+)", opts)
    if b:
        exe = bin_dir / b.group(1)
    elif e:
        exe = bin_dir / "examples" / e.group(1)
    else:
        return cmd
    return f"{prefix}{shlex.quote(str(exe))} {args}".strip()


ASSIGNMENT = re.compile(r"^(export\s+)?[A-Za-z_][A-Za-z0-9_]*=")


def statements(cmd: str) -> list[str]:
    """The `;`-separated statements of a command line (quotes respected)."""
    out, cur, quote = [], "", None
    for ch in cmd:
        if quote:
            quote = None if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch == ";":
            out.append(cur.strip())
            cur = ""
            continue
        cur += ch
    return [x for x in out + [cur.strip()] if x]


def is_assignment(statement: str) -> bool:
    """`NAME=value …` or `export NAME=value …` with no command after the assignments."""
    if not ASSIGNMENT.match(statement):
        return False
    try:
        words = shlex.split(statement)
    except ValueError:
        return False
    return all("=" in w for w in words if w != "export")


def shell_value(prelude: list[str], name: str, env: dict[str, str]) -> str:
    """The value of `name` after the block's assignments so far."""
    out = subprocess.run(["bash", "-c", "; ".join(prelude + [f'printf %s "${name}"'])],
                         env=env, capture_output=True, text=True)
    return out.stdout


def free_held_ports(doc: Doc, cmd: str) -> None:
    """Stops the servers of this file holding a port that `cmd` (rewritten) listens on."""
    wanted = {int(p) for p in re.findall(r"(?:-port[ =]|KITE_PORT=)(\d{2,5})\b", cmd)}
    for proc in list(doc.servers):
        if doc.held.get(proc.pid, set()) & wanted:
            say(f"      (stopping pid {proc.pid}, which holds port {sorted(wanted)})")
            stop(proc)
            doc.servers.remove(proc)


def run_shell(doc: Doc, block: Block) -> None:
    prelude: list[str] = []  # the block's assignments so far, as a terminal keeps them
    for cmd in commands(block.text):
        what = f"{block.path}:{block.line}: {cmd}"
        reason = skip_reason(cmd)
        if reason:
            doc.skipped += 1
            say(f"  SKIP {cmd}\n      ({reason})")
            continue
        line = re.sub(r"/tmp/(kite-[\w.-]+)", lambda m: str(doc.scratch / m.group(1)), cmd)
        # A trailing `&` only says "keep it running": run_process tells servers apart.
        line = re.sub(r"\s*&\s*$", "", line)
        parts = statements(doc.ports.rewrite(line))
        run = [p for p in parts if not is_assignment(p)]
        actual = "; ".join(prelude + [cargo_run(p, doc.bin_dir) for p in parts])
        prelude += [p for p in parts if is_assignment(p)]
        say(f"  RUN  {cmd}" + (f"\n      as: {actual}" if actual != cmd else ""))
        doc.ran += 1
        if not run:
            continue
        free_held_ports(doc, actual)
        home = shell_value(prelude, "KITE_HOME", doc.env) or None
        run_process(doc, ["bash", "-c", actual], what, kite_home=home)


# ---------------------------------------------------------------- code blocks

def has_top_level_await(text: str) -> bool:
    """Whether Python refuses `text` as a module for an `await` outside a function."""
    try:
        compile(text, "<block>", "exec")
    except SyntaxError as e:
        return "outside" in str(e.msg) and "await" in str(e.msg) or "async" in str(e.msg)
    return False


# After a block that ran through, the harness exits at once: what the block left running (a
# started kite) is not part of what it documents.
PY_EXIT = "\nimport os, sys\nsys.stdout.flush(); sys.stderr.flush(); os._exit(0)\n"


def python_program(text: str) -> str:
    if not has_top_level_await(text):
        return text + PY_EXIT
    body = "\n".join("    " + line for line in text.splitlines())
    return (f"import asyncio\n\nasync def __readme_main():\n{body}\n\n"
            f"asyncio.run(__readme_main())\n{PY_EXIT}")


def node_program(text: str) -> tuple[str, str]:
    """The program and its file suffix (ES modules keep their top-level await)."""
    if re.search(r"^\s*import\s.+\sfrom\s", text, re.M):
        return text + "\nprocess.exit(0)\n", ".mjs"
    return ("(async () => {\n" + text + "\n})().then(() => process.exit(0), (e) => {\n"
            "  console.error(e); process.exit(1)\n})\n"), ".js"


def run_code(doc: Doc, block: Block, prog: Path, argv: list[str]) -> None:
    what = f"{block.path}:{block.line}: {block.lang} block"
    doc.ran += 1
    say(f"  RUN  {block.lang} block at line {block.line}")
    run_process(doc, argv, what)


def hidden_lines_shown(src: str) -> str:
    """A Rust block as rustdoc compiles it: lines `# code` (hidden in the rendered page) are
    code, a lone `#` an empty line; `#[attr]` and `#![attr]` stay as they are."""
    return "\n".join(line[2:] if line.startswith("# ") else "" if line == "#" else line
                     for line in src.splitlines())


def rust_crate(doc: Doc, rust: list[Block]) -> dict[int, Path] | None:
    """Builds the Rust blocks as binaries of a scratch crate; their paths by block line."""
    crate = doc.scratch / "readme-rust"
    (crate / "src" / "bin").mkdir(parents=True, exist_ok=True)
    core = ROOT / "core"
    manifest = (core / "Cargo.toml").read_text()
    package = re.search(r'^name\s*=\s*"([^"]+)"', manifest, re.M).group(1)
    deps = [f'kite = {{ path = "{core}", package = "{package}" }}',
            'tokio = { version = "1", features = ["full"] }', 'anyhow = "1"',
            'serde_json = "1"',
            'axum = { version = "0.8", default-features = false, features = ["http1", "tokio"] }']
    (crate / "Cargo.toml").write_text(
        "[package]\nname = \"readme-blocks\"\nversion = \"0.0.0\"\nedition = \"2021\"\n"
        "publish = false\n\n[workspace]\n\n[dependencies]\n" + "\n".join(deps) + "\n")
    shutil.copy(ROOT / "Cargo.lock", crate / "Cargo.lock")
    for b in rust:
        src = hidden_lines_shown(doc.ports.rewrite(b.text))
        (crate / "src" / "bin" / f"line{b.line}.rs").write_text(
            "#![allow(unused)]\n#[tokio::main]\nasync fn main() -> Result<(), "
            "Box<dyn std::error::Error + Send + Sync>> {\n" + src + "\n    Ok(())\n}\n")
    say(f"  BUILD {len(rust)} Rust block(s) of {doc.name} (scratch crate, shared target/)")
    env = dict(doc.env, CARGO_TARGET_DIR=str(ROOT / "target"))
    r = subprocess.run(["cargo", "build", "--offline", "--quiet", "--manifest-path",
                        str(crate / "Cargo.toml")], env=env, cwd=crate,
                       capture_output=True, text=True)
    if r.returncode != 0:
        fail(doc, f"{doc.name}: Rust blocks", "do not compile", r.stderr)
        return None
    return {b.line: ROOT / "target" / "debug" / f"line{b.line}" for b in rust}


def run_doc(name: str, bin_dir: Path, services: "Services") -> Doc:
    scratch = Path(tempfile.mkdtemp(prefix="readme-check-"))
    home = scratch / "kite-home"
    home.mkdir()
    env = dict(os.environ)
    for k in list(env):
        if k.startswith(("KITE_", "KONTROL_")):
            del env[k]
    ports = Ports()
    env.update(KITE_HOME=str(home), PATH=f"{bin_dir}:{ROOT / '.venv' / 'bin'}:{env['PATH']}",
               RUST_LOG=env.get("RUST_LOG", "info"))
    doc = Doc(name, scratch, env, ports, bin_dir)
    all_blocks = blocks(ROOT / name)  # an absolute `name` stays itself
    text = (ROOT / name).read_text()
    if "postgres" in text:
        env.update(services.postgres(ports))
    if "etcd" in text:
        services.etcd(ports)
    say(f"== {name} (KITE_HOME={home})")
    rust = [b for b in all_blocks if b.lang == "rust" and not b.skip]
    binaries = rust_crate(doc, rust) if rust else {}
    try:
        for b in all_blocks:
            if b.skip:
                doc.skipped += 1
                say(f"  SKIP {b.lang} block at {b.path}:{b.line}\n      ({b.skip})")
                continue
            if b.lang == "sh":
                run_shell(doc, b)
            elif b.lang == "rust":
                if binaries is None:
                    doc.failures.append(f"{b.path}:{b.line}: Rust block not built")
                    continue
                run_code(doc, b, binaries[b.line], [str(binaries[b.line])])
            elif b.lang == "python":
                prog = scratch / f"line{b.line}.py"
                prog.write_text(python_program(ports.rewrite(b.text)))
                run_code(doc, b, prog, [str(ROOT / ".venv" / "bin" / "python"), str(prog)])
            elif b.lang == "node":
                src, suffix = node_program(ports.rewrite(b.text))
                # Inside the repository, so that `require('kite-rs')` finds the package.
                prog = ROOT / "target" / f"readme-{os.getpid()}-line{b.line}{suffix}"
                prog.write_text(src)
                try:
                    run_code(doc, b, prog, ["node", str(prog)])
                finally:
                    prog.unlink(missing_ok=True)
    finally:
        for s in reversed(doc.servers):
            stop(s)
        shutil.rmtree(scratch, ignore_errors=True)
    return doc


# ---------------------------------------------------------------- PostgreSQL and etcd

class Services:
    """PostgreSQL and etcd servers of the harness, started on demand, stopped at exit."""

    def __init__(self) -> None:
        self.stops: list = []
        self.pg: dict[str, str] | None = None
        self.etcd_port: int | None = None

    def postgres(self, ports: Ports) -> dict[str, str]:
        if self.pg is None:
            self.pg = start_postgres(self.stops)
        ports.map[PG_PORT] = int(self.pg["KONTROL_POSTGRES_PORT"])
        return self.pg

    def etcd(self, ports: Ports) -> None:
        if self.etcd_port is None:
            self.etcd_port = start_etcd(self.stops)
        ports.map[ETCD_PORT] = self.etcd_port

    def close(self) -> None:
        for f in reversed(self.stops):
            f()


def pg_bin() -> Path:
    if os.environ.get("KITE_TEST_PG_BIN"):
        return Path(os.environ["KITE_TEST_PG_BIN"])
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"))
    if not found:
        raise SystemExit("readme_check: PostgreSQL server binaries not found (scripts/setup.sh)")
    return found[-1].parent


def start_postgres(stops: list) -> dict[str, str]:
    bin_dir, port = pg_bin(), free_port()
    root = Path(tempfile.mkdtemp(prefix="readme-pg-", dir="/dev/shm" if Path("/dev/shm").is_dir() else None))
    as_root = os.geteuid() == 0
    pre = ["runuser", "-u", "postgres", "--"] if as_root else []
    if as_root:
        shutil.chown(root, "postgres")
    data, sock = root / "data", root / "sock"
    sock.mkdir()
    if as_root:
        shutil.chown(sock, "postgres")
    subprocess.run(pre + [str(bin_dir / "initdb"), "-D", str(data), "-U", "postgres",
                          "--auth=trust", "-E", "UTF8"], check=True, capture_output=True)
    subprocess.run(pre + [str(bin_dir / "pg_ctl"), "-D", str(data), "-w", "-l", str(root / "log"),
                          "-o", f"-p {port} -k {sock} -c listen_addresses=127.0.0.1", "start"],
                   check=True, capture_output=True)

    def stop_pg() -> None:
        subprocess.run(pre + [str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate",
                              "stop"], capture_output=True)
        shutil.rmtree(root, ignore_errors=True)
    stops.append(stop_pg)
    psql = pre + [str(bin_dir.parent / "bin" / "psql") if (bin_dir / "psql").exists() else "psql",
                  "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", "-v", "ON_ERROR_STOP=1"]
    for sql in ["CREATE ROLE kontrol LOGIN", "CREATE DATABASE kontrol OWNER kontrol"]:
        subprocess.run(psql + ["-c", sql], check=True, capture_output=True)
    say(f"  (PostgreSQL on 127.0.0.1:{port}, role and database `kontrol`)")
    return {"KONTROL_POSTGRES_HOST": "127.0.0.1", "KONTROL_POSTGRES_PORT": str(port)}


def start_etcd(stops: list) -> int:
    client, peer = free_port(), free_port()
    data = Path(tempfile.mkdtemp(prefix="readme-etcd-"))
    proc = subprocess.Popen(
        ["etcd", "--data-dir", str(data), "--listen-client-urls", f"http://127.0.0.1:{client}",
         "--advertise-client-urls", f"http://127.0.0.1:{client}",
         "--listen-peer-urls", f"http://127.0.0.1:{peer}",
         "--initial-advertise-peer-urls", f"http://127.0.0.1:{peer}",
         "--initial-cluster", f"default=http://127.0.0.1:{peer}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)

    def stop_etcd() -> None:
        stop(proc)
        shutil.rmtree(data, ignore_errors=True)
    stops.append(stop_etcd)
    deadline = time.monotonic() + 30
    while not port_open(client):
        if proc.poll() is not None or time.monotonic() > deadline:
            raise SystemExit("readme_check: etcd did not start")
        time.sleep(0.1)
    say(f"  (etcd on 127.0.0.1:{client})")
    return client


SELF_TEST = """# A document with one broken command

<!-- readme-check: skip shown as skipped -->
```sh
false
```

```sh
true   # a comment
echo "port 3636 is :3636"
false
```

```sh
D=/tmp/kite-selftest; mkdir -p $D
export GREETING="hello there" WHERE=$D/out.txt
echo "$GREETING" > $WHERE &
grep -q "hello there" /tmp/kite-selftest/out.txt
```

```python
print("a Python block")
```

```js
const x = await Promise.resolve(1)
if (x !== 1) throw new Error('no')
```
"""


def self_test(bin_dir: Path) -> int:
    """The harness fails a document with a failing command, runs the rest and shows skips."""
    with tempfile.TemporaryDirectory() as d:
        md = Path(d) / "DOC.md"
        md.write_text(SELF_TEST)
        doc = run_doc(str(md), bin_dir, Services())
    ok = (len(doc.failures) == 1 and "false" in doc.failures[0] and doc.skipped == 1
          and doc.ran == 9)
    say(f"readme_check self-test: {'ok' if ok else 'FAILED'} "
        f"(ran {doc.ran}, skipped {doc.skipped}, failures {doc.failures})")
    return 0 if ok else 1


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bin-dir", default=str(ROOT / "target" / "debug"),
                    help="where the built kontrol, kitectl and examples are")
    ap.add_argument("--list", action="store_true",
                    help="only list the blocks and commands, and what would be skipped")
    ap.add_argument("--self-test", action="store_true",
                    help="check that the harness fails a broken document")
    ap.add_argument("docs", nargs="*", default=DOCS)
    args = ap.parse_args()
    if args.self_test:
        return self_test(Path(args.bin_dir).resolve())
    if args.list:
        for name in args.docs:
            for b in blocks(ROOT / name):
                say(f"{b.path}:{b.line} {b.lang}" + (f" SKIP ({b.skip})" if b.skip else ""))
                if b.lang == "sh" and not b.skip:
                    for c in commands(b.text):
                        r = skip_reason(c)
                        say(f"    {'SKIP' if r else 'RUN '} {c}" + (f"  ({r})" if r else ""))
        return 0
    services = Services()
    docs = []
    try:
        for name in args.docs:
            docs.append(run_doc(name, Path(args.bin_dir).resolve(), services))
    finally:
        services.close()
    failures = [f for d in docs for f in d.failures]
    ran = sum(d.ran for d in docs)
    skipped = sum(d.skipped for d in docs)
    say(f"readme_check: {ran} run, {skipped} skipped, {len(failures)} failed")
    for f in failures:
        say(f"  FAILED {f}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
