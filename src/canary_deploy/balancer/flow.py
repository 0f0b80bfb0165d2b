"""Back-pressure: why a connection's reading is paused, owned by one object per
connection (as uvicorn's FlowControl)."""

from __future__ import annotations

from typing import Any, Final


class Paused:
    """Why a transport is not read: bits of `FlowControl.paused_by`. Plain ints, not an
    IntFlag: a response's end resumes its client, and enum arithmetic is Python code."""

    HELD: Final = 1  # a client's bytes wait in the balancer (limits.MAX_HELD_BYTES)
    SLOW_TARGET: Final = 2  # a client's target connection cannot take more yet
    SLOW_CLIENT: Final = 4  # a target's response waits for its client to take it
    STOPPED: Final = 8  # no more HTTP from this client (refused, or a WebSocket)


class FlowControl:
    """Whether one transport reads, and why not.

    Whoever stops the reading names its reason; the transport reads again once the last
    reason is gone, and is touched only when that changes. So a slow target and a full
    hold never resume each other's pause, and a refused client is never read again.
    """

    __slots__ = ("paused_by", "transport")

    def __init__(self, transport: Any = None) -> None:
        self.transport = transport  # None: not connected yet, or gone
        self.paused_by = 0

    def pause(self, reason: int) -> None:
        if not self.paused_by and self.transport is not None:
            self.transport.pause_reading()
        self.paused_by |= reason

    def resume(self, reason: int) -> None:
        if self.paused_by & reason:
            self.paused_by &= ~reason
            if not self.paused_by and self.transport is not None:
                self.transport.resume_reading()
