"""What the `Workload` of our stack and of an adopted setup do alike: ECS services read
and scaled, target health read, and the end of a promotion (stable steady, then all
traffic to it). How stable takes the judged image is each one's own."""

from __future__ import annotations

from collections.abc import Collection

from canary_deploy.aws.health import TargetHealth
from canary_deploy.aws.live import apply_weights
from canary_deploy.aws.router import AlbRouter
from canary_deploy.aws.workload import EcsWorkload
from canary_deploy.backend import Progress, Role, ServiceStatus
from canary_deploy.weights import STABLE_ONLY


class ServicesWorkload:
    """The services, counts and health half of an AWS `Workload`."""

    def __init__(self, ecs: EcsWorkload, router: AlbRouter, health: TargetHealth) -> None:
        self.ecs = ecs
        self.router = router
        self.health = health

    def describe_services(self) -> dict[Role, ServiceStatus]:
        return self.ecs.describe_services()

    def canary_image(self) -> str | None:
        """The image the canary's tasks run now, pinned by digest when ECS reports one."""
        return self.ecs.running_image("canary")

    def scale(self, role: Role, desired_count: int) -> None:
        self.ecs.scale(role, desired_count)

    def scale_canary(self, desired_count: int) -> None:
        self.ecs.scale("canary", desired_count)

    def healthy_targets(self, roles: Collection[Role]) -> dict[Role, int]:
        """Healthy targets per group asked for (one DescribeTargetHealth each)."""
        return self.health.healthy(roles)

    def start_baseline(self, desired_count: int, progress: Progress) -> None:
        self.ecs.start_baseline(desired_count, progress)

    def stop_baseline(self) -> None:
        self.ecs.stop_baseline()

    def all_to_stable(self, image: str, progress: Progress) -> None:
        """A promotion's end: once the stable service is steady on `image`, all traffic to
        it (one ModifyListener, verified; nothing when it is there already)."""
        self.ecs.wait_steady("stable", progress)
        if not self.router.verify_weights(STABLE_ONLY):
            progress.log(f"All traffic to stable, which runs {image} now")
            apply_weights(self.router, STABLE_ONLY)
