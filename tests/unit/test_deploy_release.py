"""`usecases.deploy_release`: the deploy use case the CLI only renders; a new canary image
that gets traffic at once (a deploy keeps the live weights) comes with a warning."""

from __future__ import annotations

from dataclasses import dataclass, replace

from canary_deploy.backend import (
    ListenerStatus,
    Progress,
    ReleaseSpec,
    RoleStatus,
    SilentProgress,
    Status,
    TaskDefinitionStatus,
)
from canary_deploy.errors import OperationFailed
from canary_deploy.usecases import deploy_release
from canary_deploy.weights import Weights

SPEC = ReleaseSpec(
    image_stable="app:v1",
    image_canary="app:v2",
    desired_count_stable=2,
    desired_count_canary=1,
    container_port=8000,
    weights=Weights(95, 5),
)


@dataclass
class _Target:
    """A stack that runs `spec` (None: not deployed yet) at `weights`."""

    spec: ReleaseSpec | None
    weights: Weights

    def status(self) -> Status:
        if self.spec is None:
            raise OperationFailed("no stack")
        spec = self.spec
        roles = {
            v: RoleStatus(TaskDefinitionStatus(spec.image(v)), None, None)
            for v in ("stable", "canary")
        }
        listener = ListenerStatus("http://lb", self.weights)
        return Status("fake", "demo", "RUNNING", listener, roles)  # type: ignore[arg-type]

    def deploy(self, spec: ReleaseSpec, progress: Progress) -> None:
        self.spec = spec


def test_a_new_canary_image_with_live_traffic_is_warned_about() -> None:
    target = _Target(replace(SPEC, image_canary="app:v1"), Weights(90, 10))
    deployed = deploy_release(target, SPEC, SilentProgress())  # type: ignore[arg-type]
    assert deployed.status.versions["canary"].task_definition == TaskDefinitionStatus("app:v2")
    assert deployed.warning is not None
    assert deployed.warning.startswith("the new canary image serves 10% of the traffic")


def test_no_warning_for_the_same_image_no_canary_traffic_or_a_first_deploy() -> None:
    for target in (
        _Target(SPEC, Weights(90, 10)),
        _Target(replace(SPEC, image_canary="app:v1"), Weights(100, 0)),
        _Target(None, Weights(95, 5)),
    ):
        deployed = deploy_release(target, SPEC, SilentProgress())  # type: ignore[arg-type]
        assert deployed.warning is None
        assert deployed.status.listener is not None
