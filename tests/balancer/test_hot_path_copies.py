"""The hot path's inlined copies give what their references give (STYLE: a hot-path copy
only with a proof).

Each copy saves a Python call per request as pure Python: the client's fast path copies
clock.trace_header, SmoothWeighted.next and ClientConnection._send; the target side's
fast path skips _added_headers when it adds nothing, and _complete copies
Exchange.release_target and UpstreamConnection._settle. Each test runs the copy and its
reference on the same inputs and compares what a user would see.
"""

from __future__ import annotations

import asyncio
import itertools
import re
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from canary_deploy.backend import GROUPS
from canary_deploy.balancer import clock, proxy
from canary_deploy.balancer.clock import trace_header
from canary_deploy.balancer.exchange import Exchange, RoutedTarget
from canary_deploy.balancer.flow import Paused
from canary_deploy.balancer.limits import MAX_IDLE_PER_TARGET
from canary_deploy.balancer.metrics import MetricsRecorder
from canary_deploy.balancer.proxy import ClientConnection, ProxyContext
from canary_deploy.balancer.routing import RegisteredTarget, Router, SmoothWeighted, Stickiness
from canary_deploy.balancer.upstream import UpstreamConnection
from canary_deploy.weights import Weights
from tests.balancer.conftest import FakeTransport, Wire, wire

FAST = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"
# The same request, made to take the parser (a hop-by-hop header it drops).
PARSED = b"GET / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive\r\n\r\n"
TRACE_LINE = re.compile(rb"X-Amzn-Trace-Id: Root=1-([0-9a-f]{8}-[0-9a-f]{16})([0-9a-f]{8})\r\n")


@dataclass
class SocketTransport(FakeTransport):
    """A fake transport over one end of a socket pair: the reuse check polls it."""

    sock: socket.socket | None = None

    def get_extra_info(self, name: str) -> Any:
        return self.sock if name == "socket" else super().get_extra_info(name)


class RecordingClient(ClientConnection):
    """Records the new target connections it would open instead of opening them."""

    def __init__(self, ctx: ProxyContext) -> None:
        super().__init__(ctx)
        self.connects: list[RoutedTarget] = []

    def connect(self, exchange: Exchange, target: RoutedTarget) -> None:
        self.connects.append(target)


def recording_wire(loop: asyncio.AbstractEventLoop, stickiness: Stickiness | None = None) -> Wire:
    """conftest's wire, its client a RecordingClient."""
    w = wire(loop, stickiness=stickiness)
    w.ctx.clients.clear()
    client = RecordingClient(w.ctx)
    client_side = FakeTransport()
    client.connection_made(client_side)  # type: ignore[arg-type]
    return Wire(w.ctx, client, client_side, w.upstream, w.target_side)


def _trace(sent: bytes) -> tuple[bytes, int]:
    found = TRACE_LINE.search(sent)
    assert found is not None, sent
    return found.group(1), int(found.group(2), 16)


# ---- clock.trace_header


@given(st.lists(st.booleans(), min_size=2, max_size=20))
@settings(max_examples=30, deadline=None)
def test_the_fast_path_makes_the_trace_ids_trace_header_makes(fast: list[bool]) -> None:
    # Interleaved, they draw from one sequence: same prefix, consecutive serials, and
    # the same line format (a refused or repeated id would be a collision in X-Ray).
    loop = asyncio.new_event_loop()
    try:
        w = wire(loop)
        ids = []
        for through_fast_path in fast:
            if through_fast_path:
                w.client.data_received(FAST)
                sent = w.target_side.take()
                assert TRACE_LINE.search(sent) and sent.endswith(b"\r\n\r\n")
                ids.append(_trace(sent))
                w.upstream.data_received(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
            else:
                line = trace_header(time.monotonic())
                assert TRACE_LINE.fullmatch(line), line
                ids.append(_trace(line))
        for (prefix, serial), (next_prefix, next_serial) in itertools.pairwise(ids):
            assert next_serial == (serial + 1) & 0xFFFFFFFF
            assert next_prefix == prefix or next_prefix[:8] != prefix[:8]  # a new second
    finally:
        loop.close()


def test_the_fast_path_wraps_the_trace_serial_where_trace_header_does(
    loop: asyncio.AbstractEventLoop, monkeypatch: pytest.MonkeyPatch
) -> None:
    serial = itertools.count(2**32 - 2)
    monkeypatch.setattr(clock, "trace_serial", serial)
    monkeypatch.setattr(proxy, "trace_serial", serial)
    w = wire(loop)
    w.client.data_received(FAST)
    assert _trace(w.target_side.take())[1] == 2**32 - 2
    assert _trace(trace_header(time.monotonic()))[1] == 2**32 - 1
    w.upstream.data_received(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
    w.client.data_received(FAST)
    assert _trace(w.target_side.take())[1] == 0
    assert _trace(trace_header(time.monotonic()))[1] == 1


# ---- SmoothWeighted.next


def _wire_every_group(
    loop: asyncio.AbstractEventLoop, weights: Weights
) -> tuple[ClientConnection, dict[str, tuple[UpstreamConnection, FakeTransport]]]:
    router = Router(weights, "round_robin")
    sides = {}
    ctx = ProxyContext(loop, router, MetricsRecorder(), idle_timeout_s=60, stickiness=None)
    for role in GROUPS:
        target = RegisteredTarget(role, "127.0.0.1", 9000)
        target.state = "healthy"
        router.groups[role].targets[role] = target
        router.groups[role].refresh()
        upstream = UpstreamConnection(loop, ctx.metrics, target, None)
        side = FakeTransport()
        upstream.connection_made(side)  # type: ignore[arg-type]
        target.idle.append(upstream)
        sides[role] = (upstream, side)
    client = ClientConnection(ctx)
    client.connection_made(FakeTransport())  # type: ignore[arg-type]
    return client, sides


@given(
    st.tuples(st.integers(0, 100), st.integers(0, 100)).filter(lambda sc: sum(sc) <= 100),
    st.integers(1, 150),
)
@settings(max_examples=40, deadline=None)
def test_the_fast_path_picks_the_groups_smooth_weighted_round_robin_picks(
    stable_canary: tuple[int, int], requests: int
) -> None:
    stable, canary = stable_canary
    weights = Weights(stable, canary, 100 - stable - canary)
    loop = asyncio.new_event_loop()
    try:
        client, sides = _wire_every_group(loop, weights)
        reference = SmoothWeighted(weights)
        for _ in range(requests):
            client.data_received(FAST)
            (role,) = [role for role, (_, side) in sides.items() if side.data]
            assert role == reference.next()
            upstream, side = sides[role]
            side.take()
            upstream.data_received(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
    finally:
        loop.close()


# ---- ClientConnection._send


def _unread_bytes(w: Wire, pair: tuple[socket.socket, socket.socket]) -> None:
    ours, theirs = pair
    w.upstream.connection_made(SocketTransport(sock=ours))  # type: ignore[arg-type]
    theirs.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")  # not yet read


def _unusable_first(w: Wire, pair: tuple[socket.socket, socket.socket]) -> None:
    spent = UpstreamConnection(w.ctx.loop, w.ctx.metrics, w.upstream.target, None)
    spent.connection_made(FakeTransport())  # type: ignore[arg-type]
    spent.close()
    w.upstream.target.idle.append(spent)  # popped first, skipped


def _empty_pool(w: Wire, pair: tuple[socket.socket, socket.socket]) -> None:
    w.upstream.target.idle.clear()


def _no_target(w: Wire, pair: tuple[socket.socket, socket.socket]) -> None:
    group = w.ctx.router.groups["stable"]
    group.targets.clear()
    group.refresh()


def _as_is(w: Wire, pair: tuple[socket.socket, socket.socket]) -> None:
    pass


@pytest.mark.parametrize(
    "prepare",
    [_as_is, _unread_bytes, _unusable_first, _empty_pool, _no_target],
    ids=["pooled", "unread bytes", "unusable first", "empty pool", "no target"],
)
def test_the_fast_path_sends_a_request_where_send_sends_it(
    loop: asyncio.AbstractEventLoop, prepare: Callable[[Wire, Any], None]
) -> None:
    outcomes = []
    for request in (FAST, PARSED):
        ours, theirs = socket.socketpair()
        try:
            w = recording_wire(loop)
            client = w.client
            assert isinstance(client, RecordingClient)
            prepare(w, (ours, theirs))
            target = w.upstream.target
            client.data_received(request)
            transport = w.upstream.transport
            outcomes.append(
                (
                    transport.take().startswith(b"GET / HTTP/1.1\r\n"),
                    transport.closed,
                    [u is w.upstream for u in target.idle],
                    target.outstanding,
                    len(client.connects),
                    w.client_side.take().split(b"\r\n", 1)[0],
                    [e.upstream is w.upstream for e in client.queue],
                )
            )
        finally:
            ours.close()
            theirs.close()
    assert outcomes[0] == outcomes[1]


# ---- ParsedResponses._added_headers


@pytest.mark.parametrize("sticky", [False, True])
@pytest.mark.parametrize("keep_alive", [False, True])
@pytest.mark.parametrize("http10", [False, True])
def test_the_fast_path_skips_added_headers_exactly_when_it_adds_nothing(
    loop: asyncio.AbstractEventLoop, sticky: bool, keep_alive: bool, http10: bool
) -> None:
    w = wire(loop, stickiness=Stickiness(60) if sticky else None)
    exchange = Exchange(w.client, b"")
    exchange.keep_alive, exchange.http10 = keep_alive, http10
    skipped = w.upstream.stickiness is None and exchange.keep_alive and not exchange.http10
    assert (w.upstream._added_headers(exchange, time.monotonic()) == b"") == skipped


# ---- Exchange.release_target and UpstreamConnection._settle, in _complete

# One response each way: the fast path (settled in _complete) and the parser (settled by
# _settle once its feed returned).
RESPONSES = {
    "fast": b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n%b\r\nx",
    "parsed": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n%b\r\n1\r\nx\r\n0\r\n\r\n",
}


@pytest.mark.parametrize("response", RESPONSES.values(), ids=RESPONSES.keys())
def test_a_complete_response_stops_counting_on_its_target_as_release_target_does(
    loop: asyncio.AbstractEventLoop, response: bytes
) -> None:
    w = wire(loop)
    target = w.upstream.target
    w.client.data_received(FAST)
    exchange = w.upstream.exchange
    assert exchange is not None and target.outstanding == 1
    w.upstream.data_received(response % b"")
    assert target.outstanding == 0 and exchange.target is None
    exchange.release_target()  # the reference: once only
    assert target.outstanding == 0


def _slow_target(w: Wire) -> None:
    w.upstream.pause_writing()  # the client's reading, paused by us


def _slow_client(w: Wire) -> None:
    w.client.pause_writing()  # the target connection's reading, paused by the client


def _draining(w: Wire) -> None:
    w.upstream.target.state = "draining"


def _pool_full(w: Wire) -> None:
    for _ in range(MAX_IDLE_PER_TARGET):
        other = UpstreamConnection(w.ctx.loop, w.ctx.metrics, w.upstream.target, None)
        other.connection_made(FakeTransport())  # type: ignore[arg-type]
        w.upstream.target.idle.append(other)


def _pipelined(w: Wire) -> None:
    w.client.data_received(FAST)  # waits behind the first


def _nothing(w: Wire) -> None:
    pass


@pytest.mark.parametrize("request_line", [FAST, b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close"])
@pytest.mark.parametrize("target_closes", [False, True])
@pytest.mark.parametrize(
    "during",
    [_nothing, _slow_target, _slow_client, _draining, _pool_full, _pipelined],
    ids=["plain", "slow target", "slow client", "draining", "pool full", "pipelined"],
)
def test_a_response_settles_the_same_whichever_path_passed_it_on(
    loop: asyncio.AbstractEventLoop,
    request_line: bytes,
    target_closes: bool,
    during: Callable[[Wire], None],
) -> None:
    request = request_line if request_line.endswith(b"\r\n\r\n") else request_line + b"\r\n\r\n"
    outcomes = []
    for response in RESPONSES.values():
        w = recording_wire(loop)
        w.client.data_received(request)
        assert w.target_side.take()
        during(w)
        w.upstream.data_received(response % (b"Connection: close\r\n" if target_closes else b""))
        target = w.upstream.target
        outcomes.append(
            (
                w.upstream in target.idle,
                w.target_side.closed,
                w.target_side.reading,
                w.upstream.flow.paused_by,
                target.outstanding,
                w.client_side.closed,
                w.client_side.reading,
                w.client.flow.paused_by & ~Paused.STOPPED,
                len(w.client.queue),
                w.target_side.take().startswith(b"GET / HTTP/1.1\r\n"),
                w.client_side.take().count(b"HTTP/1.1 200 OK\r\n"),
            )
        )
    assert outcomes[0] == outcomes[1]
