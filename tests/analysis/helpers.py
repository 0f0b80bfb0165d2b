"""Small builders shared by the analysis tests."""

from __future__ import annotations

import math
import random

from canary_deploy.analysis import (
    Batch,
    Decision,
    MetricEvidence,
    RoleBatch,
    TaskCounts,
    Verdict,
)


def batch(
    stable: tuple[int, int],
    canary: tuple[int, int],
    *,
    slower: tuple[tuple[int, ...], tuple[int, ...]] = ((), ()),
    tasks: dict[str, TaskCounts] | None = None,
) -> Batch:
    return Batch(
        stable=RoleBatch(stable[0], stable[1], slower_than=slower[0]),
        canary=RoleBatch(canary[0], canary[1], slower_than=slower[1], tasks=tasks or {}),
    )


def binomial(rng: random.Random, n: int, p: float) -> int:
    """Binomial draw by geometric skips: O(number of successes), exact, stdlib only."""
    if p <= 0.0 or n == 0:
        return 0
    log_q = math.log1p(-p)
    count, position = 0, 0
    while True:
        position += int(math.log(1.0 - rng.random()) / log_q) + 1
        if position > n:
            return count
        count += 1


def evidence(name: str, e_harm: float, **changes: object) -> MetricEvidence:
    """One metric's evidence with plausible counts; `changes` overrides any field."""
    values: dict[str, object] = {
        "name": name,
        "canary_requests": 200,
        "canary_hits": 9,
        "stable_requests": 3800,
        "stable_hits": 40,
        "canary_rate": 0.045,
        "canary_interval": (0.02, 0.08),
        "stable_rate": 0.0105,
        "stable_interval": (0.0075, 0.0143),
        "e_harm": e_harm,
        "harm_threshold": 20.0,
        "e_non_inferiority": 0.4,
        "non_inferiority_threshold": 20.0,
        "explanation": f"{name}: harm e={e_harm}",
        **changes,
    }
    return MetricEvidence(**values)  # type: ignore[arg-type]


def decision(verdict: Verdict, *metrics: MetricEvidence, explanation: str = "") -> Decision:
    return Decision(
        verdict,
        metrics,
        explanation or f"judge says {verdict}",
        canary_requests=sum(m.canary_requests for m in metrics[:1]),
        warnings=("few requests",),
        controls=("stable+baseline", "baseline"),
    )
