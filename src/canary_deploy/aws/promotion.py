"""The AWS Workload: ECS services, with promotion done as a stack update so that the
stack keeps describing what runs (a later deploy never reverts a promotion)."""

from __future__ import annotations

from canary_deploy.aws.health import TargetHealth
from canary_deploy.aws.router import AlbRouter, to_alb
from canary_deploy.aws.service_workload import ServicesWorkload
from canary_deploy.aws.stack import Stack, StackInfo
from canary_deploy.aws.workload import EcsWorkload
from canary_deploy.backend import Progress, Role, ServiceStatus
from canary_deploy.errors import CanaryError
from canary_deploy.weights import STABLE_ONLY, Weights


def live_parameters(
    info: StackInfo,
    weights: Weights,
    ecs: EcsWorkload,
    progress: Progress,
    *,
    canary_count: int | None = None,
) -> dict[str, str | None]:
    """The stack parameters that must follow what runs now, for any stack update: the
    listener's live weights, the baseline's live task count and, while the canary serves
    traffic, its live task count when the update would give it fewer (`canary_count`, by
    default the stack's own). All three are changed with API calls, not stack updates, so
    the stack's own values may be stale.

    A rollout sets the baseline's count with UpdateService; if the stack kept saying 0,
    any update that touches the baseline service (a promotion changes its task definition)
    would stop its tasks while they still serve the baseline's share. Likewise a rollout
    sizes the canary for its share: an update that touched the canary service with the
    stack's count would leave a few tasks carrying 50% or 100% of the traffic.
    """
    stable, canary, baseline = to_alb(weights)
    parameters: dict[str, str | None] = {
        "StableWeight": str(stable),
        "CanaryWeight": str(canary),
        "BaselineWeight": str(baseline),
    }
    if not info.outputs.get("ServiceBaselineName"):
        # A stack from before the baseline (and before rollouts sized the canary): the
        # update creates the baseline service.
        parameters["DesiredCountBaseline"] = "0"
        return parameters
    try:
        services = ecs.describe_services()
    except CanaryError as exc:
        progress.log(f"Could not read the baseline's task count ({exc.message}); keeping it")
        services = None
    parameters["DesiredCountBaseline"] = _baseline_count(info, services, progress)
    if services is not None and weights.canary > 0:
        parameters.update(_serving_canary(info, services, weights, canary_count, progress))
    if services is not None:
        parameters.update(_autoscaled_stable(info, services, progress))
    return parameters


def _autoscaled_stable(
    info: StackInfo, services: dict[Role, ServiceStatus], progress: Progress
) -> dict[str, str | None]:
    """DesiredCountStable as autoscaling left it, when the stack autoscales stable: an
    update that touched the service with the stack's own count would undo a scale-out."""
    service = services.get("stable")
    if info.parameters.get("AutoScalingMetric", "off") == "off" or service is None:
        return {}
    if str(service.desired) != info.parameters.get("DesiredCountStable"):
        progress.log(
            f"Keeping stable's {service.desired} live task(s) in the stack update "
            "(autoscaling sets its count)"
        )
    return {"DesiredCountStable": str(service.desired)}


def _baseline_count(
    info: StackInfo, services: dict[Role, ServiceStatus] | None, progress: Progress
) -> str | None:
    baseline_service = None if services is None else services.get("baseline")
    if baseline_service is not None:
        if baseline_service.desired:
            progress.log(
                f"Keeping the baseline's {baseline_service.desired} live task(s) in the stack "
                "update (a rollout is running)"
            )
        return str(baseline_service.desired)
    if "DesiredCountBaseline" in info.parameters:
        return None  # the stack's previous value
    return "0"


def _serving_canary(
    info: StackInfo,
    services: dict[Role, ServiceStatus],
    weights: Weights,
    asked: int | None,
    progress: Progress,
) -> dict[str, str | None]:
    """DesiredCountCanary when the canary serves traffic on more tasks than the update
    would give it; nothing otherwise (the update's own value stands)."""
    service = services.get("canary")
    if asked is None:
        try:
            asked = int(info.parameters.get("DesiredCountCanary") or 0)
        except ValueError:
            asked = 0
    if service is None or service.desired <= asked:
        return {}
    progress.log(
        f"Keeping the canary's {service.desired} live task(s) in the stack update (it serves "
        f"{weights.canary}% of the traffic; the update would give it {asked})"
    )
    return {"DesiredCountCanary": str(service.desired)}


class StackWorkload(ServicesWorkload):
    """`Workload` for our stack: promotion is a stack update."""

    def __init__(
        self, stack: Stack, ecs: EcsWorkload, router: AlbRouter, health: TargetHealth
    ) -> None:
        super().__init__(ecs, router, health)
        self.stack = stack

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
            # The stack's own template and every parameter kept but the image and the live
            # values: what a deploy rendered into the template (the app's environment and
            # secrets) stays, and a stack from an older template is upgraded by `deploy` only.
            live = live_parameters(info, self.router.get_weights(), self.ecs, progress)
            parameters: dict[str, str | None] = dict.fromkeys(info.parameters)
            parameters.update({k: v for k, v in live.items() if k in info.parameters})
            parameters["ImageURIStable"] = image
            progress.log(f"Promoting: the stable service takes {image} (stack update)")
            self.stack.apply(parameters, progress, keep_template=True)
        self.all_to_stable(image, progress)
        info = self.stack.require()
        self.stack.record_live(live_parameters(info, STABLE_ONLY, self.ecs, progress), progress)
