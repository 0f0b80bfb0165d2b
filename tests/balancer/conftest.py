"""What the balancer's tests share: a fake transport, a client wired to a target
connection through fakes (no sockets, no loop running), and a fresh event loop."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from canary_deploy.balancer.metrics import MetricsRecorder
from canary_deploy.balancer.proxy import ClientConnection, ProxyContext
from canary_deploy.balancer.routing import RegisteredTarget, Router, Stickiness
from canary_deploy.balancer.upstream import UpstreamConnection
from canary_deploy.weights import Weights


@dataclass
class FakeTransport:
    peer: tuple[str, int] = ("10.0.0.7", 50000)
    data: bytearray = field(default_factory=bytearray)
    closed: bool = False
    reading: bool = True

    def write(self, data: bytes) -> None:
        assert not self.closed, "write after close"
        self.data += data

    def close(self) -> None:
        self.closed = True

    abort = close

    def is_closing(self) -> bool:
        return self.closed

    def pause_reading(self) -> None:
        self.reading = False

    def resume_reading(self) -> None:
        self.reading = True

    def is_reading(self) -> bool:
        return self.reading and not self.closed

    def get_extra_info(self, name: str) -> Any:
        return self.peer if name == "peername" else None

    def take(self) -> bytes:
        out = bytes(self.data)
        self.data.clear()
        return out


@dataclass
class Wire:
    """A client connection wired to one stable target with one pooled connection."""

    ctx: ProxyContext
    client: ClientConnection
    client_side: FakeTransport
    upstream: UpstreamConnection
    target_side: FakeTransport


@pytest.fixture
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    loop = asyncio.new_event_loop()
    yield loop
    loop.close()


def wire(loop: asyncio.AbstractEventLoop, *, stickiness: Stickiness | None = None) -> Wire:
    router = Router(Weights(100, 0), "round_robin")
    target = RegisteredTarget("t1", "127.0.0.1", 9001)
    target.state = "healthy"
    router.groups["stable"].targets["t1"] = target
    router.groups["stable"].refresh()
    ctx = ProxyContext(
        loop, router, MetricsRecorder(), idle_timeout_s=60, stickiness=stickiness, listen_port=8080
    )
    upstream = UpstreamConnection(loop, ctx.metrics, target, stickiness)
    target_side = FakeTransport()
    upstream.connection_made(target_side)  # type: ignore[arg-type]
    target.idle.append(upstream)
    client = ClientConnection(ctx)
    client_side = FakeTransport()
    client.connection_made(client_side)  # type: ignore[arg-type]
    return Wire(ctx, client, client_side, upstream, target_side)


def head_fields(raw: bytes) -> dict[str, str]:
    head = raw.split(b"\r\n\r\n", 1)[0].decode()
    return {k.lower(): v for k, _, v in (line.partition(": ") for line in head.split("\r\n")[1:])}
