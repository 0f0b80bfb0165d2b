"""`canary logs` on AWS: the services' task output in CloudWatch Logs (the template's log
group `/ecs/<stack>`, one stream per task under `stable/` or `canary/`; the baseline runs
stable's task definition, so its output is under `stable/` too)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from canary_deploy.aws.errors import aws_errors

_FOLLOW_POLL_S = 5.0  # CloudWatch Logs delivers within seconds; no faster polling helps
_LOOKBACK_S = 3600.0  # the last lines: searched for in the last hour


def log_group(stack_name: str) -> str:
    return f"/ecs/{stack_name}"


def stream_prefix(version: str) -> str:
    return "stable/" if version == "baseline" else f"{version}/"


def _events(
    logs: Any, group: str, prefix: str, start_ms: int, *, stack_name: str, region: str
) -> list[dict[str, Any]]:
    """Every event of the streams under `prefix` since `start_ms`, oldest first."""
    events: list[dict[str, Any]] = []
    kwargs: dict[str, Any] = {
        "logGroupName": group,
        "logStreamNamePrefix": prefix,
        "startTime": start_ms,
    }
    with aws_errors("read the tasks' logs", stack_name=stack_name, region=region):
        while True:
            page = logs.filter_log_events(**kwargs)
            events += page.get("events", [])
            token = page.get("nextToken")
            if not token or token == kwargs.get("nextToken"):
                break
            kwargs["nextToken"] = token
    # The prefix is checked here too: moto's FilterLogEvents ignores logStreamNamePrefix.
    ours = [e for e in events if str(e.get("logStreamName", "")).startswith(prefix)]
    return sorted(ours, key=lambda e: (e.get("timestamp", 0), e.get("eventId", "")))


def read(
    logs: Any,
    region: str,
    stack_name: str,
    version: str,
    count: int,
    emit: Callable[[str, str], None],
    *,
    follow: bool = False,
    stop: Callable[[], bool] = lambda: False,
    now: Callable[[], float] = time.time,
    sleep: Callable[[float], None] = time.sleep,
    location: tuple[str, str] | None = None,
) -> None:
    """Emit (stream, message) for the last `count` events of `version`'s tasks, then,
    with `follow`, every new one until `stop()`. `location`: (log group, stream prefix)
    when not our stack's (an adopted service's, from its task definition)."""
    group, prefix = location or (log_group(stack_name), stream_prefix(version))
    since_ms = int((now() - _LOOKBACK_S) * 1000)
    seen: set[str] = set()
    where = {"stack_name": stack_name, "region": region}
    events = _events(logs, group, prefix, since_ms, **where)[-count:] if count else []
    while True:
        for event in events:
            seen.add(str(event.get("eventId")))
            emit(str(event.get("logStreamName", "")), str(event.get("message", "")).rstrip("\n"))
            since_ms = max(since_ms, int(event.get("timestamp", since_ms)))
        if not follow or stop():
            return
        sleep(_FOLLOW_POLL_S)
        fresh = _events(logs, group, prefix, since_ms, **where)
        events = [e for e in fresh if str(e.get("eventId")) not in seen]
