"""The wall-clock second, followed on the monotonic clock the hot path reads anyway, and
the trace ids made from it.

What changes once a second (the trace-id prefix, a sticky cookie's expiry) is rebuilt
when a monotonic deadline passes, instead of reading the wall clock per request.
"""

from __future__ import annotations

import itertools
import random
import time
from typing import ClassVar


def wall_second(now: float) -> tuple[int, float]:
    """The wall-clock second that monotonic time `now` falls in, and when it ends.

    The end is on the monotonic clock, and never late: the wall clock is read after
    `now` was.
    """
    wall = time.time()
    second = int(wall)
    return second, now + (second + 1 - wall)


class TracePrefix:
    """`X-Amzn-Trace-Id: Root=1-<8 hex epoch>-<16 hex random>`, made once per second.

    A trace id ends with 8 hex digits of a per-process serial number: unique within the
    second (up to 2**32 requests), random across processes and seconds; formatting 96
    random bits per request instead costs more than the rest of the request head.
    """

    header: ClassVar[bytes] = b""
    until: ClassVar[float] = -1.0  # monotonic time at which the current wall-clock second ends

    @classmethod
    def refresh(cls, now: float) -> None:
        """Start the wall-clock second that monotonic time `now` falls in."""
        second, cls.until = wall_second(now)
        cls.header = b"X-Amzn-Trace-Id: Root=1-%08x-%016x" % (second, random.getrandbits(64))


# The serial number at the end of each trace id (masked to 32 bits). The client's fast
# path (proxy.ClientConnection.data_received) makes its trace ids from these itself: a
# differential test (tests/balancer/test_hot_path_copies.py) holds it to trace_header.
trace_serial = itertools.count()
SERIAL_MASK = 0xFFFFFFFF


def trace_header(now: float) -> bytes:
    """A new `X-Amzn-Trace-Id: Root=1-<8 hex epoch>-<24 hex>` line; `now`: monotonic.

    >>> import re
    >>> line = rb"X-Amzn-Trace-Id: Root=1-[0-9a-f]{8}-[0-9a-f]{24}\\r\\n"
    >>> re.fullmatch(line, trace_header(0)) is not None
    True
    """
    if now >= TracePrefix.until:
        TracePrefix.refresh(now)
    return b"%b%08x\r\n" % (TracePrefix.header, next(trace_serial) & SERIAL_MASK)
