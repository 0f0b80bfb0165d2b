"""The fuzz rig: one real balancer and two scriptable targets on a background event loop.

A test module starts one `Rig` (balancer on 127.0.0.1 port 0, a stable and a canary
target, both fuzz targets) and every hypothesis example runs a coroutine on its loop
through real sockets. Clients, balancer and targets share that one loop (one thread):
a target can then tell for sure whether the balancer has sent it anything yet (see
`TargetConnection.nothing_pending`), which is what makes "bytes a target sent before it
was asked" a sound test.

Between examples the rig waits until everything is settled and checks what must always
hold: no unexpected exception on the loop, nothing in flight on any target, the memory
held per client connection under `MEMORY_BOUND`, and a normal request still answered.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import socket
import threading
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

import httptools

from canary_deploy.balancer import Balancer, BalancerConfig, HealthCheckConfig
from canary_deploy.weights import Weights
from tests.balancer.fuzz.wire import (
    ECHO_HEADER,
    LEAK,
    TOKEN,
    Malformed,
    Response,
    fill,
    new_token,
    parse_response,
)

# The rig's balancer answers 504 when a target is silent this long (ALB: 60 s); short,
# so an example that provokes a 504 costs seconds, long enough for a busy machine.
IDLE_TIMEOUT_S = 3.0
# A fuzz client gives up on an answer after this long: a liveness bound (the balancer
# neither answered nor closed, not even with its idle-timeout 504), never a speed
# requirement; every scripted exchange ends well before it.
LIVENESS_S = 4 * IDLE_TIMEOUT_S
# How often the rig's heartbeat timer fires; how late it fires is how long the loop (the
# balancer, its targets and the clients alike) did not run: on a loaded machine a stall
# of IDLE_TIMEOUT_S passes for a silent target, and the balancer's 504 is then right.
HEARTBEAT_S = 0.05
# What one client connection may hold in the balancer's buffers at any time: the 64 KiB
# head limit, the held-bytes bound (limits.MAX_HELD_BYTES, 256 KiB) plus the read that
# crossed it (up to 256 KiB), the same bytes counted again as queued, the transports'
# write buffers (64 KiB high water each) and a target's response head (64 KiB), with
# room to spare. What is measured is `buffered_bytes` below.
MEMORY_BOUND = 2 * 1024 * 1024
HEALTH_PATH = "/fuzz-health"
# Hop-by-hop headers (RFC 9110 7.6.1) that must never reach a target.
HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-connection",
        b"te",
        b"trailer",
        b"upgrade",
        b"proxy-authenticate",
        b"proxy-authorization",
    }
)


# ---- what a target does with a request


@dataclass(frozen=True)
class Script:
    """How a fuzz target answers the request that carries a given token.

    `valid` says whether the response is one a correct balancer must deliver as it is;
    otherwise it may answer 502 or cut the client's connection, never more.
    """

    framing: str = "length"  # length | chunked | eof | short | dup-length | length-te |
    #                          bad-chunk | gzip-chunked
    version: bytes = b"HTTP/1.1"
    status: int = 200
    interim: tuple[int, ...] = ()  # 1xx responses first
    headers: tuple[tuple[bytes, bytes], ...] = ()
    padding: int = 0  # body bytes after the echo
    chunks: int = 1  # how many chunks the body is cut into (chunked framings)
    splits: tuple[int, ...] = ()  # cut the response into writes at these offsets
    yields: int = 0  # event-loop turns between those writes
    excess: bytes = b""  # sent in the same write, right after the response
    stale: bytes = b""  # sent after the response, in a later write, if not asked since
    close_after: bool = False  # close the connection after the response
    huge_head: bool = False  # a 70 KiB header
    hold: bool = False  # answer only once the rig's gate opens (a slow target)
    valid: bool = True


GOOD = Script()


def echo_of(token: bytes, method: bytes, body: bytes) -> bytes:
    """What a correct target says it received: the token and the request's body digest."""
    return b"%s:%s:%d:%s" % (
        token,
        method,
        len(body),
        hashlib.sha256(body).hexdigest()[:16].encode(),
    )


def render(script: Script, token: bytes, echo: bytes, is_head: bool) -> bytes:
    """The bytes a target sends for `script` (without stale bytes)."""
    out = bytearray()
    for status in script.interim:
        out += b"HTTP/1.1 %d Interim\r\nX-Interim: %s\r\n\r\n" % (status, token)
    body = echo + b"." * script.padding
    no_body = script.status in (204, 304)
    head = [b"%s %d Fuzz" % (script.version, script.status), b"X-Fuzz-Echo: " + echo]
    head += [n + b": " + fill(v, token, b"") for n, v in script.headers]
    if script.huge_head:
        head.append(b"X-Huge: " + b"h" * 70_000)
    if script.close_after:
        head.append(b"Connection: close")
    framing = script.framing
    encoded = b""
    if no_body:
        body = b""
    elif framing in ("length", "short"):
        head.append(b"Content-Length: %d" % len(body))
        encoded = body if framing == "length" else body[: len(body) // 2]
    elif framing == "dup-length":
        head += [b"Content-Length: %d" % len(body), b"Content-Length: %d" % (len(body) + 5)]
        encoded = body
    elif framing == "length-te":
        head += [b"Content-Length: %d" % len(body), b"Transfer-Encoding: chunked"]
        encoded = _chunk(body, script.chunks)
    elif framing in ("chunked", "gzip-chunked", "bad-chunk"):
        coding = b"gzip, chunked" if framing == "gzip-chunked" else b"chunked"
        head.append(b"Transfer-Encoding: " + coding)
        encoded = _chunk(body, script.chunks)
        if framing == "bad-chunk":
            encoded = b"1ffffffffffffffff0\r\n" + encoded  # a size overflowing 64 bits
    elif framing == "eof":
        encoded = body
    out += b"\r\n".join(head) + b"\r\n\r\n"
    if not is_head:
        out += encoded
    if script.excess:
        out += fill(script.excess, token, b"")
    return bytes(out)


def _chunk(body: bytes, pieces: int) -> bytes:
    size = max(1, -(-len(body) // max(1, pieces)))
    out = bytearray()
    for at in range(0, len(body), size):
        piece = body[at : at + size]
        out += b"%x\r\n%s\r\n" % (len(piece), piece)
    return bytes(out + b"0\r\n\r\n")


@dataclass
class Received:
    """A complete request as a target received it."""

    method: bytes
    url: bytes
    headers: list[tuple[bytes, bytes]]
    body: bytes

    def values(self, name: bytes) -> list[bytes]:
        return [v for n, v in self.headers if n.lower() == name]

    @property
    def token(self) -> bytes | None:
        """The exchange's token: in the path, or in X-Fuzz-Token (e.g. `OPTIONS *`)."""
        match = TOKEN.search(self.url) or TOKEN.search(b" ".join(self.values(b"x-fuzz-token")))
        return match[0] if match else None


class TargetConnection(asyncio.Protocol):
    """The server side of one balancer-to-target connection."""

    def __init__(self, target: FuzzTarget) -> None:
        self.target = target
        self.transport: Any = None
        self.peek: socket.socket | None = None
        self.raw = bytearray()
        self.parser = httptools.HttpRequestParser(self)
        self.queue: asyncio.Queue[Received] = asyncio.Queue()
        self.task: asyncio.Task[None] | None = None
        self._url = b""
        self._headers: list[tuple[bytes, bytes]] = []
        self._body = bytearray()
        self.in_message = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        fd = transport.get_extra_info("socket").fileno()
        self.peek = socket.socket(fileno=os.dup(fd))
        self.target.connections.add(self)
        self.task = asyncio.get_running_loop().create_task(self._serve())
        early = self.target.rig.early
        if early and self.nothing_pending():
            transport.write(early)  # type: ignore[attr-defined]

    def connection_lost(self, exc: Exception | None) -> None:
        self.target.connections.discard(self)
        if self.task is not None:
            self.task.cancel()
        if self.peek is not None:
            self.peek.close()
            self.peek = None

    def nothing_pending(self) -> bool:
        """No byte from the balancer is waiting to be read. Balancer and targets run on
        one thread and loopback delivers a send at once, so bytes written now reach the
        balancer before any request it has not sent yet."""
        if self.peek is None:
            return False
        try:
            self.peek.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT)
        except BlockingIOError:
            return True  # nothing to read: the balancer has not sent a byte
        except OSError:
            pass
        return False  # bytes waiting, or the connection is ending

    def data_received(self, data: bytes) -> None:
        self.raw += data
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self.target.rig.violation(
                f"{self.target.name} got bytes it cannot parse ({exc}): {bytes(self.raw)[-300:]!r}"
            )
            self.transport.close()

    def on_message_begin(self) -> None:
        self._url, self._headers, self._body = b"", [], bytearray()
        self.in_message = True

    def on_url(self, url: bytes) -> None:
        self._url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers.append((name, value))

    def on_body(self, body: bytes) -> None:
        self._body += body

    def on_message_complete(self) -> None:
        self.in_message = False
        received = Received(self.parser.get_method(), self._url, self._headers, bytes(self._body))
        self.target.received.append(received)
        self.target.rig.check_forwarded(self.target.name, received)
        self.queue.put_nowait(received)

    async def _serve(self) -> None:
        while True:
            request = await self.queue.get()
            self.target.busy += 1
            try:
                await self._answer(request)
            except Exception as exc:  # the rig must notice its own failures too
                self.target.rig.violation(f"{self.target.name} failed to answer: {exc!r}")
                self.transport.abort()
            finally:
                self.target.busy -= 1

    async def _answer(self, request: Received) -> None:
        transport = self.transport
        if request.url == HEALTH_PATH.encode():
            transport.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
            return
        token = request.token or b"tk-none"
        script = self.target.rig.scripts.get(token, GOOD)
        if script.hold:
            await self.target.rig.gate.wait()
        echo = echo_of(token, request.method, request.body)
        data = render(script, token, echo, request.method == b"HEAD")
        at = 0
        asked = len(self.raw)  # bytes from the balancer when the response was sent
        for cut in (*sorted(c for c in script.splits if 0 < c < len(data)), len(data)):
            if cut <= at:
                continue
            if transport.is_closing():
                return
            transport.write(data[at:cut])
            at = cut
            asked = len(self.raw)
            for _ in range(script.yields):
                await asyncio.sleep(0)
        if script.framing == "short" or (script.framing == "eof" and request.method != b"HEAD"):
            if script.status in (204, 304) or request.method == b"HEAD":
                self._closed_silently()
            transport.close()
            return
        if script.stale:
            # Unasked-for only if the balancer sent nothing since the response: neither
            # bytes still in the socket nor bytes this protocol already read (a request
            # that came meanwhile would take the stale bytes as its answer, and no
            # balancer can tell those from a wrong answer to it). And only written when
            # they reach the balancer's socket at once (nothing of the response still in
            # our write buffer): bytes still in flight when the balancer sends its next
            # request cross it on the wire, which no peer can tell from an answer.
            for _ in range(script.yields):
                await asyncio.sleep(0)
            if (
                not transport.is_closing()
                and transport.get_write_buffer_size() == 0
                and len(self.raw) == asked
                and self.nothing_pending()
            ):
                transport.write(fill(script.stale, token, b""))
        if script.close_after:
            transport.close()

    def _closed_silently(self) -> None:
        """This connection closes after a response its framing ended (no body), which did
        not say `Connection: close`: the balancer may have pooled it and sent it the next
        request just as it closes (see the oracle's `_lost_to_a_silent_close`)."""
        rig = self.target.rig
        rig.silent_closes += 1
        while not self.queue.empty():  # received whole, never to be answered
            rig.cut_off.add(self.queue.get_nowait().token)


@dataclass
class FuzzTarget:
    """A target that answers each request as the script for its token says."""

    name: str
    rig: Rig
    received: list[Received] = field(default_factory=list)
    connections: set[TargetConnection] = field(default_factory=set)
    busy: int = 0
    port: int = 0
    server: asyncio.Server | None = None

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self.server = await loop.create_server(lambda: TargetConnection(self), "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]

    def raw(self) -> bytes:
        return b"".join(bytes(c.raw) for c in self.connections)

    def drop_connections(self) -> None:
        for conn in list(self.connections):
            conn.transport.close()


# ---- the balancer's own buffers


def buffered_bytes(client: Any) -> int:
    """What the balancer holds for one client connection, in bytes, an upper bound: its
    own accounting, `ClientConnection.held` (bytes received that no target has taken,
    which reading pauses on past MAX_HELD_BYTES), and the head being received as
    `RequestReader.head_pending` counts it against MAX_HEAD_BYTES (httptools keeps a
    partial header itself); what is really queued for a target (`Exchange.out` of
    exchanges not sent yet), counted again in case the accounting missed some; the
    transports' write buffers (the client's, and the target connection's of every
    exchange in flight); and a target's response head not yet complete."""
    total = client.transport.get_write_buffer_size() + client.held
    reader = client.reader
    if reader is not None and reader.in_head:
        total += reader._head_received
    for exchange in client.queue:
        upstream = exchange.upstream
        if upstream is None:
            total += sum(len(b) for b in exchange.out)
        elif upstream.transport is not None:
            total += upstream.transport.get_write_buffer_size() + len(upstream._head_buf)
    return total


# ---- clients


class _ClientProtocol(asyncio.Protocol):
    """Keeps every byte received, also those that came before a reset (asyncio's
    StreamReader raises the reset first and loses them)."""

    def __init__(self) -> None:
        self.transport: Any = None
        self.data = bytearray()
        self.eof = False
        self.reset = False  # the connection ended with a reset, not a FIN
        self.changed = asyncio.Event()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.data += data
        self.changed.set()

    def eof_received(self) -> bool:
        self.eof = True
        self.changed.set()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.eof = True
        self.reset = isinstance(exc, ConnectionResetError)
        self.changed.set()


class Client:
    """One client connection: sends exact bytes, reads strictly parsed responses."""

    def __init__(self, rig: Rig) -> None:
        self.rig = rig
        self.protocol = _ClientProtocol()
        self.received = bytearray()  # every byte this client got
        self._buffer = b""
        self.eof = False

    async def connect(self) -> Client:
        loop = asyncio.get_running_loop()
        await loop.create_connection(lambda: self.protocol, "127.0.0.1", self.rig.port)
        return self

    def send(self, data: bytes) -> None:
        transport = self.protocol.transport
        if not transport.is_closing():
            transport.write(data)

    async def _read(self) -> bytes:
        """The bytes received since the last call; b"" once the connection ended."""
        protocol = self.protocol
        while not protocol.data and not protocol.eof:
            protocol.changed.clear()
            try:
                await asyncio.wait_for(protocol.changed.wait(), LIVENESS_S)
            except TimeoutError:
                raise AssertionError(
                    f"liveness: no byte and no close from the balancer in {LIVENESS_S:.0f} s; "
                    f"got so far {bytes(self.received)[-300:]!r}"
                ) from None
        data = bytes(protocol.data)
        protocol.data.clear()
        self.received += data
        self.rig.sample()
        return data

    async def response(self, is_head: bool = False) -> Response | None:
        """The next final response (1xx skipped); None: the connection ended first."""
        while True:
            if self.eof and not self._buffer:
                return None
            try:
                response, used = parse_response(self._buffer, self.eof, is_head)
            except Malformed as exc:
                raise AssertionError(f"malformed bytes to a client: {exc}") from None
            if response is None:
                data = await self._read()
                if data:
                    self._buffer += data
                else:
                    self.eof = True
                continue
            self._buffer = self._buffer[used:]
            if response.framing == "eof" and self.protocol.reset:
                response.complete = False  # a reset ends no body: it was cut short
            if response.status and response.status < 200 and response.complete:
                continue
            return response

    async def rest(self) -> bytes:
        """Everything until the balancer closes the connection."""
        while not self.eof:
            data = await self._read()
            if not data:
                self.eof = True
            self._buffer += data
        rest, self._buffer = self._buffer, b""
        return rest

    async def close(self) -> None:
        transport = self.protocol.transport
        if transport is not None:
            transport.abort()  # nothing of ours is pending: every answer was read


# ---- the rig


class Rig:
    """A balancer and its fuzz targets on a background loop; see the module docstring."""

    def __init__(self) -> None:
        self.loop = _new_loop()
        self.errors: list[dict[str, Any]] = []
        self.loop.set_exception_handler(lambda _, context: self.errors.append(context))
        self._thread = threading.Thread(target=self.loop.run_forever, name="fuzz-rig", daemon=True)
        self.scripts: dict[bytes, Script] = {}
        self.violations: list[str] = []
        self.early = b""  # bytes a target sends on a new connection before any request
        # This example's target connections closed after a complete response that said
        # nothing of closing, and the tokens of requests they got and never answered.
        self.silent_closes = 0
        self.cut_off: set[bytes | None] = set()
        self.gate = asyncio.Event()  # what targets wait for on `Script.hold` (rig's loop)
        self.peak = 0  # the largest `buffered_bytes` seen since the last reset
        self.max_lag = 0.0  # the longest the loop stalled this example (see HEARTBEAT_S)
        self._beat: asyncio.TimerHandle | None = None
        self.port = 0
        self.balancer: Balancer | None = None
        self.targets: list[FuzzTarget] = []

    # ---- lifecycle

    def start(self) -> Rig:
        self._thread.start()
        self.run(self._start())
        return self

    async def _start(self) -> None:
        self.targets = [FuzzTarget("stable-0", self), FuzzTarget("canary-0", self)]
        for target in self.targets:
            await target.start()
        config = BalancerConfig(
            port=0,
            weights=Weights(50, 50),
            health=HealthCheckConfig.fast(HEALTH_PATH),
            idle_timeout_s=IDLE_TIMEOUT_S,
            deregistration_delay_s=0,
        )
        self.balancer = Balancer(config)
        for target in self.targets:
            group = target.name.split("-")[0]
            self.balancer.register_target(group, target.name, "127.0.0.1", target.port)  # type: ignore[arg-type]
        await self.balancer.start()
        self.port = self.balancer.port
        self._heartbeat(self.loop.time())
        await self.wait(
            lambda: all(
                t.state == "healthy" for ts in self.balancer_().target_health().values() for t in ts
            ),
            "targets healthy",
        )

    def stop(self) -> None:
        self.run(self._stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        self.loop.close()

    def _heartbeat(self, due: float) -> None:
        now = self.loop.time()
        self.max_lag = max(self.max_lag, now - due)
        self._beat = self.loop.call_at(now + HEARTBEAT_S, self._heartbeat, now + HEARTBEAT_S)

    async def _stop(self) -> None:
        if self._beat is not None:
            self._beat.cancel()
        await self.balancer_().stop()
        for target in self.targets:
            for conn in list(target.connections):
                conn.transport.abort()
                conn.connection_lost(None)  # closes its peek socket now, not at exit
            if target.server is not None:
                target.server.close()
                await target.server.wait_closed()

    def balancer_(self) -> Balancer:
        assert self.balancer is not None
        return self.balancer

    def run(self, coro: Coroutine[Any, Any, Any], timeout: float = 120) -> Any:
        """Run a coroutine on the rig's loop and return its result (or raise its error)."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    # ---- one example

    def example(self, scenario: Callable[[Rig], Awaitable[None]]) -> None:
        """Run one example, then check what must hold after every example."""
        self.run(self._example(scenario))

    async def _example(self, scenario: Callable[[Rig], Awaitable[None]]) -> None:
        self.violations.clear()
        self.errors.clear()
        self.peak = 0
        self.max_lag = 0.0
        self.silent_closes = 0
        self.cut_off.clear()
        for target in self.targets:
            target.received.clear()
            for conn in target.connections:
                conn.raw.clear()
        try:
            await scenario(self)
        finally:
            self.early = b""
            self.gate.set()
            await self.settle()
            self.gate.clear()
            self.scripts.clear()
        self.check_settled()
        await self.check_still_serving()

    async def settle(self) -> None:
        """Wait until no client is connected and no target has anything in flight."""
        ctx = self.balancer_()._ctx
        assert ctx is not None, "the balancer stopped"

        def settled() -> bool:
            targets = (
                t for g in self.balancer_()._router.groups.values() for t in g.targets.values()
            )
            return (
                not ctx.clients
                and not ctx.connecting
                and all(t.outstanding == 0 for t in targets)
                and all(t.busy == 0 for t in self.targets)
            )

        await self.wait(settled, "every client gone and nothing in flight")

    def check_targets_idle(self) -> None:
        """A target connection the balancer keeps must be between requests."""
        for target in self.targets:
            for conn in target.connections:
                if conn.in_message or (conn.task is not None and conn.task.done()):
                    self.violation(
                        f"{target.name}: a connection left open in the middle of a request "
                        f"(the balancer may reuse it): {bytes(conn.raw)[-200:]!r}"
                    )

    def check_settled(self) -> None:
        self.check_targets_idle()
        assert not self.errors, f"unexpected errors on the event loop: {self.errors}"
        ctx = self.balancer_()._ctx
        assert ctx is not None and ctx.held_total == 0, (
            f"every client is gone, yet {ctx and ctx.held_total:,} bytes are still counted "
            "as held: the total bound would starve later clients"
        )
        assert not self.violations, "\n".join(self.violations)
        assert self.peak <= MEMORY_BOUND, (
            f"a client connection held {self.peak:,} bytes in the balancer (bound {MEMORY_BOUND:,})"
        )

    async def check_still_serving(self) -> None:
        token = new_token()
        client = await Client(self).connect()
        try:
            client.send(b"GET /f/%s HTTP/1.1\r\nHost: fuzz\r\n\r\n" % token)
            response = await client.response()
        finally:
            await client.close()
        assert response is not None and response.status == 200, f"after the example: {response}"
        assert response.echo == echo_of(token, b"GET", b""), f"after the example: {response}"
        await self.settle()

    # ---- checks used while an example runs

    def violation(self, message: str) -> None:
        self.violations.append(message)

    def sample(self) -> None:
        """Record the largest per-connection buffer in the balancer right now."""
        ctx = self.balancer_()._ctx
        if ctx is None:
            return
        for client in ctx.clients:
            if client.transport is not None:
                self.peak = max(self.peak, buffered_bytes(client))

    async def fresh_connections(self, early: bytes) -> None:
        """From now on until the example ends, targets send `early` on every new
        connection before any request; the pooled ones are closed first."""
        self.early = early
        for target in self.targets:
            target.drop_connections()
        groups = self.balancer_()._router.groups.values()
        await self.wait(
            lambda: all(not t.idle for g in groups for t in g.targets.values()),
            "pooled target connections closed",
        )

    def check_forwarded(self, target: str, request: Received) -> None:
        """What a target gets must be clean HTTP/1.1, whatever the client sent (health
        checks are the balancer's own requests)."""
        if request.url == HEALTH_PATH.encode():
            return
        hosts = request.values(b"host")
        if len(hosts) != 1:
            self.violation(f"{target} got a request with {len(hosts)} Host headers: {request}")
        if request.values(b"content-length") and request.values(b"transfer-encoding"):
            self.violation(f"{target} got Content-Length with Transfer-Encoding: {request}")
        hop = [n for n, _ in request.headers if n.lower() in HOP_BY_HOP]
        if hop:
            self.violation(f"{target} got hop-by-hop headers {hop}: {request}")
        dropped = [n for n, _ in request.headers if n.lower().startswith(b"x-drop")]
        if dropped:
            self.violation(f"{target} got headers the client's Connection named: {request}")
        if request.url != b"*" and not request.url.startswith(b"/"):
            self.violation(f"{target} got a request target not in origin form: {request.url!r}")

    def reached_targets(self, token: bytes) -> list[str]:
        """Which targets got any byte carrying `token` during this example."""
        return [t.name for t in self.targets if token in t.raw()]

    def received_by_targets(self, token: bytes) -> list[Received]:
        return [r for t in self.targets for r in t.received if r.token == token]

    async def wait(self, condition: Callable[[], bool], what: str) -> None:
        deadline = self.loop.time() + LIVENESS_S
        while not condition():
            if self.loop.time() > deadline:
                raise AssertionError(f"liveness: not reached in {LIVENESS_S:.0f} s: {what}")
            await asyncio.sleep(0.002)


def _new_loop() -> asyncio.AbstractEventLoop:
    """uvloop, as `canary balancer` and the daemon run; CANARY_FUZZ_LOOP=asyncio for the
    standard loop."""
    if os.environ.get("CANARY_FUZZ_LOOP", "uvloop") == "uvloop":
        with contextlib.suppress(ImportError):
            import uvloop

            return uvloop.new_event_loop()
    return asyncio.new_event_loop()


def assert_no_foreign_bytes(client: Client, own: set[bytes]) -> None:
    """Invariant (a): every token a client received is one of its own requests', and no
    byte a target sent outside an asked-for response reached it."""
    data = bytes(client.received)
    foreign = {t for t in TOKEN.findall(data)} - own
    assert not foreign, f"a client received another exchange's bytes {foreign}: {data[-600:]!r}"
    assert LEAK not in data, f"a client received bytes no request asked for: {data[-600:]!r}"


__all__ = [
    "ECHO_HEADER",
    "GOOD",
    "MEMORY_BOUND",
    "Client",
    "Received",
    "Rig",
    "Script",
    "assert_no_foreign_bytes",
    "echo_of",
]
