"""Prometheus metrics of a Python kite (``metrics=True``): ``/metrics`` beside ``/kite``,
read with prometheus_client's OpenMetrics parser after known calls; the tracing switch (the
trace itself: core/tests/tracing_bindings.rs); and Kontrol's live view option. Real sockets on 127.0.0.1, port 0; no sleeps."""

from __future__ import annotations

import asyncio
import os
import urllib.error
import urllib.request
from typing import Any, Awaitable, Callable, Dict, Tuple

import pytest
from prometheus_client.openmetrics.parser import text_string_to_metric_families

from kite_rs import Client, Kite, Kontrol, Request, flush_traces

pytestmark = pytest.mark.asyncio

Dial = Callable[..., Awaitable[Client]]
MakeKite = Callable[..., Kite]
WAIT = 10.0


def get(url: str) -> Tuple[int, str, str]:
    """GET `url` (in a thread: urllib blocks): status, content type, body."""
    try:
        with urllib.request.urlopen(url, timeout=WAIT) as r:
            return r.status, r.headers.get("content-type", ""), r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, "", ""


def samples(text: str) -> Dict[Tuple[str, Tuple[Tuple[str, str], ...]], float]:
    """Every sample by (name, sorted labels), through the OpenMetrics parser."""
    out: Dict[Tuple[str, Tuple[Tuple[str, str], ...]], float] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


async def test_metrics_after_known_calls(make_kite: MakeKite, dial: Dial) -> None:
    k = make_kite("math", metrics=True)

    @k.handle("square", auth=False)
    async def square(req: Request, n: float) -> float:
        return n * n

    @k.handle("fail", auth=False)
    async def fail(req: Request) -> Any:
        raise ValueError("boom")

    port = await k.start(port=0)
    c = await dial(k)
    for n in range(3):
        assert await asyncio.wait_for(c.tell("square", n), WAIT) == n * n
    with pytest.raises(Exception):
        await asyncio.wait_for(c.tell("fail"), WAIT)
    with pytest.raises(Exception):
        await asyncio.wait_for(c.tell("no-such-method"), WAIT)

    status, ctype, text = await asyncio.to_thread(get, f"http://127.0.0.1:{port}/metrics")
    assert status == 200
    assert ctype.startswith("application/openmetrics-text")
    m = samples(text)
    calls = lambda method, outcome: m.get(  # noqa: E731
        ("kite_calls_total", (("method", method), ("outcome", outcome))), 0.0
    )
    assert calls("square", "ok") == 3
    assert calls("fail", "error") == 1
    assert calls("other", "error") == 1
    assert m[("kite_call_errors_total", (("kind", "genericError"), ("method", "fail")))] == 1
    assert m[("kite_call_duration_seconds_count", (("method", "square"),))] == 3
    assert m[("kite_connections_open", (("direction", "accepted"), ("transport", "websocket")))] == 1
    assert "no-such-method" not in text


async def test_metrics_off_by_default(make_kite: MakeKite) -> None:
    k = make_kite("plain")
    port = await k.start(port=0)
    status, _, _ = await asyncio.to_thread(get, f"http://127.0.0.1:{port}/metrics")
    assert status == 404


async def test_tracing_switch(make_kite: MakeKite) -> None:
    # Without OTEL_EXPORTER_OTLP_ENDPOINT (unset here) there is no exporter to flush.
    assert "OTEL_EXPORTER_OTLP_ENDPOINT" not in os.environ
    make_kite("traced", tracing=True)
    assert flush_traces() is False
    with pytest.raises(ValueError, match="tracing"):
        make_kite("bad", tracing="yes")


async def test_kontrol_live_view_option(make_kite: MakeKite) -> None:
    kontrol = Kontrol(make_kite("kontrol", username="kontrol"), ui=True)
    port = await kontrol.start(port=0)
    try:
        status, ctype, body = await asyncio.to_thread(get, f"http://127.0.0.1:{port}/ui")
        assert status == 200 and ctype.startswith("text/html") and "EventSource" in body
    finally:
        kontrol.close()
    with pytest.raises(ValueError, match="ui"):
        Kontrol(make_kite("kontrol2", username="kontrol"), ui="yes")
