"""Hand-written fakes of the target Protocols, driven by a fake clock."""

from __future__ import annotations

import random
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from typing import Any

from canary_deploy.backend import (
    Progress,
    Role,
    RoleCounts,
    RoleStatus,
    ServiceStatus,
    Status,
    TargetGroupStatus,
    TaskDefinitionStatus,
)
from canary_deploy.weights import Weights


@dataclass
class Clock:
    t: float = 1_000_000.0

    def __call__(self) -> float:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += seconds


@dataclass
class FakeRouter:
    weights: Weights = field(default_factory=lambda: Weights(100, 0))
    calls: list[Weights] = field(default_factory=list)
    fail_next: bool = False
    crash_after_next: bool = False  # the call takes effect, then the process "dies"

    def get_weights(self) -> Weights:
        return self.weights

    def set_weights(self, weights: Weights) -> None:
        if self.fail_next:
            self.fail_next = False
            raise RuntimeError("router unreachable")
        self.calls.append(weights)
        self.weights = weights
        if self.crash_after_next:
            self.crash_after_next = False
            raise KeyboardInterrupt("killed right after the listener call")

    def verify_weights(self, weights: Weights) -> bool:
        return self.weights == weights


@dataclass
class FakeWorkload:
    router: FakeRouter | None = None  # when given, stop_baseline refuses while it has weight
    canary_count: int = 1
    promotions: int = 0
    stable_image: str = "v1"
    canary_runs: str | None = "v2"  # the image the canary's tasks run (None: no service)
    promoted_images: list[str] = field(default_factory=list)
    baseline_count: int = 0
    canary_restarts: int = 0
    baseline_stops: int = 0
    baseline_at_promotion: int | None = None
    fail_start: BaseException | None = None
    stable_count: int = 2
    # At most this many healthy targets per group (None: every task healthy at once).
    healthy_at_most: dict[Role, int] = field(default_factory=dict)
    scaled: list[tuple[Role, int]] = field(default_factory=list)
    health_reads: int = 0

    def describe_services(self) -> dict[Role, ServiceStatus]:
        n = self.stable_count
        services = {
            "stable": ServiceStatus("stable", n, 0, n, "COMPLETED"),
            "canary": ServiceStatus("canary", self.canary_count, 0, self.canary_count, "COMPLETED"),
        }
        if self.baseline_count:
            n = self.baseline_count
            services["baseline"] = ServiceStatus("baseline", n, 0, n, "COMPLETED")
        return services

    def start_baseline(self, desired_count: int, progress: Progress) -> None:
        self.baseline_count = desired_count
        self.canary_restarts += 1
        if self.fail_start is not None:
            raise self.fail_start

    def stop_baseline(self) -> None:
        if self.router is not None and self.router.weights.baseline:
            # As the local daemon does: stopping a baseline that still serves is refused.
            raise RuntimeError("the baseline still has weight")
        self.baseline_count = 0
        self.baseline_stops += 1

    def canary_image(self) -> str | None:
        return self.canary_runs

    def promote(self, image: str, progress: Progress) -> None:
        self.baseline_at_promotion = self.baseline_count
        self.promoted_images.append(image)
        if self.stable_image != image:
            self.promotions += 1
            self.stable_image = image

    def scale(self, role: Role, desired_count: int) -> None:
        self.scaled.append((role, desired_count))
        if role == "canary":
            self.canary_count = desired_count
        elif role == "baseline":
            self.baseline_count = desired_count
        else:
            self.stable_count = desired_count

    def scale_canary(self, desired_count: int) -> None:
        self.scale("canary", desired_count)

    def healthy_targets(self, roles: Collection[Role]) -> dict[Role, int]:
        self.health_reads += 1
        counts = {"stable": self.stable_count, "canary": self.canary_count,
                  "baseline": self.baseline_count}  # fmt: skip
        return {v: min(counts[v], self.healthy_at_most.get(v, counts[v])) for v in roles}


@dataclass
class FakeMetrics:
    """Traffic that follows the router's live weights, second by second (seeded)."""

    router: FakeRouter
    rps: int = 200
    stable_error_rate: float = 0.01
    canary_error_rate: float = 0.01
    stable_latency_s: float = 0.05
    canary_latency_s: float = 0.05
    seed: int = 7
    latency: bool = False  # report quantiles, so the judge freezes latency thresholds
    burst_second: int | None = None  # every canary request of this second fails
    reads: list[tuple[float, float]] = field(default_factory=list)  # every counts() window
    _cache: dict[int, dict[Role, tuple[int, int]]] = field(default_factory=dict)
    _weights_at: dict[int, Weights] = field(default_factory=dict)

    def visible(self, second: int, requests: int, errors: int) -> tuple[int, int]:
        """What a read shows of one second's counts (all of it; see LateMetrics)."""
        return requests, errors

    def record(self, second: int) -> None:
        """Freeze the split for a second that has passed (called as the clock advances)."""
        self._weights_at.setdefault(second, self.router.weights)

    def _second(self, second: int) -> dict[Role, tuple[int, int]]:
        """(requests, errors) per group in one second; the baseline fails like stable."""
        if second not in self._cache:
            rng = random.Random(self.seed * 1_000_003 + second)
            w = self._weights_at.get(second, self.router.weights)
            served = {"stable": 0, "canary": 0, "baseline": 0}
            for _ in range(self.rps):
                u = rng.random() * 100
                group = (
                    "canary"
                    if u < w.canary
                    else "baseline"
                    if u < w.canary + w.baseline
                    else "stable"
                )
                served[group] += 1
            rates = {
                "stable": self.stable_error_rate,
                "canary": self.canary_error_rate,
                "baseline": self.stable_error_rate,
            }
            out: dict[Role, tuple[int, int]] = {}
            for group, n in served.items():
                errors = sum(rng.random() < rates[group] for _ in range(n))
                if group == "canary" and second == self.burst_second:
                    errors = n
                out[group] = (n, errors)  # type: ignore[index]
            self._cache[second] = out
        return self._cache[second]

    def counts(
        self, start: float, end: float, thresholds_s: Sequence[float] = ()
    ) -> dict[Role, RoleCounts]:
        self.reads.append((start, end))
        totals = {"stable": [0, 0], "canary": [0, 0], "baseline": [0, 0]}
        for second in range(int(start), int(end)):
            for group, (n, errors) in self._second(second).items():
                n, errors = self.visible(second, n, errors)
                totals[group][0] += n
                totals[group][1] += errors
        out: dict[Role, RoleCounts] = {}
        for group, (n, errors) in totals.items():
            latency = self.canary_latency_s if group == "canary" else self.stable_latency_s
            # 1% of each group is slower than stable's p99; a slower canary: 30%.
            slow = tuple(n * 3 // 10 if latency > t * 1.001 else n // 100 for t in thresholds_s)
            out[group] = RoleCounts(n, errors, slow)  # type: ignore[index]
        return out

    def quantiles(
        self, role: Role, start: float, end: float, qs: Sequence[float]
    ) -> tuple[float | None, ...]:
        if not self.latency:
            return tuple(None for _ in qs)
        base = self.stable_latency_s if role == "stable" else self.canary_latency_s
        return tuple(base for _ in qs)


class FakeTarget:
    """A Target over the fakes (anything with `router`, `workload` and `metrics`): status
    reads the workload, every task healthy as soon as it is asked for."""

    name = "fake"

    def __init__(self, parts: Any) -> None:
        self.router: FakeRouter = parts.router
        self.workload: FakeWorkload = parts.workload
        self.metrics: FakeMetrics = parts.metrics

    def status(self) -> Status:
        w = self.workload

        def role_status(image: str | None, count: int) -> RoleStatus:
            return RoleStatus(
                None if image is None else TaskDefinitionStatus(image),
                ServiceStatus("svc", count, 0, count, "COMPLETED"),
                TargetGroupStatus("tg", healthy=count),
            )

        roles: dict[Role, RoleStatus] = {
            "stable": role_status(w.stable_image, 2),
            "canary": role_status(w.canary_runs, w.canary_count),
        }
        if w.baseline_count:
            roles["baseline"] = role_status(w.stable_image, w.baseline_count)
        return Status("fake", "stack", "RUNNING", None, roles)
