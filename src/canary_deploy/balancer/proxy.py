"""The client side of the hot path: an asyncio Protocol per client connection.

Requests are parsed by `RequestReader`, routed by the `Router`, and sent over pooled
`UpstreamConnection`s; responses come back in order (pipelined requests wait their
turn). No per-request logging and no per-request tasks: a task exists only while a
new upstream connection is being opened.

Memory per client is bounded (see limits): its head by MAX_HEAD_BYTES, the bytes no
target has taken yet by MAX_HELD_BYTES (reading stops past it), and the clients by the
connection cap. What the balancer refuses or times out on the client's side is booked
on no target group (`MetricsRecorder.reject`), so it never counts against a target group.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import socket
import struct
import time
from collections import deque
from typing import Any

import httptools

try:
    from mypy_extensions import mypyc_attr
except ImportError:  # only mypyc needs it (see canary_deploy.speedups)

    def mypyc_attr(*args: Any, **kwargs: Any) -> Any:  # type: ignore[misc]
        return lambda cls: cls


from canary_deploy.balancer.clock import SERIAL_MASK, TracePrefix, trace_serial
from canary_deploy.balancer.context import ProxyContext as ProxyContext  # re-exported
from canary_deploy.balancer.exchange import Exchange, RoutedTarget
from canary_deploy.balancer.flow import FlowControl, Paused
from canary_deploy.balancer.limits import (
    CONNECT_TIMEOUT_S,
    EXCHANGE_COST_BYTES,
    MAX_HELD_BYTES,
    MAX_HELD_TOTAL_BYTES,
    SIMPLE_REQUEST_MAX,
)
from canary_deploy.balancer.parser import (
    FramingError,
    RequestReader,
    rejection_status,
)
from canary_deploy.balancer.responses import CONTINUE, error_response
from canary_deploy.balancer.upstream import UpstreamConnection

# A target connection that fails with these is the balancer's own exhaustion (no file
# descriptor, no buffer, no memory), not the target's fault: 503, booked on no group.
OWN_EXHAUSTION = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})
_monotonic = time.monotonic  # one clock for every idle-timeout comparison
# SO_LINGER on with a zero timeout: close() then sends a reset (struct linger).
_RESET_ON_CLOSE = struct.pack("ii", 1, 0)


# Tests subclass it to stop a request before it is sent (tests/balancer/fuzz/parsers.py).
@mypyc_attr(allow_interpreted_subclasses=True)
class ClientConnection(asyncio.Protocol):
    """One client's keep-alive connection to the listener."""

    def __init__(self, ctx: ProxyContext) -> None:
        self.ctx = ctx
        self._chooser = ctx.router.chooser  # the fast path routes without Router.choose
        self._groups = ctx.router.groups
        self._rules = ctx.rules  # the fast path's pattern refuses the heads rules read
        self.transport: Any = None
        self.queue: deque[Exchange] = deque()
        self.reader: RequestReader | None = None
        self._suffix = b""  # X-Forwarded-* lines for this client, built once
        self.last_activity = _monotonic()
        self.held = 0  # bytes received that no target has yet (see limits.MAX_HELD_BYTES)
        self.flow = FlowControl()  # this client's reading
        self._error_status = 0  # a framing error waiting for earlier responses
        self._closed = False

    # ---- asyncio callbacks

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = self.flow.transport = transport
        ctx = self.ctx
        if len(ctx.clients) >= ctx.max_connections:
            # The connection cap: a clear refusal that reads nothing (reader stays None).
            ctx.metrics.reject(503)
            self.transport.write(error_response(503, False))
            self.transport.close()
            return
        peer = transport.get_extra_info("peername")
        client_ip = str(peer[0]).encode() if isinstance(peer, tuple) else b"127.0.0.1"
        self.reader = RequestReader(
            self, client_ip, ctx.listen_port, ctx.stickiness, ctx.listen_host, ctx.rules
        )
        self._suffix = self.reader.forwarded_suffix()
        ctx.clients.add(self)

    def data_received(self, data: bytes) -> None:
        reader = self.reader
        if reader is None or self._error_status:
            return
        now = self.last_activity = _monotonic()
        if (
            not self.queue
            and reader.at_boundary
            and len(data) <= SIMPLE_REQUEST_MAX
            and (match := self._rules.simple_request(data)) is not None
        ):
            # The fast path (see SIMPLE_REQUEST): the head as it came, minus its final
            # CRLF, plus our headers; then straight to a target, no parser callbacks.
            # Each call saved here is paid once per request, so three steps are copies
            # of their reference, inlined: clock.trace_header, SmoothWeighted.next and
            # _send. Differential tests (tests/balancer/test_hot_path_copies.py) hold
            # each copy to its reference.
            if now >= TracePrefix.until:
                TracePrefix.refresh(now)
            exchange = Exchange(
                self,
                b"".join(
                    (
                        data[:-2],
                        self._suffix,
                        TracePrefix.header,
                        b"%08x\r\n\r\n" % (next(trace_serial) & SERIAL_MASK),
                    )
                ),
            )
            exchange.is_head = match.end(1) == 4
            exchange.idempotent = exchange.request_complete = True
            queue = self.queue
            queue.append(exchange)
            # No cookie, so no stickiness: the next group of the weighted schedule.
            chooser = self._chooser
            tick = chooser.tick
            chooser.tick = tick + 1 if tick < 99 else 0
            role = exchange.booking = chooser.schedule[tick]
            group = self._groups[role]
            target = group.only or group.pick()
            if target is None:
                self._no_target(exchange)
                return
            target.outstanding += 1
            exchange.target = target
            idle = target.idle
            while idle:
                upstream = idle.pop()
                if upstream.usable:
                    if self.held and len(queue) == 1:
                        self._release_held()  # its held bytes go out with the attach
                    if upstream.attach(exchange, True, now):
                        return
            self.connect(exchange, target)
            return
        self._parse(reader, data, now)

    def _parse(self, reader: RequestReader, data: bytes, now: float) -> None:
        """Everything but the fast path: the read goes through httptools (RequestReader),
        which validates it and turns whole heads into exchanges."""
        status = 0
        try:
            reader.parser.feed_data(data)
            if reader.in_head:
                reader.head_pending(len(data), now)
        # (One name per except clause: mypyc gives a variable a single type.)
        except FramingError as refused:
            status = refused.status
        except httptools.HttpParserUpgrade as upgrade:
            # Only a WebSocket handshake gets here (the parser refuses other upgrades).
            self._upgrade_requested(data[upgrade.args[0] :])
            return
        except httptools.HttpParserError as invalid:
            # After a request that closes the connection llhttp refuses any byte: they
            # are ignored, that request is answered, then the connection closes.
            status = 0 if reader.closing else rejection_status(invalid)
        new = len(reader.new)
        queue = self.queue
        if new:
            queue.extend(reader.new)
            reader.new.clear()
        if status:
            # What was complete before the error goes on first (say a body's tail parsed
            # in the same read as a bad request line); nothing of an unfinished one does.
            if queue and (queue[0].upstream is not None or queue[0].request_complete):
                self._pump()
            self._reject(status)
            return
        self._pump()
        if queue and queue[-1].upstream is None:
            # This read waits in the balancer (behind an unanswered request, or for a
            # target connection being opened): counted, and bounded.
            self._hold(len(data) + new * EXCHANGE_COST_BYTES)
        if reader.closing:
            self.flow.pause(Paused.STOPPED)  # nothing after it is ever read

    def _hold(self, received: int) -> None:
        """Count bytes no target has taken; past the bound (this client's, or all
        clients'), stop reading this client until its earlier exchange is done."""
        self.held += received
        ctx = self.ctx
        ctx.held_total += received
        if self.held > MAX_HELD_BYTES or ctx.held_total > MAX_HELD_TOTAL_BYTES:
            self.flow.pause(Paused.HELD)

    def _release_held(self) -> None:
        """Nothing of this client waits in the balancer any more: uncount it, read again
        (unless a slow target, a refusal or a WebSocket handshake also paused it)."""
        self.ctx.held_total -= self.held
        self.held = 0
        self.flow.resume(Paused.HELD)

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
        self.flow.pause(Paused.STOPPED)
        self._pump()

    def connection_lost(self, exc: Exception | None) -> None:
        self._closed = True
        self.flow.transport = None
        self.ctx.clients.discard(self)
        if self.held:
            self._release_held()
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
            self.queue[0].upstream.flow.pause(Paused.SLOW_CLIENT)

    def resume_writing(self) -> None:
        if self.queue and self.queue[0].upstream is not None:
            self.queue[0].upstream.flow.resume(Paused.SLOW_CLIENT)

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
        booking, target = self.ctx.router.choose(exchange.sticky)
        exchange.booking = booking
        if target is not None and exchange.expect_continue and not exchange.request_complete:
            self.transport.write(CONTINUE)
        self._send(exchange, target, _monotonic())

    def _send(self, exchange: Exchange, target: RoutedTarget | None, now: float) -> None:
        """Send the exchange to `target` (None: its group is empty, 503) on a pooled
        connection, or on a new one when none is usable (the reference for the copy in
        data_received's fast path)."""
        if target is None:
            self._no_target(exchange)
            return
        target.outstanding += 1
        exchange.target = target
        idle = target.idle
        while idle:
            upstream = idle.pop()
            if upstream.usable:
                if self.held and len(self.queue) == 1:
                    self._release_held()  # its held bytes go out with the attach
                if upstream.attach(exchange, True, now):
                    return
        self.connect(exchange, target)

    def _no_target(self, exchange: Exchange) -> None:
        """The chosen group has no registered target: ALB's 503."""
        self.ctx.metrics.record_balancer_error(exchange.booking, 503)
        self.local_response(exchange, 503)

    def connect(self, exchange: Exchange, target: RoutedTarget) -> None:
        """Open a new connection to the target for this exchange (off the fast path)."""
        task = self.ctx.loop.create_task(self._connect(exchange, target))
        self.ctx.connecting.add(task)
        task.add_done_callback(self.ctx.connecting.discard)

    async def _connect(self, exchange: Exchange, target: RoutedTarget) -> None:
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
        except OSError as exc:
            if exc.errno in OWN_EXHAUSTION:
                self._exhausted(exchange)
            else:
                self.upstream_failed(exchange, 502)
            return
        if exchange.done:
            upstream.release()
            return
        if self.held and self.queue and self.queue[-1] is exchange:
            self._release_held()  # its held bytes go out with the attach
        if not (upstream.usable and upstream.attach(exchange, False, _monotonic())):
            self.upstream_failed(exchange, 502)  # it spoke (or closed) before it was asked

    def _exhausted(self, exchange: Exchange) -> None:
        """The balancer itself ran out (of file descriptors, buffers, memory): a 503 that
        no target group is blamed for."""
        if exchange.done:
            return
        self.ctx.metrics.reject(503)
        self.local_response(exchange, 503)

    def upstream_failed(self, exchange: Exchange, status: int) -> None:
        """The target could not give a response: answer with the balancer's own error."""
        if exchange.done:
            return
        if exchange.response_started:
            exchange.done = True
            exchange.release_target()
            self._reset()
            return
        self.ctx.metrics.record_balancer_error(exchange.booking, status)
        self.local_response(exchange, status)

    def _reset(self) -> None:
        """End the connection with a TCP reset, not a FIN: a response is cut short, and
        a FIN would end a close-delimited body (an HTTP/1.0 client's) as if it were
        whole. asyncio's abort() alone closes the socket normally, a FIN."""
        sock = self.transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _RESET_ON_CLOSE)
        self.transport.abort()

    def local_response(self, exchange: Exchange, status: int) -> None:
        exchange.release_target()
        exchange.upstream = None
        keep_alive = exchange.keep_alive and exchange.request_complete
        exchange.keep_alive = keep_alive
        if not self._closed:
            self.transport.write(error_response(status, keep_alive, exchange.is_head))
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
            self._pump()
            return
        if self.held:
            self._release_held()
        if self._error_status:
            self._send_error()

    def _reject(self, status: int) -> None:
        """A request refused (invalid framing, or a client too slow to send it: 408):
        forward nothing more, answer `status` once earlier responses left, close. Booked
        on no target group."""
        self._error_status = status
        self.ctx.metrics.reject(status)
        self.flow.pause(Paused.STOPPED)
        if self.held:
            self._release_held()  # dropped below, or never read on: nothing waits
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
                self._reset()  # its response is cut short
                return
        if not self.queue:
            self._send_error()

    def _send_error(self) -> None:
        self.transport.write(error_response(self._error_status, False))
        self.transport.close()

    def check_idle(self, now: float, limit: float) -> None:
        """Called by the sweep: 408 a client too slow to send its request (mid-body, or a
        head past its deadline), 504 a request whose target went silent, close idle
        clients."""
        reader = self.reader  # None once a WebSocket handshake took the connection over
        if self.queue:
            exchange = self.queue[0]
            upstream = exchange.upstream
            if (
                not exchange.request_complete
                and now - self.last_activity > limit
                and self.transport.is_reading()  # not held back by us (slow target)
                and (upstream is None or now - upstream.last_activity > limit)
            ):
                self._reject(408)  # the client stalled mid-body: its fault, not the target's
            elif upstream is not None and now - upstream.last_activity > limit:
                upstream.timed_out()
            elif reader is not None and reader.in_head:
                # A head pipelined behind a request in flight: its deadline starts when
                # the connection is free again (to within a sweep period).
                reader.head_started = now
        elif reader is not None and reader.in_head and not self._error_status:
            if (
                now - reader.head_started > self.ctx.head_timeout_s
                or now - self.last_activity > limit
            ):
                self._reject(408)
        elif now - self.last_activity > limit:
            self.transport.close()
