"""The target side of the hot path: one pooled keep-alive connection to a target.

A whole simple response head with a Content-Length is checked and rewritten once per
distinct head (see response_head) and its body counted; other responses are parsed
with httptools (see parsed_response). Either way they stream to the client as they
arrive (never buffered whole); the connection goes back to its target's idle pool when
both the request and the response completed cleanly, and any byte the target sends
while no request is outstanding closes it (see attach): it never reaches a client.
"""

from __future__ import annotations

import asyncio
import select
import time

from canary_deploy.balancer.exchange import Exchange, RoutedTarget
from canary_deploy.balancer.flow import FlowControl, Paused
from canary_deploy.balancer.limits import MAX_IDLE_PER_TARGET
from canary_deploy.balancer.metrics import MetricsRecorder
from canary_deploy.balancer.parsed_response import ParsedResponses
from canary_deploy.balancer.response_head import (
    MAX_SIMPLE_HEAD_BYTES,
    simple_response_head,
)
from canary_deploy.balancer.routing import Stickiness

_monotonic = time.monotonic


class UpstreamConnection(ParsedResponses, asyncio.Protocol):
    """A keep-alive HTTP/1.1 connection from the balancer to one target."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        metrics: MetricsRecorder,
        target: RoutedTarget,
        stickiness: Stickiness | None,
    ) -> None:
        super().__init__()
        self.loop = loop
        self.metrics = metrics
        self.target = target
        self.stickiness = stickiness
        self.transport = None  # (declared by ParsedResponses: never annotate it again)
        # Polls the socket for bytes the loop has not delivered yet (see attach).
        self._unread: select.poll | None = None
        self.exchange = None  # (declared by ParsedResponses)
        self.last_activity = _monotonic()
        self.usable = False
        self._reused = False
        self._got_bytes = False
        self.flow = FlowControl()  # this connection's reading (paused by a slow client)
        self._remaining = 0  # fast path: body bytes still to pass on
        self._fast_keep_alive = False

    # ---- asyncio callbacks

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = self.flow.transport = transport
        self.usable = True
        sock = transport.get_extra_info("socket")
        if sock is not None:
            self._unread = select.poll()
            self._unread.register(sock.fileno(), select.POLLIN)

    def connection_lost(self, exc: Exception | None) -> None:
        self.usable = False
        self._remaining = 0
        idle = self.target.idle
        if self in idle:
            idle.remove(self)
        exchange = self.exchange
        if exchange is None:
            return
        if self._until_eof and exchange.response_started:
            self._finish_body()
            self._complete(False)
            return
        self.exchange = None
        exchange.upstream = None
        client = exchange.client
        if client is None or exchange.done:
            return
        if (
            self._reused
            and not self._got_bytes
            and not exchange.has_body
            and exchange.idempotent
            and exchange.request_complete
            and exchange.target is not None
        ):
            # A pooled connection the target closed just as we reused it: the request
            # never reached the application, so it is safe to send again on a new one.
            exchange.out = [exchange.head]
            client.connect(exchange, exchange.target)
            return
        client.upstream_failed(exchange, 502)

    def data_received(self, data: bytes) -> None:
        now = self.last_activity = _monotonic()
        self._got_bytes = True
        exchange = self.exchange
        if exchange is None:
            self.close()  # bytes nobody asked for: the connection is out of sync
            return
        if self._remaining:
            self._count_body(exchange, data)
            return
        if (
            self._awaiting_head
            and not self._head_buf
            and not exchange.is_head
            and self._fast_response(exchange, data, now)
        ):
            return
        self._parse(data)

    def _fast_response(self, exchange: Exchange, data: bytes, now: float) -> bool:
        """Pass on a simple response (response_head), body counted; False: use the parser."""
        end = data.find(b"\r\n\r\n", 0, MAX_SIMPLE_HEAD_BYTES) + 4
        verdict = simple_response_head(data[:end]) if end > 3 else None
        if verdict is None:
            return False
        head, status, length, keep_alive = verdict
        remaining = length - (len(data) - end)
        if remaining < 0:
            return False  # bytes after the response: the parser handles the oddity
        self.metrics.record_response(exchange.booking, status, now - exchange.sent_at)
        exchange.response_started = True
        client = exchange.client
        if client is not None:
            if self.stickiness is None and exchange.keep_alive and not exchange.http10:
                added = b""  # what _added_headers gives then (tests: test_hot_path_copies)
            else:
                added = self._added_headers(exchange, now)
            client.transport.write(b"".join((head, added, b"\r\n", data[end:])))
        if remaining:
            self._remaining = remaining
            self._fast_keep_alive = keep_alive
        else:
            self._complete(keep_alive)
        return True

    def _count_body(self, exchange: Exchange, data: bytes) -> None:
        """The rest of a fast-path body: forwarded as it comes, counted, never parsed."""
        remaining = self._remaining
        client = exchange.client
        if len(data) < remaining:
            self._remaining = remaining - len(data)
            if client is not None:
                client.transport.write(data)
            return
        self._remaining = 0
        if client is not None:
            client.transport.write(data if len(data) == remaining else data[:remaining])
        # Bytes beyond the response mean the target is out of sync: do not reuse it.
        self._complete(self._fast_keep_alive and len(data) == remaining)

    def pause_writing(self) -> None:
        # A slow target: stop reading the client's request body.
        exchange = self.exchange
        if exchange is not None and exchange.client is not None:
            exchange.client.flow.pause(Paused.SLOW_TARGET)

    def resume_writing(self) -> None:
        exchange = self.exchange
        if exchange is not None and exchange.client is not None:
            exchange.client.flow.resume(Paused.SLOW_TARGET)

    # ---- driven by the client side

    def attach(self, exchange: Exchange, reused: bool, now: float) -> bool:
        """Send this exchange's request (head and whatever body arrived so far).

        `reused`: the connection comes from the idle pool (a stale one may be retried);
        `now`: the caller's monotonic clock reading, the request's send time.
        False: the target sent bytes (or closed) before any request was sent; they are
        not a response to this one, so the connection is closed and nothing was sent.
        """
        unread = self._unread
        if unread is not None and unread.poll(0):
            # Bytes the loop has not delivered yet (it reads a connection only when it
            # polls): once the request is sent they would pass for its response.
            self.close()
            return False
        self.exchange = exchange
        self.usable = False
        self._reused = reused
        self._got_bytes = False
        exchange.upstream = self
        out = exchange.out
        self.transport.write(out[0] if len(out) == 1 else b"".join(out))
        out.clear()
        self.last_activity = exchange.sent_at = now
        return True

    def send_body(self, exchange: Exchange) -> None:
        out = exchange.out
        self.transport.write(out[0] if len(out) == 1 else b"".join(out))
        out.clear()
        self.last_activity = _monotonic()

    def release(self) -> None:
        """Back to the target's idle pool, or closed when the pool is full or draining."""
        target = self.target
        flow = self.flow
        if flow.paused_by:  # (rare: the call is skipped on the hot path)
            # The client's last write paused us just before the response ended.
            flow.resume(Paused.SLOW_CLIENT)
        if (
            self.usable
            and not self.transport.is_closing()
            and target.state != "draining"
            and len(target.idle) < MAX_IDLE_PER_TARGET
        ):
            target.idle.append(self)
        else:
            self.close()

    def abandon(self) -> None:
        """The client went away mid-exchange: this connection is out of sync, close it."""
        self.exchange = None
        self.close()

    def close(self) -> None:
        self.usable = False
        if self.transport is not None:
            self.transport.close()

    def timed_out(self) -> None:
        """No byte from the target within the idle timeout: 504 (or abort if mid-body)."""
        self._fail(504)

    def _fail(self, status: int) -> None:
        exchange = self.exchange
        self.exchange = None
        self._remaining = 0
        self.usable = False
        self._to_client.clear()
        if self.transport is not None:
            self.transport.abort()
        if exchange is None:
            return
        exchange.upstream = None
        if exchange.client is not None:
            exchange.client.upstream_failed(exchange, status)

    def _complete(self, keep_alive: bool) -> None:
        exchange = self.exchange
        if exchange is None:
            return
        client = exchange.client
        out = self._to_client
        if out:
            # The response goes out before anything the client does next.
            if client is not None:
                client.transport.write(out[0] if len(out) == 1 else b"".join(out))
            out.clear()
        self.exchange = None
        exchange.upstream = None
        target = exchange.target
        if target is not None:  # Exchange.release_target, inlined: the hot path
            target.outstanding -= 1
            exchange.target = None
        self.usable = keep_alive and exchange.request_complete and self.transport is not None
        if self._feeding:
            # Inside the parser's feed: more bytes may follow the response in this read.
            # Settle once the feed returns, when it is known whether any did.
            self._finished = exchange
            return
        # _settle, inlined: every fast-path response ends here (a differential test holds
        # the copy to the reference, tests/balancer/test_hot_path_copies.py).
        if self.usable:
            self.release()
        else:
            self.close()
        if client is not None:
            flow = client.flow
            if flow.paused_by:  # (rare: the call is skipped on the hot path)
                flow.resume(Paused.SLOW_TARGET)
            client.exchange_done(exchange)

    def _settle(self, exchange: Exchange) -> None:
        """Pool or close the connection, then let the client go on with its next request
        (the reference for the copy in _complete)."""
        client = exchange.client
        if self.usable:
            self.release()
        else:
            self.close()
        if client is not None:
            flow = client.flow
            if flow.paused_by:  # (rare: the call is skipped on the hot path)
                # If we paused the client as a slow target, nobody else would resume it.
                flow.resume(Paused.SLOW_TARGET)
            client.exchange_done(exchange)
