"""Which target gets a request: weighted target-group choice, stickiness, then a target."""

from __future__ import annotations

import hashlib
from email.utils import formatdate
from typing import TYPE_CHECKING

from canary_deploy.backend import VERSIONS, Version
from canary_deploy.balancer.clock import wall_second
from canary_deploy.balancer.config import Algorithm, HealthState
from canary_deploy.weights import Weights

if TYPE_CHECKING:
    from canary_deploy.balancer.upstream import UpstreamConnection

STICKY_COOKIE = b"AWSALBTG"
# Idle upstream keep-alive connections kept per target; more are closed when returned.
MAX_IDLE_PER_TARGET = 64


class SmoothWeighted:
    """nginx's smooth weighted round robin over the two target groups.

    The picks repeat with period 100 (weights sum to 100), so any 100 consecutive
    picks contain exactly `canary` canary picks, spread evenly; weight 0 gets none.

    >>> chooser = SmoothWeighted(Weights(80, 20))
    >>> "".join(chooser.next()[0] for _ in range(10))
    'sssscsssss'
    """

    __slots__ = ("schedule", "tick", "weights")

    def __init__(self, weights: Weights) -> None:
        self.set(weights)

    def set(self, weights: Weights) -> None:
        """New weights apply to the very next pick; the cycle restarts from zero."""
        # The picks repeat with period 100, so they are computed once per change and
        # the hot path only indexes this list with a counter.
        schedule: list[Version] = []
        current_stable = current_canary = 0
        for _ in range(100):
            current_stable += weights.stable
            current_canary += weights.canary
            if current_stable >= current_canary:
                current_stable -= 100
                schedule.append("stable")
            else:
                current_canary -= 100
                schedule.append("canary")
        self.weights = weights
        self.schedule = schedule
        self.tick = 0  # index of the next pick in `schedule`

    def next(self) -> Version:
        tick = self.tick
        self.tick = tick + 1 if tick < 99 else 0
        return self.schedule[tick]


class Target:
    """One registered target: its health, in-flight count and idle keep-alive pool."""

    __slots__ = (
        "consecutive_failures",
        "consecutive_successes",
        "host",
        "idle",
        "outstanding",
        "port",
        "reason",
        "state",
        "target_id",
    )

    def __init__(self, target_id: str, host: str, port: int) -> None:
        self.target_id = target_id
        self.host = host
        self.port = port
        self.state: HealthState = "initial"
        self.reason: str | None = "Elb.InitialHealthChecking"
        self.outstanding = 0
        self.consecutive_successes = 0
        self.consecutive_failures = 0
        self.idle: list[UpstreamConnection] = []

    def __repr__(self) -> str:
        return f"Target({self.target_id!r}, {self.host}:{self.port}, {self.state})"


class TargetGroup:
    """The targets of one version; picks among healthy ones, failing open like ALB."""

    __slots__ = ("_healthy", "_next", "_routable", "algorithm", "name", "only", "pool", "targets")

    def __init__(self, name: Version, algorithm: Algorithm) -> None:
        self.name = name
        self.algorithm = algorithm
        self.targets: dict[str, Target] = {}
        self._healthy: list[Target] = []
        self._routable: list[Target] = []
        self.pool: list[Target] = []  # what pick() chooses from
        # The one target to use when the choice is trivial (the hot path skips pick()).
        self.only: Target | None = None
        self._next = 0

    def refresh(self) -> None:
        """Rebuild the routing lists; call after any registration or health change."""
        self._routable = [t for t in self.targets.values() if t.state != "draining"]
        self._healthy = [t for t in self._routable if t.state == "healthy"]
        # ALB fails open: with no healthy target, every registered one gets traffic.
        self.pool = self._healthy or self._routable
        self.only = self.pool[0] if len(self.pool) == 1 else None

    @property
    def has_targets(self) -> bool:
        return bool(self._routable)

    def pick(self) -> Target | None:
        pool = self.pool
        n = len(pool)
        if n == 0:
            return None
        start = self._next % n
        self._next = start + 1
        if self.algorithm == "round_robin" or n == 1:
            return pool[start]
        best = pool[start]
        for i in range(1, n):
            candidate = pool[(start + i) % n]
            if candidate.outstanding < best.outstanding:
                best = candidate
        return best


def sticky_token(version: Version) -> bytes:
    """The AWSALBTG value for a group; stable across restarts so clients stay put."""
    return hashlib.sha256(b"canary-deploy/AWSALBTG/" + version.encode()).hexdigest()[:32].encode()


class Stickiness:
    """AWSALBTG cookies: read the group a client is bound to, and (re)issue the binding."""

    __slots__ = ("_by_token", "_cached", "_until", "duration_s")

    def __init__(self, duration_s: int) -> None:
        self.duration_s = duration_s
        self._by_token: dict[bytes, Version] = {sticky_token(v): v for v in VERSIONS}
        self._until = -1.0  # monotonic time at which the cached headers' second ends
        self._cached: dict[Version, bytes] = {}

    def version_from_cookie(self, cookie_header: bytes) -> Version | None:
        """The group named by an AWSALBTG cookie in a Cookie header, if valid."""
        at = cookie_header.find(STICKY_COOKIE + b"=")
        while at > 0 and cookie_header[at - 1 : at] not in (b" ", b";"):
            at = cookie_header.find(STICKY_COOKIE + b"=", at + 1)
        if at < 0:
            return None
        start = at + len(STICKY_COOKIE) + 1
        end = cookie_header.find(b";", start)
        value = cookie_header[start:] if end < 0 else cookie_header[start:end]
        return self._by_token.get(value.strip())

    def set_cookie_header(self, version: Version, now: float) -> bytes:
        """A complete `Set-Cookie:` header line; `now`: monotonic time.

        Rebuilt once per wall-clock second (tracked on the monotonic clock the hot
        path reads anyway), so Expires is exact to the second.
        """
        if now >= self._until:
            second, self._until = wall_second(now)
            expires = formatdate(second + self.duration_s, usegmt=True).encode()
            self._cached = {
                v: b"Set-Cookie: %s=%s; Expires=%s; Path=/\r\n"
                % (STICKY_COOKIE, sticky_token(v), expires)
                for v in VERSIONS
            }
        return self._cached[version]


class Router:
    """The listener's weighted forward action over the stable and canary groups."""

    __slots__ = ("chooser", "groups")

    def __init__(self, weights: Weights, algorithm: Algorithm) -> None:
        self.chooser = SmoothWeighted(weights)
        self.groups: dict[Version, TargetGroup] = {v: TargetGroup(v, algorithm) for v in VERSIONS}

    def choose(self, sticky: Version | None = None) -> tuple[Version, Target | None]:
        """The group for the next request and a target in it (None: group is empty).

        A sticky binding is honoured while its group has weight and targets; a group
        at weight 0 gets nothing, so a rollback to 100/0 moves sticky clients too.
        """
        if sticky is not None:
            group = self.groups[sticky]
            weight = (
                self.chooser.weights.canary if sticky == "canary" else (self.chooser.weights.stable)
            )
            if weight > 0 and group.has_targets:
                return sticky, group.pick()
        version = self.chooser.next()
        return version, self.groups[version].pick()
