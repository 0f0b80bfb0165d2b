"""Wilson score intervals for an observed rate (the confidence interval shown as evidence)."""

from __future__ import annotations

import math

Z_95 = 1.959963984540054


def wilson(successes: int, trials: int, z: float = Z_95) -> tuple[float, float]:
    """Two-sided Wilson score interval for successes/trials; (0, 1) when there is no data.

    Wilson rather than the normal approximation because error rates sit near 0, where
    the normal interval dips below zero and undercovers.

    >>> lo, hi = wilson(1, 100)
    >>> round(lo, 4), round(hi, 4)
    (0.0018, 0.0545)
    """
    if trials < 0 or successes < 0 or successes > trials:
        raise ValueError(f"need 0 <= successes <= trials, got {successes}/{trials}")
    if trials == 0:
        return 0.0, 1.0
    p = successes / trials
    z2 = z * z
    denom = 1 + z2 / trials
    centre = (p + z2 / (2 * trials)) / denom
    half = z * math.sqrt(p * (1 - p) / trials + z2 / (4 * trials * trials)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)
