"""The AWS Workload: ECS services, with promotion done as a stack update so that the
stack keeps describing what runs (a later deploy never reverts a promotion)."""

from __future__ import annotations

from canary_deploy.aws.router import AlbRouter, to_alb
from canary_deploy.aws.stack import Stack
from canary_deploy.aws.workload import EcsWorkload
from canary_deploy.backend import Progress, ServiceStatus, Version

# Everything not named here keeps its previous value in the promotion's stack update.
TEMPLATE_PARAMETERS = (
    "ImageURIStable", "ImageURICanary", "ContainerPort", "DesiredCountStable",
    "DesiredCountCanary", "StableWeight", "CanaryWeight", "TaskCpu", "TaskMemory", "VpcId",
    "SubnetIds", "HealthCheckPath", "StickinessEnabled", "StickinessDurationSeconds",
    "AllowedIngressCidr",
)  # fmt: skip


class StackWorkload:
    """`Workload` for the AWS target."""

    def __init__(self, stack: Stack, ecs: EcsWorkload, router: AlbRouter) -> None:
        self.stack = stack
        self.ecs = ecs
        self.router = router

    def describe_services(self) -> dict[Version, ServiceStatus]:
        return self.ecs.describe_services()

    def scale_canary(self, desired_count: int) -> None:
        self.ecs.scale_canary(desired_count)

    def promote(self, progress: Progress) -> None:
        """Stack update with `ImageURIStable` = the canary's image (live weights kept),
        then wait for the stable service to be steady. Idempotent: a stack that already
        runs the canary image in stable is only waited on."""
        info = self.stack.require()
        canary_image = info.parameters.get("ImageURICanary")
        if canary_image and info.parameters.get("ImageURIStable") != canary_image:
            stable_weight, canary_weight = to_alb(self.router.get_weights())
            parameters: dict[str, str | None] = {
                name: None for name in TEMPLATE_PARAMETERS if name in info.parameters
            }
            parameters.update(
                ImageURIStable=canary_image,
                StableWeight=str(stable_weight),
                CanaryWeight=str(canary_weight),
            )
            progress.log(f"Promoting: the stable service takes {canary_image} (stack update)")
            self.stack.apply(parameters, progress)
        self.ecs.wait_steady("stable", progress)
