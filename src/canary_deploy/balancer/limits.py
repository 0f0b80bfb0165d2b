"""The balancer's limits and timeouts, in one place (docs/balancer.md lists them all).

A leaf module: it imports nothing of the balancer, so the parsers, the connections and
the settings all read a limit from here and it is changed in one place.
"""

from __future__ import annotations

import resource

# ALB's limit for the whole request head (request line plus headers); counted on the
# bytes received while a head has not ended, so a line that never ends is cut off too.
MAX_HEAD_BYTES = 64 * 1024
# Longer simple heads are rare; the parser path also enforces MAX_HEAD_BYTES for them.
SIMPLE_REQUEST_MAX = 8192

# Bytes received from one client that no target has yet (pipelined requests behind an
# unanswered one, a body while its target connection opens): past this, the balancer
# stops reading the client until its earlier exchange is done.
MAX_HELD_BYTES = 256 * 1024
# The same for every client together: past this, a client that holds any bytes waits.
MAX_HELD_TOTAL_BYTES = 64 * 1024 * 1024
# Each queued request costs a few hundred bytes beyond its own: counted as this much.
EXCHANGE_COST_BYTES = 512

# A complete request head must arrive within this many seconds of its first byte (or
# 408): one header line every few seconds never counts as idle. ALB documents no such
# deadline, only the idle timeout; 20 s is where Apache's mod_reqtimeout starts a head.
HEAD_TIMEOUT_S = 20.0

# A target's response head beyond this is a malformed response (502).
MAX_RESPONSE_HEAD_BYTES = 64 * 1024
# Idle keep-alive connections kept per target; more are closed when returned.
MAX_IDLE_PER_TARGET = 64

# ALB gives up on a target connection after 10 s (or the idle timeout if shorter).
CONNECT_TIMEOUT_S = 10.0

# The connection cap when none is configured: at most this many client connections...
MAX_CONNECTIONS = 4096
# ...and never more than the file descriptors leave room for: one for the client, one
# for its target connection, and this many kept for listeners, health checks, logs.
RESERVED_FDS = 128


def default_max_connections() -> int:
    """MAX_CONNECTIONS, or fewer when the process's open-file limit is lower.

    >>> default_max_connections() <= MAX_CONNECTIONS
    True
    """
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return MAX_CONNECTIONS
    return max(1, min(MAX_CONNECTIONS, (soft - RESERVED_FDS) // 2))
