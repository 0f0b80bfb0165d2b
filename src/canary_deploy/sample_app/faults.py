"""Fault injection from environment variables, so demos and tests can make a version bad."""

from __future__ import annotations

import os
import random
from collections.abc import Mapping
from dataclasses import dataclass

ENV_PREFIX = "CANARY_FAULT_"


@dataclass(frozen=True)
class Faults:
    """What to break. All off by default.

    Environment variables (prefix CANARY_FAULT_): ERROR_RATE (0..1, 500s on /predict and
    /whoami), LATENCY_MS and LATENCY_JITTER_MS (added delay, mean and uniform +-jitter),
    FAIL_HEALTH (1 = `GET /` answers 503), FAIL_HEALTH_FILE (503 while that file exists,
    to make a task sick or well again at runtime), CRASH_AFTER (exit after N served requests).
    """

    error_rate: float = 0.0
    latency_ms: float = 0.0
    latency_jitter_ms: float = 0.0
    fail_health: bool = False
    fail_health_file: str | None = None
    crash_after: int | None = None

    def __post_init__(self) -> None:
        if not 0.0 <= self.error_rate <= 1.0:
            raise ValueError(f"{ENV_PREFIX}ERROR_RATE must be in 0..1, got {self.error_rate}")
        if self.latency_ms < 0 or self.latency_jitter_ms < 0:
            raise ValueError(f"{ENV_PREFIX}LATENCY_MS and LATENCY_JITTER_MS must be >= 0")
        if self.crash_after is not None and self.crash_after < 1:
            raise ValueError(f"{ENV_PREFIX}CRASH_AFTER must be >= 1, got {self.crash_after}")

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Faults:
        env = os.environ if env is None else env

        def get(name: str) -> str | None:
            raw = env.get(ENV_PREFIX + name, "").strip()
            return raw or None

        crash = get("CRASH_AFTER")
        return cls(
            error_rate=float(get("ERROR_RATE") or 0),
            latency_ms=float(get("LATENCY_MS") or 0),
            latency_jitter_ms=float(get("LATENCY_JITTER_MS") or 0),
            fail_health=(get("FAIL_HEALTH") or "0").lower() in ("1", "true", "yes"),
            fail_health_file=get("FAIL_HEALTH_FILE"),
            crash_after=None if crash is None else int(crash),
        )

    def delay_s(self, rng: random.Random) -> float:
        """The added latency for one request (never negative)."""
        if self.latency_ms <= 0 and self.latency_jitter_ms <= 0:
            return 0.0
        jitter = rng.uniform(-self.latency_jitter_ms, self.latency_jitter_ms)
        return max(0.0, self.latency_ms + jitter) / 1000

    def healthy(self) -> bool:
        if self.fail_health:
            return False
        return self.fail_health_file is None or not os.path.exists(self.fail_health_file)

    def should_fail(self, rng: random.Random) -> bool:
        return self.error_rate > 0 and rng.random() < self.error_rate
