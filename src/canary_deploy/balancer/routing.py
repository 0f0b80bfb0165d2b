"""Which target gets a request: weighted target-group choice, stickiness, then a target."""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Callable, Sequence
from email.utils import formatdate
from typing import TypeVar, cast

from canary_deploy.backend import GROUPS, Role
from canary_deploy.balancer.clock import wall_second
from canary_deploy.balancer.config import Algorithm, HealthState
from canary_deploy.balancer.exchange import Upstream
from canary_deploy.routes import BOOKINGS, GROUP_OF_TESTER, TESTER_OF, Booking
from canary_deploy.weights import Weights

STICKY_COOKIE = b"AWSALBTG"
# A target in slow start gets 1/100 of a full share at first, then linearly more.
RAMP_RESOLUTION = 100
_T = TypeVar("_T")


class SmoothWeighted:
    """nginx's smooth weighted round robin over the target groups (stable, canary, baseline).

    Each step adds every group's weight to its credit and picks the group with the most
    credit (ties in GROUPS order), which then pays 100. Over 100 picks every group is
    picked exactly its weight; the picks repeat with period 100, so any 100 consecutive
    picks hold the exact split, spread evenly; weight 0 gets none.

    >>> chooser = SmoothWeighted(Weights(80, 20))
    >>> "".join(chooser.next()[0] for _ in range(10))
    'sscsssscss'
    >>> chooser = SmoothWeighted(Weights(80, 10, 10))
    >>> "".join(chooser.next()[0] for _ in range(10))
    'ssscssbsss'
    """

    __slots__ = ("schedule", "tick", "weights")

    def __init__(self, weights: Weights) -> None:
        self.set(weights)

    def set(self, weights: Weights) -> None:
        """New weights apply to the very next pick; the cycle restarts from zero."""
        # The picks repeat with period 100, so they are computed once per change and
        # the hot path only indexes this list with a counter.
        self.weights = weights
        self.schedule = smooth_schedule([(g, weights.of(g)) for g in GROUPS])
        self.tick = 0  # index of the next pick in `schedule`

    def next(self) -> Role:
        """The next pick (the reference for the copy in the client's fast path)."""
        tick = self.tick
        self.tick = tick + 1 if tick < 99 else 0
        return self.schedule[tick]


def smooth_schedule(weighted: Sequence[tuple[_T, int]]) -> list[_T]:
    """One period of smooth weighted round robin: each item appears exactly its weight
    times, spread evenly (the period is the sum of the weights).

    >>> "".join(smooth_schedule([("a", 2), ("b", 1), ("c", 0)]))
    'aba'
    """
    total = sum(w for _, w in weighted)
    credit = [0] * len(weighted)
    out: list[_T] = []
    for _ in range(total):
        best = 0
        for i, (_, w) in enumerate(weighted):
            credit[i] += w
            if credit[i] > credit[best]:
                best = i
        credit[best] -= total
        out.append(weighted[best][0])
    return out


class RegisteredTarget:
    """One registered target: its health, in-flight count and idle keep-alive pool."""

    __slots__ = (
        "consecutive_failures",
        "consecutive_successes",
        "host",
        "idle",
        "joined_alone",
        "outstanding",
        "port",
        "reason",
        "slow_start_since",
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
        self.idle: list[Upstream] = []
        # Slow start: when this target entered it (clock time), None when not in it.
        self.slow_start_since: float | None = None
        # Registered while its group had no settled target (see TargetGroup.register):
        # its first healthy check does not start a slow start.
        self.joined_alone = False

    def __repr__(self) -> str:
        return f"RegisteredTarget({self.target_id!r}, {self.host}:{self.port}, {self.state})"


def _settled(target: RegisteredTarget) -> bool:
    """Healthy and not in slow start: what lets a newly healthy peer enter slow start."""
    return target.state == "healthy" and target.slow_start_since is None


class TargetGroup:
    """The targets of one group; picks among healthy ones, failing open like ALB.

    ALB slow start (`slow_start_s` > 0): a target that becomes healthy while the group
    has another healthy target not in slow start enters slow start; its share of the
    group's requests then rises linearly from ~0 to a full share over `slow_start_s`.
    It leaves slow start when the time is up or when it stops being healthy (it enters
    again when healthy again). Targets registered into a group with no such settled
    target (a first deployment) never start slowly, nor do targets already healthy when
    slow start is switched on. The ramp is a weighted `pool` rebuilt by `refresh()`
    (the balancer calls it every `ramp_step_s` while a target ramps), so picking costs
    the same with or without slow start.
    """

    __slots__ = (
        "_healthy",
        "_next",
        "_routable",
        "algorithm",
        "clock",
        "name",
        "only",
        "pool",
        "ramping",
        "slow_start_s",
        "targets",
    )

    def __init__(
        self,
        name: Role,
        algorithm: Algorithm,
        slow_start_s: float = 0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.name = name
        self.algorithm = algorithm
        self.slow_start_s = slow_start_s
        self.clock = clock
        self.targets: dict[str, RegisteredTarget] = {}
        self._healthy: list[RegisteredTarget] = []
        self._routable: list[RegisteredTarget] = []
        self.pool: list[RegisteredTarget] = []  # what pick() chooses from
        # The one target to use when the choice is trivial (the hot path skips pick()).
        self.only: RegisteredTarget | None = None
        self.ramping = False  # some target is in slow start: refresh() must run again
        self._next = 0

    def register(self, target: RegisteredTarget) -> None:
        """Add a target (state `initial`)."""
        target.joined_alone = not any(_settled(t) for t in self.targets.values())
        self.targets[target.target_id] = target
        self.refresh()

    def health_changed(self, target: RegisteredTarget) -> None:
        """Apply ALB's slow-start entry and exit rules after a target changed state."""
        if target.state == "healthy":
            if (
                self.slow_start_s > 0
                and not target.joined_alone
                and any(_settled(t) for t in self.targets.values() if t is not target)
            ):
                target.slow_start_since = self.clock()
            target.joined_alone = False  # only its first healthy check is exempt
        else:
            target.slow_start_since = None
        self.refresh()

    def set_slow_start(self, seconds: float) -> None:
        """Change the duration; 0 ends every slow start at once."""
        self.slow_start_s = seconds
        if seconds <= 0:
            for target in self.targets.values():
                target.slow_start_since = None
        self.refresh()

    def refresh(self) -> None:
        """Rebuild the routing lists; call after any registration or health change."""
        self._routable = [t for t in self.targets.values() if t.state != "draining"]
        self._healthy = [t for t in self._routable if t.state == "healthy"]
        ramping = [t for t in self._healthy if t.slow_start_since is not None]
        if ramping:
            ramping = self._expire(ramping)
        self.ramping = bool(ramping)
        if ramping and len(self._healthy) > 1:
            self.pool = smooth_schedule(self._shares())
        else:
            # ALB fails open: with no healthy target, every registered one gets traffic.
            self.pool = self._healthy or self._routable
        self.only = self.pool[0] if len(self.pool) == 1 else None

    def _expire(self, ramping: list[RegisteredTarget]) -> list[RegisteredTarget]:
        now = self.clock()
        for target in ramping:
            assert target.slow_start_since is not None
            if now - target.slow_start_since >= self.slow_start_s:
                target.slow_start_since = None
        return [t for t in ramping if t.slow_start_since is not None]

    def _shares(self) -> list[tuple[RegisteredTarget, int]]:
        """Each healthy target's share in 1/RAMP_RESOLUTION of a full one."""
        now = self.clock()
        shares = []
        for target in self._healthy:
            since = target.slow_start_since
            if since is None:
                shares.append((target, RAMP_RESOLUTION))
            else:
                ramp = (now - since) / self.slow_start_s
                shares.append((target, max(1, min(RAMP_RESOLUTION, int(RAMP_RESOLUTION * ramp)))))
        return shares

    @property
    def has_targets(self) -> bool:
        return bool(self._routable)

    def pick(self) -> RegisteredTarget | None:
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


def sticky_token(role: Role) -> bytes:
    """The AWSALBTG value for a group; stable across restarts so clients stay put."""
    return hashlib.sha256(b"canary-deploy/AWSALBTG/" + role.encode()).hexdigest()[:32].encode()


class Stickiness:
    """AWSALBTG cookies: read the group a client is bound to, and (re)issue the binding.

    The listener's stickiness can be turned off and on again live (`set_duration`), as
    ModifyListener does with `TargetGroupStickinessConfig`: while off, no cookie is read
    and none is issued, at no cost to the hot path (the cached headers are empty).
    """

    __slots__ = ("_by_token", "_cached", "_until", "duration_s")

    def __init__(self, duration_s: int) -> None:
        self.duration_s: int | None = duration_s
        self._by_token: dict[bytes, Role] = {}
        self._until = -1.0  # monotonic time at which the cached headers' second ends
        self._cached: dict[Booking, bytes] = {}
        self.set_duration(duration_s)

    def set_duration(self, duration_s: int | None) -> None:
        """On for `duration_s` seconds from the next response, or off (None)."""
        self.duration_s = duration_s
        if duration_s is None:
            self._by_token = {}
            self._cached = dict.fromkeys(BOOKINGS, b"")
            self._until = math.inf  # never rebuilt while off
        else:
            # Cookies issued before it was off name the same groups: they bind again.
            self._by_token = {sticky_token(v): v for v in GROUPS}
            self._until = -1.0  # rebuilt with the new duration on the next response

    def version_from_cookie(self, cookie_header: bytes) -> Role | None:
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

    def set_cookie_header(self, booking: Booking, now: float) -> bytes:
        """A complete `Set-Cookie:` header line (empty while off, and for a request a
        listener rule routed); `now`: monotonic time.

        Rebuilt once per wall-clock second (tracked on the monotonic clock the hot
        path reads anyway), so Expires is exact to the second.
        """
        if now >= self._until:
            duration = self.duration_s or 0  # never 0 here: off never rebuilds
            second, self._until = wall_second(now)
            expires = formatdate(second + duration, usegmt=True).encode()
            cached: dict[Booking, bytes] = {
                v: b"Set-Cookie: %s=%s; Expires=%s; Path=/\r\n"
                % (STICKY_COOKIE, sticky_token(v), expires)
                for v in GROUPS
            }
            # A rule's forward has a single group and no stickiness: no cookie.
            cached.update(dict.fromkeys(TESTER_OF.values(), b""))
            self._cached = cached
        return self._cached[booking]


class Router:
    """The listener's weighted forward action over the stable, canary and baseline groups."""

    __slots__ = ("_rule_groups", "chooser", "groups")

    def __init__(self, weights: Weights, algorithm: Algorithm, slow_start_s: float = 0) -> None:
        self.chooser = SmoothWeighted(weights)
        self.groups: dict[Role, TargetGroup] = {
            v: TargetGroup(v, algorithm, slow_start_s) for v in GROUPS
        }
        # A listener rule's booking -> the group it forwards to.
        self._rule_groups: dict[str, TargetGroup] = {
            booking: self.groups[group] for booking, group in GROUP_OF_TESTER.items()
        }

    def choose(self, sticky: Booking | None = None) -> tuple[Booking, RegisteredTarget | None]:
        """The group for the next request and a target in it (None: group is empty).

        A listener rule's binding (a tester booking) sends the request to its group
        whatever it holds: no target is ALB's 503. A sticky binding beats the weights,
        as on ALB: its group gets the request even at weight 0, while the group has
        registered targets. A rollback therefore turns stickiness off in the same
        listener change (canary_deploy.stickiness).
        """
        if sticky is not None:
            rule_group = self._rule_groups.get(sticky)
            if rule_group is not None:
                return sticky, rule_group.pick()
            group = self.groups[cast("Role", sticky)]
            if group.has_targets:
                return sticky, group.pick()
        role = self.chooser.next()
        return role, self.groups[role].pick()
