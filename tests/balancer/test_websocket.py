"""Protocol upgrades: WebSocket tunnelled after 101 like ALB; other upgrades and CONNECT refused."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

import pytest
import uvloop
from websockets.asyncio.client import connect
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.http11 import Request as WsRequest

from canary_deploy.balancer import Balancer, BalancerConfig
from canary_deploy.weights import Weights
from tests.balancer.conftest import FakeTransport, Wire, wire

REFUSED = {
    "CONNECT": (b"CONNECT db:5432 HTTP/1.1\r\nHost: db:5432\r\n\r\n", 405),
    "h2c upgrade": (
        b"GET / HTTP/1.1\r\nHost: a\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\n"
        b"HTTP2-Settings: AAMAAABkAAQAAP__\r\n\r\n",
        501,
    ),
    "websocket upgrade of a POST": (
        b"POST / HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
        b"Content-Length: 0\r\n\r\n",
        501,
    ),
    "unknown Expect": (
        b"POST / HTTP/1.1\r\nHost: a\r\nExpect: 200-ok\r\nContent-Length: 2\r\n\r\nok",
        417,
    ),
}


@pytest.mark.parametrize(("request_bytes", "status"), REFUSED.values(), ids=list(REFUSED))
def test_unsupported_protocols_get_the_documented_status_and_nothing_is_forwarded(
    loop: asyncio.AbstractEventLoop, request_bytes: bytes, status: int
) -> None:
    """Issue 12 item 14: these got 400 although the docs say 501 / 405 / 417."""
    w = wire(loop)
    w.client.data_received(request_bytes)
    assert w.client_side.take().startswith(b"HTTP/1.1 %d " % status)
    assert w.client_side.closed
    assert w.target_side.take() == b""


HANDSHAKE = (
    b"GET /chat HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
)


def test_a_websocket_handshake_reaches_the_target_with_its_upgrade_headers(
    loop: asyncio.AbstractEventLoop,
) -> None:
    w = wire(loop)
    w.client.data_received(HANDSHAKE)
    sent = w.target_side.take()
    assert sent.startswith(b"GET /chat HTTP/1.1\r\n")
    for line in (b"Connection: Upgrade", b"Upgrade: websocket", b"Sec-WebSocket-Version: 13"):
        assert line + b"\r\n" in sent
    assert b"X-Forwarded-For: 10.0.0.7\r\n" in sent


def test_bytes_after_a_refused_handshake_never_reach_the_target(
    loop: asyncio.AbstractEventLoop,
) -> None:
    # Were they forwarded before the 101, a target that refuses the upgrade would read
    # them as its next request: a request smuggled past the balancer's checks.
    w = wire(loop)
    w.client.data_received(HANDSHAKE + b"GET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n")
    assert b"/smuggled" not in w.target_side.take()
    w.upstream.data_received(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 2\r\n\r\nno")
    out = w.client_side.take()
    assert out.startswith(b"HTTP/1.1 403 Forbidden\r\n") and b"Connection: close\r\n" in out
    assert w.client_side.closed
    assert b"/smuggled" not in w.target_side.take()
    assert w.upstream in w.upstream.target.idle  # the target answered in HTTP: in sync


def test_a_101_nobody_asked_for_is_a_502(loop: asyncio.AbstractEventLoop) -> None:
    w = wire(loop)
    w.client.data_received(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
    w.upstream.data_received(
        b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n"
    )
    assert w.client_side.take().startswith(b"HTTP/1.1 502 Bad Gateway\r\n")
    assert w.target_side.closed


# ---- a real WebSocket client and server, the balancer between them


@pytest.fixture(params=["asyncio", "uvloop"])
def run_on(request: pytest.FixtureRequest) -> Callable[[Coroutine[Any, Any, None]], None]:
    """Runs a scenario on the stock loop or on uvloop (what `canary balancer` uses)."""
    factory = uvloop.new_event_loop if request.param == "uvloop" else None

    def run(coro: Coroutine[Any, Any, None]) -> None:
        with asyncio.Runner(loop_factory=factory) as runner:
            runner.run(asyncio.wait_for(coro, 60))

    return run


@asynccontextmanager
async def _websocket_stack(idle_timeout_s: float = 60) -> AsyncIterator[tuple[int, list[str]]]:
    """A websockets echo server behind a started balancer: (listener port, paths seen)."""
    seen: list[str] = []

    async def echo(connection: ServerConnection) -> None:
        assert connection.request is not None
        seen.append(connection.request.path)
        seen.append(connection.request.headers.get("X-Forwarded-For", ""))
        if connection.request.path == "/bye":
            await connection.close(4000, "server says bye")
            return
        async for message in connection:
            await connection.send(message)

    def health_or_handshake(connection: ServerConnection, request: WsRequest) -> Any:
        if request.path == "/forbidden":
            return connection.respond(HTTPStatus.FORBIDDEN, "no\n")
        if "Upgrade" not in request.headers:  # the balancer's health checks
            return connection.respond(HTTPStatus.OK, "ok\n")
        return None

    async with serve(
        echo, "127.0.0.1", 0, process_request=health_or_handshake, max_size=None
    ) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        balancer = Balancer(
            BalancerConfig(port=0, weights=Weights(100, 0), idle_timeout_s=idle_timeout_s)
        )
        balancer.register_target("stable", "ws-0", "127.0.0.1", port)
        await balancer.start()
        try:
            yield balancer.port, seen
        finally:
            await balancer.stop()


@pytest.mark.integration
def test_a_websocket_client_and_server_talk_through_the_balancer(
    run_on: Callable[[Coroutine[Any, Any, None]], None],
) -> None:
    """Issue 12 item 14: ALB tunnels WebSockets after the 101; so does the balancer."""

    async def scenario() -> None:
        async with _websocket_stack() as (port, seen):
            async with connect(f"ws://127.0.0.1:{port}/chat", max_size=None) as ws:
                await ws.send("hello")
                assert await ws.recv() == "hello"
                big = bytes(range(256)) * 8192  # 2 MiB: flow control both ways
                await ws.send(big)
                assert await ws.recv() == big
                for n in range(50):
                    await ws.send(f"message {n}")
                assert [await ws.recv() for _ in range(50)] == [f"message {n}" for n in range(50)]
            assert seen == ["/chat", "127.0.0.1"]

    run_on(scenario())


@pytest.mark.integration
def test_a_websocket_closed_by_the_server_closes_at_the_client(
    run_on: Callable[[Coroutine[Any, Any, None]], None],
) -> None:
    async def scenario() -> None:
        async with (
            _websocket_stack() as (port, _),
            connect(f"ws://127.0.0.1:{port}/bye") as ws,
        ):
            with pytest.raises(ConnectionClosed):
                await ws.recv()
            assert (ws.close_code, ws.close_reason) == (4000, "server says bye")

    run_on(scenario())


@pytest.mark.integration
def test_a_refused_websocket_handshake_reaches_the_client_as_the_target_sent_it(
    run_on: Callable[[Coroutine[Any, Any, None]], None],
) -> None:
    async def scenario() -> None:
        async with _websocket_stack() as (port, _):
            with pytest.raises(InvalidStatus) as refused:
                async with connect(f"ws://127.0.0.1:{port}/forbidden"):
                    pass
            assert refused.value.response.status_code == 403

    run_on(scenario())


@pytest.mark.integration
def test_an_idle_websocket_is_closed_after_the_idle_timeout(
    run_on: Callable[[Coroutine[Any, Any, None]], None],
) -> None:
    async def scenario() -> None:
        async with (
            _websocket_stack(idle_timeout_s=0.5) as (port, _),
            connect(f"ws://127.0.0.1:{port}/chat", ping_interval=None) as ws,
        ):
            await ws.send("still here")
            assert await ws.recv() == "still here"
            await asyncio.wait_for(ws.wait_closed(), 30)  # nothing either way: closed
            assert ws.close_code == 1006  # the TCP connection ended without a close frame

    run_on(scenario())


@dataclass
class SwitchableTransport(FakeTransport):
    """A fake transport that can be handed to another protocol, as a tunnel does."""

    protocol: Any = None

    def set_protocol(self, protocol: Any) -> None:
        self.protocol = protocol


def _tunnel_wire(
    loop: asyncio.AbstractEventLoop,
) -> tuple[Wire, SwitchableTransport, SwitchableTransport]:
    w = wire(loop)
    client_side = SwitchableTransport()
    w.client.connection_made(client_side)  # type: ignore[arg-type]
    target_side = SwitchableTransport()
    w.upstream.connection_made(target_side)  # type: ignore[arg-type]
    w.target_side = target_side
    return w, client_side, target_side


def test_after_the_101_bytes_flow_both_ways_untouched(loop: asyncio.AbstractEventLoop) -> None:
    w, client_side, target_side = _tunnel_wire(loop)
    w.client.data_received(HANDSHAKE + b"\x81\x02hi")  # a frame sent before the 101: held
    assert not w.target_side.take().endswith(b"hi")
    w.upstream.data_received(
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade, X-Hop"
        b"\r\nX-Hop: 1\r\nKeep-Alive: 5\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
        b"\r\n\x81\x05hello"
    )
    out = client_side.take()
    head, _, rest = out.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 101 Switching Protocols\r\n")
    for line in (b"Upgrade: websocket", b"Connection: Upgrade", b"Sec-WebSocket-Accept: s3pP"):
        assert b"\r\n" + line in head
    assert b"X-Hop" not in head and b"Keep-Alive" not in head
    assert rest == b"\x81\x05hello"
    assert w.target_side.take() == b"\x81\x02hi"  # the held frame, after the 101
    client_side.protocol.data_received(b"\x81\x03abc")
    assert w.target_side.take() == b"\x81\x03abc"
    target_side.protocol.data_received(b"\x88\x00")
    assert client_side.take() == b"\x88\x00"
    client_side.protocol.connection_lost(None)  # the client went away: so does the target
    assert w.target_side.closed and w.client not in w.ctx.clients
    assert w.upstream.target.outstanding == 0


def test_a_101_to_another_protocol_than_asked_is_a_502(loop: asyncio.AbstractEventLoop) -> None:
    w, client_side, _ = _tunnel_wire(loop)
    w.client.data_received(HANDSHAKE)
    w.upstream.data_received(
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\nConnection: Upgrade\r\n\r\n"
    )
    assert client_side.take().startswith(b"HTTP/1.1 502 Bad Gateway\r\n")
    assert w.target_side.closed and client_side.protocol is None
