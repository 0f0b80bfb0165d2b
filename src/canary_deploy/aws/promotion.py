"""The AWS Workload: ECS services, with promotion done as a stack update so that the
stack keeps describing what runs (a later deploy never reverts a promotion)."""

from __future__ import annotations

from canary_deploy.aws.router import AlbRouter, to_alb
from canary_deploy.aws.stack import Stack, StackInfo
from canary_deploy.aws.workload import EcsWorkload
from canary_deploy.backend import Progress, ServiceStatus, Version
from canary_deploy.errors import CanaryError
from canary_deploy.weights import Weights

# Everything not named here keeps its previous value in the promotion's stack update.
TEMPLATE_PARAMETERS = (
    "ImageURIStable", "ImageURICanary", "ContainerPort", "DesiredCountStable",
    "DesiredCountCanary", "StableWeight", "CanaryWeight", "TaskCpu", "TaskMemory", "VpcId",
    "SubnetIds", "HealthCheckPath", "StickinessEnabled", "StickinessDurationSeconds",
    "AllowedIngressCidr", "DesiredCountBaseline", "BaselineWeight", "SlowStartSeconds",
)  # fmt: skip


def live_parameters(
    info: StackInfo, weights: Weights, ecs: EcsWorkload, progress: Progress
) -> dict[str, str | None]:
    """The stack parameters that must follow what runs now, for any stack update: the
    listener's live weights and the baseline's live task count (both are changed with API
    calls, not stack updates, so the stack's own values may be stale).

    A rollout sets the baseline's count with UpdateService; if the stack kept saying 0,
    any update that touches the baseline service (a promotion changes its task definition)
    would stop its tasks while they still serve the baseline's share.
    """
    stable, canary, baseline = to_alb(weights)
    parameters: dict[str, str | None] = {
        "StableWeight": str(stable),
        "CanaryWeight": str(canary),
        "BaselineWeight": str(baseline),
    }
    outputs = info.outputs
    if not outputs.get("ServiceBaselineName"):
        parameters["DesiredCountBaseline"] = "0"  # the update creates the baseline service
        return parameters
    try:
        baseline_service = ecs.describe_services().get("baseline")
    except CanaryError as exc:
        progress.log(f"Could not read the baseline's task count ({exc.message}); keeping it")
        baseline_service = None
    if baseline_service is not None:
        parameters["DesiredCountBaseline"] = str(baseline_service.desired)
        if baseline_service.desired:
            progress.log(
                f"Keeping the baseline's {baseline_service.desired} live task(s) in the stack "
                "update (a rollout is running)"
            )
    elif "DesiredCountBaseline" in info.parameters:
        parameters["DesiredCountBaseline"] = None  # the stack's previous value
    else:
        parameters["DesiredCountBaseline"] = "0"
    return parameters


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

    def start_baseline(self, desired_count: int, progress: Progress) -> None:
        self.ecs.start_baseline(desired_count, progress)

    def stop_baseline(self) -> None:
        self.ecs.stop_baseline()

    def promote(self, progress: Progress) -> None:
        """Stack update with `ImageURIStable` = the canary's image (live weights and
        baseline task count kept), then wait for the stable service to be steady.
        Idempotent: a stack that already runs the canary image in stable is only waited on.

        The baseline service runs stable's task definition in the template, so the same
        update moves it onto the promoted image too."""
        info = self.stack.require()
        canary_image = info.parameters.get("ImageURICanary")
        if canary_image and info.parameters.get("ImageURIStable") != canary_image:
            parameters: dict[str, str | None] = {
                name: None for name in TEMPLATE_PARAMETERS if name in info.parameters
            }
            parameters.update(live_parameters(info, self.router.get_weights(), self.ecs, progress))
            parameters["ImageURIStable"] = canary_image
            progress.log(f"Promoting: the stable service takes {canary_image} (stack update)")
            self.stack.apply(parameters, progress)
        self.ecs.wait_steady("stable", progress)
