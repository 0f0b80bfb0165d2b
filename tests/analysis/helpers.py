"""Small builders shared by the analysis tests."""

from __future__ import annotations

import math
import random

from canary_deploy.analysis import Batch, TaskCounts, VersionBatch


def batch(
    stable: tuple[int, int],
    canary: tuple[int, int],
    *,
    slower: tuple[tuple[int, ...], tuple[int, ...]] = ((), ()),
    tasks: dict[str, TaskCounts] | None = None,
) -> Batch:
    return Batch(
        stable=VersionBatch(stable[0], stable[1], slower_than=slower[0]),
        canary=VersionBatch(canary[0], canary[1], slower_than=slower[1], tasks=tasks or {}),
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
