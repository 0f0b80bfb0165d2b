"""Target health checks with ALB's states: initial, healthy, unhealthy (and fail-open)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

from canary_deploy.balancer.config import HealthCheckConfig
from canary_deploy.balancer.routing import RegisteredTarget


def apply_result(
    target: RegisteredTarget, ok: bool, reason: str | None, config: HealthCheckConfig
) -> bool:
    """Move a target through ALB's states after one check; True when its state changed.

    A new target is healthy after its first pass; afterwards `healthy_threshold`
    consecutive passes or `unhealthy_threshold` consecutive failures flip it.
    """
    if target.state == "draining":
        return False
    before = target.state
    if ok:
        target.consecutive_successes += 1
        target.consecutive_failures = 0
        if target.state == "initial" or (
            target.state == "unhealthy" and target.consecutive_successes >= config.healthy_threshold
        ):
            target.state = "healthy"
            target.reason = None
    else:
        target.consecutive_failures += 1
        target.consecutive_successes = 0
        if target.consecutive_failures >= config.unhealthy_threshold:
            target.state = "unhealthy"
            target.reason = reason
    return target.state != before


async def check_once(
    target: RegisteredTarget, config: HealthCheckConfig
) -> tuple[bool, str | None]:
    """One HTTP GET of the health path; (passed, ALB-style reason when it did not)."""
    writer: asyncio.StreamWriter | None = None
    try:
        async with asyncio.timeout(config.timeout_s):
            reader, writer = await asyncio.open_connection(target.host, target.port)
            writer.write(
                f"GET {config.path} HTTP/1.1\r\nHost: {target.host}:{target.port}\r\n"
                "User-Agent: ELB-HealthChecker/2.0\r\nConnection: close\r\n\r\n".encode()
            )
            status_line = await reader.readline()
    except TimeoutError:
        return False, "Target.Timeout"
    except OSError:
        return False, "Target.FailedHealthChecks"
    finally:
        if writer is not None:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
    parts = status_line.split()
    if len(parts) < 2 or not parts[1].isdigit():
        return False, "Target.FailedHealthChecks"
    if int(parts[1]) != config.matcher:
        return False, "Target.ResponseCodeMismatch"
    return True, None


class HealthChecker:
    """One checking task per target, started at registration, stopped at removal."""

    def __init__(
        self, config: HealthCheckConfig, on_change: Callable[[RegisteredTarget], None]
    ) -> None:
        self.config = config
        self._on_change = on_change
        self._tasks: dict[int, asyncio.Task[None]] = {}

    def watch(self, target: RegisteredTarget) -> None:
        self._tasks[id(target)] = asyncio.get_running_loop().create_task(self._run(target))

    async def unwatch(self, target: RegisteredTarget) -> None:
        task = self._tasks.pop(id(target), None)
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def stop(self) -> None:
        tasks = list(self._tasks.values())
        self._tasks.clear()
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _run(self, target: RegisteredTarget) -> None:
        # ALB checks a new target right away, then every interval.
        while True:
            ok, reason = await check_once(target, self.config)
            if apply_result(target, ok, reason, self.config):
                self._on_change(target)
            await asyncio.sleep(self.config.interval_s)
