"""The package surface without the network: construction, registration, types, errors."""

from __future__ import annotations

import builtins
from typing import Any, Optional

import pytest

import kite_rs
from kite_rs import (
    ArgumentError,
    Auth,
    DisconnectedError,
    GenericError,
    Kite,
    KiteError,
    KiteInfo,
    MethodHandling,
    MethodNotFoundError,
    Request,
    TimeoutError,
)
from kite_rs import _errors


def test_all_is_complete() -> None:
    public = {n for n in dir(kite_rs) if not n.startswith("_")} - {"annotations"}
    assert public <= set(kite_rs.__all__)
    for name in kite_rs.__all__:
        assert hasattr(kite_rs, name), name
    assert kite_rs.__version__.count(".") == 2


def test_identity_and_config_from_keywords(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KITE_ENVIRONMENT", "from-env")
    monkeypatch.setenv("KITE_REGION", "env-region")
    k = Kite("math", "1.2.3", username="alice", region="eu", id="kite-1", hostname="h1")
    info = k.kite
    assert (info.username, info.environment, info.name, info.version) == (
        "alice",
        "from-env",
        "math",
        "1.2.3",
    )
    assert (info.region, info.hostname, info.id) == ("eu", "h1", "kite-1")
    assert str(info) == "/alice/from-env/math/1.2.3/eu/h1/kite-1"
    assert k.name == "math" and k.version == "1.2.3" and k.id == "kite-1"
    assert k.username == "alice"
    assert k.port is None and k.url is None
    assert "kite.ping" in k.methods and "kite.heartbeat" in k.methods
    assert "math" in repr(k)


def test_defaults_match_the_reference(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("KITE_USERNAME", "KITE_ENVIRONMENT", "KITE_REGION"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("KITE_HOME", "/nonexistent-kite-home")
    info = Kite("x", "0.0.1").kite
    assert (info.username, info.environment, info.region) == ("unknown",) * 3
    assert len(info.id) == 36


@pytest.mark.parametrize(
    ("name", "version"), [("", "1.0.0"), ("math", "1.0"), ("math", "x.y.z"), ("a/b", "1.0.0")]
)
def test_bad_identity_is_a_value_error(name: str, version: str) -> None:
    with pytest.raises(ValueError):
        Kite(name, version)


def test_bad_options() -> None:
    with pytest.raises(ValueError, match="transport"):
        Kite("x", "1.0.0", transport="pigeon")
    with pytest.raises(ValueError):
        Kite("x", "1.0.0", timeout=-1)
    with pytest.raises(ValueError):
        Kite("x", "1.0.0", tls_cert="cert.pem")
    with pytest.raises(ValueError):
        Kite("x", "1.0.0", workers=0)


def test_options_go_through_the_core(tmp_path: Any) -> None:
    # The keyword arguments are the core's kite options (kite::server::Options, shared with
    # the Node binding): an unknown or ill-typed one is refused with its name.
    with pytest.raises(ValueError, match='unknown option "colour"'):
        Kite("x", "1.0.0", colour="red")  # type: ignore[call-arg]
    with pytest.raises(ValueError, match="handshakeTimeout"):
        Kite("x", "1.0.0", handshake_timeout="soon")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="70000"):
        Kite("x", "1.0.0", port=70000)
    with pytest.raises(ValueError, match="method handling"):
        Kite("x", "1.0.0", method_handling="best")
    # Kontrol's keyword arguments are the core's Kontrol options the same way (seconds).
    with pytest.raises(ValueError, match='unknown option "colour"'):
        kite_rs.Kontrol(Kite("kontrol", "1.0.0"), colour="red")  # type: ignore[call-arg]
    with pytest.raises(ValueError, match="expireAfter must be a non-negative number of seconds"):
        kite_rs.Kontrol(Kite("kontrol", "1.0.0"), expire_after=-1)
    assert kite_rs.Kontrol(Kite("kontrol", "1.0.0"), heartbeat_interval=0.5).storage == "memory"
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    k = Kite("x", "1.0.0", tls_cert=cert, tls_key=str(key), timeout=2, port=None,
             method_handling="latest", username="alice")
    assert k.username == "alice"


def test_decorator_returns_the_function_and_duplicates_fail() -> None:
    k = Kite("x", "1.0.0")

    async def square(req: Request, n: float) -> float:
        return n * n

    assert k.handle("square")(square) is square
    assert "square" in k.methods
    with pytest.raises(ValueError, match="already registered"):
        k.handle("square")(square)
    m = k.handle("cube", lambda req, n: n**3, auth=False, throttle=(1.0, 5))
    assert isinstance(m, kite_rs.Method) and m.name == "cube"
    assert k.method("cube").name == "cube"
    with pytest.raises(ValueError):
        k.method("nope")
    assert k.remove_handler("cube") and not k.remove_handler("cube")


def test_handlers_are_inspected_at_registration() -> None:
    k = Kite("x", "1.0.0")
    with pytest.raises(TypeError, match="must take"):
        k.handle("a", lambda: 1)
    with pytest.raises(TypeError, match="not callable"):
        k.handle("b", 5)  # type: ignore[call-overload]

    def needs_kw(req: Request, *, flag: bool) -> None: ...

    with pytest.raises(TypeError, match="keyword-only"):
        k.handle("c", needs_kw)
    with pytest.raises(TypeError, match="too many"):
        k.pre_handle(lambda req, extra: None)
    with pytest.raises(TypeError):
        k.final_func(lambda req: None)
    with pytest.raises(TypeError):
        k.on_connect(3)  # type: ignore[type-var]


def test_events_and_chain_decorators_return_the_function() -> None:
    k = Kite("x", "1.0.0")

    def hook(conn: kite_rs.Connection) -> None: ...

    assert k.on_connect(hook) is hook
    assert k.on_disconnect(hook) is hook
    assert k.on_first_request(hook) is hook

    def pre(req: Request) -> None: ...

    def final(req: Request, result: Any, error: Optional[KiteError]) -> None: ...

    assert k.pre_handle(pre) is pre
    assert k.post_handle(pre) is pre
    assert k.final_func(final) is final
    m = k.handle("m", lambda req: 1)
    assert m.pre_handle(pre) is pre and m.post_handle(pre) is pre
    assert m.final_func(final) is final
    assert m.disable_authentication() is m
    assert m.throttle(0.5, 2) is m
    assert m.set_handling(MethodHandling.RETURN_FIRST) is m
    k.set_method_handling(MethodHandling.RETURN_LATEST)


def test_kite_info_and_auth() -> None:
    a = KiteInfo(username="u", name="n", version="1.0.0")
    b = KiteInfo(username="u", name="n", version="1.0.0")
    assert a == b and hash(a) == hash(b) and a != KiteInfo(username="v")
    assert a.to_dict()["name"] == "n" and set(a.to_dict()) == {
        "username",
        "environment",
        "name",
        "version",
        "region",
        "hostname",
        "id",
    }
    auth = Auth("token", "abc.def.ghi")
    assert (auth.type, auth.key) == ("token", "abc.def.ghi")
    assert "abc" not in repr(auth)


def test_error_classes() -> None:
    e = _errors._from_wire("methodNotFound", "Method not found: x", "", "")
    assert isinstance(e, MethodNotFoundError) and str(e) == "methodNotFound: Method not found: x"
    g = _errors._from_wire("genericError", "boom", "E42", "r1")
    assert isinstance(g, GenericError) and str(g) == "boom (r1)" and g.code == "E42"
    t = _errors._from_wire("timeout", "No response", "", "")
    assert isinstance(t, TimeoutError) and isinstance(t, builtins.TimeoutError)
    d = _errors._from_wire("disconnect", "Remote kite has disconnected", "", "")
    assert isinstance(d, DisconnectedError) and isinstance(d, ConnectionError)
    other = _errors._from_wire("somethingNew", "m", "", "")
    assert type(other) is KiteError and other.kind == "somethingNew"
    assert ArgumentError("bad").kind == "argumentError"
    assert isinstance(ArgumentError("bad"), builtins.TypeError)
    assert KiteError("x", kind="custom").kind == "custom"
    assert "code='c'" in repr(KiteError("x", code="c"))


def test_method_handling_enum() -> None:
    assert MethodHandling.RETURN_METHOD != MethodHandling.RETURN_FIRST
    assert {m for m in (MethodHandling.RETURN_METHOD, MethodHandling.RETURN_LATEST)}


def test_client_needs_no_loop_to_be_created() -> None:
    c = Kite("x", "1.0.0").client("http://127.0.0.1:1/kite", auth=Auth("token", "t"))
    assert c.url == "http://127.0.0.1:1/kite" and not c.connected
    assert c.auth is not None and c.auth.type == "token"
    c.auth = None
    assert c.auth is None
    c.transport = "XHRPolling"
    with pytest.raises(ValueError):
        c.transport = "carrier-pigeon"
    assert c.connection is None
    c.close()


def test_tell_needs_a_running_loop() -> None:
    c = Kite("x", "1.0.0").client("http://127.0.0.1:1/kite")
    with pytest.raises(RuntimeError, match="event loop"):
        c.tell("square", 2)

