"""New task definition revisions for an adopted service: a copy of what the service runs
now with one container's image changed, and nothing else."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from canary_deploy.aws.errors import ErrorScope
from canary_deploy.aws.outputs import StackOutputs
from canary_deploy.backend import Role
from canary_deploy.errors import OperationFailed, UsageError

if TYPE_CHECKING:
    from mypy_boto3_ecs import ECSClient

# What RegisterTaskDefinition takes back from DescribeTaskDefinition's answer (the rest,
# e.g. revision, status, compatibilities, registeredAt, is ECS's own bookkeeping).
REGISTERED_FIELDS = (
    "family", "taskRoleArn", "executionRoleArn", "networkMode", "containerDefinitions",
    "volumes", "placementConstraints", "requiresCompatibilities", "cpu", "memory", "pidMode",
    "ipcMode", "proxyConfiguration", "inferenceAccelerators", "ephemeralStorage",
    "runtimePlatform", "enableFaultInjection",
)  # fmt: skip


def with_image(task_definition: Mapping[str, Any], container: str, image: str) -> dict[str, Any]:
    """RegisterTaskDefinition's arguments: `task_definition` as described, with `image` in
    the container named `container` (every other container, and every setting, kept).

    >>> td = {"family": "shop", "revision": 7, "cpu": "256", "containerDefinitions": [
    ...     {"name": "app", "image": "shop:v1"}, {"name": "envoy", "image": "envoy:1"}]}
    >>> new = with_image(td, "app", "shop:v2")
    >>> [c["image"] for c in new["containerDefinitions"]], "revision" in new
    (['shop:v2', 'envoy:1'], False)
    """
    doc = {key: task_definition[key] for key in REGISTERED_FIELDS if key in task_definition}
    doc["containerDefinitions"] = [
        {**c, "image": image} if c.get("name") == container else dict(c)
        for c in task_definition.get("containerDefinitions", [])
    ]
    return doc


class Revisions:
    """Reads the task definition an adopted service runs, and registers a new revision of
    it with another image (in the same family: the service's own revision history)."""

    def __init__(
        self, client: ECSClient, outputs: Callable[[], StackOutputs], errors: ErrorScope
    ) -> None:
        self._ecs = client
        self.outputs = outputs
        self._errors = errors

    def current(self, role: Role) -> tuple[dict[str, Any], str]:
        """The service's task definition (with its tags) and the container its target group
        routes to (the service's `loadBalancers` entry for the role's group)."""
        out = self.outputs()
        name = out.service_name(role)
        with self._errors(f"describe the {role} service"):
            services = self._ecs.describe_services(cluster=out.cluster_name, services=[name])
        found = services.get("services", [])
        if not found or not found[0].get("taskDefinition"):
            raise OperationFailed(
                f"the {role} service {name} was not found in cluster {out.cluster_name}",
                hint="`canary adopt` again once it exists (canary never creates it)",
            )
        service = found[0]
        with self._errors(f"describe the {role} task definition"):
            described = self._ecs.describe_task_definition(
                taskDefinition=service["taskDefinition"], include=["TAGS"]
            )
        td: dict[str, Any] = dict(described["taskDefinition"])
        if described.get("tags"):
            td["tags"] = described["tags"]
        group = out.target_group_arn(role)
        named = [
            str(lb["containerName"])
            for lb in service.get("loadBalancers", [])
            if lb.get("targetGroupArn") == group and lb.get("containerName")
        ]
        containers = [str(c.get("name")) for c in td.get("containerDefinitions", [])]
        container = named[0] if named else containers[0] if len(containers) == 1 else None
        if container is None or container not in containers:
            raise OperationFailed(
                f"the {role} service {name} names no container of its task definition for "
                "its target group",
                hint="its loadBalancers entry must name the container (containerName) that "
                "serves the traffic",
            )
        return td, container

    def image(self, role: Role) -> str:
        """The image of the container that serves the role's traffic."""
        td, container = self.current(role)
        return next(
            str(c.get("image"))
            for c in td.get("containerDefinitions", [])
            if c.get("name") == container
        )

    def cpu_architecture(self, role: Role) -> str:
        """What the role's tasks run on: the task definition's runtimePlatform (X86_64 when
        it names none, as on Fargate)."""
        td, _ = self.current(role)
        return str(td.get("runtimePlatform", {}).get("cpuArchitecture") or "X86_64")

    def register_with_image(self, role: Role, image: str) -> str | None:
        """Register a copy of the role's task definition with `image`; its ARN, or None
        when the service's task definition runs `image` already (nothing registered)."""
        td, container = self.current(role)
        images = {c.get("name"): c.get("image") for c in td.get("containerDefinitions", [])}
        if images.get(container) == image:
            return None
        doc = with_image(td, container, image)
        if td.get("tags"):
            doc["tags"] = td["tags"]
        with self._errors(f"register a {role} task definition with {image}"):
            registered = self._ecs.register_task_definition(**doc)
        return str(registered["taskDefinition"]["taskDefinitionArn"])

    def log_location(self, role: Role) -> tuple[str, str]:
        """Where the serving container's output is in CloudWatch Logs: its `awslogs`
        group, and the prefix of its tasks' streams (`<prefix>/<container>/<task id>`)."""
        td, container = self.current(role)
        found = next(c for c in td.get("containerDefinitions", []) if c.get("name") == container)
        config = found.get("logConfiguration") or {}
        options = config.get("options") or {}
        if config.get("logDriver") != "awslogs" or not options.get("awslogs-group"):
            driver = config.get("logDriver") or "no log driver"
            raise UsageError(
                f"the {role} container {container} logs with {driver}, not to CloudWatch "
                "Logs (awslogs): canary cannot read its output",
                hint="read it where your log driver sends it",
            )
        prefix = options.get("awslogs-stream-prefix")
        return str(options["awslogs-group"]), f"{prefix}/{container}/" if prefix else ""
