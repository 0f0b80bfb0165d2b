"""The two ECS Fargate services (stable, canary) as a Workload."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from canary_deploy.aws.errors import ErrorScope
from canary_deploy.aws.stack import StackOutputs
from canary_deploy.backend import Progress, ServiceStatus, TaskDefinitionStatus, Version
from canary_deploy.errors import OperationFailed, UsageError

if TYPE_CHECKING:
    from mypy_boto3_ecs import ECSClient
    from mypy_boto3_ecs.type_defs import ServiceTypeDef

STEADY_TIMEOUT_SECONDS = 1800.0
POLL_SECONDS = 5.0


def service_status(service: ServiceTypeDef) -> ServiceStatus:
    """ServiceStatus from DescribeServices: counts and the primary deployment's state."""
    deployments = service.get("deployments", [])
    primary = next((d for d in deployments if d.get("status") == "PRIMARY"), None)
    state = "UNKNOWN" if primary is None else str(primary.get("rolloutState", "UNKNOWN"))
    message = None
    if primary is not None and state == "FAILED":
        message = primary.get("rolloutStateReason")
    elif len(deployments) > 1:
        message = f"{len(deployments)} deployments (old tasks still draining)"
    if service.get("status") not in (None, "ACTIVE"):
        state = str(service.get("status"))
    return ServiceStatus(
        name=service.get("serviceName", "?"),
        running=int(service.get("runningCount", 0)),
        pending=int(service.get("pendingCount", 0)),
        desired=int(service.get("desiredCount", 0)),
        deployment_state=state,
        message=message,
    )


class EcsWorkload:
    """Reads and changes the stable and canary ECS services of one stack."""

    def __init__(
        self,
        client: ECSClient,
        outputs: Callable[[], StackOutputs],
        errors: ErrorScope,
        *,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._ecs = client
        self._outputs = outputs
        self._errors = errors
        self._sleep = sleep
        self._clock = clock

    def _names(self) -> dict[Version, str]:
        out = self._outputs()
        return {"stable": out.service_stable_name, "canary": out.service_canary_name}

    def _services(self) -> dict[Version, ServiceTypeDef]:
        names = self._names()
        with self._errors("describe the ECS services"):
            found = self._ecs.describe_services(
                cluster=self._outputs().cluster_name, services=list(names.values())
            )["services"]
        by_name = {s.get("serviceName"): s for s in found}
        by_arn = {s.get("serviceArn"): s for s in found}
        result: dict[Version, ServiceTypeDef] = {}
        for version, name in names.items():
            service = by_name.get(name) or by_arn.get(name)
            if service is not None:
                result[version] = service
        return result

    def describe_services(self) -> dict[Version, ServiceStatus]:
        """Running/pending/desired tasks and deployment state, per version."""
        return {v: service_status(s) for v, s in self._services().items()}

    def task_definitions(self) -> dict[Version, TaskDefinitionStatus]:
        """The task definition each service runs: image, revision, cpu, memory, port."""
        result: dict[Version, TaskDefinitionStatus] = {}
        for version, service in self._services().items():
            arn = service.get("taskDefinition")
            if not arn:
                continue
            with self._errors("describe a task definition"):
                td = self._ecs.describe_task_definition(taskDefinition=arn)["taskDefinition"]
            containers = td.get("containerDefinitions", [])
            container = containers[0] if containers else {}
            ports = container.get("portMappings", [])
            result[version] = TaskDefinitionStatus(
                image=container.get("image", "?"),
                revision=f"{td.get('family', '?')}:{td.get('revision', '?')}",
                cpu=td.get("cpu"),
                memory=td.get("memory"),
                container_port=ports[0].get("containerPort") if ports else None,
            )
        return result

    def scale_canary(self, desired_count: int) -> None:
        """Set the canary service's desired task count."""
        if desired_count < 0:
            raise UsageError(f"desired count must be >= 0, got {desired_count}")
        with self._errors("scale the canary service"):
            self._ecs.update_service(
                cluster=self._outputs().cluster_name,
                service=self._names()["canary"],
                desiredCount=desired_count,
            )

    def wait_steady(self, version: Version, progress: Progress) -> None:
        """Wait until the service's deployment completed with every task running."""
        deadline = self._clock() + STEADY_TIMEOUT_SECONDS
        while True:
            status = self.describe_services()[version]
            progress.update(
                f"{status.name}: {status.running}/{status.desired} running, "
                f"{status.deployment_state}"
            )
            if status.deployment_state == "COMPLETED" and status.running == status.desired:
                return
            if status.deployment_state == "FAILED":
                raise OperationFailed(
                    f"the {version} deployment failed: {status.message or 'see ECS events'}",
                    hint="the deployment circuit breaker rolled the service back",
                )
            if self._clock() >= deadline:
                raise OperationFailed(f"the {version} service is not steady after 30 minutes")
            self._sleep(POLL_SECONDS)
