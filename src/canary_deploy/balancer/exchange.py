"""One request/response pair in flight, and the two seams it crosses.

The client side (`proxy.ClientConnection`) and the target side
(`upstream.UpstreamConnection`) call each other about an `Exchange`; each depends only
on a small Protocol of the other (`Downstream`, `Upstream`), and both on `RoutedTarget`
for the target the request went to, so this module imports nothing of the balancer's
but `flow` (and the domain's `routes`) and the import graph has no cycle.
"""

from __future__ import annotations

from collections import deque
from typing import Any, Protocol

from canary_deploy.balancer.flow import FlowControl
from canary_deploy.routes import Booking


class RoutedTarget(Protocol):
    """What an exchange and its connection use of the target a request was routed to
    (`routing.RegisteredTarget`)."""

    outstanding: int  # requests in flight on it

    @property
    def host(self) -> str: ...
    @property
    def port(self) -> int: ...
    @property
    def state(self) -> str:
        """Its health state (`config.HealthState`): "draining" once deregistered."""
        ...

    @property
    def idle(self) -> list[Upstream]:
        """Its pooled keep-alive connections, the most recently used last."""
        ...


class Upstream(Protocol):
    """What the client side may call on a target connection."""

    usable: bool  # connected, in sync and not serving an exchange: may take one
    last_activity: float  # monotonic time of its last byte either way
    flow: FlowControl  # its reading (paused while the client is slow)

    def attach(self, exchange: Exchange, reused: bool, now: float) -> bool:
        """Send the exchange's request; False: the connection spoke first, nothing sent."""
        ...

    def send_body(self, exchange: Exchange) -> None:
        """Pass on the request body bytes the exchange gained since."""
        ...

    def abandon(self) -> None:
        """The client went away mid-exchange: close, never reuse."""
        ...

    def release(self) -> None:
        """Back to its target's idle pool, or closed."""
        ...

    def close(self) -> None: ...

    def timed_out(self) -> None:
        """The target sent nothing within the idle timeout: 504 (or abort mid-body)."""
        ...


class Downstream(Protocol):
    """What the target side may call on the client connection an exchange came from."""

    transport: Any  # the client's transport: responses are written to it
    flow: FlowControl  # its reading (paused while the target is slow)
    queue: deque[Exchange]  # its exchanges, oldest (the one being answered) first
    last_activity: float

    def connect(self, exchange: Exchange, target: RoutedTarget) -> None:
        """Send the exchange on a new connection to `target` (a stale pooled one failed)."""
        ...

    def upstream_failed(self, exchange: Exchange, status: int) -> None:
        """The target gave no response: answer `status` (502, 504) ourselves."""
        ...

    def exchange_done(self, exchange: Exchange) -> None:
        """The response was passed on whole: go on with the next request, or close."""
        ...

    def connection_lost(self, exc: Exception | None) -> None: ...


class Exchange:
    """One request/response pair as it moves through the balancer."""

    __slots__ = (
        "booking",
        "client",
        "done",
        "expect_continue",
        "has_body",
        "head",
        "http10",
        "idempotent",
        "is_head",
        "keep_alive",
        "out",
        "request_complete",
        "response_started",
        "sent_at",
        "sticky",
        "target",
        "upgrade",
        "upstream",
    )

    def __init__(self, client: Downstream | None, head: bytes) -> None:
        self.client = client
        self.head = head  # kept apart from `out` so a stale pooled connection can retry
        self.out: list[bytes] = [head]
        self.has_body = False
        self.idempotent = False  # may be resent when a stale pooled connection fails
        self.is_head = False
        self.http10 = False  # an HTTP/1.0 client: no chunked response
        self.keep_alive = True
        self.expect_continue = False
        # The group the request is bound to before the weights: a listener rule's (a
        # tester booking: the group whatever it holds) or an AWSALBTG cookie's.
        self.sticky: Booking | None = None
        self.request_complete = False
        self.response_started = False
        self.done = False
        self.booking: Booking = "stable"  # what its metrics are booked on
        self.target: RoutedTarget | None = None
        self.upstream: Upstream | None = None
        self.sent_at = 0.0
        # A WebSocket upgrade request: the client's bytes after it, held until the 101.
        self.upgrade: bytes | None = None

    def release_target(self) -> None:
        """Stop counting this request as in flight on its target (exactly once; the
        reference for the copy in UpstreamConnection._complete)."""
        target = self.target
        if target is not None:
            target.outstanding -= 1
            self.target = None
