"""The balancer's settings and the health view it reports, with ALB's defaults."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from canary_deploy.balancer.limits import HEAD_TIMEOUT_S
from canary_deploy.errors import UsageError
from canary_deploy.weights import Weights

Algorithm = Literal["round_robin", "least_outstanding_requests"]
ALGORITHMS: tuple[Algorithm, ...] = ("round_robin", "least_outstanding_requests")
HealthState = Literal["initial", "healthy", "unhealthy", "draining"]
DEFAULT_WEIGHTS = Weights(95, 5)  # the seed's first-deploy split


@dataclass(frozen=True)
class HealthCheckConfig:
    """Target-group health check; the defaults are ALB's."""

    path: str = "/"
    interval_s: float = 30
    timeout_s: float = 5
    healthy_threshold: int = 5
    unhealthy_threshold: int = 2
    matcher: int = 200

    def __post_init__(self) -> None:
        if not self.path.startswith("/"):
            raise UsageError(f"health check path must start with '/', got {self.path!r}")
        if self.interval_s <= 0 or self.timeout_s <= 0:
            raise UsageError("health check interval and timeout must be positive")
        if self.healthy_threshold < 1 or self.unhealthy_threshold < 1:
            raise UsageError("health check thresholds must be at least 1")

    @classmethod
    def fast(cls, path: str = "/") -> HealthCheckConfig:
        """A demo/test profile: state changes within about a second."""
        return cls(
            path=path, interval_s=0.5, timeout_s=0.5, healthy_threshold=2, unhealthy_threshold=2
        )


@dataclass(frozen=True)
class BalancerConfig:
    """One listener with a weighted forward action over the stable, canary and baseline
    target groups."""

    host: str = "127.0.0.1"
    port: int = 8080  # 0 = pick a free port
    weights: Weights = DEFAULT_WEIGHTS
    stickiness_s: int | None = None  # AWSALBTG cookie duration; None = off
    idle_timeout_s: float = 60
    head_timeout_s: float = HEAD_TIMEOUT_S  # a whole request head within this (or 408)
    max_connections: int | None = None  # client connections; None: limits.default_max_connections()
    health: HealthCheckConfig = field(default_factory=HealthCheckConfig)
    algorithm: Algorithm = "round_robin"
    deregistration_delay_s: float = 300
    slow_start_s: int = 0  # ALB target-group slow start: 0 (off) or 30..900 seconds

    def __post_init__(self) -> None:
        if not 0 <= self.port <= 65535:
            raise UsageError(f"port must be 0-65535, got {self.port}")
        if self.stickiness_s is not None:
            check_stickiness(self.stickiness_s)
        if self.idle_timeout_s <= 0:
            raise UsageError("idle timeout must be positive")
        if self.head_timeout_s <= 0:
            raise UsageError("head timeout must be positive")
        if self.max_connections is not None and self.max_connections < 1:
            raise UsageError(f"max connections must be at least 1, got {self.max_connections}")
        if self.algorithm not in ALGORITHMS:
            raise UsageError(
                f"unknown algorithm {self.algorithm!r}", hint=f"use one of {', '.join(ALGORITHMS)}"
            )
        if self.deregistration_delay_s < 0:
            raise UsageError("deregistration delay cannot be negative")
        check_slow_start(self.slow_start_s)
        if self.slow_start_s and self.algorithm == "least_outstanding_requests":
            raise UsageError(
                "slow start cannot be combined with least outstanding requests (as on ALB)",
                hint="use round_robin, or slow start 0",
            )


def check_stickiness(seconds: int) -> None:
    """ALB's range for `TargetGroupStickinessConfig.DurationSeconds`: 1..604800."""
    if isinstance(seconds, bool) or not isinstance(seconds, int) or not 1 <= seconds <= 604800:
        raise UsageError(
            f"stickiness duration must be 1-604800 seconds (ALB's range), got {seconds!r}"
        )


def check_slow_start(seconds: int) -> None:
    """ALB's range for `slow_start.duration_seconds`: 0 (off) or 30..900."""
    if isinstance(seconds, bool) or not isinstance(seconds, int):
        raise UsageError(f"slow start must be whole seconds, got {seconds!r}")
    if seconds != 0 and not 30 <= seconds <= 900:
        raise UsageError(
            f"slow start must be 0 (off) or 30-900 seconds (ALB's range), got {seconds}"
        )


@dataclass(frozen=True)
class TargetHealth:
    """One registered target as ALB's DescribeTargetHealth shows it."""

    target_id: str
    host: str
    port: int
    state: HealthState
    reason: str | None = None
