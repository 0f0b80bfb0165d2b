"""Issue 12 items 11 and 12: what the balancer checks or rewrites in a request head (Host,
HTTP/0.9, absolute-form targets, transfer codings, X-Forwarded-For), through fake
transports."""

from __future__ import annotations

import asyncio
import re

import pytest

from tests.balancer.conftest import head_fields, wire

# ---- item 11: Host, HTTP/0.9, absolute-form

BAD_REQUESTS = {
    "missing host": b"GET / HTTP/1.1\r\nAccept: */*\r\n\r\n",
    "missing host, parser path": b"GET / HTTP/1.1\r\nCookie: a=1\r\n\r\n",
    "duplicate host": b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
    "duplicate host, other case": b"GET / HTTP/1.1\r\nHost: a\r\nhOST: a\r\nCookie: a=1\r\n\r\n",
    "empty host": b"GET / HTTP/1.1\r\nHost: \r\n\r\n",
    "invalid host": b"GET / HTTP/1.1\r\nHost: a b\r\n\r\n",
    "host with a path": b"GET / HTTP/1.1\r\nHost: a/b\r\n\r\n",
    "HTTP/0.9 request line": b"GET /\r\n\r\n",
    "asterisk-form but not OPTIONS": b"GET * HTTP/1.1\r\nHost: a\r\n\r\n",
    "HTTP/1.0 with two hosts": b"GET / HTTP/1.0\r\nHost: a\r\nHost: b\r\n\r\n",
    "absolute-form, other scheme": b"GET ftp://a/ HTTP/1.1\r\nHost: a\r\n\r\n",
    "absolute-form, userinfo": b"GET http://u:p@a/ HTTP/1.1\r\nHost: a\r\n\r\n",
    "absolute-form, no host": b"GET http:///x HTTP/1.1\r\nHost: a\r\n\r\n",
}


@pytest.mark.parametrize("request_bytes", BAD_REQUESTS.values(), ids=list(BAD_REQUESTS))
def test_requests_without_one_valid_host_get_400_and_reach_no_target(
    loop: asyncio.AbstractEventLoop, request_bytes: bytes
) -> None:
    w = wire(loop)
    w.client.data_received(request_bytes)
    assert w.client_side.take().startswith(b"HTTP/1.1 400 Bad Request\r\n")
    assert w.client_side.closed
    assert w.target_side.take() == b""
    assert w.ctx.metrics.rejected[400] == 1


def test_an_absolute_form_target_is_sent_in_origin_form_with_its_host(
    loop: asyncio.AbstractEventLoop,
) -> None:
    """RFC 9112 3.2.2: a server must accept absolute-form, and the host in it replaces
    any Host header."""
    w = wire(loop)
    w.client.data_received(b"GET http://Example.com:81/p?q=1 HTTP/1.1\r\nHost: other\r\n\r\n")
    sent = w.target_side.take()
    assert sent.startswith(b"GET /p?q=1 HTTP/1.1\r\n")
    assert sent.lower().count(b"\r\nhost:") == 1
    assert head_fields(sent)["host"] == "Example.com:81"
    w.upstream.data_received(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
    w.client.data_received(b"OPTIONS http://a HTTP/1.1\r\n\r\n")
    sent = w.target_side.take()
    assert sent.startswith(b"OPTIONS * HTTP/1.1\r\n") and head_fields(sent)["host"] == "a"
    w.upstream.data_received(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
    w.client.data_received(b"GET http://a HTTP/1.1\r\n\r\n")
    assert w.target_side.take().startswith(b"GET / HTTP/1.1\r\n")


def test_an_http10_request_without_host_gets_the_listeners_address(
    loop: asyncio.AbstractEventLoop,
) -> None:
    """As ALB does: HTTP/1.0 needs no Host, but the request goes on as HTTP/1.1."""
    w = wire(loop)
    w.client.data_received(b"GET / HTTP/1.0\r\n\r\n")
    assert head_fields(w.target_side.take())["host"] == "127.0.0.1:8080"


# ---- item 12: transfer codings and repeated X-Forwarded-For


def test_transfer_codings_before_chunked_are_kept(loop: asyncio.AbstractEventLoop) -> None:
    w = wire(loop)
    w.client.data_received(
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"
        b"3\r\nabc\r\n0\r\n\r\n"
    )
    sent = w.target_side.take()
    assert head_fields(sent)["transfer-encoding"] == "gzip, chunked"
    assert sent.endswith(b"\r\n\r\n3\r\nabc\r\n0\r\n\r\n")
    assert sent.lower().count(b"transfer-encoding") == 1


def test_transfer_codings_over_several_header_lines_are_kept(
    loop: asyncio.AbstractEventLoop,
) -> None:
    w = wire(loop)
    w.client.data_received(
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n"
        b"transfer-encoding: br ,chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"
    )
    assert head_fields(w.target_side.take())["transfer-encoding"] == "gzip, br, chunked"


def test_every_x_forwarded_for_value_is_kept_and_the_peer_appended(
    loop: asyncio.AbstractEventLoop,
) -> None:
    w = wire(loop)
    w.client.data_received(
        b"GET / HTTP/1.1\r\nHost: a\r\nX-Forwarded-For: 1.1.1.1\r\n"
        b"x-forwarded-for: 2.2.2.2, 3.3.3.3\r\n\r\n"
    )
    sent = w.target_side.take()
    assert re.findall(rb"(?i)x-forwarded-for: ([^\r]*)", sent) == [
        b"1.1.1.1, 2.2.2.2, 3.3.3.3, 10.0.0.7"
    ]
