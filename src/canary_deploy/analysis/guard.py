"""The burst guard: notice when a would-be rollback rests on clustered errors.

The e-process assumes hits are independent given the traffic. One bad task, one
retrying client or one short outage produce many errors at once, which inflates the
evidence far beyond what independent errors would. The guard looks at where the
canary's hits came from; it never makes a rollback *more* likely.
"""

from __future__ import annotations

from collections.abc import Mapping

from canary_deploy.analysis.batch import TaskCounts
from canary_deploy.analysis.config import BurstGuardConfig


def interval_burst(config: BurstGuardConfig, max_interval_hits: int, total_hits: int) -> str | None:
    """A reason when one interval holds most of the canary's hits, else None.

    >>> interval_burst(BurstGuardConfig(), max_interval_hits=12, total_hits=15)
    "one interval holds 12 of the canary's 15 hits"
    """
    if not config.enabled or max_interval_hits < config.min_hits or total_hits == 0:
        return None
    if max_interval_hits > config.max_interval_share * total_hits:
        return f"one interval holds {max_interval_hits} of the canary's {total_hits} hits"
    return None


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
