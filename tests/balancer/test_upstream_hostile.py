"""Targets that send bytes nobody asked for: they never reach any client (issue 12 item 3)."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from canary_deploy.balancer.upstream import UpstreamConnection
from tests.balancer.test_protocol import FakeTransport, Wire, wire


@pytest.fixture
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    loop = asyncio.new_event_loop()
    yield loop
    loop.close()


@dataclass
class SocketTransport(FakeTransport):
    """A fake transport backed by one end of a real socket pair, so that bytes the target
    sent can wait in the kernel, not yet delivered by the loop, as they do on a busy loop."""

    sock: socket.socket = field(default_factory=socket.socket)

    def get_extra_info(self, name: str) -> Any:
        return self.sock if name == "socket" else super().get_extra_info(name)


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    ours, theirs = socket.socketpair()
    yield ours, theirs
    ours.close()
    theirs.close()


def _pooled_over(w: Wire, sock: socket.socket) -> SocketTransport:
    """Replace the wire's pooled connection's transport with one over a real socket."""
    transport = SocketTransport(sock=sock)
    w.upstream.connection_made(transport)  # type: ignore[arg-type]
    return transport


def _second_pooled(w: Wire) -> tuple[UpstreamConnection, FakeTransport]:
    upstream = UpstreamConnection(w.ctx.loop, w.ctx.metrics, w.upstream.target, None)
    transport = FakeTransport()
    upstream.connection_made(transport)  # type: ignore[arg-type]
    w.upstream.target.idle.insert(0, upstream)  # taken after the first one
    return upstream, transport


def test_bytes_waiting_on_a_pooled_connection_when_it_is_reused_close_it(
    loop: asyncio.AbstractEventLoop, pair: tuple[socket.socket, socket.socket]
) -> None:
    """The target sent a second response after the first one, and the loop has not read it
    yet when the next request takes the connection from the pool: were the request sent,
    those bytes would be read as its response and reach the wrong client."""
    ours, theirs = pair
    w = wire(loop)
    dirty = _pooled_over(w, ours)
    w.client.data_received(b"GET /1 HTTP/1.1\r\nHost: a\r\n\r\n")
    w.upstream.data_received(b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n1")
    assert w.upstream in w.upstream.target.idle and dirty.take().startswith(b"GET /1 ")
    theirs.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nLEAKD")  # not yet read
    clean, clean_side = _second_pooled(w)

    w.client.data_received(b"GET /2 HTTP/1.1\r\nHost: a\r\n\r\n")
    assert dirty.take() == b"" and dirty.closed  # the request never went there
    assert clean_side.take().startswith(b"GET /2 ")
    clean.data_received(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n/2")
    out = w.client_side.take()
    assert b"LEAKD" not in out and out.endswith(b"\r\n\r\n/2")


def test_a_pooled_connection_the_target_closed_is_not_reused(
    loop: asyncio.AbstractEventLoop, pair: tuple[socket.socket, socket.socket]
) -> None:
    ours, theirs = pair
    w = wire(loop)
    stale = _pooled_over(w, ours)
    theirs.close()  # EOF waits in the kernel
    _, clean_side = _second_pooled(w)
    w.client.data_received(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
    assert stale.take() == b"" and stale.closed
    assert clean_side.take().startswith(b"GET / ")


def test_a_clean_pooled_connection_is_reused(
    loop: asyncio.AbstractEventLoop, pair: tuple[socket.socket, socket.socket]
) -> None:
    ours, _ = pair
    w = wire(loop)
    transport = _pooled_over(w, ours)
    w.client.data_received(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
    assert transport.take().startswith(b"GET / ") and not transport.closed


def test_body_bytes_after_a_head_response_close_the_target_connection(
    loop: asyncio.AbstractEventLoop,
) -> None:
    # A HEAD response has no body: bytes after its head are a target out of sync.
    w = wire(loop)
    w.client.data_received(b"HEAD / HTTP/1.1\r\nHost: a\r\n\r\n")
    w.upstream.data_received(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nLEAKD")
    out = w.client_side.take()
    assert out.endswith(b"Content-Length: 5\r\n\r\n") and b"LEAKD" not in out
    assert w.target_side.closed and w.upstream not in w.upstream.target.idle
