"""The client side of the hot path: an asyncio Protocol per client connection.

Requests are parsed by `RequestReader`, routed by the `Router`, and sent over pooled
`UpstreamConnection`s; responses come back in order (pipelined requests wait their
turn). No per-request logging and no per-request tasks: a task exists only while a
new upstream connection is being opened.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from typing import Any

import httptools

from canary_deploy.balancer.metrics import MetricsRecorder
from canary_deploy.balancer.parser import (
    SERIAL_MASK,
    SIMPLE_REQUEST,
    SIMPLE_REQUEST_MAX,
    Exchange,
    FramingError,
    RequestReader,
    TracePrefix,
    rejection_status,
    trace_serial,
)
from canary_deploy.balancer.responses import CONTINUE, error_response
from canary_deploy.balancer.routing import Router, Stickiness, Target
from canary_deploy.balancer.upstream import UpstreamConnection

# Pipelined requests queued per client before we stop reading from it.
MAX_PIPELINE = 16
# ALB gives up on a target connection after 10 s (or the idle timeout if shorter).
CONNECT_TIMEOUT_S = 10.0
_monotonic = time.monotonic  # one clock for every idle-timeout comparison
_next = next


class ProxyContext:
    """What every connection of one listener shares."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        router: Router,
        metrics: MetricsRecorder,
        *,
        idle_timeout_s: float,
        stickiness: Stickiness | None,
        listen_port: int = 0,
    ) -> None:
        self.loop = loop
        self.router = router
        self.metrics = metrics
        self.idle_timeout_s = idle_timeout_s
        self.stickiness = stickiness
        self.listen_port = str(listen_port).encode()
        self.clients: set[ClientConnection] = set()
        self.connecting: set[asyncio.Task[None]] = set()

    def sweep(self) -> None:
        """Enforce the idle timeout: close idle clients, 504 silent targets, drop idle pools.

        One periodic sweep instead of a timer per request keeps the hot path free of
        timer churn; the timeout is honoured to within the sweep period.
        """
        now = _monotonic()
        limit = self.idle_timeout_s
        for client in list(self.clients):
            client.check_idle(now, limit)
        for group in self.router.groups.values():
            for target in group.targets.values():
                for upstream in list(target.idle):
                    if now - upstream.last_activity > limit:
                        upstream.close()


class ClientConnection(asyncio.Protocol):
    """One client's keep-alive connection to the listener."""

    def __init__(self, ctx: ProxyContext) -> None:
        self.ctx = ctx
        self._chooser = ctx.router.chooser  # the fast path routes without Router.choose
        self._groups = ctx.router.groups
        self.transport: Any = None
        self.queue: deque[Exchange] = deque()
        self.reader: RequestReader | None = None
        self._suffix = b""  # X-Forwarded-* lines for this client, built once
        self.last_activity = _monotonic()
        self._error_status = 0  # a framing error waiting for earlier responses
        self._closed = False

    # ---- asyncio callbacks

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        peer = transport.get_extra_info("peername")
        client_ip = str(peer[0]).encode() if isinstance(peer, tuple) else b"127.0.0.1"
        self.reader = RequestReader(self, client_ip, self.ctx.listen_port, self.ctx.stickiness)
        self._suffix = self.reader.forwarded_suffix()
        self.ctx.clients.add(self)

    def data_received(self, data: bytes) -> None:
        reader = self.reader
        if reader is None or self._error_status:
            return
        now = self.last_activity = _monotonic()
        if (
            not self.queue
            and reader.at_boundary
            and len(data) <= SIMPLE_REQUEST_MAX
            and (match := SIMPLE_REQUEST.fullmatch(data)) is not None
        ):
            # The fast path (see SIMPLE_REQUEST): the head as it came, minus its final
            # CRLF, plus our headers; then straight to a target, no parser callbacks.
            # Trace id, routing and dispatch are inlined: each call saved here is paid
            # once per request.
            if now >= TracePrefix.until:
                TracePrefix.refresh(now)
            exchange = Exchange(
                self,
                b"".join(
                    (
                        data[:-2],
                        self._suffix,
                        TracePrefix.header,
                        b"%08x\r\n\r\n" % (_next(trace_serial) & SERIAL_MASK),
                    )
                ),
            )
            exchange.is_head = match.end(1) == 4
            exchange.idempotent = exchange.request_complete = True
            self.queue.append(exchange)
            # No cookie, so no stickiness: the next group of the weighted schedule.
            chooser = self._chooser
            tick = chooser.tick
            chooser.tick = tick + 1 if tick < 99 else 0
            version = exchange.version = chooser.schedule[tick]
            group = self._groups[version]
            target = group.only or group.pick()
            if target is None:
                self._no_target(exchange)
                return
            target.outstanding += 1
            exchange.target = target
            idle = target.idle
            while idle:
                upstream = idle.pop()
                if upstream.usable and upstream.attach(exchange, True, now):
                    return
            self.connect(exchange, target)
            return
        try:
            reader.parser.feed_data(data)  # RequestReader.feed(), inlined: the hot path
            if reader.in_head:
                reader.head_pending(len(data))
        except FramingError as exc:
            self._reject(exc.status)
            return
        except httptools.HttpParserUpgrade as exc:
            # Only a WebSocket handshake gets here (the parser refuses other upgrades).
            self._upgrade_requested(data[exc.args[0] :])
            return
        except httptools.HttpParserError as exc:
            self._reject(rejection_status(exc))
            return
        if reader.new:
            self.queue.extend(reader.new)
            reader.new.clear()
            if len(self.queue) > MAX_PIPELINE:
                self.transport.pause_reading()
        self._pump()

    def _upgrade_requested(self, rest: bytes) -> None:
        """A WebSocket handshake ended this read: no more HTTP from this client. What it
        sends next waits (reading paused) for the target's answer: after a 101 it goes to
        the tunnel (see tunnel.py), after anything else the connection closes."""
        assert self.reader is not None
        new = self.reader.new
        new[-1].upgrade = rest
        self.queue.extend(new)
        new.clear()
        self.reader = None
        self.transport.pause_reading()
        self._pump()

    def connection_lost(self, exc: Exception | None) -> None:
        self._closed = True
        self.ctx.clients.discard(self)
        for exchange in self.queue:
            exchange.done = True
            exchange.release_target()
            upstream = exchange.upstream
            if upstream is not None:
                # The target's response would have nowhere to go: never reuse this one.
                upstream.abandon()
        self.queue.clear()

    def pause_writing(self) -> None:
        # A slow client: stop reading the target until the client catches up.
        if self.queue and self.queue[0].upstream is not None:
            self.queue[0].upstream.pause_reading()

    def resume_writing(self) -> None:
        if self.queue and self.queue[0].upstream is not None:
            self.queue[0].upstream.resume_reading()

    # ---- flow

    def _pump(self) -> None:
        """Start the oldest waiting request, or pass on the body bytes it gained."""
        if not self.queue:
            return
        exchange = self.queue[0]
        if exchange.target is None and not exchange.done and exchange.upstream is None:
            self._dispatch(exchange)
            return
        upstream = exchange.upstream
        if upstream is not None and exchange.out:
            upstream.send_body(exchange)

    def _dispatch(self, exchange: Exchange) -> None:
        ctx = self.ctx
        version, target = ctx.router.choose(exchange.sticky)
        exchange.version = version
        if target is None:
            self._no_target(exchange)
            return
        target.outstanding += 1
        exchange.target = target
        if exchange.expect_continue and not exchange.request_complete:
            self.transport.write(CONTINUE)
        idle = target.idle
        while idle:
            upstream = idle.pop()
            if upstream.usable and upstream.attach(exchange, True, _monotonic()):
                return
        self.connect(exchange, target)

    def _no_target(self, exchange: Exchange) -> None:
        """The chosen group has no registered target: ALB's 503."""
        self.ctx.metrics.record_balancer_error(exchange.version, 503)
        self.local_response(exchange, 503)

    def connect(self, exchange: Exchange, target: Target) -> None:
        """Open a new connection to the target for this exchange (off the fast path)."""
        task = self.ctx.loop.create_task(self._connect(exchange, target))
        self.ctx.connecting.add(task)
        task.add_done_callback(self.ctx.connecting.discard)

    async def _connect(self, exchange: Exchange, target: Target) -> None:
        ctx = self.ctx
        try:
            _, upstream = await asyncio.wait_for(
                ctx.loop.create_connection(
                    lambda: UpstreamConnection(ctx.loop, ctx.metrics, target, ctx.stickiness),
                    target.host,
                    target.port,
                ),
                timeout=min(CONNECT_TIMEOUT_S, ctx.idle_timeout_s),
            )
        except TimeoutError:
            self.upstream_failed(exchange, 504)
            return
        except OSError:
            self.upstream_failed(exchange, 502)
            return
        if exchange.done:
            upstream.release()
            return
        if not (upstream.usable and upstream.attach(exchange, False, _monotonic())):
            self.upstream_failed(exchange, 502)  # it spoke (or closed) before it was asked

    def upstream_failed(self, exchange: Exchange, status: int) -> None:
        """The target could not give a response: answer with the balancer's own error."""
        if exchange.done:
            return
        if exchange.response_started:
            exchange.done = True
            exchange.release_target()
            self.transport.abort()
            return
        self.ctx.metrics.record_balancer_error(exchange.version, status)
        self.local_response(exchange, status)

    def local_response(self, exchange: Exchange, status: int) -> None:
        exchange.release_target()
        exchange.upstream = None
        keep_alive = exchange.keep_alive and exchange.request_complete
        exchange.keep_alive = keep_alive
        if not self._closed:
            self.transport.write(error_response(status, keep_alive))
        self.exchange_done(exchange)

    def exchange_done(self, exchange: Exchange) -> None:
        """The response is complete: close, or move on to the next pipelined request."""
        exchange.done = True
        if self.queue and self.queue[0] is exchange:
            self.queue.popleft()
        self.last_activity = _monotonic()
        if self._closed:
            return
        if not (exchange.keep_alive and exchange.request_complete):
            self.transport.close()
            return
        if self.queue:
            if len(self.queue) == MAX_PIPELINE:
                self.transport.resume_reading()
            self._pump()
        elif self._error_status:
            self._send_error()

    def _reject(self, status: int) -> None:
        """Invalid framing: forward nothing more, answer `status` once earlier responses left."""
        self._error_status = status
        self.ctx.metrics.rejected_400 += 1
        self.transport.pause_reading()
        # Drop what has not reached a target; abort a half-forwarded request.
        while len(self.queue) > 1 or (self.queue and self.queue[0].upstream is None):
            dropped = self.queue.pop()
            dropped.done = True
            dropped.release_target()
        if self.queue and not self.queue[0].request_complete:
            exchange = self.queue.popleft()
            exchange.done = True
            exchange.release_target()
            if exchange.upstream is not None:
                exchange.upstream.abandon()
                exchange.upstream = None
            if exchange.response_started:
                self.transport.abort()
                return
        if not self.queue:
            self._send_error()

    def _send_error(self) -> None:
        self.transport.write(error_response(self._error_status, False))
        self.transport.close()

    def check_idle(self, now: float, limit: float) -> None:
        """Called by the sweep: 504 a request whose target went silent, close idle clients."""
        if self.queue:
            upstream = self.queue[0].upstream
            if upstream is not None and now - upstream.last_activity > limit:
                upstream.timed_out()
        elif now - self.last_activity > limit:
            self.transport.close()
