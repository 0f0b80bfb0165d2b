"""Issue 12, the request side: bounded memory, client timeouts, the connection cap and the
request checks, driven through fake transports (no sockets, no loop running)."""

from __future__ import annotations

import asyncio
import errno
import time
from typing import Any

import pytest

from canary_deploy.balancer.limits import HEAD_TIMEOUT_S, MAX_HELD_BYTES, MAX_HELD_TOTAL_BYTES
from canary_deploy.balancer.proxy import ClientConnection
from tests.balancer.conftest import FakeTransport, Wire, head_fields, wire


def _no_group_booked(w: Wire) -> bool:
    return all(c.requests == 0 for c in w.ctx.metrics.counts(0, 2e10).values())


# ---- item 2: back-pressure by bytes


def _feed_until_paused(w: Wire, chunk: bytes, limit: int) -> int:
    """Send `chunk` while the balancer reads this client; the bytes it accepted."""
    sent = 0
    while w.client_side.reading and sent < limit:
        w.client.data_received(chunk)
        sent += len(chunk)
    return sent


def test_a_pipelined_body_behind_a_slow_request_stops_reading_at_the_byte_bound(
    loop: asyncio.AbstractEventLoop,
) -> None:
    """A GET to a slow target, then a POST with a huge body on the same connection: the
    balancer stops reading once the bytes waiting for a target pass the bound, and reads
    again, handing everything over, once the GET is answered."""
    w = wire(loop)
    w.client.data_received(b"GET /slow HTTP/1.1\r\nHost: a\r\n\r\n")
    assert w.target_side.take().startswith(b"GET /slow ")
    w.client.data_received(b"POST /up HTTP/1.1\r\nHost: a\r\nContent-Length: 400000000\r\n\r\n")
    chunk = b"b" * 65536
    accepted = _feed_until_paused(w, chunk, 400_000_000)
    assert not w.client_side.reading
    assert accepted <= MAX_HELD_BYTES + len(chunk)
    assert w.client.held <= MAX_HELD_BYTES + 2 * len(chunk)
    assert w.target_side.take() == b""  # the POST waits for the GET's response

    w.upstream.data_received(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
    assert w.client_side.reading  # the earlier exchange is done: read again
    sent = w.target_side.take()
    assert sent.startswith(b"POST /up ")
    assert len(sent.split(b"\r\n\r\n", 1)[1]) == accepted  # every byte held went on
    assert w.client.held == 0 and w.ctx.held_total == 0


def test_pipelined_small_requests_are_bounded_too(loop: asyncio.AbstractEventLoop) -> None:
    w = wire(loop)
    w.client.data_received(b"GET /slow HTTP/1.1\r\nHost: a\r\n\r\n")
    accepted = _feed_until_paused(w, b"GET /x HTTP/1.1\r\nHost: a\r\n\r\n" * 200, 10**8)
    assert not w.client_side.reading
    assert accepted < 10**8


def test_the_bytes_held_for_all_clients_have_a_total_bound(
    loop: asyncio.AbstractEventLoop,
) -> None:
    w = wire(loop)
    w.ctx.held_total = MAX_HELD_TOTAL_BYTES  # as if many other clients held their share
    w.client.data_received(b"GET /slow HTTP/1.1\r\nHost: a\r\n\r\n")
    w.client.data_received(b"POST /up HTTP/1.1\r\nHost: a\r\nContent-Length: 100\r\n\r\nabc")
    assert not w.client_side.reading  # a few bytes over the total are enough to wait


def test_a_body_held_while_the_target_connection_opens_is_bounded(
    loop: asyncio.AbstractEventLoop,
) -> None:
    w = wire(loop)
    w.upstream.target.idle.clear()  # no pooled connection: one is being opened
    w.client.data_received(b"POST /up HTTP/1.1\r\nHost: a\r\nContent-Length: 400000000\r\n\r\n")
    assert w.ctx.connecting
    accepted = _feed_until_paused(w, b"b" * 65536, 400_000_000)
    assert not w.client_side.reading and accepted <= MAX_HELD_BYTES + 65536
    tasks = list(w.ctx.connecting)
    for task in tasks:
        task.cancel()
    loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))


# ---- item 4: a client that stalls mid-body


def test_a_client_that_stalls_mid_body_gets_408_and_no_group_is_blamed(
    loop: asyncio.AbstractEventLoop,
) -> None:
    w = wire(loop)
    w.client.data_received(b"POST /up HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\nhello")
    w.target_side.take()
    w.client.check_idle(time.monotonic() + 61, 60)
    out = w.client_side.take()
    assert out.startswith(b"HTTP/1.1 408 Request Timeout\r\n")
    assert head_fields(out)["connection"] == "close"
    assert w.client_side.closed
    assert w.target_side.closed  # half a request: that target connection is out of sync
    assert w.upstream not in w.upstream.target.idle
    assert w.upstream.target.outstanding == 0
    assert _no_group_booked(w)  # never a target error, never fed to the judge
    assert w.ctx.metrics.rejected[408] == 1


def test_a_target_that_stops_reading_the_body_is_still_the_targets_504(
    loop: asyncio.AbstractEventLoop,
) -> None:
    """The client went quiet only because a slow target made the balancer stop reading it."""
    w = wire(loop)
    w.client.data_received(b"POST /up HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\nhello")
    w.upstream.pause_writing()
    w.client.check_idle(time.monotonic() + 61, 60)
    assert w.client_side.take().startswith(b"HTTP/1.1 504 Gateway Timeout\r\n")
    assert w.ctx.metrics.window("stable", 0, 2e10).balancer_504 == 1
    assert w.ctx.metrics.rejected[408] == 0


def test_a_client_receiving_a_streamed_response_mid_body_is_not_idle(
    loop: asyncio.AbstractEventLoop,
) -> None:
    """As on ALB, data in either direction keeps a connection from being idle."""
    w = wire(loop)
    w.client.data_received(b"POST /up HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\nhello")
    w.client.last_activity = time.monotonic() - 100  # the client sent nothing since
    w.upstream.data_received(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\na\r\n")
    w.client.check_idle(time.monotonic(), 60)
    assert not w.client_side.closed and w.ctx.metrics.rejected[408] == 0


# ---- item 5: a deadline for the head, a connection cap, the balancer's own exhaustion


def test_a_head_trickled_line_by_line_gets_408_at_the_head_deadline(
    loop: asyncio.AbstractEventLoop,
) -> None:
    w = wire(loop)
    w.client.data_received(b"GET / HTTP/1.1\r\nHost: a\r\n")
    w.client.data_received(b"X-1: 1\r\n")  # never idle: a line every few seconds
    started = time.monotonic()
    w.client.check_idle(started + HEAD_TIMEOUT_S / 2, 10**6)
    assert not w.client_side.closed
    w.client.check_idle(started + HEAD_TIMEOUT_S + 1, 10**6)
    assert w.client_side.take().startswith(b"HTTP/1.1 408 Request Timeout\r\n")
    assert w.client_side.closed
    assert w.target_side.take() == b""
    assert w.ctx.metrics.rejected[408] == 1 and _no_group_booked(w)


def test_a_partial_head_idle_for_the_idle_timeout_gets_408(
    loop: asyncio.AbstractEventLoop,
) -> None:
    w = wire(loop)
    w.client.data_received(b"GET / HTTP/1.1\r\nHo")
    w.client.check_idle(time.monotonic() + 61, 60)
    assert w.client_side.take().startswith(b"HTTP/1.1 408 Request Timeout\r\n")
    assert w.client_side.closed


def test_an_idle_keep_alive_connection_is_closed_without_a_response(
    loop: asyncio.AbstractEventLoop,
) -> None:
    w = wire(loop)
    w.client.check_idle(time.monotonic() + 61, 60)
    assert w.client_side.closed and w.client_side.take() == b""
    assert w.ctx.metrics.rejected[408] == 0


def test_connections_over_the_cap_get_a_clear_503_and_are_closed(
    loop: asyncio.AbstractEventLoop,
) -> None:
    w = wire(loop)
    w.ctx.max_connections = 2
    second = ClientConnection(w.ctx)
    second.connection_made(FakeTransport())  # type: ignore[arg-type]
    third = ClientConnection(w.ctx)
    third_side = FakeTransport()
    third.connection_made(third_side)  # type: ignore[arg-type]
    out = third_side.take()
    assert out.startswith(b"HTTP/1.1 503 Service Unavailable\r\n")
    assert head_fields(out)["connection"] == "close"
    assert third_side.closed
    third.data_received(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
    third.connection_lost(None)
    assert w.target_side.take() == b""
    assert w.ctx.metrics.rejected[503] == 1 and _no_group_booked(w)
    assert len(w.ctx.clients) == 2


@pytest.mark.parametrize("code", [errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM])
def test_the_balancers_own_exhaustion_is_never_booked_on_a_group(
    loop: asyncio.AbstractEventLoop, code: int
) -> None:
    w = wire(loop)
    w.upstream.target.idle.clear()

    async def exhausted(*args: Any, **kwargs: Any) -> Any:
        raise OSError(code, "no more")

    loop.create_connection = exhausted  # type: ignore[method-assign]
    w.client.data_received(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
    (task,) = w.ctx.connecting
    loop.run_until_complete(task)
    assert w.client_side.take().startswith(b"HTTP/1.1 503 Service Unavailable\r\n")
    assert w.ctx.metrics.rejected[503] == 1 and _no_group_booked(w)


def test_a_refused_target_connection_is_still_the_groups_502(
    loop: asyncio.AbstractEventLoop,
) -> None:
    w = wire(loop)
    w.upstream.target.idle.clear()

    async def refused(*args: Any, **kwargs: Any) -> Any:
        raise ConnectionRefusedError(errno.ECONNREFUSED, "refused")

    loop.create_connection = refused  # type: ignore[method-assign]
    w.client.data_received(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
    (task,) = w.ctx.connecting
    loop.run_until_complete(task)
    assert w.client_side.take().startswith(b"HTTP/1.1 502 Bad Gateway\r\n")
    assert w.ctx.metrics.window("stable", 0, 2e10).balancer_502 == 1
