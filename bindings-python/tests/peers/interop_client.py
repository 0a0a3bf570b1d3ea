#!/usr/bin/env python3
"""The interop test client of ``tests/interop/SCENARIOS.md`` on kite_rs: runs every scenario
against the server at ``--url`` and prints one JSON line per scenario; exits 0 when all
passed.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import sys
from pathlib import Path
from typing import Any, Awaitable, Callable, Dict, List, Optional

from kite_rs import Auth, Kite, KiteError, Request

T = 5.0


def jwt_subject(jwt: str) -> str:
    payload = jwt.strip().split(".")[1]
    payload += "=" * (-len(payload) % 4)
    sub = json.loads(base64.urlsafe_b64decode(payload))["sub"]
    return str(sub)


class Report:
    def __init__(self, only: List[str]) -> None:
        self.only = only
        self.all_ok = True

    def want(self, name: str) -> bool:
        return not self.only or name in self.only

    def line(self, name: str, ok: bool, result: Any, error: Optional[BaseException]) -> None:
        self.all_ok &= ok
        err = None
        if isinstance(error, KiteError):
            err = {"type": error.kind, "message": error.message}
        elif error is not None:
            err = {"type": type(error).__name__, "message": str(error)}
        print(
            json.dumps({"scenario": name, "ok": ok, "result": result, "error": err}),
            flush=True,
        )

    async def run(
        self, name: str, call: Callable[[], Awaitable[Any]], check: Callable[[Any], bool]
    ) -> None:
        if not self.want(name):
            return
        try:
            result = await call()
        except KiteError as e:
            self.line(name, check(e), None, e)
        else:
            self.line(name, check(result), result, None)


def kind(k: str) -> Callable[[Any], bool]:
    return lambda r: isinstance(r, KiteError) and r.kind == k


async def collect(queue: "asyncio.Queue[List[Any]]", n: int) -> List[List[Any]]:
    got: List[List[Any]] = []
    while len(got) < n:
        try:
            got.append(await asyncio.wait_for(queue.get(), T))
        except asyncio.TimeoutError:
            break
    return got


async def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--url", required=True)
    p.add_argument("--transport", default="WebSocket")
    p.add_argument("--kite-key")
    p.add_argument("--token")
    p.add_argument("--only", default="")
    args = p.parse_args()
    local = Kite("interop-client", "1.0.0", username="testuser")

    @local.handle("square")
    async def square(req: Request, n: float) -> float:
        return n * n

    c = local.client(args.url, transport=args.transport)
    await c.dial()
    r = Report([s for s in args.only.split(",") if s])

    await r.run("square", lambda: c.tell("square", 4, timeout=T), lambda v: v == 16)
    obj = {"a": 1, "b": [True, None, "x"]}
    await r.run("echoObject", lambda: c.tell("echo", obj, timeout=T), lambda v: v == [obj])
    await r.run("echoScalar", lambda: c.tell("echo", 5, timeout=T), lambda v: v in ([5], 5))
    await r.run("echoNull", lambda: c.tell("echo", timeout=T), lambda v: v in (None, []))

    if r.want("callback"):
        q: "asyncio.Queue[List[Any]]" = asyncio.Queue()
        res: Any = None
        err: Optional[BaseException] = None
        try:
            res = await c.tell("callback", 3, lambda *a: q.put_nowait(list(a)), timeout=T)
        except KiteError as e:
            err = e
        got = await collect(q, 3)
        ok = res == 3 and got == [[0], [1], [2]]
        r.line("callback", ok, {"result": res, "calls": got}, err)

    if r.want("nested"):
        q2: "asyncio.Queue[List[Any]]" = asyncio.Queue()
        res, err = None, None

        def put(*a: Any) -> None:
            q2.put_nowait(list(a))

        try:
            res = await c.tell("nested", {"a": put, "b": {"c": [put]}}, timeout=T)
        except KiteError as e:
            err = e
        got = sorted(await collect(q2, 2), key=lambda v: str(v[0]) if v else "")
        ok = res == "ok" and got == [["a"], ["c"]]
        r.line("nested", ok, {"result": res, "calls": got}, err)

    await r.run(
        "fail",
        lambda: c.tell("fail", timeout=T),
        lambda e: isinstance(e, KiteError) and e.kind == "genericError" and e.message == "boom",
    )
    await r.run("methodNotFound", lambda: c.tell("noSuchMethod", timeout=T), kind("methodNotFound"))
    await r.run("argumentError", lambda: c.tell("needString", 1, timeout=T), kind("argumentError"))
    await r.run("ping", lambda: c.tell("kite.ping", timeout=T), lambda v: v == "pong")
    await r.run(
        "systemInfo",
        lambda: c.tell("kite.systemInfo", timeout=T),
        lambda v: isinstance(v, dict) and "state" in v,
    )

    if r.want("heartbeat"):
        beats: "asyncio.Queue[List[Any]]" = asyncio.Queue()
        err = None
        try:
            await c.tell("kite.heartbeat", 1, lambda *a: beats.put_nowait(list(a)), timeout=T)
        except KiteError as e:
            err = e
        n = len(await collect(beats, 2))
        r.line("heartbeat", err is None and n >= 2, {"beats": n}, err)

    await r.run(
        "callMeBack", lambda: c.tell("callMeBack", "square", [3], timeout=T), lambda v: v == 9
    )
    if args.kite_key:
        key = Path(args.kite_key).read_text().strip()
        c.auth = Auth("kiteKey", key)
        sub = jwt_subject(key)
        await r.run("secretWithKey", lambda: c.tell("secret", timeout=T), lambda v: v == sub)
    if args.token:
        c.auth = Auth("token", args.token)
        sub = jwt_subject(args.token)
        await r.run("secretWithToken", lambda: c.tell("secret", timeout=T), lambda v: v == sub)
    c.auth = None
    await r.run("secretWithout", lambda: c.tell("secret", timeout=T), kind("authenticationError"))

    if r.want("limited"):
        first: Any = None
        first_err: Optional[BaseException] = None
        second: Optional[BaseException] = None
        try:
            first = await c.tell("limited", timeout=T)
        except KiteError as e:
            first_err = e
        try:
            await c.tell("limited", timeout=T)
        except KiteError as e:
            second = e
        ok = first_err is None and kind("requestLimitError")(second)
        r.line("limited", ok, {"first": first}, second or first_err)

    c.close()
    return 0 if r.all_ok else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
