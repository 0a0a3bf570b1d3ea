"""The native module of kite_rs (Rust, PyO3). Import from ``kite_rs`` instead."""

from __future__ import annotations

from os import PathLike
from types import TracebackType
from typing import (
    Any,
    Awaitable,
    Callable,
    ClassVar,
    Dict,
    List,
    Literal,
    Optional,
    Sequence,
    Tuple,
    Type,
    TypeVar,
    Union,
    final,
    overload,
)

from typing_extensions import disjoint_base

__all__ = [
    "Auth",
    "Client",
    "Connection",
    "HttpRequest",
    "Kite",
    "KiteInfo",
    "Kontrol",
    "Method",
    "MethodHandling",
    "RemoteFunction",
    "Request",
    "__version__",
    "flush_traces",
]

__version__: str

def flush_traces() -> bool:
    """Sends the spans this process has ended to the OTLP receiver and waits for its answer
    (call it before exiting); ``False`` when no exporter is configured
    (``OTEL_EXPORTER_OTLP_ENDPOINT`` unset). Kites made with ``tracing=True`` make the spans.
    """

_F = TypeVar("_F", bound=Callable[..., Any])
_K = TypeVar("_K", bound="Kite")

@final
class KiteInfo:
    """A kite's identity: ``/username/environment/name/version/region/hostname/id``."""

    def __new__(
        cls,
        *,
        username: str = "",
        environment: str = "",
        name: str = "",
        version: str = "",
        region: str = "",
        hostname: str = "",
        id: str = "",
    ) -> KiteInfo: ...
    @property
    def username(self) -> str:
        """Owner of the kite."""
    @property
    def environment(self) -> str:
        """Environment, e.g. ``production``."""
    @property
    def name(self) -> str:
        """Kind of kite, e.g. ``math``."""
    @property
    def version(self) -> str:
        """Three-part semantic version."""
    @property
    def region(self) -> str:
        """Region."""
    @property
    def hostname(self) -> str:
        """Host name of the kite's machine."""
    @property
    def id(self) -> str:
        """Unique id of the kite process."""
    def to_dict(self) -> Dict[str, str]:
        """The identity as a dict of its seven fields."""
    def __eq__(self, value: object, /) -> bool: ...
    def __hash__(self) -> int: ...

@final
class Auth:
    """Credentials sent with a call: ``Auth("kiteKey", jwt)`` or ``Auth("token", jwt)``."""

    def __new__(cls, type: str, key: str) -> Auth: ...
    @property
    def type(self) -> str:
        """The authentication type: ``kiteKey``, ``token`` or a custom one."""
    @property
    def key(self) -> str:
        """The credential (a JWT for the built-in types)."""

@final
class HttpRequest:
    """A request to an HTTP route added with :meth:`Kite.add_route`."""

    @property
    def method(self) -> str:
        """``GET``, ``POST``, …"""
    @property
    def path(self) -> str:
        """The path, e.g. ``/health``."""
    @property
    def query(self) -> str:
        """The query string without ``?`` (may be empty)."""
    @property
    def headers(self) -> Dict[str, str]:
        """The headers (lower-case names)."""
    @property
    def body(self) -> bytes:
        """The body (at most 1 MiB)."""

@final
class MethodHandling:
    """Which result a method with pre/post handlers returns."""

    RETURN_METHOD: ClassVar[MethodHandling]
    """The main handler's result (default)."""
    RETURN_FIRST: ClassVar[MethodHandling]
    """The first non-null result of pre, main and post handlers."""
    RETURN_LATEST: ClassVar[MethodHandling]
    """The last non-null result."""
    def __eq__(self, value: object, /) -> bool: ...
    def __hash__(self) -> int: ...
    def __int__(self) -> int: ...

@final
class RemoteFunction:
    """A function of the remote kite, received as an argument (or inside one).

    Call it with JSON-serializable arguments (callables become callbacks); calls are sent in
    order. On an event loop the call returns an awaitable that completes once the message is
    handed to the connection; in a plain ``def`` handler's worker thread it returns ``None``
    and the call is still sent before the handler's response.
    """

    def __call__(self, *args: Any) -> Any: ...
    @property
    def id(self) -> int:
        """The callback id the remote side gave this function."""

@final
class Connection:
    """One connection to a remote kite (accepted or dialed)."""

    def tell(self, method: str, *args: Any, timeout: Optional[float] = None) -> Awaitable[Any]:
        """Calls ``method`` on the remote kite over this connection; returns its result
        (functions inside it are :class:`RemoteFunction` objects).

        Raises the :class:`KiteError` subclass of the error kind (``TimeoutError`` after
        ``timeout`` seconds, default the kite's 15 s; ``DisconnectedError``; …).
        """
    @property
    def kite(self) -> KiteInfo:
        """The remote kite's identity (from its first request, or set when dialing)."""
    @property
    def transport(self) -> str:
        """The SockJS transport in use (``websocket``, ``xhr-polling``, …)."""
    @property
    def dialed(self) -> bool:
        """Whether this side dialed the connection."""
    @property
    def closed(self) -> bool:
        """Whether the connection has ended."""
    def close(self) -> None:
        """Closes the connection. Idempotent."""
    def wait_closed(self) -> Awaitable[None]:
        """Waits until the connection ends."""
    @property
    def callback_count(self) -> int:
        """Entries in the connection's callback table (for leak checks)."""

@final
class Request:
    """One call of a method, as a handler sees it."""

    @property
    def id(self) -> str:
        """The request id: 16 random characters, also returned in error responses."""
    @property
    def method(self) -> str:
        """The method called."""
    @property
    def username(self) -> str:
        """The caller's username: the authenticated one when the method requires
        authentication, else the one the caller claims."""
    @property
    def args(self) -> List[Any]:
        """The arguments (``withArgs``); functions are :class:`RemoteFunction` objects."""
    @property
    def with_args(self) -> Any:
        """``withArgs`` exactly as the caller sent it: a list (Go, kite-rs), a single value
        (kite.js ``tell("echo", 5)``) or ``None``; functions are :class:`RemoteFunction`
        objects."""
    @property
    def args_shape(self) -> Literal["list", "single", "absent"]:
        """How the caller sent ``withArgs``: ``"list"``, ``"single"`` (one non-list value,
        which :attr:`args` holds as its only item) or ``"absent"`` (null or missing: no
        arguments)."""
    @property
    def auth(self) -> Optional[Auth]:
        """The credentials the caller sent, if any."""
    @property
    def kite(self) -> KiteInfo:
        """The caller's kite identity."""
    @property
    def client(self) -> Connection:
        """The connection to the caller: ``await req.client.tell(…)`` calls it back."""
    @property
    def cancelled(self) -> bool:
        """Whether the caller has disconnected."""

@final
class Method:
    """A registered method: add per-method pre/post handlers and final functions, or change
    its authentication, throttling and handling mode."""

    @property
    def name(self) -> str:
        """The method name."""
    def pre_handle(self, func: _F) -> _F:
        """Adds a pre handler ``(req)``; returns it (usable as a decorator)."""
    def post_handle(self, func: _F) -> _F:
        """Adds a post handler ``(req)``; returns it (usable as a decorator)."""
    def final_func(self, func: _F) -> _F:
        """Adds a final function ``(req, result, error)`` returning ``(result, error)`` or
        ``None``; returns it (usable as a decorator)."""
    def disable_authentication(self) -> Method:
        """Serves the method without authentication."""
    def throttle(self, interval: float, capacity: int) -> Method:
        """Token bucket: ``capacity`` calls at once, one more every ``interval`` seconds;
        calls beyond get ``requestLimitError``."""
    def set_handling(self, handling: MethodHandling) -> Method:
        """Sets how the result is chosen when pre/post handlers return values."""

@final
class Client:
    """A client to one remote kite. Create it with ``kite.client(url)``, then
    ``await client.dial()`` (or ``async with kite.client(url) as client:``)."""

    @property
    def url(self) -> str:
        """The URL dialed."""
    def dial(self, timeout: Optional[float] = None) -> Awaitable[None]:
        """Connects once; ``timeout`` in seconds (default: the kite's handshake timeout).
        Raises :class:`DialError`."""
    def dial_forever(self) -> Awaitable[None]:
        """Connects, retrying with backoff until it succeeds, and reconnects after every
        drop until ``close()``. Completes at the first connection."""
    def tell(self, method: str, *args: Any, timeout: Optional[float] = None) -> Awaitable[Any]:
        """Calls ``method`` with ``args``; returns its result (functions inside it are
        :class:`RemoteFunction` objects). ``timeout`` in seconds (default: the kite's, 15 s).
        Python callables among the arguments become callbacks the remote kite may call any
        number of times."""
    def close(self) -> None:
        """Closes the connection and stops reconnecting. Idempotent."""
    @property
    def connected(self) -> bool:
        """Whether connected now (false once ``close()`` was called)."""
    def wait_connected(self) -> Awaitable[None]:
        """Waits until connected (after ``dial_forever``, or a reconnect)."""
    @property
    def auth(self) -> Optional[Auth]:
        """The credentials sent with every call (default: the kite's kite key, if any)."""
    @auth.setter
    def auth(self, auth: Optional[Auth]) -> None: ...
    @property
    def transport(self) -> None:
        """Write-only: the transport for the next dial (``"WebSocket"``, ``"XHRPolling"``,
        ``"auto"``)."""
    @transport.setter
    def transport(self, transport: str) -> None: ...
    @property
    def remote_kite(self) -> KiteInfo:
        """The remote kite's identity, when known."""
    @remote_kite.setter
    def remote_kite(self, kite: KiteInfo) -> None: ...
    @property
    def connection(self) -> Optional[Connection]:
        """The current connection, if connected."""
    def renew_token(self, token: str) -> None:
        """Replaces the token sent with calls and fires the token-renew hooks."""
    def on_connect(self, func: _F) -> _F:
        """Calls ``func()`` after every successful dial (decorator)."""
    def on_disconnect(self, func: _F) -> _F:
        """Calls ``func()`` when the connection drops (decorator)."""
    def on_token_expire(self, func: _F) -> _F:
        """Calls ``func()`` when a call fails with "token is expired" (decorator)."""
    def on_token_renew(self, func: _F) -> _F:
        """Calls ``func()`` when the token was renewed (decorator)."""
    def __aenter__(self) -> Awaitable[Client]: ...
    def __aexit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> Awaitable[bool]: ...

@disjoint_base
class Kite:
    """A kite: serves methods to other kites and calls theirs.

    Configuration comes from ``kite.key`` and the ``KITE_*`` environment, then from the
    keyword arguments. Durations are in seconds. The keyword arguments other than ``workers``
    are the core's kite options (``kite::server::Options``, the same as the Node binding's
    ``KiteOptions``): an unknown name or a bad value raises ``ValueError`` naming it.
    ``method_handling`` (``"method"``, ``"first"`` or ``"latest"``) is the default handling
    mode of the kite's methods. The limits per peer (``max_*``, ``trusted_proxies``, the
    ``*_timeout`` of requests) are those of the README's table "Limits per peer".
    """

    def __new__(
        cls,
        name: str,
        version: str,
        *,
        username: Optional[str] = None,
        environment: Optional[str] = None,
        region: Optional[str] = None,
        id: Optional[str] = None,
        hostname: Optional[str] = None,
        ip: Optional[str] = None,
        port: Optional[int] = None,
        kite_key: Optional[str] = None,
        kontrol_url: Optional[str] = None,
        kontrol_key: Optional[str] = None,
        kontrol_user: Optional[str] = None,
        disable_authentication: Optional[bool] = None,
        disable_concurrency: Optional[bool] = None,
        metrics: Optional[bool] = None,
        tracing: Optional[bool] = None,
        transport: Optional[str] = None,
        timeout: Optional[float] = None,
        verify_ttl: Optional[float] = None,
        handshake_timeout: Optional[float] = None,
        tls_cert: Optional[Union[str, PathLike[str]]] = None,
        tls_key: Optional[Union[str, PathLike[str]]] = None,
        method_handling: Optional[str] = None,
        drain_timeout: Optional[float] = None,
        header_read_timeout: Optional[float] = None,
        body_read_timeout: Optional[float] = None,
        max_connections: Optional[int] = None,
        max_calls_in_flight: Optional[int] = None,
        max_bytes_in_flight: Optional[int] = None,
        max_callbacks: Optional[int] = None,
        max_message_size: Optional[int] = None,
        max_sessions: Optional[int] = None,
        max_sessions_per_client: Optional[int] = None,
        trusted_proxies: Optional[Sequence[str]] = None,
        use_webrtc: Optional[bool] = None,
        workers: Optional[int] = None,
    ) -> Kite: ...
    @property
    def name(self) -> str:
        """The kite's name."""
    @property
    def version(self) -> str:
        """The kite's version."""
    @property
    def kite(self) -> KiteInfo:
        """The kite's identity."""
    @property
    def id(self) -> str:
        """The kite's id (a fresh random UUID per kite unless one was given)."""
    @property
    def username(self) -> str:
        """The kite's username."""
    @property
    def port(self) -> Optional[int]:
        """The port the kite listens on, once started."""
    @property
    def url(self) -> Optional[str]:
        """The URL other kites dial (``http://HOST:PORT/kite``), once started."""
    @property
    def methods(self) -> List[str]:
        """The names of the registered methods (including the default ``kite.*`` ones)."""
    @overload
    def handle(
        self,
        name: str,
        func: None = None,
        /,
        *,
        auth: Optional[bool] = None,
        throttle: Optional[Tuple[float, int]] = None,
        handling: Optional[MethodHandling] = None,
    ) -> Callable[[_F], _F]: ...
    @overload
    def handle(
        self,
        name: str,
        func: Callable[..., Any],
        /,
        *,
        auth: Optional[bool] = None,
        throttle: Optional[Tuple[float, int]] = None,
        handling: Optional[MethodHandling] = None,
    ) -> Method:
        """Registers a method handler: ``@kite.handle("square")`` above an ``async def`` or
        a plain ``def`` taking ``(req, *args)``, or ``kite.handle("square", func)`` (which
        returns the :class:`Method`).

        The handler is inspected once: its arity and simple annotations (``float``, ``int``,
        ``str``, ``bool``, ``list``, ``dict``, ``Optional[…]``, callables) are checked on
        every call, and arguments that do not fit are answered with ``argumentError``. A
        plain ``def`` runs in a worker thread. ``auth=False`` serves the method without
        authentication; ``throttle=(interval, capacity)`` limits its rate. Registering a
        name twice raises ``ValueError``.
        """
    def method(self, name: str) -> Method:
        """The registered method ``name`` (also the default ``kite.*`` ones)."""
    def remove_handler(self, name: str) -> bool:
        """Removes a method; returns whether it existed."""
    def pre_handle(self, func: _F) -> _F:
        """Kite-wide pre handler ``(req)``: runs before every method's handler."""
    def post_handle(self, func: _F) -> _F:
        """Kite-wide post handler ``(req)``: runs after every method's handler."""
    def final_func(self, func: _F) -> _F:
        """Kite-wide final function ``(req, result, error)``: runs last; returns
        ``(result, error)`` to replace them, or ``None`` to keep them."""
    def set_method_handling(self, handling: MethodHandling) -> None:
        """Default handling mode of methods registered after this call."""
    def on_connect(self, func: _F) -> _F:
        """Calls ``func(connection)`` on every new connection (decorator)."""
    def on_first_request(self, func: _F) -> _F:
        """Calls ``func(connection)`` when a connection makes its first request."""
    def on_disconnect(self, func: _F) -> _F:
        """Calls ``func(connection)`` when a connection ends."""
    def start(self, port: Optional[int] = None, host: Optional[str] = None) -> Awaitable[int]:
        """Starts serving; returns the port. ``async def`` handlers run on the event loop
        that awaits this."""
    def serve(self, port: Optional[int] = None, host: Optional[str] = None) -> Awaitable[None]:
        """Serves on the running event loop until ``close()`` (or until cancelled, which
        closes the kite)."""
    def run(self, port: Optional[int] = None, host: Optional[str] = None) -> None:
        """Serves in a new event loop until ``close()``, SIGTERM or Ctrl-C (blocking)."""
    def close(self) -> None:
        """Stops serving and closes every connection of this kite. Idempotent."""
    def wait_closed(self) -> Awaitable[None]:
        """Waits until the kite is closed."""
    def client(
        self, url: str, *, auth: Optional[Auth] = None, transport: Optional[str] = None
    ) -> Client:
        """A client to the kite at ``url`` (``http://host:port/kite``), calling on behalf
        of this kite."""
    def register(self, url: Optional[str] = None) -> Awaitable[Dict[str, Any]]:
        """Registers this kite to Kontrol (``kontrol_url`` from the kite key or the
        configuration) with ``url`` (default: the kite's own URL); returns Kontrol's answer
        (``{"url": …, "heartbeatInterval": …}``)."""
    def register_forever(self, url: Optional[str] = None) -> Awaitable[Dict[str, Any]]:
        """Registers now (retrying every 10 s until it succeeds) and again after every
        reconnection to Kontrol; completes after the first registration."""
    def register_http(self, url: Optional[str] = None) -> Awaitable[Dict[str, Any]]:
        """Registers over HTTP and keeps sending HTTP heartbeats."""
    def register_http_forever(self, url: Optional[str] = None) -> Awaitable[Dict[str, Any]]:
        """Registers over HTTP, retrying with backoff until it succeeds, and again whenever
        Kontrol asks to."""
    def get_kites(
        self,
        query: Optional[KiteInfo] = None,
        *,
        username: Optional[str] = None,
        environment: Optional[str] = None,
        name: Optional[str] = None,
        version: Optional[str] = None,
        region: Optional[str] = None,
        hostname: Optional[str] = None,
        id: Optional[str] = None,
    ) -> Awaitable[List[Client]]:
        """Kites matching the query (a :class:`KiteInfo` and/or keyword fields, general to
        specific; ``username`` is required, and so is every field before the last one set:
        a query that skips one raises :class:`KiteError` of kind ``argumentError``
        ("Invalid query. Query option is not set: <field>"); ``version`` may be a constraint
        such as ``">= 1.0, < 1.4"``), as clients (not yet dialed) carrying tokens from Kontrol
        that renew themselves. Raises :class:`KiteError` (``genericError``, "no kites
        available") when a valid query matches nothing."""
    def get_token(self, kite: KiteInfo, *, force: bool = False) -> Awaitable[str]:
        """A token for calling ``kite`` (from Kontrol's cache, or freshly minted with
        ``force=True``)."""
    def get_key(self) -> Awaitable[str]:
        """Kontrol's current public key (also adopted as this kite's trusted Kontrol key)."""
    def key_renewer(self, interval: float) -> None:
        """Fetches Kontrol's public key every ``interval`` seconds until the kite closes, so
        that a rotated Kontrol key is picked up (call after the kite started)."""
    def add_authenticator(self, kind: str, func: _F) -> _F:
        """Adds (or replaces) the authenticator of authentication type ``kind``:
        ``func(auth, caller, local)`` (``Auth``, the caller's and this kite's ``KiteInfo``;
        ``def`` or ``async def``, run on the kite's event loop) returns the authenticated
        username; what it raises is the refusal's reason. Returns ``func``."""
    def add_route(self, method: str, path: str, func: _F) -> _F:
        """Serves ``func(request)`` for ``method`` on the literal ``path`` beside ``/kite``
        (health checks, webhooks). ``func`` (``def`` or ``async def``, run on the kite's event
        loop) gets an ``HttpRequest`` and returns the body (``str``, ``bytes``, a value sent as
        JSON, ``None`` for 204) or ``(status, body)`` / ``(status, body, headers)``. Add routes
        before ``start()``. Returns ``func``."""
    def send_webrtc(self, msg: Any) -> Awaitable[None]:
        """Sends a WebRTC signalling message (``{"type", "dst", "payload"}``) through Kontrol
        (run with ``use_webrtc``) to kite ``dst``'s own ``kite.handleWebRTC`` method.

        ``type`` is ``OFFER``, ``ANSWER``, ``CANDIDATE`` or ``LEAVE`` (any case); the relay sets
        ``src`` to this kite's id. A message that is not one raises :class:`ArgumentError`;
        the relay's refusals (``dst not registered``, ``dst not set``) and the destination
        handler's error raise as :class:`KiteError`. Receive them with
        ``@kite.handle("kite.handleWebRTC")`` (the message is the one argument)."""
    def webrtc_peers(self) -> List[str]:
        """The kite ids in this kite's signalling relay (with ``use_webrtc``), sorted."""
    def register_to_proxy(
        self,
        url: Optional[str] = None,
        *,
        proxy_url: Optional[str] = None,
        retry: Optional[float] = None,
    ) -> Awaitable[str]:
        """Registers ``url`` (default: the kite's) through a reverse proxy, then the public URL
        it hands out to Kontrol, again whenever the proxy drops; returns the public URL.

        The proxy is ``proxy_url``, else ``KITE_PROXY_URL``, else a ``proxy`` kite Kontrol
        knows; failed attempts are retried every ``retry`` seconds (10)."""
    def register_to_tunnel(
        self, *, proxy_url: Optional[str] = None, retry: Optional[float] = None
    ) -> Awaitable[str]:
        """Like ``register_to_proxy`` through a tunnel proxy (a ``tunnelproxy`` kite): the
        kite need not listen; clients of the public URL reach it through tunnels it dials."""
    def on_register(self, func: _F) -> _F:
        """Calls ``func(result)`` after every successful registration (decorator)."""
    def __aenter__(self: _K) -> Awaitable[_K]: ...
    def __aexit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> Awaitable[bool]: ...

@final
class Kontrol:
    """Kontrol, the registry and token authority of a kite mesh, itself a kite.

    ``Kontrol(Kite("kontrol", "1.0.0", username="kontrol"))`` keeps its registry and key
    pairs in memory; ``storage="sqlite:PATH"`` keeps them in a SQLite file (created when
    missing; a Kontrol started again on it keeps its key pair and the kite keys it signed) and
    ``storage="postgres://USER[:PASSWORD]@HOST[:PORT]/DBNAME"`` in PostgreSQL (the reference
    Kontrol's schema; parameters ``sslmode=disable``, ``connect_timeout=SECONDS``). A malformed
    spec raises ``ValueError`` here; storage that cannot be opened, in ``start()``.
    ``await kontrol.start(port=0)`` serves it. Kites register to it and find each other
    through it (``kite.register()``, ``kite.get_kites(…)``). The keyword arguments are the
    core's Kontrol options (``kite::kontrol::KontrolOptions``, the same as the Node binding's
    ``KontrolOptions``; times in seconds): an unknown name or a bad value raises ``ValueError``.
    """

    def __new__(
        cls,
        kite: Kite,
        *,
        storage: str = "memory",
        heartbeat_interval: Optional[float] = None,
        heartbeat_delay: Optional[float] = None,
        expire_after: Optional[float] = None,
        register_url: Optional[str] = None,
        allow_machines: bool = False,
        ui: bool = False,
        ui_token: Optional[str] = None,
    ) -> Kontrol: ...
    @property
    def kite(self) -> Kite:
        """The Kontrol kite."""
    @property
    def url(self) -> Optional[str]:
        """Kontrol's URL, once started."""
    @property
    def storage(self) -> str:
        """The storage spec in its canonical form, any password replaced by ``***``."""
    def start(self, port: Optional[int] = None, host: Optional[str] = None) -> Awaitable[int]:
        """Opens the storage, creates the registry (generating Kontrol's first key pair when the
        storage has none) and serves it; returns the port."""
    def new_kite_key(self, username: str) -> Awaitable[str]:
        """A kite key for ``username``, signed with Kontrol's current key pair."""
    def public_key(self) -> Awaitable[str]:
        """Kontrol's current public key (PEM)."""
    def rotate_key(self) -> Awaitable[str]:
        """Replaces the current key pair with a new one; kites signed by the old one get
        re-signed keys when they register again. Returns the new public key."""
    def close(self) -> None:
        """Stops serving. Idempotent."""
