"""The pure parsers' properties (parsers.py) on generated heads and byte streams."""

from __future__ import annotations

from hypothesis import example, given
from hypothesis import strategies as st

from tests.balancer.fuzz.parsers import (
    check_request_reader,
    check_response_head,
    check_simple_request,
)
from tests.balancer.fuzz.profile import fuzz_settings
from tests.balancer.fuzz.strategies import any_request, header_names
from tests.balancer.fuzz.wire import fill

TOKEN = b"tk000000000001"
_LINES = [
    b"Content-Length: 5",
    b"content-length: 05",
    b"Content-Length: 5, 5",
    b"Content-Length:5",
    b"Content-Length: 1e1",
    b"Connection: close",
    b"Connection: keep-alive, close",
    b"Connection: closed",
    b"CONNECTION: Close",
    b"Transfer-Encoding: chunked",
    b"Keep-Alive: timeout=5",
    b"X-A: b",
    b"X-A:  b\t",
    b"X-A : b",
    b" X-A: b",
    b"X-A: \x7f",
    b"X-A: \xff",
    b"X\x00: b",
    b"Set-Cookie: a=b",
    b"Upgrade: h2c",
    b"Trailer: x",
]
_STATUS_LINES = [
    b"HTTP/1.1 200 OK",
    b"HTTP/1.1 204 No Content",
    b"HTTP/1.1 304 Not Modified",
    b"HTTP/1.1 101 Switching",
    b"HTTP/1.0 200 OK",
    b"HTTP/1.1 200",
    b"HTTP/1.1 2000 OK",
    b"HTTP/1.1 099 x",
    b"HTTP/1.1 599 x",
]
response_heads = st.builds(
    lambda status, lines, sep: sep.join([status, *lines]) + b"\r\n\r\n",
    st.sampled_from(_STATUS_LINES),
    st.lists(st.sampled_from(_LINES) | st.binary(max_size=20), max_size=6),
    st.sampled_from([b"\r\n", b"\r\n", b"\r\n", b"\n"]),
)
request_streams = st.one_of(
    any_request.map(lambda r: fill(r.template, TOKEN, TOKEN)),
    st.lists(any_request, min_size=1, max_size=3).map(
        lambda rs: b"".join(fill(r.template, TOKEN, TOKEN) for r in rs)
    ),
    st.binary(max_size=300),
)


@fuzz_settings(300)
@given(head=response_heads)
@example(head=b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\n")
def test_the_response_fast_path_agrees_with_httptools(head: bytes) -> None:
    check_response_head(head)


@fuzz_settings(300)
@given(data=request_streams)
@example(data=b"GET /a HTTP/1.1\r\nHost: a\r\nAccept: */*\r\n\r\n")
def test_the_request_fast_path_takes_only_plain_bodiless_requests(data: bytes) -> None:
    check_simple_request(data)


@fuzz_settings(300)
@given(data=request_streams, names=st.sets(header_names.map(bytes.lower), max_size=3))
@example(data=b"GET /a HTTP/1.1\r\nHost: a\r\nX-Canary: always\r\n\r\n", names={b"x-canary"})
@example(data=b"GET /a HTTP/1.1\r\nx-CANARY: 1\r\nHost: a\r\n\r\n", names={b"x-canary"})
def test_with_rules_the_request_fast_path_leaves_rule_headers_to_the_parser(
    data: bytes, names: set[bytes]
) -> None:
    check_simple_request(data, frozenset(names | {b"x-fuzz-token"}))


@fuzz_settings(200)
@given(data=request_streams, cuts=st.lists(st.integers(0, 2000), max_size=4))
@example(
    data=b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    cuts=[20],
)
def test_the_request_reader_forwards_only_clean_messages(data: bytes, cuts: list[int]) -> None:
    check_request_reader(data, cuts)
