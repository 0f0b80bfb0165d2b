"""The AWS Workload: ECS services, with promotion done as a stack update so that the
stack keeps describing what runs (a later deploy never reverts a promotion)."""

from __future__ import annotations

from canary_deploy.aws.live import apply_weights
from canary_deploy.aws.router import AlbRouter, to_alb
from canary_deploy.aws.stack import Stack, StackInfo
from canary_deploy.aws.workload import EcsWorkload
from canary_deploy.backend import Progress, ServiceStatus, Version
from canary_deploy.errors import CanaryError
from canary_deploy.weights import STABLE_ONLY, Weights

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

    def canary_image(self) -> str | None:
        """The image the canary's tasks run now, pinned by digest when ECS reports one."""
        return self.ecs.running_image("canary")

    def scale_canary(self, desired_count: int) -> None:
        self.ecs.scale_canary(desired_count)

    def start_baseline(self, desired_count: int, progress: Progress) -> None:
        self.ecs.start_baseline(desired_count, progress)

    def stop_baseline(self) -> None:
        self.ecs.stop_baseline()

    def promote(self, image: str, progress: Progress) -> None:
        """Make `image` (the one the rollout judged, pinned by digest when it was) stable's,
        and leave the stack saying so with all traffic on stable:

        1. a stack update with `ImageURIStable` = `image` (live weights and baseline task
           count kept), then wait until the stable service is steady;
        2. all traffic to stable (one ModifyListener, verified) — stable runs `image` now;
        3. the stack records 100/0 (a weights-only update), so no later rollback can
           restore the split of the moment before (e.g. 0/100 onto a canary about to be
           scaled down).

        Idempotent: a stack whose stable already runs `image` is only waited on, and steps
        2 and 3 do nothing when already done. The baseline service runs stable's task
        definition in the template, so step 1 moves it onto `image` too."""
        info = self.stack.require()
        if info.parameters.get("ImageURIStable") != image:
            parameters: dict[str, str | None] = {
                name: None for name in TEMPLATE_PARAMETERS if name in info.parameters
            }
            parameters.update(live_parameters(info, self.router.get_weights(), self.ecs, progress))
            parameters["ImageURIStable"] = image
            progress.log(f"Promoting: the stable service takes {image} (stack update)")
            self.stack.apply(parameters, progress)
        self.ecs.wait_steady("stable", progress)
        if not self.router.verify_weights(STABLE_ONLY):
            progress.log(f"All traffic to stable, which runs {image} now")
            apply_weights(self.router, STABLE_ONLY)
        info = self.stack.require()
        self.stack.record_live(live_parameters(info, STABLE_ONLY, self.ecs, progress), progress)
