"""Targets that send bytes nobody asked for: they never reach any client (issue 12 item 3)."""

from __future__ import annotations

import asyncio
import random
import select
import socket
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httptools
import pytest
import uvloop

from canary_deploy.balancer import Balancer, BalancerConfig
from canary_deploy.balancer.upstream import UpstreamConnection
from canary_deploy.weights import Weights
from tests.balancer.conftest import FakeTransport, Wire, wire


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


def test_a_response_head_past_its_limit_is_a_502_whatever_the_reads(
    loop: asyncio.AbstractEventLoop,
) -> None:
    # The head crossed 64 KiB in the read that also ended it: still over the limit.
    w = wire(loop)
    w.client.data_received(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
    response = b"HTTP/1.1 200 OK\r\nX-Huge: " + b"h" * 70_000 + b"\r\nContent-Length: 2\r\n\r\nok"
    w.upstream.data_received(response[:60_000])
    w.upstream.data_received(response[60_000:])
    out = w.client_side.take()
    assert out.startswith(b"HTTP/1.1 502 ") and b"hhh" not in out
    assert w.target_side.closed


# ---- many clients through real sockets, in front of targets that misbehave at random

RESPONSE_MISBEHAVIOURS = (
    "excess after content-length",  # in the write that carries the response
    "extra whole response",  # a second copy of the response, same write
    "late extra response",  # a second copy, written once the response has left
    "bad chunk size",
    "short chunk",
    "excess after last chunk",
)
# A response written on a new connection before any request.
MISBEHAVIOURS = (*RESPONSE_MISBEHAVIOURS, "early bytes")


class HostileTarget(asyncio.Protocol):
    """Answers `GET /t/<token>` with the token (header and body), misbehaving at random.

    Unrequested bytes are only ever written while this connection has no request waiting,
    not even unread in the kernel: then they can only be told apart from a response by a
    balancer that never sends a request over a connection with bytes it has not read.
    """

    def __init__(self, rng: random.Random, done: dict[str, int]) -> None:
        self.rng = rng
        self.done = done  # misbehaviour -> how many times it was carried out
        self.transport: Any = None
        self.parser = httptools.HttpRequestParser(self)
        self.url = b""
        self.unanswered = 0
        self.unread: select.poll | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        self.unread = select.poll()
        self.unread.register(transport.get_extra_info("socket").fileno(), select.POLLIN)
        if self.rng.random() < 0.2:
            self._unrequested("early bytes", _response(b"early"))

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            self.transport.close()

    def on_message_begin(self) -> None:
        self.url = b""
        self.unanswered += 1

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_message_complete(self) -> None:
        self.unanswered -= 1
        token = self.url.rpartition(b"/")[2]
        if not self.url.startswith(b"/t/") or self.rng.random() < 0.5:
            self.transport.write(_response(token))
            return
        kind = self.rng.choice(RESPONSE_MISBEHAVIOURS)
        response = _response(token)
        chunked = b"HTTP/1.1 200 OK\r\nX-Token: %b\r\nTransfer-Encoding: chunked\r\n\r\n" % token
        chunk = b"%x\r\n%b\r\n" % (len(token), token)
        writes = {
            "excess after content-length": response + b"EXTRA",
            "extra whole response": response + response,
            "bad chunk size": chunked + b"zz\r\n" + token + b"\r\n0\r\n\r\n",
            "short chunk": chunked + b"%x\r\n%b\r\n0\r\n\r\n" % (len(token) - 2, token),
            "excess after last chunk": chunked + chunk + b"0\r\n\r\n" + response,
        }
        if kind in writes:
            self.transport.write(writes[kind])
            self.done[kind] += 1
            return
        self.transport.write(response)
        if kind == "late extra response":
            # A few loop turns later: after the balancer read the response, pooled the
            # connection, and maybe took it for another request without reading these.
            self._unrequested(kind, response, self.rng.randrange(1, 6))

    def _unrequested(self, kind: str, data: bytes, turns: int = 1) -> None:
        """Write `data` `turns` loop iterations from now, unless a request came first."""
        if turns:
            asyncio.get_running_loop().call_soon(self._unrequested, kind, data, turns - 1)
            return
        assert self.unread is not None
        if self.transport.is_closing() or self.unanswered or self.unread.poll(0):
            return  # a request is on its way: these bytes would pass for its response
        self.transport.write(data)
        self.done[kind] += 1


def _response(token: bytes) -> bytes:
    return b"HTTP/1.1 200 OK\r\nX-Token: %b\r\nContent-Length: %d\r\n\r\n%b" % (
        token,
        len(token),
        token,
    )


@dataclass
class Tally:
    answered: int = 0  # 200s carrying the right token
    balancer_errors: int = 0  # the balancer's own 502/504: no target response at all
    cut: int = 0  # connection closed or aborted before the response ended
    wrong: list[str] = field(default_factory=list)


class ResponseReader:
    """Complete responses (status, X-Token, body, from the balancer) off one connection."""

    def __init__(self) -> None:
        self.parser = httptools.HttpResponseParser(self)
        self.done: list[tuple[int, bytes | None, bytes, bool]] = []
        self._token: bytes | None = None
        self._server = b""
        self._body = b""

    def on_header(self, name: bytes, value: bytes) -> None:
        if name.lower() == b"x-token":
            self._token = value
        elif name.lower() == b"server":
            self._server = value

    def on_body(self, body: bytes) -> None:
        self._body += body

    def on_message_complete(self) -> None:
        status = self.parser.get_status_code()
        self.done.append((status, self._token, self._body, self._server == b"canary-balancer"))
        self._token, self._server, self._body = None, b"", b""


async def _client(port: int, name: str, pipelined: bool, rounds: int, tally: Tally) -> None:
    serial = 0
    reader = writer = None
    for _ in range(rounds):
        if writer is None or writer.is_closing():
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            responses = ResponseReader()
        assert reader is not None
        tokens = []
        for _ in range(3 if pipelined else 1):
            serial += 1
            tokens.append(b"%s-%d" % (name.encode(), serial))
        writer.write(b"".join(b"GET /t/%b HTTP/1.1\r\nHost: a\r\n\r\n" % t for t in tokens))
        while len(responses.done) < len(tokens):
            try:
                data = await asyncio.wait_for(reader.read(65536), 20)
                responses.parser.feed_data(data)
            except (ConnectionError, httptools.HttpParserError):
                data = b""
            if not data:
                break
        for token, (status, got, body, ours) in zip(tokens, responses.done, strict=False):
            if status == 200 and got == token and body == token:
                tally.answered += 1
            elif ours and status in (502, 504):
                tally.balancer_errors += 1
            else:
                tally.wrong.append(f"{token!r} got {status} {got!r} {body!r}")
        if len(responses.done) < len(tokens):
            tally.cut += len(tokens) - len(responses.done)
            writer.close()
            writer = None
        responses.done.clear()
    if writer is not None:
        writer.close()


@pytest.mark.integration
@pytest.mark.parametrize(("seed", "loop_factory"), [(1, None), (6, uvloop.new_event_loop)])
def test_no_byte_of_a_misbehaving_target_reaches_another_client(
    seed: int, loop_factory: Callable[[], asyncio.AbstractEventLoop] | None
) -> None:
    """Issue 12 item 3: 60 concurrent clients, a third of them pipelining, through the
    balancer in front of two targets that misbehave on about half of the responses. Every
    response a client gets is its own request's (or the balancer's own error)."""

    async def scenario() -> tuple[Tally, dict[str, int]]:
        rng = random.Random(seed)
        done = dict.fromkeys(MISBEHAVIOURS, 0)
        loop = asyncio.get_running_loop()
        servers = [
            await loop.create_server(lambda: HostileTarget(rng, done), "127.0.0.1", 0)
            for _ in range(2)
        ]
        balancer = Balancer(BalancerConfig(port=0, weights=Weights(50, 50)))
        for group, server in zip(("stable", "canary"), servers, strict=True):
            port = server.sockets[0].getsockname()[1]
            balancer.register_target(group, f"{group}-0", "127.0.0.1", port)  # type: ignore[arg-type]
        await balancer.start()
        tally = Tally()
        try:
            await asyncio.gather(
                *(_client(balancer.port, f"c{i}", i % 3 == 0, 12, tally) for i in range(60))
            )
        finally:
            await balancer.stop()
            for server in servers:
                server.close()
                await server.wait_closed()
        return tally, done

    with asyncio.Runner(loop_factory=loop_factory) as runner:
        tally, done = runner.run(asyncio.wait_for(scenario(), 120))
    assert tally.wrong == []
    assert all(done.values()), done  # every misbehaviour was carried out
    assert tally.answered > 0.4 * (60 * 12 * 5 / 3)
