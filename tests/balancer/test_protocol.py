"""The hot path driven byte by byte through fake transports: no sockets, no loop running."""

from __future__ import annotations

import asyncio
import re
import socket
import time

import pytest

from canary_deploy.balancer.limits import MAX_HEAD_BYTES
from canary_deploy.balancer.routing import Stickiness
from tests.balancer.conftest import head_fields, wire


def test_forwarding_headers_are_added_and_hop_by_hop_ones_stripped(
    loop: asyncio.AbstractEventLoop,
) -> None:
    w = wire(loop)
    w.client.data_received(
        b"GET /a?b=1 HTTP/1.1\r\nHost: api\r\nX-Forwarded-For: 203.0.113.9\r\n"
        b"X-Forwarded-Proto: https\r\nConnection: keep-alive, X-Secret\r\nX-Secret: 1\r\n"
        b"Keep-Alive: timeout=5\r\nProxy-Connection: keep-alive\r\nTE: trailers\r\n"
        b"Proxy-Authorization: Basic eA==\r\nAccept: */*\r\n\r\n"
    )
    sent = w.target_side.take()
    assert sent.startswith(b"GET /a?b=1 HTTP/1.1\r\n")
    headers = head_fields(sent)
    assert headers["x-forwarded-for"] == "203.0.113.9, 10.0.0.7"
    assert headers["x-forwarded-proto"] == "http"
    assert headers["x-forwarded-port"] == "8080"
    assert re.fullmatch(r"Root=1-[0-9a-f]{8}-[0-9a-f]{24}", headers["x-amzn-trace-id"])
    for gone in ("connection", "x-secret", "keep-alive", "proxy-connection", "te"):
        assert gone not in headers
    assert "proxy-authorization" not in headers
    assert (headers["host"], headers["accept"]) == ("api", "*/*")


def test_existing_trace_id_is_kept(loop: asyncio.AbstractEventLoop) -> None:
    w = wire(loop)
    w.client.data_received(b"GET / HTTP/1.1\r\nHost: a\r\nX-Amzn-Trace-Id: Root=1-abc\r\n\r\n")
    sent = w.target_side.take()
    assert sent.count(b"X-Amzn-Trace-Id") == 1
    assert head_fields(sent)["x-amzn-trace-id"] == "Root=1-abc"


ATTACKS = {
    "content-length and transfer-encoding": b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 6\r\n"
    b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n",
    "conflicting content-length": b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n"
    b"Content-Length: 40\r\n\r\nabcGET /smuggled HTTP/1.1\r\n\r\n",
    "duplicate content-length": b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n"
    b"Content-Length: 3\r\n\r\nabc",
    "invalid chunk size": b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"-1\r\nGET /smuggled HTTP/1.1\r\n\r\n",
    "chunked not last": b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, gzip\r\n\r\n"
    b"0\r\n\r\n",
    "obs-fold": b"GET / HTTP/1.1\r\nHost: a\r\nX-A: 1\r\n Transfer-Encoding: chunked\r\n\r\n",
    "space before colon": b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length : 5\r\n\r\nhello",
    "bad request line": b"GET /a b HTTP/1.1\r\nHost: a\r\n\r\n",
    "bare LF": b"GET / HTTP/1.1\nHost: a\n\n",
    "oversized header block": b"GET / HTTP/1.1\r\nHost: a\r\n"
    + b"".join(b"X-%d: %s\r\n" % (i, b"v" * 1000) for i in range(MAX_HEAD_BYTES // 1000 + 2))
    + b"\r\n",
}


@pytest.mark.parametrize("attack", ATTACKS.values(), ids=list(ATTACKS))
def test_ambiguous_or_invalid_framing_is_rejected_and_never_forwarded(
    loop: asyncio.AbstractEventLoop, attack: bytes
) -> None:
    w = wire(loop)
    w.client.data_received(attack)
    assert w.client_side.take().startswith(b"HTTP/1.1 400 Bad Request\r\n")
    assert w.client_side.closed
    assert w.target_side.take() == b""
    assert w.ctx.metrics.rejected_400 == 1


def test_chunked_request_body_is_reframed_by_us(loop: asyncio.AbstractEventLoop) -> None:
    w = wire(loop)
    w.client.data_received(
        b"POST /up HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"3;ext=1\r\nabc\r\n2\r\nde\r\n0\r\nTrailer-X: 1\r\n\r\n"
    )
    sent = w.target_side.take()
    _, body = sent.split(b"\r\n\r\n", 1)
    assert head_fields(sent)["transfer-encoding"] == "chunked"
    assert body == b"3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"


def test_content_length_body_streams_as_it_arrives(loop: asyncio.AbstractEventLoop) -> None:
    w = wire(loop)
    w.client.data_received(b"PUT /x HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\nhello")
    assert w.target_side.take().endswith(b"\r\n\r\nhello")
    w.client.data_received(b"world")
    assert w.target_side.take() == b"world"


def test_expect_100_continue_is_answered_by_the_balancer(loop: asyncio.AbstractEventLoop) -> None:
    w = wire(loop)
    w.client.data_received(
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n"
    )
    assert w.client_side.take() == b"HTTP/1.1 100 Continue\r\n\r\n"
    assert b"expect" not in w.target_side.take().lower()
    w.client.data_received(b"hello")
    assert w.target_side.take() == b"hello"


def test_chunked_response_streams_through_and_connection_is_reused(
    loop: asyncio.AbstractEventLoop,
) -> None:
    w = wire(loop, stickiness=Stickiness(60))
    w.client.data_received(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
    w.target_side.take()
    w.upstream.data_received(
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nKeep-Alive: timeout=5\r\n"
        b"Connection: keep-alive\r\n\r\n5\r\nfirst\r\n"
    )
    first = w.client_side.take()
    assert first.startswith(b"HTTP/1.1 200 OK\r\n") and first.endswith(b"5\r\nfirst\r\n")
    headers = head_fields(first)
    assert headers["transfer-encoding"] == "chunked"
    assert "keep-alive" not in headers and "connection" not in headers
    assert headers["set-cookie"].startswith("AWSALBTG=")
    w.upstream.data_received(b"4\r\nlast\r\n0\r\n\r\n")
    assert w.client_side.take() == b"4\r\nlast\r\n0\r\n\r\n"
    assert w.upstream in w.upstream.target.idle  # back in the pool for the next request
    assert not w.client_side.closed
    assert w.ctx.metrics.counts(0, 2e10)["stable"].requests == 1


def test_head_response_ends_at_its_head(loop: asyncio.AbstractEventLoop) -> None:
    w = wire(loop)
    w.client.data_received(b"HEAD / HTTP/1.1\r\nHost: a\r\n\r\n")
    w.target_side.take()
    w.upstream.data_received(b"HTTP/1.1 200 OK\r\nContent-Length: 1234\r\n\r\n")
    assert head_fields(w.client_side.take())["content-length"] == "1234"
    w.client.data_received(b"GET /next HTTP/1.1\r\nHost: a\r\n\r\n")
    assert w.target_side.take().startswith(b"GET /next ")  # same pooled connection
    w.upstream.data_received(b"HTTP/1.1 204 No Content\r\n\r\n")
    assert w.client_side.take().startswith(b"HTTP/1.1 204 No Content\r\n")


def test_pipelined_requests_are_answered_in_order(loop: asyncio.AbstractEventLoop) -> None:
    w = wire(loop)
    w.client.data_received(b"GET /1 HTTP/1.1\r\nHost: a\r\n\r\nGET /2 HTTP/1.1\r\nHost: a\r\n\r\n")
    assert w.target_side.take().count(b"GET ") == 1  # the second waits for the first response
    w.upstream.data_received(b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n1")
    assert w.target_side.take().startswith(b"GET /2 ")
    w.upstream.data_received(b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n2")
    out = w.client_side.take()
    assert out.index(b"\r\n\r\n1") < out.index(b"\r\n\r\n2")


def test_malformed_target_response_is_a_balancer_502(loop: asyncio.AbstractEventLoop) -> None:
    w = wire(loop)
    w.client.data_received(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
    w.upstream.data_received(b"HTTP/1.1 2x0 Nope\r\n\r\n")
    assert w.client_side.take().startswith(b"HTTP/1.1 502 Bad Gateway\r\n")
    assert w.target_side.closed
    stats = w.ctx.metrics.window("stable", 0, 2e10)
    assert (stats.balancer_502, stats.status_5xx, stats.errors) == (1, 0, 1)


def test_silent_target_gets_a_504_after_the_idle_timeout(loop: asyncio.AbstractEventLoop) -> None:
    w = wire(loop)
    w.client.data_received(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
    w.client.check_idle(time.monotonic() + 61, 60)
    assert w.client_side.take().startswith(b"HTTP/1.1 504 Gateway Timeout\r\n")
    assert w.ctx.metrics.window("stable", 0, 2e10).balancer_504 == 1
    w.client.check_idle(time.monotonic() + 200, 60)  # now idle: the client connection closes
    assert w.client_side.closed


def test_http10_client_gets_connection_close(loop: asyncio.AbstractEventLoop) -> None:
    w = wire(loop)
    w.client.data_received(b"GET / HTTP/1.0\r\n\r\n")
    w.upstream.data_received(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
    assert head_fields(w.client_side.take())["connection"] == "close"
    assert w.client_side.closed


def test_response_head_split_across_reads_and_interim_1xx_are_handled(
    loop: asyncio.AbstractEventLoop,
) -> None:
    w = wire(loop)
    w.client.data_received(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
    w.upstream.data_received(
        b"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.0 200 OK\r\nX-A"
    )
    assert w.client_side.take() == b""
    w.upstream.data_received(b": 1\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\nok")
    out = w.client_side.take()
    assert out.startswith(b"HTTP/1.1 200 OK\r\nX-A: 1\r\n")  # relabelled HTTP/1.1
    assert b"103" not in out and b"Connection" not in out
    assert out.endswith(b"\r\n\r\nok")


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_stale_pooled_connection_is_retried_only_for_idempotent_requests(
    loop: asyncio.AbstractEventLoop,
) -> None:
    w = wire(loop)
    w.upstream.target.port = _closed_port()
    w.client.data_received(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
    w.upstream.connection_lost(ConnectionResetError())  # the target closed it while idle
    assert w.client_side.take() == b""  # no error yet: a fresh connection is being opened
    (retry,) = w.ctx.connecting
    loop.run_until_complete(retry)
    assert w.client_side.take().startswith(b"HTTP/1.1 502 ")  # that one was refused

    w = wire(loop)
    w.client.data_received(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n")
    w.upstream.connection_lost(ConnectionResetError())
    assert w.client_side.take().startswith(b"HTTP/1.1 502 ")
    assert not w.ctx.connecting


def test_whole_and_partial_content_length_responses(loop: asyncio.AbstractEventLoop) -> None:
    w = wire(loop, stickiness=Stickiness(60))
    w.client.data_received(b"GET /1 HTTP/1.1\r\nHost: a\r\n\r\n")
    w.upstream.data_received(
        b"HTTP/1.1 201 Created\r\nKeep-Alive: timeout=5\r\nContent-Length: 2\r\n"
        b"Connection: close\r\n\r\nok"
    )
    out = w.client_side.take()
    assert out.startswith(b"HTTP/1.1 201 Created\r\nContent-Length: 2\r\nSet-Cookie: AWSALBTG=")
    assert out.endswith(b"\r\n\r\nok") and b"Keep-Alive" not in out and b"close" not in out
    assert w.target_side.closed and not w.client_side.closed  # target asked to close

    w = wire(loop)
    w.client.data_received(b"GET /2 HTTP/1.1\r\nHost: a\r\n\r\n")
    w.upstream.data_received(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhello")
    w.upstream.data_received(b"world")
    assert w.client_side.take().endswith(b"\r\n\r\nhelloworld")
    assert w.upstream in w.upstream.target.idle
    stats = w.ctx.metrics.window("stable", 0, 2e10)
    assert (stats.requests, stats.status_2xx) == (1, 1)


EXCESS = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nLEAKD"


@pytest.mark.parametrize(
    "response",
    [
        b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n1",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\n1\r\n0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nX-Odd: yes\r\n\r\n1",
    ],
    ids=["content-length", "chunked", "parsed-head"],
)
@pytest.mark.parametrize("pipelined", [False, True], ids=["one", "pipelined"])
def test_bytes_after_a_complete_response_close_the_target_connection(
    loop: asyncio.AbstractEventLoop, response: bytes, pipelined: bool
) -> None:
    """Issue 12 item 3: a target that sends more than its response (here a whole extra
    response in the same read) is out of sync. Its connection is closed, never pooled, and
    no byte of the excess reaches this client or the next one."""
    w = wire(loop)
    second = b"GET /2 HTTP/1.1\r\nHost: a\r\n\r\n" if pipelined else b""
    w.client.data_received(b"GET /1 HTTP/1.1\r\nHost: a\r\n\r\n" + second)
    w.target_side.take()
    w.upstream.data_received(response + EXCESS)
    out = w.client_side.take()
    assert b"LEAKD" not in out
    assert out.count(b"HTTP/1.1 200") == 1
    assert w.target_side.closed and w.upstream not in w.upstream.target.idle
    # The next request never goes to the out-of-sync connection (a write to it would fail).
    w.client.data_received(b"GET /3 HTTP/1.1\r\nHost: a\r\n\r\n")
    assert b"LEAKD" not in w.client_side.take()


def test_bytes_from_an_idle_pooled_connection_close_it(loop: asyncio.AbstractEventLoop) -> None:
    w = wire(loop)
    w.client.data_received(b"GET /1 HTTP/1.1\r\nHost: a\r\n\r\n")
    w.upstream.data_received(b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n1")
    assert w.upstream in w.upstream.target.idle  # in sync: pooled
    w.upstream.data_received(EXCESS)  # nobody asked: out of sync
    assert w.target_side.closed


def test_a_head_that_never_ends_is_refused_at_the_limit(loop: asyncio.AbstractEventLoop) -> None:
    """Issue 12 item 1: a header value that never ends used to be buffered without limit
    (httptools keeps a partial value itself). The limit counts the bytes received."""
    w = wire(loop)
    w.client.data_received(b"GET / HTTP/1.1\r\nHost: a\r\nX-Endless: ")
    for _ in range(MAX_HEAD_BYTES // 8192 + 2):
        if w.client_side.closed:
            break
        w.client.data_received(b"v" * 8192)
    assert w.client_side.take().startswith(b"HTTP/1.1 400 Bad Request\r\n")
    assert w.client_side.closed
    assert w.target_side.take() == b""  # nothing reached the target


def test_a_large_body_in_one_read_is_not_mistaken_for_a_large_head(
    loop: asyncio.AbstractEventLoop,
) -> None:
    w = wire(loop)
    body = b"b" * (MAX_HEAD_BYTES * 2)
    w.client.data_received(
        b"POST /up HTTP/1.1\r\nHost: a\r\nContent-Length: %d\r\n\r\n%b" % (len(body), body)
    )
    sent = w.target_side.take()
    assert sent.startswith(b"POST /up HTTP/1.1\r\n") and sent.endswith(body)
