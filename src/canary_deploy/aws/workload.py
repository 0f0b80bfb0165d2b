"""The ECS Fargate services (stable, canary and the rollout's baseline) as a Workload."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from canary_deploy.aws.errors import ErrorScope
from canary_deploy.aws.outputs import NoBaseline, StackOutputs
from canary_deploy.aws.task_config import RESERVED_NAMES, TaskConfig
from canary_deploy.backend import Progress, Role, ServiceStatus, TaskDefinitionStatus
from canary_deploy.errors import OperationFailed, UsageError

if TYPE_CHECKING:
    from mypy_boto3_ecs import ECSClient
    from mypy_boto3_ecs.type_defs import DeploymentTypeDef, ServiceTypeDef, TaskTypeDef

STEADY_TIMEOUT_SECONDS = 1800.0
POLL_SECONDS = 5.0
DESCRIBE_TASKS_MAX = 100  # DescribeTasks takes at most 100 tasks per call


def pinned(image: str, digest: str) -> str:
    """`image` (by tag, or by another digest) pinned to `digest`.

    >>> pinned("1.dkr.ecr.eu-west-1.amazonaws.com/app:v2", "sha256:ab")
    '1.dkr.ecr.eu-west-1.amazonaws.com/app@sha256:ab'
    >>> pinned("localhost:5000/app", "sha256:ab")
    'localhost:5000/app@sha256:ab'
    >>> pinned("app@sha256:00", "sha256:ab")
    'app@sha256:ab'
    """
    repository = image.split("@", 1)[0]
    colon = repository.rfind(":")
    if colon > repository.rfind("/"):  # a tag, not a registry's port
        repository = repository[:colon]
    return f"{repository}@{digest}"


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


def _deployment(service: ServiceTypeDef, deployment_id: str) -> DeploymentTypeDef | None:
    return next((d for d in service.get("deployments", []) if d.get("id") == deployment_id), None)


def _primary_id(service: ServiceTypeDef) -> str:
    """The id of the service's PRIMARY deployment (the one UpdateService just started)."""
    for deployment in service.get("deployments", []):
        if deployment.get("status") == "PRIMARY":
            return str(deployment.get("id", ""))
    return ""


def _deployment_progress(
    role: Role, service: ServiceTypeDef | None, deployment_id: str
) -> tuple[str, bool]:
    """One service's progress line, and whether its deployment `deployment_id` completed:
    it is the PRIMARY one, every task runs, and no older deployment is left draining.
    A deployment that failed, or was replaced (a change or a rollback), is an error."""
    if service is None:
        raise OperationFailed(f"the {role} service no longer exists")
    status = service_status(service)
    shown = f"{status.name}: {status.running}/{status.desired} running, {status.deployment_state}"
    deployment = _deployment(service, deployment_id) if deployment_id else None
    if deployment is not None and deployment.get("rolloutState") == "FAILED":
        raise OperationFailed(
            f"the {role} deployment failed: "
            f"{deployment.get('rolloutStateReason') or 'see ECS events'}",
            hint="the deployment circuit breaker rolled the service back; "
            f"see the events of service {status.name} in the ECS console",
        )
    if deployment_id and (deployment is None or deployment.get("status") != "PRIMARY"):
        raise OperationFailed(
            f"the {role} deployment was replaced before it completed "
            f"(the {role} service was changed meanwhile, or rolled back)",
            hint=f"see the events of service {status.name} in the ECS console",
        )
    done = (
        status.deployment_state == "COMPLETED"
        and status.running == status.desired
        and len(service.get("deployments", [])) == 1
    )
    return shown, done


class EcsWorkload:
    """Reads and changes the ECS services (stable, canary, baseline) of one stack."""

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

    def _names(self) -> dict[Role, str]:
        out = self._outputs()
        return {group: out.service_name(group) for group in out.groups}

    def _services(self) -> dict[Role, ServiceTypeDef]:
        names = self._names()
        with self._errors("describe the ECS services"):
            found = self._ecs.describe_services(
                cluster=self._outputs().cluster_name, services=list(names.values())
            )["services"]
        by_name = {s.get("serviceName"): s for s in found}
        by_arn = {s.get("serviceArn"): s for s in found}
        result: dict[Role, ServiceTypeDef] = {}
        for role, name in names.items():
            service = by_name.get(name) or by_arn.get(name)
            if service is not None:
                result[role] = service
        return result

    def describe_services(self) -> dict[Role, ServiceStatus]:
        """Running/pending/desired tasks and deployment state, per role."""
        return {v: service_status(s) for v, s in self._services().items()}

    def task_definitions(self) -> dict[Role, TaskDefinitionStatus]:
        """The task definition each service runs: image, revision, cpu, memory, port."""
        result: dict[Role, TaskDefinitionStatus] = {}
        for role, service in self._services().items():
            arn = service.get("taskDefinition")
            if not arn:
                continue
            with self._errors("describe a task definition"):
                td = self._ecs.describe_task_definition(taskDefinition=arn)["taskDefinition"]
            containers = td.get("containerDefinitions", [])
            container = containers[0] if containers else {}
            ports = container.get("portMappings", [])
            result[role] = TaskDefinitionStatus(
                image=container.get("image", "?"),
                revision=f"{td.get('family', '?')}:{td.get('revision', '?')}",
                cpu=td.get("cpu"),
                memory=td.get("memory"),
                container_port=ports[0].get("containerPort") if ports else None,
            )
        return result

    def app_settings(self, role: Role) -> TaskConfig | None:
        """The environment (without the stack's own CANARY_VERSION) and secrets `role`'s
        service runs with now; None when it has no task definition."""
        service = self._services().get(role)
        arn = None if service is None else service.get("taskDefinition")
        if not arn:
            return None
        with self._errors("describe a task definition"):
            td = self._ecs.describe_task_definition(taskDefinition=arn)["taskDefinition"]
        containers = td.get("containerDefinitions", [])
        container = containers[0] if containers else {}
        environment = {
            e["name"]: e.get("value", "")
            for e in container.get("environment", [])
            if "name" in e and e["name"] not in RESERVED_NAMES
        }
        secrets = {s["name"]: s["valueFrom"] for s in container.get("secrets", [])}
        return TaskConfig(environment, secrets)

    def running_images(self) -> dict[Role, tuple[str, ...]]:
        """Per group, the images its running tasks of the service's current task definition
        run, pinned by the digest ECS reports (DescribeTasks `imageDigest`), sorted. A group
        without such a task or digest is absent. Two images in one group mean its tag was
        pushed again while its tasks started."""
        out = self._outputs()
        services = self._services()
        arns: dict[Role, list[str]] = {}
        for role, service in services.items():
            if not service.get("runningCount"):
                arns[role] = []  # nothing to list (one call saved per idle service)
                continue
            with self._errors(f"list the {role} tasks"):
                arns[role] = self._ecs.list_tasks(
                    cluster=out.cluster_name,
                    serviceName=out.service_name(role),
                    desiredStatus="RUNNING",
                )["taskArns"]
        every = [arn for found in arns.values() for arn in found]
        tasks: list[TaskTypeDef] = []
        for i in range(0, len(every), DESCRIBE_TASKS_MAX):
            with self._errors("describe the running tasks"):
                tasks += self._ecs.describe_tasks(
                    cluster=out.cluster_name, tasks=every[i : i + DESCRIBE_TASKS_MAX]
                )["tasks"]
        result: dict[Role, tuple[str, ...]] = {}
        for role, service in services.items():
            mine = set(arns[role])
            images = {
                pinned(container["image"], container["imageDigest"])
                for task in tasks
                if task.get("taskArn") in mine
                and task.get("taskDefinitionArn") == service.get("taskDefinition")
                for container in task.get("containers", [])
                if container.get("image") and container.get("imageDigest")
            }
            if images:
                result[role] = tuple(sorted(images))
        return result

    def running_image(self, role: Role) -> str | None:
        """The image `role`'s tasks run now: pinned by digest when ECS reports one, else
        the task definition's image (None when the service does not exist)."""
        images = self.running_images().get(role, ())
        if len(images) > 1:
            raise OperationFailed(
                f"the {role} tasks run {len(images)} different images "
                f"({', '.join(images)}): its tag was pushed again while they started",
                hint=f"deploy the {role} by digest (e.g. IMAGE_URI_CANARY={images[-1]}) "
                "so that every task runs the same image",
            )
        if images:
            return images[0]
        task_definition = self.task_definitions().get(role)
        return None if task_definition is None else task_definition.image

    def scale(self, role: Role, desired_count: int) -> None:
        """Set one service's desired task count (one UpdateService; no waiting)."""
        if desired_count < 0:
            raise UsageError(f"desired count must be >= 0, got {desired_count}")
        out = self._outputs()
        with self._errors(f"scale the {role} service"):
            self._ecs.update_service(
                cluster=out.cluster_name,
                service=out.service_name(role),
                desiredCount=desired_count,
            )

    def roll_to(
        self, role: Role, task_definition: str | None, desired_count: int | None = None
    ) -> str:
        """One UpdateService: the service onto `task_definition` and/or `desired_count`
        (None: kept). Returns the id of the deployment it started (no waiting)."""
        out = self._outputs()
        changes: dict[str, Any] = {}
        if task_definition is not None:
            changes["taskDefinition"] = task_definition
        if desired_count is not None:
            changes["desiredCount"] = desired_count
        with self._errors(f"update the {role} service"):
            service = self._ecs.update_service(
                cluster=out.cluster_name, service=out.service_name(role), **changes
            )["service"]
        return _primary_id(service)

    def scale_canary(self, desired_count: int) -> None:
        """Set the canary service's desired task count."""
        self.scale("canary", desired_count)

    def start_baseline(self, desired_count: int, progress: Progress) -> None:
        """Start `desired_count` baseline tasks on stable's task definition and restart the
        canary's tasks in the same moment, then wait until both deployments completed.

        Two UpdateService calls back to back, nothing in between: the baseline (a forced new
        deployment, so leftover tasks of an interrupted rollout are replaced too) and the
        canary (forceNewDeployment) start their tasks together, so both arms have the same
        age and warm-up. No stack update: the stack is updated with the live count instead.
        """
        if desired_count < 1:
            raise UsageError(f"the baseline needs at least 1 task, got {desired_count}")
        out = self._outputs()
        if not out.has_baseline:
            raise NoBaseline()
        stable_td = self._services().get("stable", {}).get("taskDefinition")
        if not stable_td:
            raise OperationFailed(
                f"the stable service {out.service_stable_name} was not found",
                hint="`canary --target aws status` shows what the stack runs; deploy restores it",
            )
        with self._errors("start the baseline service"):
            baseline = self._ecs.update_service(
                cluster=out.cluster_name,
                service=out.service_name("baseline"),
                desiredCount=desired_count,
                taskDefinition=stable_td,
                forceNewDeployment=True,
            )["service"]
        with self._errors("restart the canary's tasks"):
            canary = self._ecs.update_service(
                cluster=out.cluster_name,
                service=out.service_name("canary"),
                forceNewDeployment=True,
            )["service"]
        progress.log(
            f"Baseline: {desired_count} task(s) of stable's {stable_td.rsplit('/', 1)[-1]} "
            "started together with fresh canary tasks"
        )
        self.wait_deployments(
            {"baseline": _primary_id(baseline), "canary": _primary_id(canary)}, progress
        )

    def stop_baseline(self) -> None:
        """Scale the baseline service to 0 tasks (its weight must already be 0).

        A stack without the baseline service has nothing to stop.
        """
        out = self._outputs()
        if not out.has_baseline:
            return
        with self._errors("stop the baseline service"):
            self._ecs.update_service(
                cluster=out.cluster_name, service=out.service_name("baseline"), desiredCount=0
            )

    def wait_deployments(self, started: dict[Role, str], progress: Progress) -> None:
        """Wait until each service's deployment `started[version]` completed: it is the
        PRIMARY one, every task runs, and no older deployment is left draining.

        A deployment that failed, or that the circuit breaker replaced by a rollback,
        is an error naming its reason.
        """
        deadline = self._clock() + STEADY_TIMEOUT_SECONDS
        while True:
            services = self._services()
            checks = [
                _deployment_progress(role, services.get(role), deployment_id)
                for role, deployment_id in started.items()
            ]
            shown = [line for line, _ in checks]
            done = all(completed for _, completed in checks)
            progress.update("; ".join(shown))
            if done:
                return
            if self._clock() >= deadline:
                raise OperationFailed(
                    f"the {' and '.join(started)} tasks are not all running after "
                    f"{STEADY_TIMEOUT_SECONDS / 60:.0f} minutes ({'; '.join(shown)})",
                    hint="their tasks may be failing to start or failing health checks on "
                    "HEALTH_CHECK_PATH; see the services' events in the ECS console",
                )
            self._sleep(POLL_SECONDS)

    def wait_steady(self, role: Role, progress: Progress) -> None:
        """Wait until the service's deployment completed with every task running."""
        deadline = self._clock() + STEADY_TIMEOUT_SECONDS
        while True:
            status = self.describe_services()[role]
            progress.update(
                f"{status.name}: {status.running}/{status.desired} running, "
                f"{status.deployment_state}"
            )
            if status.deployment_state == "COMPLETED" and status.running == status.desired:
                return
            if status.deployment_state == "FAILED":
                raise OperationFailed(
                    f"the {role} deployment failed: {status.message or 'see ECS events'}",
                    hint="the deployment circuit breaker rolled the service back",
                )
            if self._clock() >= deadline:
                raise OperationFailed(f"the {role} service is not steady after 30 minutes")
            self._sleep(POLL_SECONDS)
