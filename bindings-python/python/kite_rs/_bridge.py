"""Private helpers of the native module: running handler coroutines as asyncio tasks.

The native module hands every ``async def`` handler call to :func:`start` on the kite's event
loop; the task reports its outcome straight to a native ``reply`` object (no done-callback
round trip through the loop).
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import signal
import sys
from typing import Any, Awaitable, Optional, Protocol, Set

_log = logging.getLogger("kite_rs")

# The traced request an ``async def`` handler serves (a native ``TraceParent``): its task's
# context holds it, so the calls the handler makes continue the caller's trace.
_trace_parent: contextvars.ContextVar[Any] = contextvars.ContextVar(
    "kite_rs_trace_parent", default=None
)


def trace_parent() -> Any:
    """The ``TraceParent`` of the handler whose task is running, or ``None``."""
    return _trace_parent.get()


class _Reply(Protocol):
    def done(self, result: Any) -> None: ...

    def fail(self, exc: BaseException) -> None: ...


async def _run(coro: Awaitable[Any], reply: _Reply) -> None:
    try:
        result = await coro
    except BaseException as exc:  # noqa: BLE001 - every outcome goes to the caller
        reply.fail(exc)
        if isinstance(exc, (KeyboardInterrupt, SystemExit)):
            raise
    else:
        reply.done(result)


if sys.version_info >= (3, 12):

    def _task(
        loop: asyncio.AbstractEventLoop, coro: Awaitable[Any], reply: _Reply
    ) -> asyncio.Task[None]:
        # The first step runs now (no extra loop iteration).
        return asyncio.Task(_run(coro, reply), loop=loop, eager_start=True)

else:

    def _task(
        loop: asyncio.AbstractEventLoop, coro: Awaitable[Any], reply: _Reply
    ) -> asyncio.Task[None]:
        return loop.create_task(_run(coro, reply))


def start(
    loop: asyncio.AbstractEventLoop, coro: Awaitable[Any], reply: _Reply, parent: Any = None
) -> asyncio.Task[None]:
    """Runs ``coro`` as a task, with ``parent`` (a traced request) in its context."""
    if parent is None:
        return _task(loop, coro, reply)
    context = contextvars.copy_context()
    context.run(_trace_parent.set, parent)
    # The task copies the context it is created in.
    return context.run(_task, loop, coro, reply)


_background: Set[asyncio.Future[Any]] = set()


def _finished(task: asyncio.Future[Any]) -> None:
    _background.discard(task)
    if not task.cancelled() and task.exception() is not None:
        _log.error("kite callback failed", exc_info=task.exception())


def spawn(loop: asyncio.AbstractEventLoop, awaitable: Awaitable[Any]) -> None:
    """Runs the awaitable returned by a callback or event hook in the background."""
    task = asyncio.ensure_future(awaitable, loop=loop)
    _background.add(task)
    task.add_done_callback(_finished)



async def serve_until_signal(
    kite: Any, *, port: Optional[int] = None, host: Optional[str] = None
) -> None:
    """``Kite.run``'s main coroutine: serves until ``close()``, SIGTERM or Ctrl-C."""
    loop = asyncio.get_running_loop()
    try:
        loop.add_signal_handler(signal.SIGTERM, kite.close)
    except (NotImplementedError, RuntimeError, ValueError):
        pass  # not the main thread, or no signals on this platform
    await kite.serve(port=port, host=host)
