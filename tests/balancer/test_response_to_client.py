"""What a client receives of a target's response: headers stripped, framing it can parse."""

from __future__ import annotations

import asyncio
import socket
from dataclasses import dataclass
from typing import Any

import pytest

from canary_deploy.balancer.response_head import simple_response_head
from tests.balancer.conftest import FakeTransport, wire


def _head_names(raw: bytes) -> list[bytes]:
    head = raw.split(b"\r\n\r\n", 1)[0]
    return [line.partition(b":")[0].lower() for line in head.split(b"\r\n")[1:]]


NAMED = [
    # Content-Length: the fast path (response_head) judges it.
    b"HTTP/1.1 200 OK\r\nConnection: X-Secret, keep-alive\r\nX-Secret: 1\r\nServer: t\r\n"
    b"Content-Length: 2\r\n\r\nok",
    # The named header before Connection, and a second Connection line naming another.
    b"HTTP/1.1 200 OK\r\nx-secret: 1\r\nX-Internal: 2\r\nConnection: x-SECRET\r\n"
    b"Connection: X-Internal\r\nServer: t\r\nContent-Length: 2\r\n\r\nok",
    # Chunked: the parser path.
    b"HTTP/1.1 200 OK\r\nConnection: x-secret\r\nX-Secret: 1\r\nServer: t\r\n"
    b"Transfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n",
]


@pytest.mark.parametrize("response", NAMED, ids=["fast path", "two connection lines", "parser"])
def test_headers_a_target_names_in_connection_never_reach_the_client(
    loop: asyncio.AbstractEventLoop, response: bytes
) -> None:
    """Issue 12 item 13: headers listed in a target's Connection header are hop-by-hop."""
    w = wire(loop)
    w.client.data_received(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
    w.upstream.data_received(response)
    out = w.client_side.take()
    names = _head_names(out)
    assert b"x-secret" not in names and b"x-internal" not in names and b"connection" not in names
    assert b"server" in names
    assert out.endswith(b"0\r\n\r\n" if b"chunked" in response else b"\r\n\r\nok")


def test_a_connection_header_naming_the_framing_keeps_the_framing(
    loop: asyncio.AbstractEventLoop,
) -> None:
    w = wire(loop)
    w.client.data_received(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
    w.upstream.data_received(
        b"HTTP/1.1 200 OK\r\nConnection: content-length, X-A\r\nX-A: 1\r\nContent-Length: 2\r\n"
        b"\r\nok"
    )
    assert w.client_side.take() == b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


def test_the_fast_path_verdict_strips_the_named_headers_once_per_head() -> None:
    verdict = simple_response_head(
        b"HTTP/1.1 200 OK\r\nX-A: 1\r\nConnection: x-a\r\nX-B: 2\r\nContent-Length: 2\r\n\r\n"
    )
    assert verdict is not None
    assert verdict[0] == b"HTTP/1.1 200 OK\r\nX-B: 2\r\nContent-Length: 2\r\n"


CHUNKED = (
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
)


@pytest.mark.parametrize(
    "request_head",
    [b"GET / HTTP/1.0\r\n\r\n", b"GET / HTTP/1.0\r\nHost: a\r\nConnection: keep-alive\r\n\r\n"],
    ids=["plain", "keep-alive"],
)
@pytest.mark.parametrize(
    "response",
    [CHUNKED, b"HTTP/1.1 200 OK\r\n\r\nhello world"],
    ids=["chunked", "until-close"],
)
def test_an_http10_client_gets_a_close_delimited_body_never_chunked(
    loop: asyncio.AbstractEventLoop, request_head: bytes, response: bytes
) -> None:
    """Issue 12 item 6: HTTP/1.0 has no chunked coding; the body is de-chunked and the end
    of the body is the end of the connection."""
    w = wire(loop)
    w.client.data_received(request_head)
    w.upstream.data_received(response)
    if not w.client_side.closed:
        w.upstream.connection_lost(None)  # a close-delimited body ends when the target closes
    out = w.client_side.take()
    head, _, body = out.partition(b"\r\n\r\n")
    assert b"transfer-encoding" not in head.lower() and b"Connection: close" in head
    assert body == b"hello world"
    assert w.client_side.closed


@dataclass
class _TcpClientSide(FakeTransport):
    """The client's side as a fake transport over a real TCP socket, so that how the
    balancer ends the connection (a FIN, or a reset) is what the kernel sends."""

    sock: Any = None

    def get_extra_info(self, name: str) -> Any:
        return self.sock if name == "socket" else super().get_extra_info(name)

    def close(self) -> None:
        self.closed = True
        self.sock.close()

    def abort(self) -> None:
        self.close()


def test_a_close_delimited_body_cut_short_ends_the_client_connection_with_a_reset(
    loop: asyncio.AbstractEventLoop,
) -> None:
    """Found by the fuzz harness: a chunked response to an HTTP/1.0 client goes out
    close-delimited; when the target breaks it after its head, a FIN would end that
    body as if it were whole (a 200 with an empty body). The client must get a reset."""
    listener = socket.create_server(("127.0.0.1", 0))
    client = socket.create_connection(listener.getsockname())
    client.settimeout(5)
    ours, _ = listener.accept()
    listener.close()
    try:
        w = wire(loop)
        side = _TcpClientSide(sock=ours)
        w.client.connection_made(side)  # type: ignore[arg-type]
        w.client.data_received(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        w.upstream.data_received(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        head = side.take()
        assert head.startswith(b"HTTP/1.1 200") and b"Connection: close" in head
        w.upstream.data_received(b"1ffffffffffffffff0\r\n")  # a chunk size past 64 bits
        assert side.closed and side.take() == b""
        with pytest.raises(ConnectionResetError):
            client.recv(100)
    finally:
        client.close()


def test_an_http10_client_gets_no_chunked_header_on_a_head_response(
    loop: asyncio.AbstractEventLoop,
) -> None:
    w = wire(loop)
    w.client.data_received(b"HEAD / HTTP/1.0\r\n\r\n")
    w.upstream.data_received(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
    assert b"transfer-encoding" not in w.client_side.take().lower()


def test_an_http10_keep_alive_client_stays_open_with_a_content_length_response(
    loop: asyncio.AbstractEventLoop,
) -> None:
    w = wire(loop)
    w.client.data_received(b"GET / HTTP/1.0\r\nHost: a\r\nConnection: keep-alive\r\n\r\n")
    w.upstream.data_received(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
    assert w.client_side.take().endswith(b"\r\n\r\nok")
    assert not w.client_side.closed


@pytest.mark.parametrize(
    "response",
    [
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
        b"HTTP/1.1 200 OK\r\nX-Pad: %b\r\nContent-Length: 2\r\n\r\nok" % (b"p" * 5000),
    ],
    ids=["fast path", "parser path"],
)
def test_an_http10_keep_alive_client_is_told_the_connection_stays_open(
    loop: asyncio.AbstractEventLoop, response: bytes
) -> None:
    # HTTP/1.0 connections close after each response unless the response says otherwise:
    # without the header such a client waits for a close that never comes.
    w = wire(loop)
    w.client.data_received(b"GET / HTTP/1.0\r\nHost: a\r\nConnection: keep-alive\r\n\r\n")
    w.upstream.data_received(response)
    head, _, body = w.client_side.take().partition(b"\r\n\r\n")
    assert b"\r\nConnection: keep-alive" in head and body == b"ok"
    assert not w.client_side.closed
