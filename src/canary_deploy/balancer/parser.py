"""Client request parsing with httptools: framing validation and the head sent upstream.

A whole simple GET/HEAD head skips the parser (see SIMPLE_REQUEST; ClientConnection
takes that path). Everything llhttp rejects in strict mode (Content-Length with
Transfer-Encoding, duplicate Content-Length, invalid chunk sizes, obs-fold, bad request
lines, bare LF) surfaces as `FramingError`; so do what llhttp lets through but a server must
refuse (HTTP/0.9, a missing, repeated or invalid Host). The head size limit is enforced
here, and absolute-form targets are sent on in origin form. Validated requests
become `Exchange` records whose outgoing bytes (rewritten head, re-chunked body)
accumulate in `Exchange.out` until the connection flushes them.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable, Sequence
from typing import Protocol

import httptools

from canary_deploy.balancer.clock import trace_header
from canary_deploy.balancer.exchange import Downstream, Exchange
from canary_deploy.balancer.http11 import (
    HOP_BY_HOP,
    HOST_VALUE,
    LAST_CHUNK,
    TOKEN_CHAR,
    chunk,
    first_letter_alternatives,
)
from canary_deploy.balancer.limits import MAX_HEAD_BYTES
from canary_deploy.balancer.routing import Stickiness
from canary_deploy.routes import TesterBooking, TesterRoute

_REPLACED = frozenset({b"expect", b"x-forwarded-proto", b"x-forwarded-port", b"x-forwarded-for"})
_DROPPED = HOP_BY_HOP | _REPLACED
# RFC 9110 9.2.2: only these may be retried automatically.
_IDEMPOTENT = frozenset({b"GET", b"HEAD", b"OPTIONS", b"TRACE", b"PUT", b"DELETE"})

# The fast path: most requests are one whole GET/HEAD head in one read, with no body
# and no header we must drop, replace or look at. One C-level regex match proves the
# shape and, with a lookahead at the start of every header line, the absence of those
# headers (in any letter case); the head is then forwarded as it came plus our headers,
# with no parser callbacks. The shape is a strict subset of what llhttp accepts (origin
# form, HTTP/1.1, token names right before the colon, visible-ASCII values); anything
# else, however harmless, takes the httptools path. Possessive repeats (`*+`, `++`):
# nothing here can match two ways, so the regex engine need not keep backtrack points.
# Request headers the balancer drops, replaces or reads: never on the fast path.
LOOKED_AT_HEADERS = sorted(_DROPPED | {b"content-length", b"x-amzn-trace-id", b"cookie"})
_HOST = re.compile(HOST_VALUE)
# http(s)://authority[path]: the absolute form, sent on as origin form (RFC 9112 3.2.2).
_ABSOLUTE_FORM = re.compile(rb"(?i:https?)://([^/?#]*+)([^#]*+)")
# A transfer coding before the final chunked, with optional parameters (RFC 9112 7).
_CODING = re.compile(
    TOKEN_CHAR + rb"++(?:[ \t]*+;[ \t]*+" + TOKEN_CHAR + rb"++=" + TOKEN_CHAR + rb"++)*+"
)


def simple_request_pattern(rule_headers: Iterable[bytes] = ()) -> re.Pattern[bytes]:
    """The fast path's pattern; a head that carries one of `rule_headers` (the headers
    the listener's rules read, lowercase) does not match either: it takes the parser,
    which evaluates the rules (see HeaderRules)."""
    # Any header line but those and Host.
    other_line = (
        rb"(?!(?:"
        + first_letter_alternatives(sorted({*LOOKED_AT_HEADERS, *rule_headers, b"host"}))
        + rb"):)"
        + TOKEN_CHAR
        + rb"++:[\t -~]*+\r\n"
    )
    # Exactly one valid Host line, anywhere among the others.
    return re.compile(
        rb"(GET|HEAD) /[!-~]*+ HTTP/1\.1\r\n(?:"
        + other_line
        + rb")*+(?i:host):[ \t]*+"
        + HOST_VALUE
        + rb"[ \t]*+\r\n(?:"
        + other_line
        + rb")*+\r\n"
    )


# With no listener rule.
SIMPLE_REQUEST = simple_request_pattern()


class HeaderRules(Protocol):
    """The listener's rules as the parser evaluates them (`rules.ListenerRules`, which
    also reads this module's fast-path pattern: a Protocol keeps the import one way)."""

    @property
    def routes(self) -> Sequence[TesterRoute]: ...

    def match(self, headers: Sequence[tuple[bytes, bytes]]) -> TesterBooking | None: ...


class FramingError(Exception):
    """The client sent something we must not forward; answer `status` and close."""

    def __init__(self, reason: str, status: int = 400) -> None:
        super().__init__(reason)
        self.status = status


def rejection_status(exc: httptools.HttpParserError) -> int:
    """The status for a request httptools refused. A FramingError raised in one of our
    callbacks reaches the caller as httptools' HttpParserCallbackError, its context."""
    cause = exc.__context__
    return cause.status if isinstance(cause, FramingError) else 400


class RequestReader:
    """Feeds client bytes through httptools and turns them into `Exchange`s."""

    def __init__(
        self,
        client: Downstream | None,
        client_ip: bytes,
        listen_port: bytes,
        stickiness: Stickiness | None,
        listen_host: bytes = b"127.0.0.1",
        rules: HeaderRules | None = None,
    ) -> None:
        self._client = client
        self._client_ip = client_ip
        self._forwarded = b"X-Forwarded-Proto: http\r\nX-Forwarded-Port: " + listen_port + b"\r\n"
        # ALB's Host for an HTTP/1.0 request without one: the load balancer's own name.
        self._own_host = listen_host + b":" + listen_port
        self._stickiness = stickiness
        self._rules = rules
        self.parser = httptools.HttpRequestParser(self)
        self._parser = self.parser
        self.new: list[Exchange] = []  # exchanges whose head arrived in the last feed
        # True between messages: only then may a request bypass the parser.
        self.at_boundary = True
        self._current: Exchange | None = None
        self.in_head = False  # between a message's first byte and its head's end
        self.closing = False  # a request that closes the connection (no keep-alive) ended
        self._head_received = 0  # bytes fed while the head had not ended
        self.head_started = 0.0  # monotonic time of the read that began an unfinished head
        self._reset_head()

    def _reset_head(self) -> None:
        self._url: list[bytes] = []
        self._headers: list[tuple[bytes, bytes]] = []
        self._head_bytes = 0
        self._xff: bytes | None = None
        self._host: bytes | None = None
        self._codings: list[bytes] = []  # Transfer-Encoding values, in order
        self._has_trace = False
        self._cookie: bytes | None = None
        self._connection_tokens: bytes | None = None
        self._content_length = 0
        self._chunked = False
        self._expect_continue = False
        self._upgrade = b""  # the Upgrade header's value, lowercased

    # Client bytes go to `parser.feed_data` straight from ClientConnection.data_received
    # (the hot path), which turns httptools' errors into statuses and calls head_pending.

    def head_pending(self, received: int, now: float) -> None:
        """After a feed that left a head unfinished: httptools keeps a partial header name
        or value itself, so the limit counts the bytes received, not complete headers; and
        the head deadline runs from `now` if this read began the head."""
        if not self._head_received:
            self.head_started = now
        self._head_received += received
        if self._head_received > MAX_HEAD_BYTES:
            raise FramingError("request head too large")

    def forwarded_suffix(self) -> bytes:
        """The headers we add to every request except the trace id, then nothing else."""
        return b"X-Forwarded-For: " + self._client_ip + b"\r\n" + self._forwarded

    # ---- httptools callbacks

    def on_message_begin(self) -> None:
        self.at_boundary = False
        self.in_head = True
        self._head_received = 0

    def on_url(self, url: bytes) -> None:
        self._head_bytes += len(url)
        if self._head_bytes > MAX_HEAD_BYTES:
            raise FramingError("request head too large")
        self._url.append(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._head_bytes += len(name) + len(value) + 4
        if self._head_bytes > MAX_HEAD_BYTES:
            raise FramingError("request head too large")
        lname = name.lower()
        if lname in _DROPPED:
            if lname == b"x-forwarded-for":
                # Every value the client sent, in order; the peer is appended after them.
                self._xff = value if self._xff is None else self._xff + b", " + value
            elif lname == b"transfer-encoding":
                self._chunked = True  # llhttp only accepts "chunked" as the final coding
                self._codings.append(value)
            elif lname == b"connection":
                self._connection_tokens = value.lower()
            elif lname == b"upgrade":
                self._upgrade += b"," + value.lower()
            elif lname == b"expect":
                if value.lower() != b"100-continue":
                    raise FramingError("unsupported Expect", 417)
                self._expect_continue = True
            return
        if lname == b"content-length":
            self._content_length = int(value)
        elif lname == b"host":
            if self._host is not None:
                raise FramingError("more than one Host header")  # RFC 9112 3.2
            self._host = value
        elif lname == b"x-amzn-trace-id":
            self._has_trace = True
        elif lname == b"cookie":
            self._cookie = value if self._cookie is None else self._cookie + b"; " + value
        self._headers.append((name, value))

    def on_headers_complete(self) -> None:
        self.in_head = False
        parser = self._parser
        method: bytes = parser.get_method()
        if method == b"CONNECT":
            raise FramingError("CONNECT is not supported", 405)
        websocket = False
        if parser.should_upgrade():
            websocket = self._is_websocket_handshake(method)
            if not websocket:
                raise FramingError("only WebSocket upgrades are supported", 501)
        url, headers = self._target_and_host(method, parser.get_http_version())
        tokens = self._connection_tokens
        if tokens is not None and tokens not in (b"keep-alive", b"close"):
            # Headers a client lists in Connection are hop-by-hop too (RFC 9110 7.6.1).
            named = {t.strip() for t in tokens.split(b",")}
            headers = [(n, v) for n, v in headers if n.lower() not in named]
        exchange = Exchange(self._client, self._upstream_head(method, url, headers, websocket))
        exchange.has_body = self._chunked or self._content_length > 0
        exchange.is_head = method == b"HEAD"
        exchange.idempotent = method in _IDEMPOTENT
        exchange.keep_alive = parser.should_keep_alive()
        exchange.http10 = parser.get_http_version() == "1.0"
        if websocket:
            # After a 101 the connection is the tunnel's; after any other answer it closes.
            exchange.upgrade = b""
            exchange.keep_alive = False
        exchange.expect_continue = self._expect_continue and exchange.has_body
        if self._stickiness is not None and self._cookie is not None:
            exchange.sticky = self._stickiness.version_from_cookie(self._cookie)
        rules = self._rules
        if rules is not None and rules.routes:
            # A listener rule beats the weights and stickiness (ALB evaluates rules before
            # the default action); its requests are booked as tester traffic.
            booking = rules.match(self._headers)
            if booking is not None:
                exchange.sticky = booking
        self._current = exchange
        self.new.append(exchange)

    def _upstream_head(
        self, method: bytes, url: bytes, headers: list[tuple[bytes, bytes]], websocket: bool
    ) -> bytes:
        """The head sent to the target: the client's headers but those we drop, then
        X-Forwarded-*, a trace id unless the client sent one, the body's framing."""
        xff = self._client_ip if self._xff is None else self._xff + b", " + self._client_ip
        parts = [method, b" ", url, b" HTTP/1.1\r\n"]
        for name, value in headers:
            parts += (name, b": ", value, b"\r\n")
        parts += (b"X-Forwarded-For: ", xff, b"\r\n", self._forwarded)
        if not self._has_trace:
            parts.append(trace_header(time.monotonic()))
        if self._chunked:
            parts.append(self._transfer_encoding())
        if websocket:
            parts.append(b"Connection: Upgrade\r\nUpgrade: websocket\r\n")
        parts.append(b"\r\n")
        return b"".join(parts)

    def _target_and_host(
        self, method: bytes, version: str
    ) -> tuple[bytes, list[tuple[bytes, bytes]]]:
        """The request target to send and the headers with exactly one valid Host, or a
        FramingError: HTTP/0.9, a missing (HTTP/1.1), repeated or invalid Host -> 400 as
        on ALB (RFC 9112 3.2). HTTP/1.0 without Host gets the listener's address, as ALB
        gives its own name. An absolute-form target (RFC 9112 3.2.2) is accepted: its
        authority replaces any Host and it goes on in origin form (`*` for a bare
        OPTIONS, 3.2.4)."""
        if version not in ("1.1", "1.0"):
            raise FramingError("only HTTP/1.0 and HTTP/1.1 are supported")
        url = b"".join(self._url)
        headers = self._headers
        if url[:1] == b"/" or (url == b"*" and method == b"OPTIONS"):
            if self._host is None:
                if version == "1.1":
                    raise FramingError("no Host header")
                return url, [(b"Host", self._own_host), *headers]
            if _HOST.fullmatch(self._host) is None:
                raise FramingError("invalid Host header")
            return url, headers
        match = _ABSOLUTE_FORM.fullmatch(url)
        if match is None or _HOST.fullmatch(match[1]) is None:
            raise FramingError("invalid request target")
        path = match[2] or (b"*" if method == b"OPTIONS" else b"/")
        if path[:1] == b"?":
            path = b"/" + path
        rest = [(n, v) for n, v in headers if n.lower() != b"host"]
        return path, [(b"Host", match[1]), *rest]

    def _transfer_encoding(self) -> bytes:
        """Our Transfer-Encoding line: the client's codings (gzip, ...) are kept, and the
        chunked that llhttp requires last is ours, since we re-chunk the body."""
        codings = [c.strip() for v in self._codings for c in v.split(b",") if c.strip()]
        for coding in codings[:-1]:
            if _CODING.fullmatch(coding) is None or coding.lower() == b"chunked":
                raise FramingError("invalid Transfer-Encoding")
        return b"Transfer-Encoding: " + b", ".join([*codings[:-1], b"chunked"]) + b"\r\n"

    def _is_websocket_handshake(self, method: bytes) -> bool:
        """RFC 6455 4.1: an HTTP/1.1 GET, without a body, asking for `websocket`."""
        return (
            method == b"GET"
            and self._parser.get_http_version() == "1.1"
            and b"websocket" in {token.strip() for token in self._upgrade.split(b",")}
            and not (self._chunked or self._content_length)
        )

    def on_body(self, body: bytes) -> None:
        exchange = self._current
        if exchange is None:
            return
        if self._chunked:
            # Re-chunk what llhttp decoded: the target only ever sees our framing.
            exchange.out.append(chunk(body))
        else:
            exchange.out.append(body)

    def on_message_complete(self) -> None:
        exchange = self._current
        chunked = self._chunked
        self._reset_head()
        self.at_boundary = True
        if exchange is None:
            return
        if chunked:
            exchange.out.append(LAST_CHUNK)
        exchange.request_complete = True
        self.closing = not exchange.keep_alive
        self._current = None
