"""A team's own ECS-behind-ALB setup, built on the moto server with plain boto3 calls
(never through canary or CloudFormation): what `canary adopt` is pointed at."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

import boto3

from canary_deploy.backend import Role
from canary_deploy.weights import Weights

ROLES: tuple[Role, ...] = ("stable", "canary", "baseline")
EXEC_ROLE = "arn:aws:iam::123456789012:role/shop-task-execution"


@dataclass
class UserStack:
    prefix: str
    cluster: str
    listener_arn: str
    load_balancer_arn: str
    services: dict[Role, str]
    groups: dict[Role, str]
    testers: dict[Role, str]
    rule_arn: str | None = None
    extra_groups: list[str] = field(default_factory=list)

    def adopt_args(self, *, baseline: bool = True, rule: bool = False) -> list[str]:
        where = ["--rule", str(self.rule_arn)] if rule else ["--listener", self.listener_arn]
        args = [
            "adopt", *where, "--cluster", self.cluster,
            "--stable-service", self.services["stable"],
            "--canary-service", self.services["canary"],
        ]  # fmt: skip
        return args + (["--baseline-service", self.services["baseline"]] if baseline else [])

    def forward(self, *, rule: bool = False) -> dict[str, Any]:
        elbv2 = boto3.client("elbv2")
        if rule:
            actions = elbv2.describe_rules(RuleArns=[str(self.rule_arn)])["Rules"][0]["Actions"]
        else:
            listener = elbv2.describe_listeners(ListenerArns=[self.listener_arn])["Listeners"][0]
            actions = listener["DefaultActions"]
        (forward,) = [a for a in actions if a["Type"] == "forward"]
        return dict(forward["ForwardConfig"])

    def weights(self, *, rule: bool = False) -> Weights:
        by_arn = {g["TargetGroupArn"]: g["Weight"] for g in self.forward(rule=rule)["TargetGroups"]}
        return Weights.from_alb(*(by_arn.get(self.groups.get(r, ""), 0) for r in ROLES))

    def service(self, role: Role) -> dict[str, Any]:
        found = boto3.client("ecs").describe_services(
            cluster=self.cluster, services=[self.services[role]]
        )["services"]
        return dict(found[0])

    def task_definition(self, role: Role) -> dict[str, Any]:
        arn = self.service(role)["taskDefinition"]
        return dict(
            boto3.client("ecs").describe_task_definition(taskDefinition=arn)["taskDefinition"]
        )

    def inventory(self) -> dict[str, Any]:
        """Every resource of the setup, as AWS describes it now (for "nothing was deleted")."""
        elbv2, ecs = boto3.client("elbv2"), boto3.client("ecs")
        groups = [*self.groups.values(), *self.testers.values()]
        return {
            "load_balancer": elbv2.describe_load_balancers(
                LoadBalancerArns=[self.load_balancer_arn]
            )["LoadBalancers"][0]["State"]["Code"],
            "listener": elbv2.describe_listeners(ListenerArns=[self.listener_arn])["Listeners"][0][
                "ListenerArn"
            ],
            "groups": sorted(
                g["TargetGroupArn"]
                for g in elbv2.describe_target_groups(TargetGroupArns=groups)["TargetGroups"]
            ),
            "services": sorted(
                (s["serviceName"], s["status"])
                for s in ecs.describe_services(
                    cluster=self.cluster, services=list(self.services.values())
                )["services"]
            ),
        }


@dataclass(frozen=True)
class _Network:
    vpc: str
    subnets: list[str]
    security_group: str


def _network(prefix: str) -> _Network:
    ec2 = boto3.client("ec2")
    vpc = ec2.create_vpc(CidrBlock="10.20.0.0/16")["Vpc"]["VpcId"]
    subnets = [
        ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.20.{i}.0/24", AvailabilityZone=f"us-east-1{z}")[
            "Subnet"
        ]["SubnetId"]
        for i, z in ((1, "a"), (2, "b"))
    ]
    sg = ec2.create_security_group(GroupName=prefix, Description="shop", VpcId=vpc)["GroupId"]
    return _Network(vpc, subnets, sg)


def _group(prefix: str, name: str, vpc: str) -> str:
    created = boto3.client("elbv2").create_target_group(
        Name=f"{prefix}-{name}", Protocol="HTTP", Port=8000, VpcId=vpc, TargetType="ip"
    )
    return str(created["TargetGroups"][0]["TargetGroupArn"])


def _forward(groups: dict[Role, str], extra: list[str], sticky_s: int | None) -> dict[str, Any]:
    """The team's weighted forward: everything on stable, the others at 0."""
    forward: dict[str, Any] = {
        "TargetGroups": [
            {"TargetGroupArn": arn, "Weight": 100 if role == "stable" else 0}
            for role, arn in groups.items()
        ]
        + [{"TargetGroupArn": arn, "Weight": 0} for arn in extra],
    }
    if sticky_s:
        forward["TargetGroupStickinessConfig"] = {"Enabled": True, "DurationSeconds": sticky_s}
    return forward


def _service(
    prefix: str,
    cluster: str,
    role: Role,
    net: _Network,
    groups: list[str],
    serving: tuple[str, int] = ("app", 8000),
) -> str:
    """A task definition (the `serving` container with env and awslogs, a sidecar, an
    execution role) and a Fargate service registered in `groups` to that container."""
    container, port = serving
    ecs = boto3.client("ecs")
    ecs.register_task_definition(
        family=f"{prefix}-shop-{role}",
        networkMode="awsvpc",
        requiresCompatibilities=["FARGATE"],
        cpu="512",
        memory="1024",
        executionRoleArn=EXEC_ROLE,
        containerDefinitions=[
            {
                "name": container,
                "image": "repo/shop:v2" if role == "canary" else "repo/shop:v1",
                "portMappings": [{"containerPort": port}],
                "environment": [{"name": "SHOP_MODE", "value": role}],
                "logConfiguration": {
                    "logDriver": "awslogs",
                    "options": {"awslogs-group": f"/shop/{prefix}", "awslogs-stream-prefix": role},
                },
            },
            {"name": "envoy", "image": "envoyproxy/envoy:v1.30"},
        ],
    )
    ecs.create_service(
        cluster=cluster,
        serviceName=f"shop-{role}",
        taskDefinition=f"{prefix}-shop-{role}",
        desiredCount={"stable": 2, "canary": 1, "baseline": 0}[role],
        launchType="FARGATE",
        # moto answers CreateService with awsvpc and no security group with a 500.
        networkConfiguration={
            "awsvpcConfiguration": {"subnets": net.subnets, "securityGroups": [net.security_group]}
        },
        loadBalancers=[
            {"targetGroupArn": arn, "containerName": container, "containerPort": port}
            for arn in groups
        ],
    )
    return f"shop-{role}"


def build(
    *,
    sticky_s: int | None = 600,
    extra_group: bool = False,
    default_action: str = "forward",
    baseline: bool = True,
    baseline_serving: tuple[str, int] = ("app", 8000),
    listener_port: int = 80,
) -> UserStack:
    """VPC, two subnets, an ALB whose listener (and a rule) splits traffic by weight, per
    role a target group (in the forward) and a tester group (outside it), a cluster, task
    definitions and services registered in both groups."""
    prefix = f"u{uuid.uuid4().hex[:8]}"
    elbv2 = boto3.client("elbv2")
    net = _network(prefix)
    lb = elbv2.create_load_balancer(Name=prefix, Subnets=net.subnets, Type="application")[
        "LoadBalancers"
    ][0]
    groups: dict[Role, str] = {role: _group(prefix, role[:4], net.vpc) for role in ROLES}
    testers: dict[Role, str] = {role: _group(prefix, f"t-{role[:4]}", net.vpc) for role in ROLES}
    extra = [_group(prefix, "other", net.vpc)] if extra_group else []
    in_forward = {r: arn for r, arn in groups.items() if baseline or r != "baseline"}
    forward = _forward(in_forward, extra, sticky_s)
    action: dict[str, Any] = {"Type": "forward", "ForwardConfig": forward}
    if default_action == "fixed-response":
        action = {"Type": "fixed-response", "FixedResponseConfig": {"StatusCode": "404"}}
    listener = elbv2.create_listener(
        LoadBalancerArn=lb["LoadBalancerArn"],
        Protocol="HTTP",
        Port=listener_port,
        DefaultActions=[action],
    )["Listeners"][0]["ListenerArn"]
    rule = elbv2.create_rule(
        ListenerArn=listener,
        Priority=40,
        Conditions=[{"Field": "path-pattern", "Values": ["/api/*"]}],
        Actions=[{"Type": "forward", "ForwardConfig": dict(forward)}],
    )["Rules"][0]["RuleArn"]
    cluster = f"{prefix}-prod"
    boto3.client("ecs").create_cluster(clusterName=cluster)
    serving = {"baseline": baseline_serving}
    services = {
        r: _service(prefix, cluster, r, net, [groups[r], testers[r]], serving.get(r, ("app", 8000)))
        for r in ROLES
    }
    return UserStack(
        prefix, cluster, listener, lb["LoadBalancerArn"], services, groups, testers, rule, extra
    )
