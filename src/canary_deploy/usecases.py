"""The seed's verbs as importable functions: the CLI only parses and renders."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from canary_deploy.backend import OrderedChanges, Progress, ReleaseSpec, Role, Status, Target
from canary_deploy.config import Settings
from canary_deploy.errors import CanaryError, OperationFailed, UsageError
from canary_deploy.preview import Preview, Previewable
from canary_deploy.routes import RouteMatch, TesterRoute, find_route
from canary_deploy.weights import STABLE_ONLY, Weights

LOCAL_DEFAULT_IMAGES = ("builtin:v1", "builtin:v2")


def release_spec(
    settings: Settings, current: ReleaseSpec | None = None, *, check_images: bool = True
) -> ReleaseSpec:
    """The spec `deploy` applies. Images are required on AWS, as in the seed; locally an
    image not given keeps what runs (`current`), so a deploy after a promotion does not
    quietly put the old stable back, and a fresh stack gets the sample app."""
    stable, canary = settings.image_uri_stable, settings.image_uri_canary
    for name, value in (("stable", stable), ("canary", canary)):
        if value is not None and not value.strip():
            raise UsageError(
                f"the {name} image is empty",
                hint=f"give --image-{name} an image (or leave it out to keep what runs)",
            )
    if settings.target == "local":
        stable = stable or (current.image_stable if current else LOCAL_DEFAULT_IMAGES[0])
        canary = canary or (current.image_canary if current else LOCAL_DEFAULT_IMAGES[1])
    elif current is not None:  # an adopted service (AWS): an image not given is what runs
        stable, canary = stable or current.image_stable, canary or current.image_canary
    missing = [
        name
        for name, value in (("IMAGE_URI_STABLE", stable), ("IMAGE_URI_CANARY", canary))
        if not value
    ]
    if missing or stable is None or canary is None:
        raise UsageError(
            f"{' and '.join(missing)} must be set: deploy needs both images "
            "(they may be the same image)",
            hint="export IMAGE_URI_STABLE=<account>.dkr.ecr.<region>.amazonaws.com/repo:v1 "
            "and IMAGE_URI_CANARY=...:v2, or pass --image-stable/--image-canary",
        )
    return ReleaseSpec(
        image_stable=stable,
        image_canary=canary,
        desired_count_stable=settings.desired_count_stable,
        desired_count_canary=settings.desired_count_canary,
        container_port=settings.container_port,
        weights=settings.initial_weights,
        health_check_path=settings.health_check_path,
        stickiness_seconds=(
            settings.stickiness_duration_seconds if settings.stickiness_enabled else None
        ),
        slow_start_seconds=settings.slow_start_seconds,
        check_images=check_images,
    )


def starved_groups(spec: ReleaseSpec, live: Weights | None) -> list[str]:
    """Groups the listener would send requests to with no task to serve them (each such
    request a 503): `live` weights (a deploy keeps them), else the first deploy's."""
    weights = live or spec.weights
    counts: dict[Role, int] = {
        "stable": spec.desired_count_stable,
        "canary": spec.desired_count_canary,
    }
    return [
        f"{group} would have 0 tasks while it gets {weights.of(group)}% of the requests"
        for group, count in counts.items()
        if count == 0 and weights.of(group) > 0
    ]


def live_weights(target: Target) -> Weights | None:
    """The listener's weights now (None when there is no stack yet)."""
    try:
        listener = target.status().listener
    except CanaryError:
        return None
    return None if listener is None else listener.weights


def canary_image_live(target: Target) -> str | None:
    """The canary image the stack runs now (None when there is no stack yet)."""
    try:
        canary = target.status().versions.get("canary")
    except CanaryError:
        return None
    if canary is None or canary.task_definition is None:
        return None
    return canary.task_definition.image


def new_canary_warning(before: str | None, spec: ReleaseSpec, status: Status) -> str | None:
    """A deploy keeps the live weights: say so when a new canary image gets traffic at once."""
    if before is None or before == spec.image_canary or status.listener is None:
        return None
    share = status.listener.weights.canary
    if share == 0:
        return None
    return (
        f"the new canary image serves {share}% of the traffic right away (a deploy keeps the "
        "live weights); `canary rollback` sends it none, `canary rollout` steps it up safely"
    )


def deploy(target: Target, spec: ReleaseSpec, progress: Progress) -> Status:
    target.deploy(spec, progress)
    return target.status()


def preview(target: Target, spec: ReleaseSpec, progress: Progress) -> Preview:
    """What `deploy` would change (`deploy --dry-run`); nothing is changed."""
    if not isinstance(target, Previewable):
        raise UsageError(
            f"the {target.name} target cannot show what a deploy would change",
            hint="deploy without --dry-run",
        )
    return target.preview(spec, progress)


@dataclass(frozen=True)
class Deployed:
    """What `deploy` did: the stack's status after it, and a warning worth showing."""

    status: Status
    warning: str | None = None


def deploy_release(target: Target, spec: ReleaseSpec, progress: Progress) -> Deployed:
    """Apply `spec`, and warn when a new canary image gets traffic at once (a deploy
    keeps the live weights)."""
    before = canary_image_live(target)
    status = deploy(target, spec, progress)
    return Deployed(status, new_canary_warning(before, spec, status))


def wait_for_weights(
    target: Target,
    weights: Weights,
    *,
    timeout_s: float = 10.0,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> None:
    """Read the weights back from the load balancer until they match, or fail. A change
    that was applied and then replaced by a later one (another command's: last writer
    wins) is not a failure, where the load balancer can tell (`OrderedChanges`)."""
    deadline = clock() + timeout_s
    delay = 0.05
    router = target.router
    while not router.verify_weights(weights):
        if isinstance(router, OrderedChanges) and router.replaced_since_set(weights):
            return
        if clock() >= deadline:
            live = target.router.get_weights()
            raise OperationFailed(
                f"the listener reports {live} after setting {weights}",
                hint="run `canary status` to see the live weights",
            )
        sleep(delay)
        delay = min(delay * 2, 1.0)


def set_weights(target: Target, weights: Weights) -> Status:
    """Apply weights with one router call, verify them, and return the new status."""
    target.router.set_weights(weights)
    wait_for_weights(target, weights)
    return target.status()


def rollback(target: Target) -> Status:
    """All traffic back to stable at once (100/0), no stack update."""
    return set_weights(target, STABLE_ONLY)


def delete(target: Target, progress: Progress, *, purge: bool = False) -> None:
    target.delete(progress, purge=purge)


# ---- tester routes (listener rules before the weighted action)


def list_routes(target: Target) -> list[TesterRoute]:
    """The tester routes on the listener now, in the order they are evaluated."""
    return target.routes.list_routes()


def add_route(target: Target, match: RouteMatch, to: Role) -> TesterRoute:
    """Pin requests that satisfy `match` to the `to` group, whatever the weights."""
    return target.routes.add_route(match, to)


def delete_route(target: Target, which: str | RouteMatch) -> TesterRoute:
    """Remove the route named by its priority (its id) or by the same condition."""
    route = find_route(target.routes.list_routes(), which)
    target.routes.delete_route(route)
    return route
