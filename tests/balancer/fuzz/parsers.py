"""Properties of the balancer's pure parsers, shared by hypothesis (test_parsers.py) and
the coverage-guided atheris run (atheris_parsers.py).

- `check_response_head`: the response fast path's verdict (`simple_response_head`)
  agrees with httptools on the same bytes: status, length, keep-alive, and the head it
  passes on is the target's minus its Connection line.
- `check_simple_request`: a head the request fast path (`SIMPLE_REQUEST`) takes is one
  complete bodiless GET/HEAD for httptools, without any header the balancer must see.
- `check_request_reader`: whatever bytes a client sends, in whatever pieces, the
  request side as the proxy runs it (`ClientConnection.data_received`: the fast path,
  or `RequestReader` through httptools) raises nothing, and each request it would
  forward is exactly one clean message (no Content-Length with Transfer-Encoding,
  nothing after it) with the method, target and body llhttp read from the client.
  Nothing is sent anywhere: `_ParsingOnly` keeps the exchanges where the proxy would
  start sending them.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import httptools

from canary_deploy.balancer.metrics import MetricsRecorder
from canary_deploy.balancer.parser import (
    LOOKED_AT_HEADERS,
    SIMPLE_REQUEST,
    Exchange,
    simple_request_pattern,
)
from canary_deploy.balancer.proxy import ClientConnection, ProxyContext
from canary_deploy.balancer.response_head import MAX_SIMPLE_HEAD_BYTES, simple_response_head
from canary_deploy.balancer.routing import RegisteredTarget, Router
from canary_deploy.weights import Weights


@dataclass
class Message:
    """One message as httptools saw it."""

    method: bytes = b""
    url: bytes = b""
    status: int = 0
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    body: bytes = b""
    complete: bool = False
    keep_alive: bool = False


class _Collector:
    def __init__(self) -> None:
        self.messages: list[Message] = []
        self.parser: httptools.HttpRequestParser | httptools.HttpResponseParser | None = None

    def on_message_begin(self) -> None:
        self.messages.append(Message())

    def on_url(self, url: bytes) -> None:
        self.messages[-1].url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self.messages[-1].headers.append((name.lower(), value))

    def on_headers_complete(self) -> None:
        assert self.parser is not None
        message = self.messages[-1]
        if isinstance(self.parser, httptools.HttpRequestParser):
            message.method = self.parser.get_method()
        else:
            message.status = self.parser.get_status_code()
        message.keep_alive = bool(self.parser.should_keep_alive())

    def on_body(self, body: bytes) -> None:
        self.messages[-1].body += body

    def on_message_complete(self) -> None:
        self.messages[-1].complete = True


def parse(data: bytes, *, response: bool = False) -> tuple[list[Message], bool]:
    """Messages httptools reads from `data`, and whether it read all of it without error."""
    collector = _Collector()
    parser_type = httptools.HttpResponseParser if response else httptools.HttpRequestParser
    parser = parser_type(collector)
    collector.parser = parser
    try:
        parser.feed_data(data)
    except httptools.HttpParserUpgrade:
        return collector.messages, False
    except httptools.HttpParserError:
        return collector.messages, False
    return collector.messages, True


def check_response_head(head: bytes) -> None:
    if len(head) > MAX_SIMPLE_HEAD_BYTES or not head.endswith(b"\r\n\r\n"):
        return
    verdict = simple_response_head(head)
    if verdict is None:
        return
    out, status, length, keep_alive = verdict
    messages, ok = parse(head + b"x" * length, response=True)
    assert ok and len(messages) == 1 and messages[0].complete, f"fast path took {head!r}"
    message = messages[0]
    assert message.status == status, (head, status, message)
    assert message.body == b"x" * length, (head, length, message)
    assert message.keep_alive == keep_alive, (head, keep_alive, message)
    lengths = [v for n, v in message.headers if n == b"content-length"]
    assert len(lengths) == 1 and int(lengths[0]) == length, (head, message)
    assert not [n for n, _ in message.headers if n == b"transfer-encoding"], head
    passed, ok = parse(out + b"\r\n" + b"x" * length, response=True)
    assert ok and len(passed) == 1, (head, out)
    assert passed[0].headers == [(n, v) for n, v in message.headers if n != b"connection"], (
        head,
        out,
    )


def check_simple_request(data: bytes, rule_headers: frozenset[bytes] = frozenset()) -> None:
    """With listener rules reading `rule_headers` (lowercase), the fast path must leave
    every head carrying one of them to the parser, which evaluates the rules."""
    pattern = simple_request_pattern(rule_headers) if rule_headers else SIMPLE_REQUEST
    if pattern.fullmatch(data) is None:
        return
    messages, ok = parse(data)
    assert ok and len(messages) == 1 and messages[0].complete, f"fast path took {data!r}"
    message = messages[0]
    assert message.method in (b"GET", b"HEAD") and not message.body, data
    looked_at = set(LOOKED_AT_HEADERS) | rule_headers
    assert not [n for n, _ in message.headers if n in looked_at], data


class _Transport:
    """What ClientConnection needs of a client transport; it is never written to here
    except by a refusal (the connection cap is never reached)."""

    def __init__(self) -> None:
        self.written = bytearray()

    def get_extra_info(self, name: str) -> Any:
        return ("192.0.2.1", 40000) if name == "peername" else None

    def write(self, data: bytes) -> None:
        self.written += data

    def pause_reading(self) -> None: ...

    def resume_reading(self) -> None: ...

    def close(self) -> None: ...

    def is_closing(self) -> bool:
        return False


class _ParsingOnly(ClientConnection):
    """The proxy's request side with the sending cut off: `data_received` is the real
    one (fast path, httptools, limits, rejections' statuses); the exchanges stay in
    `queue` instead of going to a target, and a refusal stops the feed as it does."""

    def __init__(self, ctx: ProxyContext) -> None:
        super().__init__(ctx)
        self.refused = 0

    def _pump(self) -> None:
        pass  # the exchanges stay queued, to be checked

    def connect(self, exchange: Exchange, target: RegisteredTarget) -> None:
        pass  # the fast path found no pooled connection: it would open one here

    def _reject(self, status: int) -> None:
        self.refused = self._error_status = status  # data_received reads no more

    def _upgrade_requested(self, rest: bytes) -> None:
        self.queue.extend(self.reader.new if self.reader is not None else ())
        self.reader = None


def _request_side() -> _ParsingOnly:
    router = Router(Weights(100, 0), "round_robin")
    target = RegisteredTarget("t1", "127.0.0.1", 9)
    target.state = "healthy"
    router.groups["stable"].targets["t1"] = target
    router.groups["stable"].refresh()
    ctx = ProxyContext(_LOOP, router, MetricsRecorder(), idle_timeout_s=60, stickiness=None)
    client = _ParsingOnly(ctx)
    client.connection_made(_Transport())  # type: ignore[arg-type]
    return client


# ProxyContext keeps a loop for opening target connections; nothing here runs it.
_LOOP = asyncio.new_event_loop()


def check_request_reader(data: bytes, cuts: list[int]) -> None:
    client = _request_side()
    at = 0
    fed = b""
    for cut in [*sorted({c for c in cuts if 0 < c < len(data)}), len(data)]:
        if client.refused or client.reader is None:
            break
        piece = data[at:cut]
        at = cut
        client.data_received(piece)
        fed += piece
    assert not client.refused or 400 <= client.refused < 600, client.refused
    reference, _ = parse(fed)
    forwarded = list(client.queue)
    complete = [m for m in reference if m.complete]
    for i, exchange in enumerate(forwarded):
        sent = b"".join(exchange.out)
        messages, ok = parse(sent)
        assert ok and len(messages) == 1, f"forwarded {sent[:300]!r} from {data[:300]!r}"
        message = messages[0]
        names = [n for n, _ in message.headers]
        assert not (b"content-length" in names and b"transfer-encoding" in names), sent
        assert names.count(b"content-length") <= 1 and names.count(b"transfer-encoding") <= 1
        assert message.complete == exchange.request_complete, (sent, data)
        if message.complete and i < len(complete):
            source = complete[i]
            assert (message.method, message.url, message.body) == (
                source.method,
                _origin_form(source.method, source.url),
                source.body,
            ), (sent, data)


def _origin_form(method: bytes, url: bytes) -> bytes:
    """The request target a target must get for `url` (RFC 9112 3.2.2: an absolute-form
    target goes on in origin form, its authority in Host)."""
    scheme, sep, rest = url.partition(b"://")
    if not sep or scheme.lower() not in (b"http", b"https"):
        return url
    cut = min((i for i in (rest.find(b"/"), rest.find(b"?")) if i >= 0), default=len(rest))
    path = rest[cut:]
    if not path:
        return b"*" if method == b"OPTIONS" else b"/"
    return b"/" + path if path[:1] == b"?" else path
