"""The rows `canary status` shows for the groups of an AWS listener (our stack's or an
adopted one): each group's task definition, service, targets and traffic, read live."""

from __future__ import annotations

from collections.abc import Iterable

from canary_deploy.aws.health import TargetHealth
from canary_deploy.aws.metrics import CloudWatchMetrics
from canary_deploy.aws.outputs import StackOutputs
from canary_deploy.aws.router import ListenerState
from canary_deploy.aws.workload import EcsWorkload
from canary_deploy.backend import Role, RoleStatus, TrafficStatus, shown_in_status
from canary_deploy.errors import CanaryError


def role_rows(
    out: StackOutputs,
    state: ListenerState,
    ecs: EcsWorkload,
    health: TargetHealth,
    cloudwatch: CloudWatchMetrics,
    notes: list[str],
) -> dict[Role, RoleStatus]:
    """One row per group worth showing; what could not be read becomes a note."""
    services = ecs.describe_services()
    task_definitions = ecs.task_definitions()
    traffic = _traffic(cloudwatch, notes)
    roles = {
        v: RoleStatus(
            task_definition=task_definitions.get(v),
            service=services.get(v),
            target_group=health.group(v),
            traffic=traffic.get(v),
        )
        for v in out.groups
        # No target group here: AWS reads target health only for the rows it shows
        # (one DescribeTargetHealth call each), so unlike the local target, a baseline
        # whose only trace is draining targets gets no row.
        if shown_in_status(v, services.get(v), state.weight_of(v))
    }
    notes.extend(running_image_notes(ecs, roles))
    return roles


def _traffic(cloudwatch: CloudWatchMetrics, notes: list[str]) -> dict[Role, TrafficStatus | None]:
    # Metrics are a nice-to-have in status: a failure is a note, not a failed command.
    try:
        return cloudwatch.traffic()
    except CanaryError as exc:
        notes.append(f"CloudWatch metrics unavailable: {exc.message}")
        return {}


def running_image_notes(ecs: EcsWorkload, shown: Iterable[Role]) -> list[str]:
    """Which image each shown group's tasks run, pinned by the digest ECS reports."""
    try:
        images = ecs.running_images()
    except CanaryError as exc:
        return [f"the images the tasks run are unknown: {exc.message}"]
    notes = []
    for role in shown:
        found = images.get(role, ())
        if len(found) == 1:
            notes.append(f"{role} tasks run {found[0]}")
        elif found:
            notes.append(
                f"{role} tasks run {len(found)} different images: {', '.join(found)} "
                "(its tag was pushed again while they started)"
            )
    return notes
