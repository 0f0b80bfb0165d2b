"""Hand-written fakes of the target Protocols, driven by a fake clock."""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field

from canary_deploy.backend import Progress, ServiceStatus, Version, VersionCounts
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

    def get_weights(self) -> Weights:
        return self.weights

    def set_weights(self, weights: Weights) -> None:
        if self.fail_next:
            self.fail_next = False
            raise RuntimeError("router unreachable")
        self.calls.append(weights)
        self.weights = weights

    def verify_weights(self, weights: Weights) -> bool:
        return self.weights == weights


@dataclass
class FakeWorkload:
    canary_count: int = 1
    promotions: int = 0
    stable_image: str = "v1"
    canary_image: str = "v2"

    def describe_services(self) -> dict[Version, ServiceStatus]:
        return {
            "stable": ServiceStatus("stable", 2, 0, 2, "COMPLETED"),
            "canary": ServiceStatus("canary", self.canary_count, 0, self.canary_count, "COMPLETED"),
        }

    def promote(self, progress: Progress) -> None:
        if self.stable_image != self.canary_image:
            self.promotions += 1
            self.stable_image = self.canary_image

    def scale_canary(self, desired_count: int) -> None:
        self.canary_count = desired_count


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
    _cache: dict[int, tuple[int, int, int, int]] = field(default_factory=dict)
    _weights_at: dict[int, Weights] = field(default_factory=dict)

    def record(self, second: int) -> None:
        """Freeze the split for a second that has passed (called as the clock advances)."""
        self._weights_at.setdefault(second, self.router.weights)

    def _second(self, second: int) -> tuple[int, int, int, int]:
        if second not in self._cache:
            rng = random.Random(self.seed * 1_000_003 + second)
            w = self._weights_at.get(second, self.router.weights)
            canary = sum(rng.random() < w.canary_share for _ in range(self.rps))
            stable = self.rps - canary
            s_err = sum(rng.random() < self.stable_error_rate for _ in range(stable))
            c_err = sum(rng.random() < self.canary_error_rate for _ in range(canary))
            if second == self.burst_second:
                c_err = canary
            self._cache[second] = (stable, s_err, canary, c_err)
        return self._cache[second]

    def counts(
        self, start: float, end: float, thresholds_s: Sequence[float] = ()
    ) -> dict[Version, VersionCounts]:
        s_req = s_err = c_req = c_err = 0
        for second in range(int(start), int(end)):
            a, b, c, d = self._second(second)
            s_req, s_err, c_req, c_err = s_req + a, s_err + b, c_req + c, c_err + d
        # 1% of each version is slower than stable's p99; a slower canary: 30%.
        s_slow = tuple(s_req // 100 for _ in thresholds_s)
        c_slow = tuple(
            c_req * 3 // 10 if self.canary_latency_s > t * 1.001 else c_req // 100
            for t in thresholds_s
        )
        return {
            "stable": VersionCounts(s_req, s_err, s_slow),
            "canary": VersionCounts(c_req, c_err, c_slow),
        }

    def quantiles(
        self, version: Version, start: float, end: float, qs: Sequence[float]
    ) -> tuple[float | None, ...]:
        if not self.latency:
            return tuple(None for _ in qs)
        base = self.stable_latency_s if version == "stable" else self.canary_latency_s
        return tuple(base for _ in qs)
