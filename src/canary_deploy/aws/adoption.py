"""`canary adopt`: find the user's own listener (or rule), target groups and ECS services,
check that canary can drive them, and say plainly what is missing. Reads only.

What is checked (each failure a UsageError naming what to fix):

- the listener (or rule) exists and its action is a forward (weighted, or to one group);
- the services exist in the cluster (stable, canary, optional baseline: all in the same
  cluster), are ACTIVE, and each is registered (its `loadBalancers`) in exactly one target
  group of that forward, a different one each;
- the forward names no other target group: ModifyListener replaces the whole action, so
  a group canary does not know would be dropped by the first weight change;
- stable's task definition has the container and port the baseline service's
  `loadBalancers` name: a rollout runs the baseline on it.

Before any AWS call, what the names alone show (`adopt_request.check_request`).

A service's other target group (in no weighted action) becomes its tester group, where
tester routes forward, as on our stack.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from canary_deploy.aws.adopt_request import AdoptRequest, check_request, listener_of_rule
from canary_deploy.aws.clients import AwsClients
from canary_deploy.aws.errors import ErrorScope, error_code
from canary_deploy.aws.existing import (
    ExistingService,
    describe_conditions,
    exact_host,
    listener_url,
)
from canary_deploy.backend import Role
from canary_deploy.config import Settings
from canary_deploy.errors import UsageError
from canary_deploy.weights import Weights

if TYPE_CHECKING:
    from mypy_boto3_ecs.type_defs import ServiceTypeDef

_MISSING_CODES = {
    "ListenerNotFound",
    "RuleNotFound",
    "LoadBalancerNotFound",
    "ClusterNotFoundException",
    "ValidationError",
}


@dataclass(frozen=True)
class Adoption:
    """What adopt found: the record to keep, and the live weights to show."""

    existing: ExistingService
    weights: Weights | None


def forward_groups(actions: Sequence[Mapping[str, Any]], where: str) -> dict[str, int]:
    """The target groups of the one forward action, with their weights (0..999).

    >>> forward_groups([{"Type": "forward", "TargetGroupArn": "tg-a"}], "the listener")
    {'tg-a': 1}
    """
    forwards = [a for a in actions if a.get("Type") == "forward"]
    if len(forwards) != 1:
        kinds = ", ".join(str(a.get("Type")) for a in actions) or "none"
        raise UsageError(
            f"{where} does not forward to target groups (its actions: {kinds})",
            hint="make it forward to your stable target group (weight 1) and your canary's "
            "(weight 0), or adopt the listener rule that does (--rule ARN)",
        )
    config = forwards[0].get("ForwardConfig") or {}
    groups = {
        str(tg["TargetGroupArn"]): int(tg.get("Weight", 1)) for tg in config.get("TargetGroups", [])
    }
    if not groups and forwards[0].get("TargetGroupArn"):
        groups = {str(forwards[0]["TargetGroupArn"]): 1}
    return groups


def stickiness_of(actions: Sequence[Mapping[str, Any]]) -> int | None:
    """The forward's AWSALBTG duration (None: off)."""
    for action in actions:
        sticky = (action.get("ForwardConfig") or {}).get("TargetGroupStickinessConfig") or {}
        if action.get("Type") == "forward" and sticky.get("Enabled"):
            return int(sticky.get("DurationSeconds") or 3600)
    return None


@dataclass(frozen=True)
class Forward:
    """Where the weighted forward is: the listener (and rule) as DescribeListeners and
    DescribeRules answer."""

    listener_arn: str
    load_balancer_arn: str
    actions: list[Any]
    protocol: str
    port: int
    conditions: list[Any]  # an adopted rule's (empty for a listener's default action)


class Discovery:
    """The reads `canary adopt` makes, each failure translated with a hint."""

    def __init__(self, clients: AwsClients, errors: ErrorScope) -> None:
        self._elbv2 = clients.elbv2
        self._ecs = clients.ecs
        self._errors = errors

    def _read(self, action: str, missing: str, hint: str, call: Any, **kwargs: Any) -> Any:
        try:
            with self._errors(action):
                return call(**kwargs)
        except Exception as exc:
            cause = exc.__cause__
            if isinstance(cause, ClientError) and error_code(cause) in _MISSING_CODES:
                raise UsageError(missing, hint=hint) from None
            raise

    def forward(self, request: AdoptRequest) -> Forward:
        """The listener (or rule) and the actions holding the weighted forward."""
        listener_arn = request.listener_arn
        actions: list[Any] = []
        conditions: list[Any] = []
        if request.rule_arn:
            listener_arn = listener_of_rule(request.rule_arn)  # never both (check_request)
            rules = self._read(
                "read the listener rule",
                f"listener rule {request.rule_arn} does not exist",
                "check the ARN and the region (AWS_REGION / --region)",
                self._elbv2.describe_rules,
                RuleArns=[request.rule_arn],
            )["Rules"]
            actions = list(rules[0].get("Actions", []))
            conditions = list(rules[0].get("Conditions", []))
        if not listener_arn:
            raise UsageError(
                "adopt needs the listener (--listener ARN) or the listener rule (--rule ARN) "
                "whose forward action splits the traffic"
            )
        listener = self._read(
            "read the listener",
            f"listener {listener_arn} does not exist",
            "check the ARN and the region (AWS_REGION / --region)",
            self._elbv2.describe_listeners,
            ListenerArns=[listener_arn],
        )["Listeners"][0]
        if not request.rule_arn:
            actions = list(listener.get("DefaultActions", []))
        return Forward(
            listener_arn,
            str(listener["LoadBalancerArn"]),
            actions,
            str(listener.get("Protocol") or "HTTP"),
            int(listener.get("Port") or 80),
            conditions,
        )

    def dns_name(self, load_balancer_arn: str) -> str:
        found = self._read(
            "read the load balancer",
            f"load balancer {load_balancer_arn} does not exist",
            "check the listener's ARN",
            self._elbv2.describe_load_balancers,
            LoadBalancerArns=[load_balancer_arn],
        )["LoadBalancers"]
        return str(found[0].get("DNSName", "")) if found else ""

    def services(self, cluster: str, names: Mapping[Role, str]) -> dict[Role, ServiceTypeDef]:
        """The named services, ACTIVE, all in `cluster`."""
        found = self._read(
            f"describe the services in cluster {cluster}",
            f"cluster {cluster} does not exist",
            "check --cluster and the region (AWS_REGION / --region)",
            self._ecs.describe_services,
            cluster=cluster,
            services=list(names.values()),
        )
        by_name = {s.get("serviceName"): s for s in found.get("services", [])}
        by_name.update({s.get("serviceArn"): s for s in found.get("services", [])})
        result: dict[Role, ServiceTypeDef] = {}
        for role, name in names.items():
            service = by_name.get(name)
            if service is None or service.get("status") != "ACTIVE":
                state = "does not exist" if service is None else f"is {service.get('status')}"
                raise UsageError(
                    f"the {role} service {name} {state} in cluster {cluster}",
                    hint="stable, canary and baseline must be ACTIVE services of the same "
                    "cluster: check --cluster and the service names",
                )
            controller = (service.get("deploymentController") or {}).get("type", "ECS")
            if controller != "ECS":
                raise UsageError(
                    f"the {role} service {name} uses the {controller} deployment controller: "
                    "its traffic shift and task sets belong to it, not to UpdateService",
                    hint="canary drives services with the ECS (rolling update) deployment "
                    "controller; adopt services that use it",
                )
            result[role] = service
        return result

    def task_definition(self, arn: str) -> Mapping[str, Any]:
        described = self._read(
            "describe a task definition",
            f"task definition {arn} does not exist",
            "check the service's task definition",
            self._ecs.describe_task_definition,
            taskDefinition=arn,
        )
        return dict(described["taskDefinition"])


def check_baseline_fits(baseline: ServiceTypeDef, stable_td: Mapping[str, Any]) -> None:
    """A rollout starts the baseline service on stable's task definition (the baseline runs
    stable's image): ECS then needs each container and port the baseline's `loadBalancers`
    name in that task definition, else UpdateService fails mid-rollout."""
    ports = {
        str(c.get("name")): {int(m["containerPort"]) for m in c.get("portMappings", [])}
        for c in stable_td.get("containerDefinitions", [])
    }
    for lb in baseline.get("loadBalancers", []):
        container, port = str(lb.get("containerName")), int(lb.get("containerPort") or 0)
        if container in ports and port in ports[container]:
            continue
        lacks = (
            f"port {port} in container {container}"
            if container in ports
            else (f"container {container}")
        )
        family = f"{stable_td.get('family')}:{stable_td.get('revision')}"
        raise UsageError(
            f"a rollout runs the baseline service {baseline.get('serviceName')} on stable's "
            f"task definition ({family}), which has no {lacks} (the baseline's loadBalancers "
            f"route to container {container} port {port})",
            hint="register the baseline service to the container and port stable's task "
            "definition serves; or adopt without --baseline-service (its group out of the "
            "forward) and run rollouts with --no-baseline",
        )


def groups_of(
    role: Role, service: ServiceTypeDef, forward: Mapping[str, int]
) -> tuple[str, str | None]:
    """The service's target group in the forward, and its other one (the tester group)."""
    name = service.get("serviceName", "?")
    registered = [
        str(lb["targetGroupArn"])
        for lb in service.get("loadBalancers", [])
        if lb.get("targetGroupArn")
    ]
    if not registered:
        raise UsageError(
            f"the {role} service {name} has no load balancer: ECS registers its tasks in no "
            "target group",
            hint="create the service with --load-balancers naming its target group (a "
            "service's load balancers can be changed by UpdateService on AWS)",
        )
    main = [arn for arn in registered if arn in forward]
    if len(main) != 1:
        listed = ", ".join(registered)
        why = "none" if not main else f"{len(main)}"
        raise UsageError(
            f"the {role} service {name} is registered in {why} of the forward action's target "
            f"groups (its target groups: {listed})",
            hint=f"add the {role}'s target group to the forward action (weight 0 is fine), "
            "or register the service in exactly one of its groups",
        )
    others = [arn for arn in registered if arn not in forward]
    return main[0], others[0] if len(others) == 1 else None


def discover(clients: AwsClients, request: AdoptRequest) -> Adoption:
    """Read and check the setup; the record every later command uses."""
    check_request(request, clients.region)
    errors = ErrorScope(request.name or request.stable_service, clients.region)
    found = Discovery(clients, errors)
    split = found.forward(request)
    where = "the listener rule's action" if request.rule_arn else "the listener's default action"
    forward = forward_groups(split.actions, where)
    names = request.service_names
    services = found.services(request.cluster, names)
    main: dict[Role, str] = {}
    tester: dict[Role, str | None] = {}
    for role, service in services.items():
        main[role], tester[role] = groups_of(role, service, forward)
    _check_distinct(main, names)
    if "baseline" in services:
        stable_td = found.task_definition(services["stable"].get("taskDefinition", ""))
        check_baseline_fits(services["baseline"], stable_td)
    _check_all_adopted(forward, main, where)
    dns_name = found.dns_name(split.load_balancer_arn)
    existing = _existing_service(request, split, dns_name, main, tester)
    alb = [forward[main[role]] if role in main else 0 for role in ("stable", "canary", "baseline")]
    weights = Weights.from_alb(*alb) if any(alb) else None
    return Adoption(existing, weights)


def _check_all_adopted(forward: Mapping[str, int], main: Mapping[Role, str], where: str) -> None:
    """The forward names only the adopted services' groups (a weight change replaces it)."""
    unknown = [arn for arn in forward if arn not in main.values()]
    if unknown:
        raise UsageError(
            f"{where} also forwards to {', '.join(unknown)}, which no adopted service is "
            "registered in: every weight change replaces the whole action, so canary would "
            "drop it",
            hint="remove it from the forward action, or adopt its service as the baseline "
            "(--baseline-service)",
        )


def _existing_service(
    request: AdoptRequest,
    split: Forward,
    dns_name: str,
    main: Mapping[Role, str],
    tester: Mapping[Role, str | None],
) -> ExistingService:
    """The record: each role's group in the forward (`main`) and its other one (`tester`)."""
    host = exact_host(split.conditions) or dns_name
    return ExistingService(
        name=request.name or request.stable_service,
        listener_arn=split.listener_arn,
        rule_arn=request.rule_arn,
        load_balancer_arn=split.load_balancer_arn,
        dns_name=dns_name,
        listener_url=listener_url(split.protocol, split.port, host),
        rule_conditions=describe_conditions(split.conditions) or None,
        cluster=request.cluster,
        stable_service=request.stable_service,
        canary_service=request.canary_service,
        baseline_service=request.baseline_service,
        stable_target_group_arn=main["stable"],
        canary_target_group_arn=main["canary"],
        baseline_target_group_arn=main.get("baseline"),
        tester_stable_target_group_arn=tester["stable"],
        tester_canary_target_group_arn=tester["canary"],
        tester_baseline_target_group_arn=tester.get("baseline"),
        stickiness_seconds=stickiness_of(split.actions)
        if request.stickiness_s is None
        else request.stickiness_s or None,
    )


def _check_distinct(main: Mapping[Role, str], names: Mapping[Role, str]) -> None:
    seen: dict[str, Role] = {}
    for role, arn in main.items():
        if arn in seen:
            raise UsageError(
                f"the {seen[arn]} service {names[seen[arn]]} and the {role} service "
                f"{names[role]} are registered in the same target group {arn}",
                hint="each role needs its own target group: the weights split traffic "
                "between groups, not services",
            )
        seen[arn] = role


def keep_recorded_stickiness(
    found: ExistingService, previous: ExistingService | None
) -> ExistingService:
    """Adopting the same listener (or rule) again: a stickiness the forward has lost keeps
    the recorded duration (canary turns it off while stable or canary has weight 0, so a
    re-adopt after a rollback must not forget the team's setting).

    >>> a = ExistingService(name="n", listener_arn="l", load_balancer_arn="b", cluster="c",
    ...     stable_service="s", canary_service="k", stable_target_group_arn="t1",
    ...     canary_target_group_arn="t2")
    >>> kept = keep_recorded_stickiness(a, a.model_copy(update={"stickiness_seconds": 600}))
    >>> kept.stickiness_seconds
    600
    """
    same = previous is not None and (previous.listener_arn, previous.rule_arn) == (
        found.listener_arn,
        found.rule_arn,
    )
    if found.stickiness_seconds is not None or not same or previous is None:
        return found
    return found.model_copy(update={"stickiness_seconds": previous.stickiness_seconds})


def adopt_setup(settings: Settings, request: AdoptRequest) -> Adoption:
    """`canary adopt`'s use-case: discover and check, in the settings' region and profile;
    an adoption of the same listener recorded before keeps its stickiness when the forward
    lost it and the user did not say (`keep_recorded_stickiness`)."""
    clients = AwsClients.create(
        region=settings.aws.region,
        profile=settings.aws.profile,
        stack_name=request.name or request.stable_service,
    )
    adoption = discover(clients, request)
    if request.stickiness_s is not None:
        return adoption
    kept = keep_recorded_stickiness(adoption.existing, settings.aws.existing)
    return replace(adoption, existing=kept)
