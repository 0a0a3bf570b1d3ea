#!/usr/bin/env python3
"""Checks that the code's imports point one way (issue 12, items 1 and 5).

Reads the Rust files of the core (``core/src/**/*.rs``) and of each binding
(``bindings-python/src``, ``bindings-node/src``), builds the file-level import graph and
reports:

(a) files that import each other, directly (a pair) or around a longer cycle, in any crate;
(b) in the core, an import from a lower layer to a higher one (the table ``LAYERS`` below),
    and a file whose top-level module is not in the table;
(c) in the core, a ``lib.rs`` that does more than declare modules and re-export
    (``pub use``, ``pub mod``, ``mod``).

Exits 1 with the listing when anything is wrong, 0 otherwise. ``--self-test`` builds small
fake trees in a temporary directory and checks that each kind of finding is caught and that
a clean tree passes.

What counts as an import of file B by file A:

- a ``use`` in A, or a path in A's code, starting with ``crate::``, ``super::``, ``self::``,
  a module A declares, or a name A imported with ``use``, that resolves to an item of B;
- paths are followed through modules (``mod x;`` is ``x.rs`` or ``x/mod.rs``) and through
  re-exports (``pub use`` and plain ``use`` in the module they pass), so ``crate::Kite``
  is the file that defines ``Kite``, not ``lib.rs``; a path naming a module alone
  (``use crate::sockjs;``) is not an import by itself, the paths through that name are;
- ``mod`` declarations are not imports, nor are re-exports (``pub use``, ``pub(crate) use``)
  for the cycle check: they are the module's face, not something its code needs; they do
  count for the layer check (a lower layer must not re-export a higher one's items);
- comments, doc comments, string and character literals are ignored, and so is test code:
  ``#[cfg(test)]`` items and the files of ``#[cfg(test)] mod x;``;
- paths into other crates (``kite::`` from a binding, ``tokio::``) are not followed.

Limits: ``#[path]`` attributes and inline ``mod x { … }`` bodies are read as part of the
file that holds them; macro-generated paths are not seen.
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# The crates checked: (name, its src/ folder relative to the repository, whether the layer
# table and the lib.rs rule apply). A binding's lib.rs registers the module's classes, so
# only the cycle check applies to the bindings; no cycles means their files form layers.
CRATES = [
    ("core", "core/src", True),
    ("bindings-python", "bindings-python/src", False),
    ("bindings-node", "bindings-node/src", False),
]

# The core's layers, lowest first: a file may import files of its own layer and of lower
# ones (the key is the top-level module under core/src: a folder or a file's stem).
# Decided from the code:
# - `tls` (rustls configuration, certificate errors described) imports nothing of the crate
#   and is used by the SockJS client and server, so it sits under `sockjs`;
# - `auth` (JWT keys and tokens) uses only `protocol` (the kite identity, for audiences) and
#   is used by the server, the client and Kontrol, so it sits just above `protocol`;
# - `error` (`kite::Error`) wraps `protocol::KiteError`, `sockjs::ConnectError` and names
#   TLS errors, and is what the peer, server, client and Kontrol return: above `sockjs`,
#   below `peer`;
# - `metrics` (prometheus-client handles) uses `protocol` and `auth` (error kinds and
#   refusal reasons as labels) and is counted with by `sockjs` and above: beside `dnode`;
# - `telemetry` (OpenTelemetry) names the `protocol` trace context and returns
#   `kite::Error`, and is used by `peer`: at the peer's level;
# - `fuzzing` (doc-hidden entry points of the fuzz targets) drives every layer: on top.
LAYERS: dict[str, tuple[int, str]] = {
    "protocol": (0, "IO-free wire types"),
    "tls": (1, "TLS configuration"),
    "logging": (1, "tracing events as plain records, for the bindings' log sinks"),
    "auth": (1, "JWT keys and tokens"),
    "runtime": (1, "the tokio runtime kites serve best on"),
    "dnode": (2, "dnode messages and arguments"),
    "metrics": (2, "a kite's Prometheus registry and the handles the layers count with"),
    "sockjs": (3, "SockJS transport"),
    "error": (4, "kite::Error"),
    "telemetry": (5, "OTLP export and the W3C trace context of calls"),
    "peer": (5, "one dnode connection"),
    "server": (6, "Kite, methods, Request"),
    "client": (7, "Client"),
    "kontrol": (8, "Kontrol"),
    "proxy": (8, "proxies"),
    "fuzzing": (9, "fuzz entry points"),
}

IDENT = r"(?:r#)?[A-Za-z_][A-Za-z0-9_]*"
CFG_TEST = re.compile(r"#\s*\[\s*cfg\s*\(\s*test\s*\)\s*\]")
MOD_DECL = re.compile(rf"\b(?:pub(?:\s*\([^)]*\))?\s+)?mod\s+({IDENT})\s*;")
USE_DECL = re.compile(rf"(?<![A-Za-z0-9_])(pub(?:\s*\([^)]*\))?\s+)?use\s+([^;]*);")
PATH = re.compile(rf"(?<![A-Za-z0-9_:$#])({IDENT}(?:\s*::\s*{IDENT})+)")
INLINE_MOD = re.compile(rf"\b(?:pub(?:\s*\([^)]*\))?\s+)?mod\s+({IDENT})\s*\{{")
DEFINE = re.compile(
    rf"\b(?:fn|struct|enum|trait|type|const|static|union|macro_rules!)\s+({IDENT})")


# ------------------------------------------------------------------ reading Rust

def strip(src: str) -> str:
    """`src` with comments and the contents of string and char literals blanked (newlines
    kept, so line numbers stay)."""
    out = list(src)
    i, n = 0, len(src)

    def blank(a: int, b: int) -> None:
        for k in range(a, min(b, n)):
            if out[k] != "\n":
                out[k] = " "

    while i < n:
        c = src[i]
        if src.startswith("//", i):
            j = src.find("\n", i)
            j = n if j < 0 else j
            blank(i, j)
            i = j
        elif src.startswith("/*", i):
            depth, j = 1, i + 2
            while j < n and depth:
                if src.startswith("/*", j):
                    depth, j = depth + 1, j + 2
                elif src.startswith("*/", j):
                    depth, j = depth - 1, j + 2
                else:
                    j += 1
            blank(i, j)
            i = j
        elif c in "rb" and (i == 0 or not (src[i - 1].isalnum() or src[i - 1] == "_")) and \
                re.match(r'(?:br|rb|r)(#*)"', src[i:i + 260]):
            m = re.match(r'(?:br|rb|r)(#*)"', src[i:])
            close = '"' + m.group(1)
            j = src.find(close, i + m.end())
            j = n if j < 0 else j + len(close)
            blank(i + m.end(), j - len(close))
            i = j
        elif c == '"':
            j = i + 1
            while j < n and src[j] != '"':
                j += 2 if src[j] == "\\" else 1
            blank(i + 1, j)
            i = j + 1
        elif c == "'":
            # A char literal ('x', '\n', '\u{..}') or a lifetime ('a).
            if i + 1 < n and src[i + 1] == "\\":
                j = src.find("'", i + 2)
                j = n if j < 0 else j
                blank(i + 1, j)
                i = j + 1
            elif i + 2 < n and src[i + 2] == "'":
                blank(i + 1, i + 2)
                i += 3
            else:
                i += 1
        else:
            i += 1
    return "".join(out)


def item_end(code: str, i: int) -> int:
    """The end of the item starting at `i`: after its `;` or its closing brace at depth 0."""
    depth, n = 0, len(code)
    while i < n:
        c = code[i]
        if c in "([{":
            depth += 1
        elif c in ")]}":
            depth -= 1
            if depth == 0 and c == "}":
                # `use a::{b, c};` and `static X: T = T { … };` end at their `;`.
                m = re.compile(r"\s*;").match(code, i + 1)
                return m.end() if m else i + 1
        elif c == ";" and depth == 0:
            return i + 1
        i += 1
    return n


def attributes_end(code: str, i: int) -> int:
    """Skips whitespace and `#[…]` attributes from `i`."""
    while True:
        m = re.compile(r"\s*").match(code, i)
        i = m.end()
        if code.startswith("#[", i) or code.startswith("#![", i):
            i = item_end_bracket(code, code.index("[", i))
        else:
            return i


def item_end_bracket(code: str, i: int) -> int:
    """After the bracket group opening at `i`."""
    depth = 0
    for j in range(i, len(code)):
        if code[j] in "([{":
            depth += 1
        elif code[j] in ")]}":
            depth -= 1
            if depth == 0:
                return j + 1
    return len(code)


def remove_tests(code: str) -> tuple[str, set[str]]:
    """`code` without its `#[cfg(test)]` items, and the names of `#[cfg(test)] mod x;`."""
    test_mods: set[str] = set()
    out = list(code)
    for m in CFG_TEST.finditer(code):
        start = attributes_end(code, m.end())
        end = item_end(code, start)
        decl = MOD_DECL.match(code, start)
        if decl and decl.end() == end:
            test_mods.add(decl.group(1).removeprefix("r#"))
        for k in range(m.start(), end):
            if out[k] != "\n":
                out[k] = " "
    return "".join(out), test_mods


def split_segments(path: str) -> list[str]:
    return [s.strip().removeprefix("r#") for s in path.split("::")]


def expand_use(tree: str) -> list[tuple[list[str], str | None]]:
    """A use tree as (path, bound name) pairs; the name is None for a glob (`x::*`)."""
    tokens = re.findall(rf"::|[{{}},*]|{IDENT}", tree)
    pos = 0

    def parse(prefix: list[str]) -> list[tuple[list[str], str | None]]:
        nonlocal pos
        path = list(prefix)
        out: list[tuple[list[str], str | None]] = []
        while pos < len(tokens):
            t = tokens[pos]
            if t == "::":
                pos += 1
            elif t == "{":
                pos += 1
                while pos < len(tokens) and tokens[pos] != "}":
                    out += parse(path)
                    if pos < len(tokens) and tokens[pos] == ",":
                        pos += 1
                pos += 1
                return out
            elif t == "*":
                pos += 1
                return out + [(path, None)]
            elif t in (",", "}"):
                break
            elif t == "as":
                alias = tokens[pos + 1] if pos + 1 < len(tokens) else "_"
                pos += 2
                return out + [(path, alias.removeprefix("r#"))]
            else:
                path.append(t.removeprefix("r#"))
                pos += 1
        if path == prefix:
            return out
        if path[-1] == "self":
            path = path[:-1]
        return out + [(path, path[-1] if path else None)]

    return parse([])


def line_of(code: str, i: int) -> int:
    return code.count("\n", 0, i) + 1


@dataclass
class Use:
    line: int
    path: list[str]
    name: str | None  # bound name; None for a glob
    reexport: bool
    text: str


@dataclass
class File:
    path: Path
    crate: str
    is_root: bool
    parent: "File | None" = None
    # An inline `mod name { … }`: a module of its own for paths, part of its file's node.
    inline: str | None = None
    children: dict[str, "File"] = field(default_factory=dict)
    uses: list[Use] = field(default_factory=list)
    defines: set[str] = field(default_factory=set)
    code: str = ""
    raw: str = ""

    def bound(self, name: str) -> Use | None:
        for u in self.uses:
            if u.name == name:
                return u
        return None


# ------------------------------------------------------------------ the module tree

def child_path(f: File, name: str) -> Path | None:
    if f.is_root or f.path.name == "mod.rs":
        base = f.path.parent
    else:
        base = f.path.parent / f.path.stem
    for p in (base / f"{name}.rs", base / name / "mod.rs"):
        if p.exists():
            return p
    return None


def load_crate(crate: str, src: Path, problems: list[str]) -> list[File]:
    root = File(src / "lib.rs", crate, True)
    files: list[File] = []
    todo = [root]
    while todo:
        f = todo.pop()
        files.append(f)
        f.raw = f.path.read_text(encoding="utf-8")
        code, test_mods = remove_tests(strip(f.raw))
        code = inline_modules(f, code)
        read_items(f, code)
        for m in MOD_DECL.finditer(code):
            name = m.group(1).removeprefix("r#")
            if name in test_mods:
                continue
            p = child_path(f, name)
            if p is None:
                problems.append(f"{rel(f.path)}:{line_of(code, m.start())}: mod {name}: no file")
                continue
            child = File(p, crate, False, parent=f)
            f.children[name] = child
            todo.append(child)
    return files


def read_items(f: File, code: str) -> None:
    """The use declarations, defined names and code paths of `f`, from its stripped code."""
    for m in USE_DECL.finditer(code):
        for path, name in expand_use(m.group(2)):
            if path:
                f.uses.append(Use(line_of(code, m.start()), path, name,
                                  bool(m.group(1)), " ".join(m.group(0).split())))
    # Paths in code are looked for outside the use declarations.
    f.code = USE_DECL.sub(lambda m: re.sub(r"[^\n]", " ", m.group(0)), code)
    f.defines = {d.removeprefix("r#") for d in DEFINE.findall(code)}


def inline_modules(f: File, code: str) -> str:
    """Makes each inline `mod name { … }` of `f` a child module (same file, its own paths)
    and returns `f`'s code without their bodies."""
    out = list(code)
    i = 0
    while True:
        m = INLINE_MOD.search(code, i)
        if not m:
            return "".join(out)
        end = item_end(code, m.end() - 1)
        body = "".join(c if c == "\n" else " " for c in code[:m.end()]) + code[m.end():end - 1]
        name = m.group(1).removeprefix("r#")
        child = File(f.path, f.crate, False, parent=f, inline=name)
        read_items(child, body)
        f.children[name] = child
        for k in range(m.end(), end - 1):
            if out[k] != "\n":
                out[k] = " "
        i = end


def rel(p: Path) -> str:
    try:
        return str(p.relative_to(ROOT))
    except ValueError:
        return str(p)


class Resolver:
    def __init__(self, root: File):
        self.root = root

    def resolve(self, ctx: File, segs: list[str], depth: int = 0) -> File | None:
        """The file that defines what `segs` names, seen from `ctx`; None outside the crate."""
        if depth > 30 or not segs:
            return None
        first, rest = segs[0], segs[1:]
        if first == "crate":
            return self.walk(self.root, rest, depth)
        if first == "super":
            mod = ctx.parent
            while rest and rest[0] == "super" and mod is not None:
                mod, rest = mod.parent, rest[1:]
            return None if mod is None else self.walk(mod, rest, depth)
        if first == "self":
            return self.walk(ctx, rest, depth)
        if first in ctx.children:
            return self.walk(ctx.children[first], rest, depth)
        u = ctx.bound(first)
        if u is not None and u.path != [first]:  # `use serde_json;` names another crate
            return self.resolve(ctx, u.path + rest, depth + 1)
        return None

    def walk(self, mod: File, rest: list[str], depth: int) -> File | None:
        while rest:
            seg = rest[0]
            if seg in mod.children:
                mod, rest = mod.children[seg], rest[1:]
                continue
            if seg in mod.defines:
                return mod
            u = mod.bound(seg)
            if u is not None:
                return self.resolve(mod, u.path + rest[1:], depth + 1)
            for g in (u for u in mod.uses if u.name is None):
                target = self.resolve(mod, g.path, depth + 1)
                if target is not None and (seg in target.children or seg in target.defines
                                           or target.bound(seg) is not None):
                    return self.walk(target, rest, depth + 1)
            return mod
        return mod


# ------------------------------------------------------------------ the graph

@dataclass
class Edge:
    src: File
    dst: File
    line: int
    text: str
    reexport: bool


def edges_of(files: list[File], resolver: Resolver) -> list[Edge]:
    edges: list[Edge] = []
    seen: set[tuple[Path, Path, bool]] = set()

    def add(f: File, dst: File | None, line: int, text: str, reexport: bool) -> None:
        if dst is None or dst.path == f.path:
            return
        key = (f.path, dst.path, reexport)
        if key in seen:
            return
        seen.add(key)
        edges.append(Edge(f, dst, line, text, reexport))

    for f in files:
        for u in f.uses:
            target = resolver.resolve(f, u.path)
            if target is None:
                continue
            # A module named alone is not an import; the paths through its name are.
            if u.name is not None and target.path == module_file(resolver, f, u.path):
                continue
            add(f, target, u.line, u.text, u.reexport)
        for m in PATH.finditer(f.code):
            segs = split_segments(m.group(1))
            first = segs[0]
            if first not in ("crate", "super", "self") and first not in f.children \
                    and f.bound(first) is None:
                continue
            add(f, resolver.resolve(f, segs), line_of(f.code, m.start()),
                " ".join(m.group(1).split()), False)
    return edges


def module_file(resolver: Resolver, ctx: File, segs: list[str]) -> Path | None:
    """The file of the module `segs` names, if it names a module."""
    parent = resolver.resolve(ctx, segs[:-1]) if len(segs) > 1 else ctx
    if segs[-1] in ("crate",):
        return resolver.root.path
    if segs[-1] == "super":
        return ctx.parent.path if ctx.parent else None
    if parent is not None and segs[-1] in parent.children:
        return parent.children[segs[-1]].path
    return None


def cycles(files: list[File], edges: list[Edge]) -> list[list[File]]:
    """The strongly connected components of more than one file (Tarjan)."""
    graph: dict[Path, list[File]] = {f.path: [] for f in files}
    for e in edges:
        if not e.reexport:
            graph[e.src.path].append(e.dst)
    index: dict[Path, int] = {}
    low: dict[Path, int] = {}
    stack: list[File] = []
    on: set[Path] = set()
    out: list[list[File]] = []
    counter = [0]

    def visit(v: File) -> None:
        index[v.path] = low[v.path] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v.path)
        for w in graph[v.path]:
            if w.path not in index:
                visit(w)
                low[v.path] = min(low[v.path], low[w.path])
            elif w.path in on:
                low[v.path] = min(low[v.path], index[w.path])
        if low[v.path] == index[v.path]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w.path)
                comp.append(w)
                if w is v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp, key=lambda f: str(f.path)))

    sys.setrecursionlimit(10000)
    for f in files:
        if f.path not in index:
            visit(f)
    return out


def layer_key(f: File, src: Path) -> str | None:
    parts = f.path.relative_to(src).parts
    if parts == ("lib.rs",):
        return None
    return Path(parts[0]).stem


def lib_problems(f: File) -> list[str]:
    """What a core lib.rs holds besides module declarations and re-exports."""
    code = remove_tests(strip(f.raw))[0]
    out = []
    i = 0
    while True:
        i = attributes_end(code, i)
        if i >= len(code):
            return out
        end = item_end(code, i)
        item = " ".join(code[i:end].split())
        if not re.fullmatch(rf"(?:pub(?:\s*\([^)]*\))?\s+use\s[^;]*|(?:pub(?:\s*\([^)]*\))?\s+)?"
                            rf"mod\s+{IDENT}\s*);", item):
            out.append(f"{rel(f.path)}:{line_of(code, i)}: not a module declaration or a "
                       f"re-export: {item[:80]}")
        i = end


# ------------------------------------------------------------------ the check

@dataclass
class Findings:
    cycles: list[str] = field(default_factory=list)
    upward: list[str] = field(default_factory=list)
    lib: list[str] = field(default_factory=list)
    other: list[str] = field(default_factory=list)
    summary: list[str] = field(default_factory=list)

    def any(self) -> bool:
        return bool(self.cycles or self.upward or self.lib or self.other)


def describe_cycle(comp: list[File], edges: list[Edge]) -> str:
    members = {f.path for f in comp}
    inner = [e for e in edges if not e.reexport and e.src.path in members
             and e.dst.path in members]
    if len(comp) == 2:
        head = f"pair: {rel(comp[0].path)} <-> {rel(comp[1].path)}"
    else:
        head = f"cycle of {len(comp)} files: " + ", ".join(rel(f.path) for f in comp)
    lines = [head] + [f"    {rel(e.src.path)}:{e.line} -> {rel(e.dst.path)}: {e.text}"
                      for e in sorted(inner, key=lambda e: (str(e.src.path), e.line))]
    return "\n".join(lines)


def check(root: Path) -> Findings:
    found = Findings()
    for crate, src_rel, layered in CRATES:
        src = root / src_rel
        if not (src / "lib.rs").exists():
            continue
        files = load_crate(crate, src, found.other)
        edges = edges_of(files, Resolver(files[0]))
        for comp in cycles(files, edges):
            found.cycles.append(f"{crate}: " + describe_cycle(comp, edges))
        if layered:
            for f in files:
                key = layer_key(f, src)
                if key is not None and key not in LAYERS:
                    found.other.append(f"{rel(f.path)}: module `{key}` is not in the layer table "
                                       f"(LAYERS in scripts/check-layers.py)")
            for e in sorted(edges, key=lambda e: (str(e.src.path), e.line)):
                a, b = layer_key(e.src, src), layer_key(e.dst, src)
                if a is None or b is None or a not in LAYERS or b not in LAYERS:
                    continue
                if LAYERS[a][0] < LAYERS[b][0]:
                    found.upward.append(
                        f"{rel(e.src.path)}:{e.line} ({a}, layer {LAYERS[a][0]}) -> "
                        f"{rel(e.dst.path)} ({b}, layer {LAYERS[b][0]}): {e.text}")
            found.lib += lib_problems(files[0])
        found.summary.append(f"{crate}: {len(files)} files, "
                             f"{sum(not e.reexport for e in edges)} imports between them")
    return found


def report(found: Findings) -> int:
    print("check-layers: " + "; ".join(found.summary))
    if found.other:
        print(f"\n{len(found.other)} file(s) the check cannot place:")
        print("\n".join("  " + p for p in found.other))
    if found.cycles:
        print(f"\n{len(found.cycles)} pair(s) or cycle(s) of files importing each other:")
        print("\n".join("  " + c for c in found.cycles))
    if found.upward:
        print(f"\n{len(found.upward)} import(s) from a lower layer to a higher one "
              f"(layers: {layer_table()}):")
        print("\n".join("  " + u for u in found.upward))
    if found.lib:
        print(f"\n{len(found.lib)} item(s) in lib.rs beyond module declarations and re-exports:")
        print("\n".join("  " + p for p in found.lib))
    if found.any():
        print("\ncheck-layers: FAILED")
        return 1
    print("check-layers: every import points down; no two files import each other")
    return 0


def layer_table() -> str:
    ranks: dict[int, list[str]] = {}
    for name, (rank, _) in LAYERS.items():
        ranks.setdefault(rank, []).append(name)
    return " < ".join("/".join(v) for _, v in sorted(ranks.items()))


# ------------------------------------------------------------------ self-test

def write_tree(base: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        p = base / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text, encoding="utf-8")
    return base


CLEAN = {
    "core/src/lib.rs": """//! The crate.
pub mod protocol;
pub mod sockjs;
pub mod server;
mod error;
#[doc(hidden)]
pub mod client;
pub use error::Error;
pub use server::{Kite};
""",
    "core/src/protocol/mod.rs": "mod kite;\npub use kite::Identity;\n",
    "core/src/protocol/kite.rs": "pub struct Identity;\n",
    "core/src/sockjs/mod.rs": "pub mod frame;\npub struct Session;\n",
    "core/src/sockjs/frame.rs": "pub fn parse() {}\n",
    "core/src/error.rs": "use crate::protocol::Identity;\npub enum Error { A(Identity) }\n",
    "core/src/server/mod.rs": "mod kite;\nmod method;\npub use kite::Kite;\n",
    "core/src/server/kite.rs": """use crate::protocol::Identity;
use crate::sockjs;
use super::method::Method;
// crate::client::Client in a comment is no import
/* nor /* nested */ crate::client::Client */
const S: &str = "crate::client::Client";
const R: &str = r#"crate::client::Client"#;
const C: char = '"';
pub struct Kite<'a> { id: &'a Identity, m: Method }
fn f() { sockjs::frame::parse(); let _ = crate::Error::A; }
#[cfg(test)]
mod tests { use crate::client::Client; }
""",
    "core/src/server/method.rs": "pub struct Method;\n",
    "core/src/client/mod.rs": "use crate::Kite;\nuse crate::server;\npub struct Client;\n"
                              "fn k(_: server::Kite<'_>) {}\n",
    "bindings-node/src/lib.rs": "mod convert;\nmod kite;\npub use kite::Kite;\n"
                                "fn init() { kite::register(); kite::side::go(); }\n",
    "bindings-node/src/convert.rs": "pub fn to_js() {}\n",
    "bindings-node/src/kite.rs": "use kite::Kite as Core;\nuse crate::convert;\n"
                                 "pub struct Kite(Core);\npub fn register() { convert::to_js(); }\n"
                                 "pub(crate) mod side { use super::*; pub fn go() { register() } }\n",
}


def self_test() -> int:
    failures: list[str] = []

    def expect(what: str, ok: bool) -> None:
        if not ok:
            failures.append(what)

    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        clean = check(write_tree(base / "clean", CLEAN))
        expect(f"a clean tree passes (found {found_text(clean)})", not clean.any())
        # The clean tree's imports resolved through modules, re-exports and aliases.
        src = base / "clean/core/src"
        files = load_crate("core", src, [])
        pairs = {(rel_to(e.src.path, src), rel_to(e.dst.path, src))
                 for e in edges_of(files, Resolver(files[0])) if not e.reexport}
        for pair in [("server/kite.rs", "protocol/kite.rs"), ("server/kite.rs", "sockjs/frame.rs"),
                     ("server/kite.rs", "server/method.rs"), ("server/kite.rs", "error.rs"),
                     ("client/mod.rs", "server/kite.rs")]:
            expect(f"edge {pair} found (edges: {sorted(pairs)})", pair in pairs)
        for pair in [("server/kite.rs", "client/mod.rs"), ("client/mod.rs", "server/mod.rs"),
                     ("server/kite.rs", "sockjs/mod.rs")]:
            expect(f"no edge {pair} (edges: {sorted(pairs)})", pair not in pairs)

        # (a) a pair, through a re-export, and a three-file cycle in a binding.
        bad = dict(CLEAN)
        bad["core/src/server/method.rs"] = "use crate::Kite;\npub struct Method;\n"
        bad["bindings-node/src/convert.rs"] = "use crate::errors::wrap;\npub fn to_js() {}\n"
        bad["bindings-node/src/errors.rs"] = "pub fn wrap() { super::kite::register() }\n"
        bad["bindings-node/src/lib.rs"] = CLEAN["bindings-node/src/lib.rs"] + "mod errors;\n"
        found = check(write_tree(base / "cycles", bad))
        expect(f"the pair server/kite.rs <-> server/method.rs is caught ({found_text(found)})",
               any("pair" in c and "server/kite.rs" in c and "server/method.rs" in c
                   for c in found.cycles))
        expect(f"the binding's cycle of 3 is caught ({found_text(found)})",
               any("bindings-node: cycle of 3" in c for c in found.cycles))
        expect("cycles only", not found.upward and not found.lib)

        # (b) imports from a lower layer to a higher one, in a use and in a code path, and
        # a re-export of a higher layer's item; (c) code in lib.rs; an unknown module.
        bad = dict(CLEAN)
        bad["core/src/protocol/kite.rs"] = "use crate::server::method::Method;\npub struct Identity;\n"
        bad["core/src/sockjs/frame.rs"] = "pub fn parse() { crate::client::dial::connect(); }\n"
        bad["core/src/client/mod.rs"] = CLEAN["core/src/client/mod.rs"] + "pub mod dial;\n"
        bad["core/src/client/dial.rs"] = "pub fn connect() {}\n"
        bad["core/src/sockjs/mod.rs"] = "pub mod frame;\npub struct Session;\npub use crate::server::Kite;\n"
        bad["core/src/lib.rs"] = CLEAN["core/src/lib.rs"] + "mod widgets;\nfn helper() {}\n"
        bad["core/src/widgets.rs"] = "\n"
        found = check(write_tree(base / "upward", bad))
        up = "\n".join(found.upward)
        expect(f"protocol -> server caught ({found_text(found)})",
               "protocol/kite.rs:1 (protocol, layer 0) -> " in up and "server/method.rs" in up)
        expect(f"sockjs -> client in code caught ({found_text(found)})",
               "sockjs/frame.rs:1 (sockjs" in up and "client/dial.rs" in up)
        expect(f"sockjs re-exporting server caught ({found_text(found)})",
               "sockjs/mod.rs:3 (sockjs" in up)
        expect(f"fn in lib.rs caught ({found_text(found)})",
               any("lib.rs:11" in p and "fn helper" in p for p in found.lib))
        expect(f"the unknown module caught ({found_text(found)})",
               any("`widgets` is not in the layer table" in p for p in found.other))
        expect(f"no cycles there ({found.cycles})", not found.cycles)
        expect("report() exits 1 on findings", report_quiet(found) == 1)
        expect("report() exits 0 on a clean tree", report_quiet(clean) == 0)

    expand = expand_use("crate::{a::{self, B as C}, d::*, e}")
    expect(f"use trees expand ({expand})",
           expand == [(["crate", "a"], "a"), (["crate", "a", "B"], "C"), (["crate", "d"], None),
                      (["crate", "e"], "e")])
    stripped = strip('let a = "x\\"crate::y"; // crate::z\nlet b = \'c\'; let c: &\'a T;')
    expect(f"strings and comments blanked ({stripped!r})",
           "crate" not in stripped and stripped.count("\n") == 1 and "'a T" in stripped)
    for f in failures:
        print(f"check-layers self-test: FAILED: {f}")
    if failures:
        return 1
    print("check-layers self-test: passed (clean tree, pair, cycle of 3, upward use, upward "
          "path, upward re-export, lib.rs item, unknown module, comments and strings)")
    return 0


def rel_to(p: Path, base: Path) -> str:
    return str(p.relative_to(base))


def found_text(found: Findings) -> str:
    return "; ".join(found.cycles + found.upward + found.lib + found.other) or "nothing"


def report_quiet(found: Findings) -> int:
    import contextlib
    import io
    with contextlib.redirect_stdout(io.StringIO()):
        return report(found)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--self-test", action="store_true",
                    help="check the checker on small fake trees")
    ap.add_argument("--root", type=Path, default=ROOT, help="the repository to check")
    args = ap.parse_args()
    if args.self_test:
        return self_test()
    return report(check(args.root.resolve()))


if __name__ == "__main__":
    sys.exit(main())
