"""A WebSocket connection after the target's 101: bytes both ways as they come, like ALB.

Both connections leave HTTP for good: each transport is handed to one end of the tunnel
(`set_protocol`), which writes what it reads to the other transport and stops reading
while the other cannot keep up. The client connection stays known to the listener, so
its idle timeout (bytes either way) and its closing at shutdown apply as before; when
either side closes, so does the other.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from canary_deploy.balancer.exchange import Downstream, Exchange

_monotonic = time.monotonic


class _End(asyncio.Protocol):
    """One side of a tunnel: what its transport reads goes to the other side's."""

    def __init__(self, tunnel: Tunnel, transport: Any, peer: Any) -> None:
        self.tunnel = tunnel
        self.transport = transport
        self.peer = peer

    def data_received(self, data: bytes) -> None:
        self.tunnel.client.last_activity = _monotonic()
        self.peer.write(data)

    def eof_received(self) -> bool:
        return False  # the transport closes, and connection_lost closes the other side

    def connection_lost(self, exc: Exception | None) -> None:
        self.tunnel.close(exc)

    def pause_writing(self) -> None:
        self.peer.pause_reading()  # the other side sends faster than this one takes

    def resume_writing(self) -> None:
        self.peer.resume_reading()


class Tunnel:
    """The two ends of one WebSocket connection, client and target."""

    def __init__(self, client: Downstream, exchange: Exchange, target: Any) -> None:
        self.client = client
        self.exchange = exchange  # keeps its target's in-flight count until the end
        self._transports = (client.transport, target)
        self._closed = False

    def start(self, from_target: bytes) -> None:
        """Switch both transports over, then pass on the bytes that came with the 101 and
        what the client sent after its handshake (held until now)."""
        client_transport, target = self._transports
        client_transport.set_protocol(_End(self, client_transport, target))
        target.set_protocol(_End(self, target, client_transport))
        if from_target:
            client_transport.write(from_target)
        held = self.exchange.upgrade
        if held:
            target.write(held)
        self.exchange.upgrade = b""
        self.client.last_activity = _monotonic()
        client_transport.resume_reading()  # paused since the handshake
        target.resume_reading()

    def close(self, exc: Exception | None = None) -> None:
        if self._closed:
            return
        self._closed = True
        for transport in self._transports:
            transport.close()
        self.exchange.release_target()
        self.client.connection_lost(exc)  # the listener forgets this client


def open_tunnel(client: Downstream, exchange: Exchange, target: Any, from_target: bytes) -> Tunnel:
    """The target answered `exchange`'s WebSocket handshake with 101 (already written to
    the client): from now on `client` and `target` (a transport) are one tunnel."""
    exchange.done = True
    queue = client.queue
    if queue and queue[0] is exchange:
        queue.popleft()
    tunnel = Tunnel(client, exchange, target)
    tunnel.start(from_target)
    return tunnel
