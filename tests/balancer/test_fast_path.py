"""The hot path's short cuts: simple requests and responses skip the parser, nothing else."""

from __future__ import annotations

import asyncio
import random
import re

import pytest

from canary_deploy.balancer.parser import LOOKED_AT_HEADERS, SIMPLE_REQUEST
from canary_deploy.balancer.proxy import ClientConnection
from canary_deploy.balancer.response_head import HEAD_CACHE_SIZE, simple_response_head
from canary_deploy.balancer.routing import Stickiness
from tests.balancer.conftest import FakeTransport, wire


def test_simple_get_reaches_the_target_as_sent_plus_forwarding_headers(
    loop: asyncio.AbstractEventLoop,
) -> None:
    w = wire(loop)
    w.client.data_received(b"GET /a?b=1 HTTP/1.1\r\nHost: api\r\nAccept:*/*\r\n\r\n")
    sent = w.target_side.take()
    assert re.fullmatch(
        rb"GET /a\?b=1 HTTP/1\.1\r\nHost: api\r\nAccept:\*/\*\r\n"
        rb"X-Forwarded-For: 10\.0\.0\.7\r\nX-Forwarded-Proto: http\r\nX-Forwarded-Port: 8080\r\n"
        rb"X-Amzn-Trace-Id: Root=1-[0-9a-f]{8}-[0-9a-f]{24}\r\n\r\n",
        sent,
    ), sent


def test_trace_ids_differ_between_requests(loop: asyncio.AbstractEventLoop) -> None:
    w = wire(loop)
    ids = []
    for _ in range(3):
        w.client.data_received(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
        ids.append(re.search(rb"X-Amzn-Trace-Id: (\S+)", w.target_side.take()))
        w.upstream.data_received(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
    assert len({m.group(1) for m in ids if m is not None}) == 3


@pytest.mark.parametrize(
    ("head", "rest"),
    [
        (b"GET / HTTP/1.1\r\nHost: a\r\ncontent-LENGTH: 5\r\n\r\n", b"hello"),
        (
            b"GET / HTTP/1.1\r\nHost: a\r\ntransfer-encoding: chunked\r\n\r\n",
            b"5\r\nhello\r\n0\r\n\r\n",
        ),
    ],
    ids=["content-length", "transfer-encoding"],
)
def test_a_bodied_get_whose_head_comes_alone_keeps_its_body(
    loop: asyncio.AbstractEventLoop, head: bytes, rest: bytes
) -> None:
    # Framing headers in any case send the request to the parser: its body is a body,
    # not a second request (which would have been a 400 or a smuggled request).
    w = wire(loop)
    w.client.data_received(head)
    w.client.data_received(rest)
    sent = w.target_side.take()
    assert sent.count(b"GET ") == 1 and b"hello" in sent
    assert w.ctx.metrics.rejected_400 == 0 and not w.client_side.closed


def test_a_body_that_looks_like_a_request_is_never_taken_for_one(
    loop: asyncio.AbstractEventLoop,
) -> None:
    body = b"GET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n"
    w = wire(loop)
    w.client.data_received(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: %d\r\n\r\n" % len(body))
    w.client.data_received(body)
    sent = w.target_side.take()
    assert sent.endswith(b"\r\n\r\n" + body)
    assert b"X-Forwarded-For" not in sent[sent.index(b"\r\n\r\n") :]  # not rewritten as a head
    assert len(w.client.queue) == 1


def test_requests_with_cookies_or_connection_headers_keep_their_meaning(
    loop: asyncio.AbstractEventLoop,
) -> None:
    w = wire(loop, stickiness=Stickiness(60))
    w.client.data_received(b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
    sent = w.target_side.take()
    assert b"Connection" not in sent
    w.upstream.data_received(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
    out = w.client_side.take()
    assert b"Connection: close\r\n" in out and w.client_side.closed


def test_body_counted_past_content_length_closes_the_target_connection(
    loop: asyncio.AbstractEventLoop,
) -> None:
    w = wire(loop)
    w.client.data_received(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
    w.upstream.data_received(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nok")
    w.upstream.data_received(b"okEXTRA")
    assert w.client_side.take().endswith(b"\r\n\r\nokok")  # exactly the response
    assert w.target_side.closed and w.upstream not in w.upstream.target.idle
    assert not w.client_side.closed


@pytest.mark.parametrize(
    "response",
    [
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nok",
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"2\r\nok\r\n0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length : 2\r\n\r\nok",
        b"HTTP/1.1 200 OK\r\nX-A: 1\r\n folded\r\nContent-Length: 2\r\n\r\nok",
    ],
    ids=["duplicate length", "length and chunked", "space before colon", "obs-fold"],
)
def test_ambiguous_target_responses_are_a_502_not_passed_through(
    loop: asyncio.AbstractEventLoop, response: bytes
) -> None:
    w = wire(loop)
    w.client.data_received(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
    w.upstream.data_received(response)
    assert w.client_side.take().startswith(b"HTTP/1.1 502 Bad Gateway\r\n")
    assert w.target_side.closed


def test_connection_header_is_removed_wherever_it_sits(loop: asyncio.AbstractEventLoop) -> None:
    w = wire(loop)
    w.client.data_received(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
    w.upstream.data_received(
        b"HTTP/1.1 200 OK\r\nconnection: keep-alive\r\nServer: t\r\nContent-Length: 2\r\n\r\nok"
    )
    assert w.client_side.take() == (b"HTTP/1.1 200 OK\r\nServer: t\r\nContent-Length: 2\r\n\r\nok")
    assert w.upstream in w.upstream.target.idle


def test_a_head_split_across_reads_is_parsed_as_one(loop: asyncio.AbstractEventLoop) -> None:
    # The second read alone looks like a whole simple request; it is the rest of the first.
    w = wire(loop)
    w.client.data_received(b"GET /a HTTP/1.1\r\nX-Pad: ")
    w.client.data_received(b"GET /b HTTP/1.1\r\nHost: a\r\n\r\n")
    sent = w.target_side.take()
    assert sent.startswith(b"GET /a HTTP/1.1\r\nX-Pad: GET /b HTTP/1.1\r\nHost: a\r\n")
    assert sent.count(b"\r\n\r\n") == 1 and len(w.client.queue) == 1


class _SlowClientTransport(FakeTransport):
    """A client socket whose buffer fills on the first large write."""

    protocol: ClientConnection | None = None

    def write(self, data: bytes) -> None:
        super().write(data)
        if len(data) > 1000 and self.protocol is not None:
            self.protocol.pause_writing()


def test_a_connection_paused_by_a_slow_client_reads_again_once_pooled(
    loop: asyncio.AbstractEventLoop,
) -> None:
    # The response's last bytes fill the client's buffer; the target connection goes
    # back to the pool and must not stay paused, or the next request would hang.
    w = wire(loop)
    slow = _SlowClientTransport()
    slow.protocol = w.client
    w.client.connection_made(slow)  # type: ignore[arg-type]
    w.client.data_received(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
    w.upstream.data_received(b"HTTP/1.1 200 OK\r\nContent-Length: 2000\r\n\r\n" + b"x" * 2000)
    assert w.upstream in w.upstream.target.idle
    assert w.target_side.reading


def test_a_client_paused_by_a_slow_target_reads_again_after_the_response(
    loop: asyncio.AbstractEventLoop,
) -> None:
    w = wire(loop)
    w.client.data_received(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\nok")
    w.upstream.pause_writing()  # the target's socket buffer is full
    assert not w.client_side.reading
    w.upstream.data_received(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
    w.upstream.resume_writing()  # drained only after the exchange ended
    assert w.client_side.reading


def test_a_target_connection_close_in_any_case_is_obeyed_and_not_forwarded(
    loop: asyncio.AbstractEventLoop,
) -> None:
    w = wire(loop)
    w.client.data_received(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
    w.upstream.data_received(b"HTTP/1.1 200 OK\r\nCONNECTION: Close\r\nContent-Length: 2\r\n\r\nok")
    assert w.client_side.take() == b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
    # The target closes its side: never pooled, while the client's connection lives on.
    assert w.target_side.closed and w.upstream not in w.upstream.target.idle
    assert not w.client_side.closed


@pytest.mark.parametrize("name", [b"KEEP-ALIVE", b"Upgrade", b"trailer", b"Proxy-Authenticate"])
def test_other_hop_by_hop_response_headers_in_any_case_are_stripped(
    loop: asyncio.AbstractEventLoop, name: bytes
) -> None:
    w = wire(loop)
    w.client.data_received(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
    w.upstream.data_received(b"HTTP/1.1 200 OK\r\n%b: x\r\nContent-Length: 2\r\n\r\nok" % name)
    assert w.client_side.take() == b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
    assert w.upstream in w.upstream.target.idle


def test_a_client_x_forwarded_for_in_any_case_is_extended_not_duplicated(
    loop: asyncio.AbstractEventLoop,
) -> None:
    w = wire(loop)
    w.client.data_received(b"GET / HTTP/1.1\r\nHost: a\r\nx-FORWARDED-for: 203.0.113.9\r\n\r\n")
    sent = w.target_side.take()
    assert sent.lower().count(b"x-forwarded-for") == 1
    assert b"X-Forwarded-For: 203.0.113.9, 10.0.0.7\r\n" in sent


def test_a_header_name_that_only_starts_like_a_special_one_keeps_the_fast_path(
    loop: asyncio.AbstractEventLoop,
) -> None:
    # "TEX" is not "TE", "Cookies" is not "Cookie": forwarded byte for byte (the parser
    # path would have rewritten "TEX:1" as "TEX: 1").
    w = wire(loop)
    w.client.data_received(b"GET / HTTP/1.1\r\nTEX:1\r\nHost: a\r\nCookies:2\r\n\r\n")
    sent = w.target_side.take()
    assert sent.startswith(b"GET / HTTP/1.1\r\nTEX:1\r\nHost: a\r\nCookies:2\r\nX-Forwarded-For: ")


@pytest.mark.parametrize("name", sorted(LOOKED_AT_HEADERS))
def test_every_header_the_balancer_must_look_at_sends_the_request_to_the_parser(
    name: bytes,
) -> None:
    for spelling in (name, name.upper(), name.title(), name[:1].upper() + name[1:]):
        head = b"GET / HTTP/1.1\r\nHost: a\r\n%b: 1\r\n\r\n" % spelling
        assert SIMPLE_REQUEST.fullmatch(head) is None, spelling
    # One character more or less is an ordinary header, forwarded as it came.
    assert SIMPLE_REQUEST.fullmatch(b"GET / HTTP/1.1\r\n%bs: 1\r\nHost: a\r\n\r\n" % name)
    assert SIMPLE_REQUEST.fullmatch(b"GET / HTTP/1.1\r\nHost: a\r\n%b: 1\r\n\r\n" % name[:-1])


def test_a_response_head_seen_before_gets_the_same_verdict_and_the_same_bytes(
    loop: asyncio.AbstractEventLoop,
) -> None:
    # The verdict on a head is remembered; the second response with that head must be
    # forwarded exactly like the first, its own body included.
    head = b"HTTP/1.1 200 OK\r\nConnection: keep-alive\r\nServer: t\r\nContent-Length: 2\r\n\r\n"
    simple_response_head.cache_clear()
    w = wire(loop)
    for body in (b"ok", b"no"):
        w.client.data_received(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
        w.upstream.data_received(head + body)
        assert (
            w.client_side.take()
            == b"HTTP/1.1 200 OK\r\nServer: t\r\nContent-Length: 2\r\n\r\n" + body
        )
        assert w.upstream in w.upstream.target.idle
    assert simple_response_head.cache_info()[:2] == (1, 1)  # judged once, remembered once


def test_a_long_response_head_goes_through_the_parser_and_is_not_remembered(
    loop: asyncio.AbstractEventLoop,
) -> None:
    simple_response_head.cache_clear()
    head = b"HTTP/1.1 200 OK\r\nX-Pad: %b\r\nContent-Length: 2\r\n\r\n" % (b"p" * 5000)
    w = wire(loop)
    w.client.data_received(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
    w.upstream.data_received(head + b"ok")
    assert w.client_side.take() == head + b"ok"
    assert simple_response_head.cache_info().currsize == 0


def test_a_malformed_head_is_refused_each_time_it_comes(loop: asyncio.AbstractEventLoop) -> None:
    response = b"HTTP/1.1 200 OK\r\nContent-Length : 2\r\n\r\nok"
    for _ in range(2):
        w = wire(loop)
        w.client.data_received(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
        w.upstream.data_received(response)
        assert w.client_side.take().startswith(b"HTTP/1.1 502 Bad Gateway\r\n")
    assert simple_response_head(response[:-2]) is None


def test_the_head_cache_is_bounded() -> None:
    simple_response_head.cache_clear()
    for n in range(HEAD_CACHE_SIZE + 50):
        simple_response_head(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % n)
    assert simple_response_head.cache_info().currsize == HEAD_CACHE_SIZE


_STATUS_LINES = (
    b"HTTP/1.1 200 OK",
    b"HTTP/1.1 404 Not Found",
    b"HTTP/1.1 503 ",
    b"HTTP/1.1 204 No Content",
    b"HTTP/1.0 200 OK",
    b"HTTP/1.1 200 \x01",
)
_NAMES = (
    b"Server",
    b"Date",
    b"X-Request-Id",
    b"Content-Length",
    b"content-LENGTH",
    b"Connection",
    b"CONNECTION",
    b"Keep-Alive",
    b"TE",
    b"Trailer",
    b"Transfer-Encoding",
    b"Upgrade",
    b"Proxy-Connection",
    b"Content-Length ",
    b"Conn ection",
    b"Contents",
    b"Connections",
)
_VALUES = (
    b"x",
    b"keep-alive",
    b"close",
    b" Close",
    b"closed",
    b"Tclose",
    b"keep-alive, close",
    b" close ,x",
    b"chunked",
    b" 2 ",
    b"2",
    b"+2",
    b"\x01",
    b"\xe9",
)
_REQUESTS = (
    b"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
    b"HEAD / HTTP/1.1\r\nHost: a\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
)


def _random_response(rng: random.Random) -> bytes:
    lines = [rng.choice(_STATUS_LINES[:3] * 4 + _STATUS_LINES)]
    for _ in range(rng.randrange(6)):
        if rng.random() < 0.75:  # mostly ordinary headers, so many heads qualify
            lines.append(rng.choice(_NAMES[:3]) + b": " + rng.choice(_VALUES[:2]))
        else:
            lines.append(rng.choice(_NAMES) + b":" + rng.choice(_VALUES))
        if rng.random() < 0.03:
            lines.append(b" folded")
    if rng.random() < 0.7:
        lines.insert(rng.randrange(1, len(lines) + 1), b"Content-Length: 2")
    return (
        b"\r\n".join(lines) + b"\r\n\r\n" + rng.choice((b"ok", b"okEXTRA", b"2\r\nok\r\n0\r\n\r\n"))
    )


_SET_COOKIE = re.compile(rb"Set-Cookie: [^\r]*\r\n")


def _through_the_balancer(
    loop: asyncio.AbstractEventLoop, request: bytes, response: bytes, split: int
) -> tuple[bytes, bool]:
    w = wire(loop, stickiness=Stickiness(60))
    w.client.data_received(request)
    w.upstream.data_received(response[:split])
    if response[split:] and not w.target_side.closed:
        w.upstream.data_received(response[split:])
    # Set-Cookie lines are rebuilt once a second, so two runs may differ there: dropped.
    # Reused only if pooled and still open (a closed one leaves the pool when the loop
    # reports it lost, which fake transports never do).
    return (
        _SET_COOKIE.sub(b"", w.client_side.take()),
        w.upstream in w.upstream.target.idle and not w.target_side.closed,
    )


def test_the_fast_path_answers_exactly_as_the_parser_would(
    loop: asyncio.AbstractEventLoop, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Generated responses, valid and not (duplicate or odd framing, hop-by-hop headers in
    # any case, Connection tokens that only contain "close", space before the colon,
    # obs-fold, control bytes, HTTP/1.0, 204), after GET, HEAD or a client's Connection:
    # close, whole or split across two reads: with the fast path and with every head
    # sent to httptools, the client gets the same bytes and the target connection the
    # same fate.
    rng = random.Random(20261128)
    cases = {
        (rng.choice(_REQUESTS), response, rng.choice((len(response), rng.randrange(len(response)))))
        for response in (_random_response(rng) for _ in range(3000))
    }
    fast = {case: _through_the_balancer(loop, *case) for case in cases}
    monkeypatch.setattr("canary_deploy.balancer.upstream.simple_response_head", lambda _: None)
    responses = {response for _, response, _ in cases}
    for case in cases:
        assert fast[case] == _through_the_balancer(loop, *case), case
    taken = sum(
        simple_response_head(response[: response.find(b"\r\n\r\n") + 4]) is not None
        for response in responses
    )
    assert 300 < taken < len(responses) - 300  # both paths were exercised


@pytest.mark.parametrize(
    "value",
    [
        b"close",
        b"CLOSE",
        b"  close ",
        b"closed",
        b"Tclose",
        b"keep-alive, close",
        b"x,close,y",
        b"keep-alive",
        b"upgrade",
        b"",
    ],
)
def test_a_target_connection_header_means_what_it_means_to_llhttp(
    loop: asyncio.AbstractEventLoop, monkeypatch: pytest.MonkeyPatch, value: bytes
) -> None:
    # Only a "close" token closes: "closed" does not.
    response = b"HTTP/1.1 200 OK\r\nConnection:%b\r\nContent-Length: 2\r\n\r\nok" % value
    request = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"
    fast = _through_the_balancer(loop, request, response, len(response))
    assert simple_response_head(response[:-2]) is not None  # the fast path took it
    monkeypatch.setattr("canary_deploy.balancer.upstream.simple_response_head", lambda _: None)
    assert fast == _through_the_balancer(loop, request, response, len(response))
