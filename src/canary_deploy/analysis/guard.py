"""The burst guard: notice when a would-be rollback rests on clustered errors.

The e-process assumes hits are independent given the traffic. One bad task, one
retrying client or one short outage produce many errors at once, which inflates the
evidence far beyond what independent errors would. The guard looks at where the
canary's hits came from; it never makes a rollback *more* likely.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from canary_deploy.analysis.batch import TaskCounts
from canary_deploy.analysis.config import BurstGuardConfig
from canary_deploy.analysis.eprocess import RateRatioEProcess


def interval_burst(
    config: BurstGuardConfig,
    harm: RateRatioEProcess,
    max_burst_llr: Sequence[float],
    threshold: float,
    burst_hits: int,
) -> str | None:
    """A reason when the harm evidence stands only thanks to one burst interval, else None.

    `max_burst_llr[i]` is the largest contribution any single burst interval (see
    `BurstGuardConfig`) made to grid ratio i; taking it out of every
    ratio is conservative: no single interval can account for more.
    """
    if not config.enabled or not any(v > 0 for v in max_burst_llr):
        return None
    log_threshold = math.log(threshold)
    if harm.log_e_value < log_threshold:
        return None
    without = harm.log_e_value_without([max(v, 0.0) for v in max_burst_llr])
    if without >= log_threshold:
        return None
    return (
        f"one interval with {burst_hits} canary hits carries the evidence: "
        f"without it e={math.exp(without):.3g} (< {threshold:.3g})"
    )


def task_burst(config: BurstGuardConfig, tasks: Mapping[str, TaskCounts]) -> str | None:
    """A reason when one canary task produced most of the errors while others served too.

    With a single canary task there is nothing to compare, so no verdict is held.

    >>> t = {"a": TaskCounts(500, 9), "b": TaskCounts(500, 1)}
    >>> task_burst(BurstGuardConfig(), t)
    "task 'a' produced 9 of the canary's 10 errors with 50% of its requests"
    """
    serving = {name: t for name, t in tasks.items() if t.requests > 0}
    if not config.enabled or len(serving) < 2:
        return None
    total_errors = sum(t.errors for t in serving.values())
    total_requests = sum(t.requests for t in serving.values())
    name, worst = max(serving.items(), key=lambda item: item[1].errors)
    if worst.errors < config.min_hits or worst.errors <= config.max_task_share * total_errors:
        return None
    share = worst.requests / total_requests
    return (
        f"task {name!r} produced {worst.errors} of the canary's {total_errors} errors "
        f"with {share:.0%} of its requests"
    )
