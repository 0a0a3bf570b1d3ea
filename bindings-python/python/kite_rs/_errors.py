"""Kite errors: one exception class per error kind of the wire protocol.

A remote kite's error ``{"type", "message", "code", "id"}`` is raised as the subclass of
:class:`KiteError` for its ``type``; raising one of these classes in a handler sends that
kind to the caller (any other exception is sent as ``genericError`` with its message).
"""

from __future__ import annotations

import builtins
from typing import Dict, Optional, Type

__all__ = [
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
]


class KiteError(Exception):
    """A kite error: ``kind`` (the wire ``type``), ``message``, ``code`` and request ``id``.

    ``str(error)`` is the reference's display text: ``"kind: message (id)"``, or just
    ``"message (id)"`` for a ``genericError``.
    """

    #: The wire ``type`` of this class's errors.
    KIND = "genericError"

    kind: str
    """The error kind, e.g. ``"methodNotFound"``."""
    message: str
    """The human readable message."""
    code: str
    """The application error code (may be empty)."""
    id: str
    """The id of the request that failed (empty when unknown)."""

    def __init__(
        self,
        message: str = "",
        *,
        kind: Optional[str] = None,
        code: str = "",
        id: str = "",
    ) -> None:
        super().__init__(message)
        self.message = message
        self.kind = kind if kind is not None else type(self).KIND
        self.code = code
        self.id = id

    def __str__(self) -> str:
        text = self.message
        if self.kind and self.kind != "genericError":
            text = f"{self.kind}: {text}"
        if self.id:
            text = f"{text} ({self.id})"
        return text

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({self.message!r}, kind={self.kind!r}, "
            f"code={self.code!r}, id={self.id!r})"
        )


class MethodNotFoundError(KiteError):
    """The remote kite has no such method (``methodNotFound``)."""

    KIND = "methodNotFound"


class ArgumentError(KiteError, TypeError):
    """Arguments of the wrong shape or type (``argumentError``)."""

    KIND = "argumentError"


class GenericError(KiteError):
    """The remote handler failed (``genericError``); ``message`` is its error."""

    KIND = "genericError"


class AuthenticationError(KiteError):
    """The call was not authenticated (``authenticationError``)."""

    KIND = "authenticationError"


class RequestLimitError(KiteError):
    """The method's request rate was exceeded (``requestLimitError``)."""

    KIND = "requestLimitError"


class TimeoutError(KiteError, builtins.TimeoutError):
    """No response within the call's timeout (``timeout``, raised locally)."""

    KIND = "timeout"


class DisconnectedError(KiteError, ConnectionError):
    """The connection dropped before the response arrived (``disconnect``, raised locally)."""

    KIND = "disconnect"


class SendError(KiteError, ConnectionError):
    """The call could not be sent, e.g. not connected (``sendError``, raised locally)."""

    KIND = "sendError"


class InvalidResponseError(KiteError):
    """The response was malformed (``invalidResponse``, raised locally)."""

    KIND = "invalidResponse"


class DialError(KiteError, ConnectionError):
    """Connecting to a kite failed (``dialError``, raised locally)."""

    KIND = "dialError"


_BY_KIND: Dict[str, Type[KiteError]] = {
    cls.KIND: cls
    for cls in (
        MethodNotFoundError,
        ArgumentError,
        GenericError,
        AuthenticationError,
        RequestLimitError,
        TimeoutError,
        DisconnectedError,
        SendError,
        InvalidResponseError,
        DialError,
    )
}


def _from_wire(kind: str, message: str, code: str, id: str) -> KiteError:
    """The exception for a wire error (used by the native module)."""
    cls = _BY_KIND.get(kind, KiteError)
    return cls(message, kind=kind, code=code, id=id)
