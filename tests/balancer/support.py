"""Test helpers: tiny recording backends and a raw HTTP/1.1 client, all on 127.0.0.1."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import httptools

from canary_deploy.balancer import Balancer, BalancerConfig, HealthCheckConfig
from canary_deploy.weights import Weights


def run(coro: Coroutine[Any, Any, Any], timeout: float = 60) -> Any:
    """Run one async scenario on a fresh loop, with a hard timeout."""

    async def bounded() -> Any:
        return await asyncio.wait_for(coro, timeout)

    return asyncio.run(bounded())


@dataclass
class Request:
    """A complete request as a backend received it."""

    method: str
    path: str
    headers: list[tuple[str, str]]
    body: bytes
    connection: int = 0  # which backend connection carried it

    def header(self, name: str) -> str | None:
        values = [v for n, v in self.headers if n.lower() == name.lower()]
        return ", ".join(values) if values else None


ATTACK_MARKER = b"smuggled-7f3a"
Handler = Callable[["BackendConnection", Request], Awaitable[None]]


class BackendConnection(asyncio.Protocol):
    """Server side of one connection to a test backend."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        self.transport: Any = None
        self.parser = httptools.HttpRequestParser(self)
        self._url = b""
        self._headers: list[tuple[str, str]] = []
        self._body = bytearray()
        self._queue: asyncio.Queue[Request] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        self.backend.connections += 1
        self.backend.open.add(self)
        self._task = asyncio.get_running_loop().create_task(self._serve())

    def connection_lost(self, exc: Exception | None) -> None:
        self.backend.open.discard(self)
        if self._task is not None:
            self._task.cancel()

    def data_received(self, data: bytes) -> None:
        self.backend.raw += data
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            self.transport.close()

    def on_message_begin(self) -> None:
        self._url, self._headers, self._body = b"", [], bytearray()

    def on_url(self, url: bytes) -> None:
        self._url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers.append((name.decode(), value.decode("latin-1")))

    def on_body(self, body: bytes) -> None:
        self._body += body

    def on_message_complete(self) -> None:
        request = Request(
            self.parser.get_method().decode(),
            self._url.decode(),
            self._headers,
            bytes(self._body),
            id(self),
        )
        self.backend.requests.append(request)
        self._queue.put_nowait(request)

    async def _serve(self) -> None:
        while True:
            request = await self._queue.get()
            await self.backend.handler(self, request)

    def respond(
        self, status: int = 200, body: bytes = b"", headers: tuple[tuple[str, str], ...] = ()
    ) -> None:
        head = f"HTTP/1.1 {status} X\r\nContent-Length: {len(body)}\r\n"
        head += "".join(f"{n}: {v}\r\n" for n, v in headers)
        self.transport.write(head.encode() + b"\r\n" + body)


async def default_handler(conn: BackendConnection, req: Request) -> None:
    """`/` answers the backend's name; other paths exercise one behaviour each."""
    backend = conn.backend
    path = req.path.split("?")[0]
    if path.startswith("/status/"):
        conn.respond(int(path.rsplit("/", 1)[1]), backend.name.encode())
    elif path.startswith("/sleep/"):
        await asyncio.sleep(float(path.rsplit("/", 1)[1]))
        conn.respond(200, backend.name.encode())
    elif path == "/echo":
        doc = {"headers": req.headers, "body": req.body.decode("latin-1"), "method": req.method}
        conn.respond(200, json.dumps(doc).encode(), (("Content-Type", "application/json"),))
    elif path == "/stream":
        conn.transport.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nfirst\r\n")
        await backend.gate.wait()
        conn.transport.write(b"4\r\nlast\r\n0\r\n\r\n")
    elif path == "/until-close":
        conn.transport.write(b"HTTP/1.1 200 OK\r\n\r\nall of it")
        conn.transport.close()
    elif path == "/malformed":
        conn.transport.write(b"HTTP/1.1 2x0 Nope\r\n\r\n")
    elif path == "/reset":
        conn.transport.abort()
    elif path == "/big":
        conn.respond(200, b"x" * 4_000_000)
    elif path == "/hop":
        conn.respond(200, b"ok", (("Keep-Alive", "timeout=5"), ("Connection", "keep-alive")))
    else:
        conn.respond(200, backend.name.encode())


@dataclass
class Backend:
    """A target: answers per `handler` and records every byte and request it got."""

    name: str
    handler: Handler = default_handler
    requests: list[Request] = field(default_factory=list)
    raw: bytearray = field(default_factory=bytearray)
    connections: int = 0
    open: set[BackendConnection] = field(default_factory=set)
    gate: asyncio.Event = field(default_factory=asyncio.Event)
    port: int = 0
    server: asyncio.Server | None = None

    async def start(self) -> Backend:
        loop = asyncio.get_running_loop()
        self.server = await loop.create_server(lambda: BackendConnection(self), "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            for conn in list(self.open):
                conn.transport.abort()
            await self.server.wait_closed()
            self.server = None


@asynccontextmanager
async def stack(
    weights: Weights = Weights(50, 50),
    *,
    stable: int = 1,
    canary: int = 1,
    baseline: int = 0,
    health: HealthCheckConfig | None = None,
    wait_healthy: bool = True,
    handler: Handler = default_handler,
    **config: Any,
) -> AsyncIterator[tuple[Balancer, list[Backend], list[Backend]]]:
    """A started balancer on a free port with fresh backends (answering per `handler`
    from the start) registered in each group."""
    stables = [await Backend(f"stable-{i}", handler).start() for i in range(stable)]
    canaries = [await Backend(f"canary-{i}", handler).start() for i in range(canary)]
    # Baseline backends follow the canaries in the second list (names say which).
    canaries += [await Backend(f"baseline-{i}", handler).start() for i in range(baseline)]
    cfg = BalancerConfig(
        port=0,
        weights=weights,
        health=health or HealthCheckConfig.fast(),
        deregistration_delay_s=1,
        **config,
    )
    balancer = Balancer(cfg)
    try:
        for group, backends in (("stable", stables), ("canary", canaries)):
            for b in backends:
                name = b.name.split("-")[0] if b.name.startswith("baseline") else group
                balancer.register_target(name, b.name, "127.0.0.1", b.port)  # type: ignore[arg-type]
        await balancer.start()
        if wait_healthy:
            await wait_for(lambda: all_healthy(balancer))
        yield balancer, stables, canaries
    finally:
        await balancer.stop()
        for b in stables + canaries:
            await b.stop()


def all_healthy(balancer: Balancer) -> bool:
    return all(t.state == "healthy" for ts in balancer.target_health().values() for t in ts)


async def wait_for(condition: Callable[[], bool], timeout: float = 10) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        if loop.time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)


@dataclass
class Response:
    status: int
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str | None:
        values = [v for n, v in self.headers if n.lower() == name.lower()]
        return ", ".join(values) if values else None


class RawClient:
    """One keep-alive connection; sends exact bytes and parses responses one by one."""

    def __init__(self) -> None:
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self._buffer = b""

    async def connect(self, port: int) -> RawClient:
        self.reader, self.writer = await asyncio.open_connection("127.0.0.1", port)
        return self

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            with contextlib.suppress(OSError):
                await self.writer.wait_closed()

    def send(self, data: bytes) -> None:
        assert self.writer is not None
        self.writer.write(data)

    async def read_response(self, *, head: bool = False) -> Response | None:
        """The next response, or None when the balancer closed the connection first."""
        assert self.reader is not None
        done: list[Response] = []
        state: dict[str, Any] = {"headers": [], "body": bytearray()}

        class _Callbacks:
            def on_header(self, name: bytes, value: bytes) -> None:
                state["headers"].append((name.decode(), value.decode("latin-1")))

            def on_headers_complete(self) -> None:
                state["status"] = parser.get_status_code()
                if head or state["status"] < 200:
                    if state["status"] >= 200:
                        done.append(Response(state["status"], state["headers"], b""))
                    state["headers"] = []

            def on_body(self, body: bytes) -> None:
                state["body"] += body

            def on_message_complete(self) -> None:
                if state.get("status", 0) >= 200 and not head:
                    done.append(Response(state["status"], state["headers"], bytes(state["body"])))

        parser = httptools.HttpResponseParser(_Callbacks())
        while not done:
            data = self._buffer or await self.reader.read(65536)
            self._buffer = b""
            if not data:
                return None
            parser.feed_data(data)
        return done[0]

    async def is_closed(self, timeout: float = 2) -> bool:
        """True when the balancer closes this connection (EOF) within the timeout."""
        assert self.reader is not None
        try:
            data = await asyncio.wait_for(self.reader.read(65536), timeout)
        except (TimeoutError, ConnectionError):
            return False
        return data == b""


async def get(port: int, path: str = "/", headers: str = "") -> Response:
    """One request on a fresh connection."""
    client = await RawClient().connect(port)
    try:
        client.send(f"GET {path} HTTP/1.1\r\nHost: t\r\n{headers}\r\n".encode())
        response = await client.read_response()
        assert response is not None
        return response
    finally:
        await client.close()
