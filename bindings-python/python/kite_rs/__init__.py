"""kite_rs: Kite micro-services for asyncio, on a Rust core.

A kite is both an RPC server and a client: it serves named methods to other kites and calls
theirs, speaking the Kite protocol (dnode messages over SockJS, JWT authentication), wire
compatible with the Go reference (github.com/koding/kite) and kite.js. Everything on the wire
is done by the Rust core; this package runs your handlers on asyncio.

>>> from kite_rs import Kite
>>> k = Kite("math", "1.0.0")
>>> @k.handle("square", auth=False)
... async def square(req, n: float) -> float:
...     return n * n
"""

from __future__ import annotations

from ._errors import (
    ArgumentError,
    AuthenticationError,
    DialError,
    DisconnectedError,
    GenericError,
    InvalidResponseError,
    KiteError,
    MethodNotFoundError,
    RequestLimitError,
    SendError,
    TimeoutError,
)
try:
    from . import _native  # noqa: F401  (loaded here so that a failure is explained)
except ImportError as _error:
    from ._load_error import explain as _explain

    raise _explain(_error) from _error
from ._native import (
    Auth,
    Client,
    Connection,
    HttpRequest,
    Kite,
    KiteInfo,
    Kontrol,
    Method,
    MethodHandling,
    RemoteFunction,
    Request,
    __version__,
    flush_traces,
)

__all__ = [
    "Kite",
    "Client",
    "Connection",
    "HttpRequest",
    "Request",
    "KiteInfo",
    "Kontrol",
    "Auth",
    "Method",
    "MethodHandling",
    "RemoteFunction",
    "KiteError",
    "MethodNotFoundError",
    "ArgumentError",
    "GenericError",
    "AuthenticationError",
    "RequestLimitError",
    "TimeoutError",
    "DisconnectedError",
    "SendError",
    "InvalidResponseError",
    "DialError",
    "flush_traces",
    "__version__",
]
