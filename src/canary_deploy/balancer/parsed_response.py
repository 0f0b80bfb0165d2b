"""The responses the fast path leaves to httptools, as UpstreamConnection passes them on.

Chunked and close-delimited bodies, HEAD, 1xx, a 101 that answers a WebSocket handshake,
heads that arrive in pieces or do not qualify for the fast path: llhttp parses them, the
head is filtered for the client (response_head.parsed_response_head) and the body is
re-chunked (or left close-delimited for HTTP/1.0 clients) as it arrives. The bytes for
the client from one read are written with one call, once the feed returned: only then
is it known whether anything followed a complete response (see _settle_after_feed).

`ParsedResponses` is UpstreamConnection's base: it keeps the parser's state and gets
httptools' callbacks; the connection's life (sending, pooling, failing) stays there.
"""

from __future__ import annotations

import re
import time
from typing import Any

import httptools

from canary_deploy.balancer.exchange import Exchange
from canary_deploy.balancer.http11 import LAST_CHUNK, chunk
from canary_deploy.balancer.limits import MAX_RESPONSE_HEAD_BYTES
from canary_deploy.balancer.metrics import MetricsRecorder
from canary_deploy.balancer.response_head import parsed_response_head
from canary_deploy.balancer.routing import Stickiness
from canary_deploy.balancer.tunnel import open_tunnel

_NO_BODY_STATUS = (204, 304)
_TO_WEBSOCKET = re.compile(rb"\r\nupgrade[ \t]*:[ \t]*websocket[ \t]*(?:\r|\Z)", re.I)
_CHUNKED = b"Transfer-Encoding: chunked\r\n"
_TRANSFER_ENCODING = re.compile(rb"\r\ntransfer-encoding[ \t]*:([^\r]*)", re.I)
_monotonic = time.monotonic


def chunked_to_client(head: bytes) -> bytes:
    """The Transfer-Encoding line for a body the balancer re-chunks: the target's other
    codings (gzip, ...) are kept, in order, and chunked (ours) is last.

    >>> chunked_to_client(b"HTTP/1.1 200 OK\\r\\nTransfer-Encoding: gzip, chunked")
    b'Transfer-Encoding: gzip, chunked\\r\\n'
    """
    codings = [
        coding.strip(b" \t")
        for value in _TRANSFER_ENCODING.findall(head)
        for coding in value.split(b",")
    ]
    kept = [c for c in codings if c and c.lower() != b"chunked"]
    return b"Transfer-Encoding: " + b", ".join([*kept, b"chunked"]) + b"\r\n"


class ParsedResponses:
    """httptools' callbacks for one target connection, and the state they keep."""

    # The connection's, set by UpstreamConnection.
    exchange: Exchange | None
    metrics: MetricsRecorder
    stickiness: Stickiness | None
    transport: Any
    usable: bool

    def __init__(self) -> None:
        self._parser = httptools.HttpResponseParser(self)
        self._reset_parser = False
        self._feeding = False  # inside the parser's feed_data
        self._finished: Exchange | None = None  # completed inside that feed, not settled
        self._excess = False  # bytes followed the completed response in that feed
        self._head_keep_alive = False
        self._head_buf = b""  # raw bytes of the response head(s) being received
        self._head_start = 0
        self._awaiting_head = True
        self._interim = False
        self._switching: Exchange | None = None  # its WebSocket handshake got a 101
        self._chunked_out = False  # re-chunk the body for the client
        self._until_eof = False  # the target delimits the body by closing
        # Bytes for the client from one feed, written with one call (one syscall).
        self._to_client: list[bytes] = []

    # ---- the connection's part (UpstreamConnection)

    def _complete(self, keep_alive: bool) -> None:
        """The response ended: hand it over, then pool or close (see _settle)."""
        raise NotImplementedError

    def _settle(self, exchange: Exchange) -> None:
        raise NotImplementedError

    def _fail(self, status: int) -> None:
        raise NotImplementedError

    # ---- parsing

    def _parse(self, data: bytes) -> None:
        """Feed a read to httptools; whatever it completes goes to the client at the end."""
        if self._awaiting_head:
            # Targets never pipeline (we send one request at a time), so a head always
            # starts a chunk and only interim 1xx heads can precede it.
            self._head_buf = self._head_buf + data if self._head_buf else data
        self._feeding = True
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade as exc:
            self._feeding = False
            self._switch_protocols(data[exc.args[0] :])
            return
        except httptools.HttpParserError:
            if self._finished is not None:
                self._excess = True  # garbage after a complete response
            elif not self._reset_parser:
                self._feeding = False
                self._fail(502)
                return
            # else: garbage after a HEAD response's head, which ended it (closed below)
        self._feeding = False
        if self._finished is not None:
            self._settle_after_feed()
            return
        if self._awaiting_head and len(self._head_buf) > MAX_RESPONSE_HEAD_BYTES:
            self._fail(502)
            return
        if self._reset_parser:
            # A HEAD response ended with its head; a fresh parser expects the next one.
            self._parser = httptools.HttpResponseParser(self)
            self._reset_parser = False
            self._awaiting_head = True
            self._complete(self._head_keep_alive)
        elif self._to_client:
            self._flush()

    def _flush(self) -> None:
        out = self._to_client
        exchange = self.exchange
        if exchange is not None and exchange.client is not None:
            exchange.client.transport.write(out[0] if len(out) == 1 else b"".join(out))
        out.clear()

    def on_headers_complete(self) -> None:
        """A response head is whole: drop a 1xx, else book the response and queue the head
        the client gets, with the body's framing for that client.
        (Long as the one place a response's head becomes the client's; split, each part
        would cost a call on the path of every response the head cache misses.)"""
        buf = self._head_buf
        end = buf.find(b"\r\n\r\n", self._head_start)
        if end - self._head_start > MAX_RESPONSE_HEAD_BYTES:
            # Also when the read that crossed the limit ended the head: a 502 whatever
            # the read boundaries were.
            raise ValueError("response head too large")
        head = buf[self._head_start : end]  # status line and headers, no final CRLF
        self._head_start = end + 4
        status: int = self._parser.get_status_code()
        if status < 200:
            self._interim = True  # 1xx: we answered Expect ourselves; drop it
            if status == 101:
                self._switching_protocols(head)
            return
        self._awaiting_head = False
        self._head_buf = b""
        self._head_start = 0
        exchange = self.exchange
        if exchange is None:
            return
        raw_head = head
        head, has_length, chunked = parsed_response_head(head)
        no_body = exchange.is_head or status in _NO_BODY_STATUS
        if chunked and exchange.http10 and not no_body and chunked_to_client(raw_head) != _CHUNKED:
            # A coding like gzip that nobody asked for (TE is hop-by-hop): an HTTP/1.1
            # client gets it as it came, an HTTP/1.0 one cannot be told (RFC 9112 6.1).
            raise ValueError("a transfer coding an HTTP/1.0 client cannot get")  # 502
        self.metrics.record_response(exchange.booking, status, _monotonic() - exchange.sent_at)
        parts = [head, b"\r\n"]
        if exchange.is_head and chunked:
            if not exchange.http10:
                parts.append(chunked_to_client(raw_head))
        elif not no_body and not has_length:
            # Chunked or close-delimited from the target: chunked to the client, or to an
            # HTTP/1.0 client (which knows no chunked coding) ended by closing.
            self._until_eof = not chunked
            if exchange.http10:
                exchange.keep_alive = False
            else:
                self._chunked_out = True
                parts.append(chunked_to_client(raw_head) if chunked else _CHUNKED)
        parts += (self._added_headers(exchange, _monotonic()), b"\r\n")
        exchange.response_started = True
        self._to_client.append(b"".join(parts))
        if exchange.is_head:
            # httptools cannot be told a response has no body, so for HEAD the message
            # ends with its head and the parser is replaced once this feed returns.
            # Bytes after its head (a body it must not have) mean the target is out of
            # sync: the connection is closed, and the parser swallows them.
            self._reset_parser = True
            self._head_keep_alive = self._parser.should_keep_alive() and end + 4 == len(buf)

    def _added_headers(self, exchange: Exchange, now: float) -> bytes:
        """What the balancer adds to a response head for the client (both paths): the
        sticky cookie, and Connection when the client would otherwise guess wrong.
        (Nothing without stickiness for a keep-alive HTTP/1.1 client: the fast path
        skips the call then, and a test holds that condition to this function.)"""
        stickiness = self.stickiness
        cookie = b"" if stickiness is None else stickiness.set_cookie_header(exchange.booking, now)
        if not exchange.keep_alive:
            return cookie + b"Connection: close\r\n"
        if exchange.http10:
            return cookie + b"Connection: keep-alive\r\n"  # or HTTP/1.0 assumes a close
        return cookie

    def _switching_protocols(self, head: bytes) -> None:
        """A 101 to WebSocket: passed on when it answers a WebSocket handshake, and the
        parser then stops (HttpParserUpgrade, see _switch_protocols); a 101 to anything
        else, or that nobody asked for, is a 502 then (or dropped, without Upgrade)."""
        exchange = self.exchange
        if (
            exchange is None
            or exchange.upgrade is None
            or not self._parser.should_upgrade()
            or _TO_WEBSOCKET.search(head) is None
        ):
            return
        self._switching = exchange
        now = _monotonic()
        self.metrics.record_response(exchange.booking, 101, now - exchange.sent_at)
        exchange.response_started = True
        stickiness = self.stickiness
        cookie = b"" if stickiness is None else stickiness.set_cookie_header(exchange.booking, now)
        # Its own hop-by-hop headers go, like any response's; these two are the switch.
        head = parsed_response_head(head)[0]
        self._to_client.append(
            b"%b\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n%b\r\n" % (head, cookie)
        )

    def _switch_protocols(self, from_target: bytes) -> None:
        """The parser stopped after a 101: this connection leaves the pool for a tunnel
        with the client, or, if the 101 answered no WebSocket handshake, is a 502."""
        exchange, self._switching = self._switching, None
        if exchange is None or exchange is not self.exchange or exchange.client is None:
            self._fail(502)
            return
        self._flush()  # the 101
        self.exchange = None
        exchange.upstream = None
        self.usable = False
        open_tunnel(exchange.client, exchange, self.transport, from_target)

    def on_body(self, body: bytes) -> None:
        if self.exchange is None or self._reset_parser:
            return
        if self._chunked_out:
            self._to_client.append(chunk(body))
        else:
            self._to_client.append(body)

    def on_message_complete(self) -> None:
        if self._interim:
            self._interim = False
            return
        if self.exchange is None or self._reset_parser:
            return
        self._awaiting_head = True
        if self._chunked_out:
            self._to_client.append(LAST_CHUNK)
            self._chunked_out = self._until_eof = False
        self._complete(self._parser.should_keep_alive())

    def on_message_begin(self) -> None:
        if self._finished is not None:
            self._excess = True  # a second message in the read that completed the first

    def _finish_body(self) -> None:
        if self._chunked_out:
            self._to_client.append(LAST_CHUNK)
        self._chunked_out = False
        self._until_eof = False

    def _settle_after_feed(self) -> None:
        """A response completed inside the last feed. Any byte after it (the parser began
        another message, or choked on garbage) means the target is out of sync: the
        connection is closed, never pooled, and none of those bytes reaches anyone."""
        exchange, self._finished = self._finished, None
        if self._excess:
            self._excess = False
            self.usable = False
            self._to_client.clear()
        if exchange is not None:
            self._settle(exchange)
