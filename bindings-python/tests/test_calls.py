"""End to end in one process: a Python kite served by the Rust core, called by a Python
client over real sockets (127.0.0.1, port 0). No sleeps: tests wait on events."""

from __future__ import annotations

import asyncio
import builtins
import logging
import threading
from typing import Any, Awaitable, Callable, Dict, List, Optional

import pytest

from kite_rs import (
    ArgumentError,
    AuthenticationError,
    Client,
    Connection,
    DialError,
    DisconnectedError,
    GenericError,
    Kite,
    KiteError,
    MethodHandling,
    MethodNotFoundError,
    RemoteFunction,
    Request,
    RequestLimitError,
    TimeoutError,
)

pytestmark = pytest.mark.asyncio

Dial = Callable[..., Awaitable[Client]]
MakeKite = Callable[..., Kite]
WAIT = 10.0


async def wait(aw: Awaitable[Any]) -> Any:
    return await asyncio.wait_for(aw, WAIT)


def math_kite(make_kite: MakeKite) -> Kite:
    k = make_kite("math")

    @k.handle("square", auth=False)
    async def square(req: Request, n: float) -> float:
        return n * n

    @k.handle("square_sync", auth=False)
    def square_sync(req: Request, n: float) -> float:
        return n * n

    @k.handle("echo", auth=False)
    async def echo(req: Request, *args: Any) -> List[Any]:
        return list(args)

    @k.handle("fail", auth=False)
    async def fail(req: Request) -> None:
        raise ValueError("boom")

    @k.handle("fail_sync", auth=False)
    def fail_sync(req: Request) -> None:
        raise RuntimeError("sync boom")

    @k.handle("secret")
    async def secret(req: Request) -> str:
        return req.username

    return k


async def test_results_and_default_methods(make_kite: MakeKite, dial: Dial) -> None:
    k = math_kite(make_kite)
    k.method("kite.systemInfo").disable_authentication()  # like the interop servers
    port = await k.start(port=0)
    assert port == k.port and k.url == f"http://127.0.0.1:{port}/kite"
    c = await dial(k)
    assert await c.tell("square", 4) == 16.0
    assert await c.tell("square", 1.5, timeout=5.0) == 2.25
    assert await c.tell("square_sync", 5) == 25.0
    value = {"a": 1, "b": [True, None, "x", 2.5, -7, 2**63 - 1], "c": {"d": "é"}}
    assert await c.tell("echo", value, "two") == [value, "two"]
    assert await c.tell("echo") == []
    assert await c.tell("echo", (1, 2)) == [[1, 2]]
    assert await c.tell("kite.ping") == "pong"
    info = await c.tell("kite.systemInfo")
    assert info["state"] == "RUNNING" and "uname" in info


async def test_errors_reach_the_caller(make_kite: MakeKite, dial: Dial) -> None:
    k = math_kite(make_kite)
    await k.start(port=0)
    c = await dial(k)
    with pytest.raises(GenericError) as e:
        await c.tell("fail")
    assert e.value.message == "boom" and len(e.value.id) == 16
    assert str(e.value) == f"boom ({e.value.id})"
    with pytest.raises(GenericError, match="sync boom"):
        await c.tell("fail_sync")
    with pytest.raises(MethodNotFoundError) as nf:
        await c.tell("nope")
    assert nf.value.message == "Method not found: nope"
    with pytest.raises(ArgumentError, match='argument "n" of square: expected a number'):
        await c.tell("square", "x")
    with pytest.raises(ArgumentError, match="takes 1 argument .2 given"):
        await c.tell("square", 1, 2)
    with pytest.raises(ArgumentError, match="0 given"):
        await c.tell("square_sync")
    with pytest.raises(AuthenticationError) as auth:
        await c.tell("secret")
    assert auth.value.message == "No authentication information is provided"
    with pytest.raises(TypeError, match="not JSON serializable"):
        c.tell("echo", object())


async def test_annotations_check_and_coerce(make_kite: MakeKite, dial: Dial) -> None:
    k = make_kite("typed")
    seen: Dict[str, Any] = {}

    @k.handle("typed", auth=False)
    async def typed(
        req: Request,
        f: float,
        i: int,
        s: str,
        b: bool,
        items: List[int],
        mapping: Dict[str, Any],
        maybe: Optional[str] = None,
        anything: Any = None,
    ) -> str:
        seen.update(f=f, i=i, s=s, b=b, items=items, mapping=mapping, maybe=maybe)
        return "ok"

    await k.start(port=0)
    c = await dial(k)
    assert await c.tell("typed", 2, 3.0, "s", True, [1], {"k": 1}) == "ok"
    assert isinstance(seen["f"], float) and isinstance(seen["i"], int) and seen["i"] == 3
    assert await c.tell("typed", 2.5, 3, "s", False, [], {}, None, {"x": 1}) == "ok"
    bad = [
        (2, 3.5, "s", True, [], {}),  # i not integral
        (2, 3, 4, True, [], {}),  # s not a string
        (2, 3, "s", 1, [], {}),  # b not a bool
        (2, 3, "s", True, {}, {}),  # items not a list
        (2, 3, "s", True, [], []),  # mapping not a dict
        (2, 3, "s", True, [], {}, 5),  # maybe not a string or null
        (True, 3, "s", True, [], {}),  # a bool is not a number
    ]
    for args in bad:
        with pytest.raises(ArgumentError):
            await c.tell("typed", *args)


async def test_custom_kite_errors_keep_their_kind(make_kite: MakeKite, dial: Dial) -> None:
    k = make_kite("errs")

    @k.handle("custom", auth=False)
    async def custom(req: Request, kind: str) -> None:
        if kind == "arg":
            raise ArgumentError("n must be positive", code="E1")
        raise KiteError("teapot", kind="iAmATeapot", code="418")

    await k.start(port=0)
    c = await dial(k)
    with pytest.raises(ArgumentError) as e:
        await c.tell("custom", "arg")
    assert (e.value.message, e.value.code) == ("n must be positive", "E1")
    with pytest.raises(KiteError) as t:
        await c.tell("custom", "teapot")
    assert (t.value.kind, t.value.message, t.value.code) == ("iAmATeapot", "teapot", "418")


async def test_request_attributes(make_kite: MakeKite, dial: Dial) -> None:
    k = make_kite("req")
    got: Dict[str, Any] = {}

    @k.handle("inspect", auth=False)
    async def inspect_(req: Request, *args: Any) -> str:
        got.update(
            id=req.id,
            method=req.method,
            username=req.username,
            args=req.args,
            with_args=req.with_args,
            args_shape=req.args_shape,
            auth=req.auth,
            kite=req.kite,
            cancelled=req.cancelled,
        )
        return repr(req)

    await k.start(port=0)
    c = await dial(k)
    text = await c.tell("inspect", 1, "two")
    assert got["method"] == "inspect" and len(got["id"]) == 16 and got["id"] in text
    assert got["args"] == [1, "two"] and got["username"] == "testuser"
    assert got["auth"] is None and got["cancelled"] is False
    assert got["kite"].name == "caller" and got["kite"].username == "testuser"
    # Our client always sends a list; kite.js's bare scalars ("single") and Go's null
    # ("absent") are covered by test_interop.py's echo scenarios.
    assert got["with_args"] == [1, "two"] and got["args_shape"] == "list"
    assert got["with_args"] is not got["args"]
    await c.tell("inspect")
    assert got["with_args"] == [] and got["args_shape"] == "list"
    await c.tell("inspect", {"cb": lambda: None})
    assert isinstance(got["with_args"][0]["cb"], RemoteFunction)


async def test_sync_handlers_run_in_worker_threads(make_kite: MakeKite, dial: Dial) -> None:
    k = make_kite("threads")
    release = threading.Event()
    entered = threading.Event()
    threads: List[int] = []

    @k.handle("block", auth=False)
    def block(req: Request) -> str:
        threads.append(threading.get_ident())
        entered.set()
        release.wait(WAIT)
        return "released"

    @k.handle("quick", auth=False)
    async def quick(req: Request) -> str:
        threads.append(threading.get_ident())
        return "quick"

    await k.start(port=0)
    c = await dial(k)
    blocked = asyncio.ensure_future(c.tell("block"))
    await wait(asyncio.get_running_loop().run_in_executor(None, entered.wait, WAIT))
    # The loop is free while a plain def handler blocks: async handlers still answer.
    assert await c.tell("quick") == "quick"
    release.set()
    assert await wait(blocked) == "released"
    assert threads[0] != threading.get_ident() and threads[1] == threading.get_ident()


async def test_callbacks_both_ways(make_kite: MakeKite, dial: Dial) -> None:
    k = make_kite("cb")

    @k.handle("callback", auth=False)
    async def callback(req: Request, n: int, fn: RemoteFunction) -> int:
        for i in range(n):
            await fn(i)
        return n

    @k.handle("callback_sync", auth=False)
    def callback_sync(req: Request, n: int, fn: Callable[..., Any]) -> int:
        for i in range(n):
            fn(i, "sync")  # not awaited: sent in order before the response
        return n

    @k.handle("nested", auth=False)
    async def nested(req: Request, opts: Dict[str, Any]) -> str:
        await opts["a"]("a")
        await opts["b"]["c"][0]("c")
        return "ok"

    @k.handle("give", auth=False)
    async def give(req: Request) -> Dict[str, Any]:
        return {"note": "results may carry functions"}

    await k.start(port=0)
    c = await dial(k)
    seen: List[Any] = []
    done = asyncio.Event()

    def record(*args: Any) -> None:
        seen.append(list(args))
        if len(seen) == 3:
            done.set()

    assert await c.tell("callback", 3, record) == 3
    await wait(done.wait())
    assert seen == [[0], [1], [2]]

    four = asyncio.Event()

    async def arecord(*args: Any) -> None:
        seen.append(list(args))
        if len(seen) == 4:
            four.set()

    seen.clear()
    assert await c.tell("callback_sync", 4, arecord) == 4
    await wait(four.wait())
    assert seen == [[0, "sync"], [1, "sync"], [2, "sync"], [3, "sync"]]

    calls: List[str] = []
    both = asyncio.Event()

    def note(x: str) -> None:
        calls.append(x)
        if len(calls) == 2:
            both.set()

    assert await c.tell("nested", {"a": note, "b": {"c": [note]}}) == "ok"
    await wait(both.wait())
    assert sorted(calls) == ["a", "c"]

    # The user callbacks stay registered (they may be called again); responses do not leak.
    conn = c.connection
    assert conn is not None
    before = conn.callback_count
    for _ in range(20):
        await c.tell("kite.ping")
    assert conn.callback_count == before


async def test_streaming_progress_from_a_handler(make_kite: MakeKite, dial: Dial) -> None:
    k = make_kite("stream")

    @k.handle("count", auth=False)
    async def count(req: Request, upto: int, progress: RemoteFunction) -> str:
        for i in range(upto):
            await progress({"done": i + 1, "of": upto})
        return "finished"

    await k.start(port=0)
    c = await dial(k)
    updates: List[Dict[str, int]] = []
    all_in = asyncio.Event()

    def progress(update: Dict[str, int]) -> None:
        updates.append(update)
        if len(updates) == 50:
            all_in.set()

    assert await c.tell("count", 50, progress) == "finished"
    await wait(all_in.wait())
    assert updates[-1] == {"done": 50, "of": 50}
    assert [u["done"] for u in updates] == list(range(1, 51))


async def test_call_me_back_over_the_same_connection(make_kite: MakeKite) -> None:
    server = make_kite("server")

    @server.handle("callMeBack", auth=False)
    async def call_me_back(req: Request, method: str, args: List[Any]) -> Any:
        return await req.client.tell(method, *args)

    await server.start(port=0)
    caller = make_kite("caller")

    @caller.handle("square")
    async def square(req: Request, n: float) -> float:
        return n * n

    assert server.url is not None
    c = caller.client(server.url)
    await c.dial()
    try:
        assert await c.tell("callMeBack", "square", [3]) == 9.0
    finally:
        c.close()


async def test_timeouts_and_disconnects(make_kite: MakeKite, dial: Dial) -> None:
    k = make_kite("slow")
    started = asyncio.Event()
    cancelled = asyncio.Event()

    @k.handle("hang", auth=False)
    async def hang(req: Request) -> None:
        started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise

    await k.start(port=0)
    c = await dial(k)
    with pytest.raises(TimeoutError) as e:
        await c.tell("hang", timeout=0.2)
    assert e.value.message == 'No response to "hang" method in 200ms'
    assert isinstance(e.value, builtins.TimeoutError)

    started.clear()
    cancelled.clear()
    pending = asyncio.ensure_future(c.tell("hang"))
    await wait(started.wait())
    conn = c.connection
    assert conn is not None
    c.close()
    with pytest.raises(DisconnectedError):
        await wait(pending)
    # The handler learns that its caller is gone.
    await wait(cancelled.wait())
    await wait(conn.wait_closed())
    assert conn.closed


async def test_server_closing_mid_call(make_kite: MakeKite, dial: Dial) -> None:
    k = make_kite("closing")
    started = asyncio.Event()

    @k.handle("hang", auth=False)
    async def hang(req: Request) -> None:
        started.set()
        await asyncio.Event().wait()

    await k.start(port=0)
    c = await dial(k)
    pending = asyncio.ensure_future(c.tell("hang"))
    await wait(started.wait())
    k.close()
    with pytest.raises(DisconnectedError):
        await wait(pending)
    await wait(k.wait_closed())


async def test_not_connected_and_dial_errors(make_kite: MakeKite) -> None:
    k = make_kite("lonely")
    await k.start(port=0)
    c = make_kite("caller").client(f"http://127.0.0.1:{k.port}/kite")
    from kite_rs import SendError

    with pytest.raises(SendError):
        await c.tell("kite.ping")
    k.close()
    await wait(k.wait_closed())
    refused = make_kite("caller").client("http://127.0.0.1:9/kite")
    with pytest.raises(DialError) as dial_error:
        await refused.dial(timeout=5)
    # The cause and the URL, from the core's DialError.
    assert "connection refused at http://127.0.0.1:9/kite" in str(dial_error.value)


async def test_pre_post_final_and_handling_modes(make_kite: MakeKite, dial: Dial) -> None:
    k = make_kite("chain")
    order: List[str] = []

    @k.pre_handle
    async def wide_pre(req: Request) -> None:
        order.append(f"wide-pre:{req.method}")

    @k.post_handle
    def wide_post(req: Request) -> None:
        order.append("wide-post")

    @k.handle("first", auth=False, handling=MethodHandling.RETURN_FIRST)
    async def first(req: Request) -> str:
        order.append("main")
        return "main"

    m = k.method("first")

    @m.pre_handle
    def pre(req: Request) -> str:
        order.append("pre")
        return "from-pre"

    latest = k.handle("latest", lambda req: "main", auth=False)
    latest.set_handling(MethodHandling.RETURN_LATEST)
    latest.post_handle(lambda req: "from-post")

    @k.handle("guarded", auth=False)
    async def guarded(req: Request) -> str:
        return "never"

    @k.method("guarded").pre_handle
    async def deny(req: Request) -> None:
        raise ArgumentError("denied by pre handler")

    @k.handle("rewritten", auth=False)
    async def rewritten(req: Request) -> int:
        raise ValueError("original error")

    @k.method("rewritten").final_func
    async def fix(req: Request, result: Any, error: Optional[KiteError]) -> Any:
        assert result is None and isinstance(error, GenericError)
        return ({"recovered": error.message}, None)

    @k.final_func
    def wide_final(req: Request, result: Any, error: Optional[KiteError]) -> None:
        order.append("final")
        return None

    await k.start(port=0)
    c = await dial(k)
    assert await c.tell("first") == "from-pre"
    assert order == ["pre", "wide-pre:first", "main", "wide-post", "final"]
    assert await c.tell("latest") == "from-post"
    with pytest.raises(ArgumentError, match="denied"):
        await c.tell("guarded")
    assert await c.tell("rewritten") == {"recovered": "original error"}


async def test_throttle(make_kite: MakeKite, dial: Dial) -> None:
    k = make_kite("limited")
    k.handle("limited", lambda req: "ok", auth=False, throttle=(3600.0, 1))
    await k.start(port=0)
    c = await dial(k)
    assert await c.tell("limited") == "ok"
    with pytest.raises(RequestLimitError) as e:
        await c.tell("limited")
    assert e.value.message == "The maximum request rate is exceeded."


async def test_events(make_kite: MakeKite) -> None:
    k = make_kite("events")
    k.handle("square", lambda req, n: n * n, auth=False)
    log: List[str] = []
    first = asyncio.Event()
    gone = asyncio.Event()

    @k.on_connect
    def connected(conn: Connection) -> None:
        log.append("connect")

    @k.on_first_request
    async def first_request(conn: Connection) -> None:
        log.append(f"first:{conn.kite.name}")
        first.set()

    @k.on_disconnect
    def disconnected(conn: Connection) -> None:
        log.append("disconnect")
        gone.set()

    await k.start(port=0)
    assert k.url is not None
    c = make_kite("visitor").client(k.url)
    client_events: List[str] = []
    client_gone = asyncio.Event()
    c.on_connect(lambda: client_events.append("connect"))

    @c.on_disconnect
    def client_disconnected() -> None:
        client_events.append("disconnect")
        client_gone.set()

    await c.dial()
    assert await c.tell("square", 3) == 9
    await wait(first.wait())
    c.close()
    await wait(gone.wait())
    await wait(client_gone.wait())
    assert log == ["connect", "first:visitor", "disconnect"]
    assert client_events == ["connect", "disconnect"]


async def test_xhr_polling_transport(make_kite: MakeKite, dial: Dial) -> None:
    k = math_kite(make_kite)
    await k.start(port=0)
    c = await dial(k, transport="XHRPolling")
    assert c.connection is not None and c.connection.transport == "xhr-polling"
    assert await c.tell("square", 6) == 36.0


async def test_context_managers_and_serve(make_kite: MakeKite) -> None:
    async with make_kite("ctx") as k:
        k.handle("square", lambda req, n: n * n, auth=False)
        await k.start(port=0)
        serving = asyncio.ensure_future(k.serve())
        async with make_kite("caller").client(k.url or "") as c:
            assert c.connected
            assert await c.tell("square", 7) == 49
        assert not c.connected
    await wait(serving)
    await wait(k.wait_closed())


async def test_serve_is_cancellable(make_kite: MakeKite) -> None:
    k = make_kite("cancel")
    await k.start(port=0)
    serving = asyncio.ensure_future(k.serve())
    await asyncio.sleep(0)
    serving.cancel()
    with pytest.raises(asyncio.CancelledError):
        await serving
    await wait(k.wait_closed())


async def test_core_logs_reach_python_logging(make_kite: MakeKite) -> None:
    records: List[logging.LogRecord] = []
    arrived = threading.Event()

    class Capture(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)
            if "serving" in record.getMessage():
                arrived.set()

    logger = logging.getLogger("kite_rs")
    handler = Capture(level=logging.DEBUG)
    logger.addHandler(handler)
    old_level = logger.level
    logger.setLevel(logging.DEBUG)
    try:
        k = make_kite("logging")  # the level is read when a kite is created or started
        await k.start(port=0)
        await wait(asyncio.get_running_loop().run_in_executor(None, arrived.wait, WAIT))
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)
    serving = [r for r in records if "serving" in r.getMessage()]
    # The logger is the core module's path under kite_rs (the listening code's module).
    assert serving[0].name == "kite_rs.server.listen" and serving[0].levelno == logging.INFO
    assert "kite=/testuser/" in serving[0].getMessage()


async def test_many_concurrent_calls(make_kite: MakeKite, dial: Dial) -> None:
    k = math_kite(make_kite)
    await k.start(port=0)
    clients = [await dial(k) for _ in range(4)]
    results = await wait(
        asyncio.gather(
            *(c.tell("square", i) for i in range(250) for c in clients),
            *(c.tell("square_sync", i) for i in range(50) for c in clients),
        )
    )
    assert results[:4] == [0.0, 0.0, 0.0, 0.0] and results[-1] == 49.0 * 49.0
