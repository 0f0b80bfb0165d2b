"""The wall-clock second, followed on the monotonic clock the hot path reads anyway.

What changes once a second (the trace-id prefix, a sticky cookie's expiry) is rebuilt
when a monotonic deadline passes, instead of reading the wall clock per request.
"""

from __future__ import annotations

import time


def wall_second(now: float) -> tuple[int, float]:
    """The wall-clock second that monotonic time `now` falls in, and when it ends.

    The end is on the monotonic clock, and never late: the wall clock is read after
    `now` was.
    """
    wall = time.time()
    second = int(wall)
    return second, now + (second + 1 - wall)
