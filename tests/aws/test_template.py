"""The packaged CloudFormation template: lint-clean and shaped like the seed's interface."""

from __future__ import annotations

import yaml  # type: ignore[import-untyped]
from cfnlint.api import ManualArgs, lint

from canary_deploy.aws.stack import template_body

SEED_PARAMETERS = {
    "ImageURIStable",
    "ImageURICanary",
    "ContainerPort",
    "DesiredCountStable",
    "DesiredCountCanary",
    "StableWeight",
    "CanaryWeight",
    "TaskCpu",
    "TaskMemory",
}
OUR_PARAMETERS = {
    "VpcId",
    "SubnetIds",
    "HealthCheckPath",
    "StickinessEnabled",
    "StickinessDurationSeconds",
    "AllowedIngressCidr",
}
BASELINE_PARAMETERS = {"DesiredCountBaseline", "BaselineWeight", "SlowStartSeconds"}
# Issue 17: what a production stack needs; each optional, defaulting to the prototype's.
PRODUCTION_DEFAULTS = {
    "CertificateArn": "",
    "AlbSubnetIds": "",
    "TaskSubnetIds": "",
    "AssignPublicIp": "ENABLED",
    "AlbScheme": "internet-facing",
    "TaskRoleArn": "",
    "HealthCheckSuccessCodes": "200",
    "HealthCheckGracePeriodSeconds": 30,
    "CpuArchitecture": "X86_64",
    "ContainerInsights": "enabled",  # the one default that changes: checkov CKV_AWS_65
    "LogRetentionDays": 14,
    "RetainLogs": "false",
    "DeletionProtection": "false",
    "AccessLogsBucket": "",
    "AutoScalingMetric": "off",
    "AutoScalingMinCapacity": 1,
    "AutoScalingMaxCapacity": 4,
    "AutoScalingTargetValue": 60,
}
GROUPS = ("Stable", "Canary", "Baseline")


class _CfnLoader(yaml.SafeLoader):
    """YAML loader that accepts CloudFormation's short-form tags (!Ref, !Sub, ...)."""


def _tag(loader: yaml.Loader, suffix: str, node: yaml.Node) -> object:
    if isinstance(node, yaml.ScalarNode):
        return {suffix: loader.construct_scalar(node)}
    if isinstance(node, yaml.SequenceNode):
        return {suffix: loader.construct_sequence(node)}
    return {suffix: loader.construct_mapping(node)}  # type: ignore[arg-type]


_CfnLoader.add_multi_constructor("!", _tag)


def load() -> dict[str, object]:
    doc = yaml.load(template_body(), Loader=_CfnLoader)  # a SafeLoader subclass
    assert isinstance(doc, dict)
    return doc


def test_cfn_lint_reports_no_errors_and_no_warnings() -> None:
    matches = lint(template_body(), config=ManualArgs(regions=["us-east-1", "eu-west-1"]))
    assert [str(m) for m in matches] == []


def test_parameters_are_the_seeds_plus_network_health_stickiness_and_baseline() -> None:
    parameters = load()["Parameters"]
    assert isinstance(parameters, dict)
    assert set(parameters) == (
        SEED_PARAMETERS | OUR_PARAMETERS | BASELINE_PARAMETERS | set(PRODUCTION_DEFAULTS)
    )


def test_every_production_parameter_is_optional_and_defaults_to_the_prototypes_stack() -> None:
    parameters = load()["Parameters"]
    assert isinstance(parameters, dict)
    assert {name: parameters[name].get("Default") for name in PRODUCTION_DEFAULTS} == (
        PRODUCTION_DEFAULTS
    )


def test_baseline_and_slow_start_are_off_unless_asked_for() -> None:
    parameters = load()["Parameters"]
    assert isinstance(parameters, dict)
    count = parameters["DesiredCountBaseline"]
    assert (count["Type"], count["Default"], count["MinValue"]) == ("Number", 0, 0)
    for name, high in (("BaselineWeight", 999), ("SlowStartSeconds", 900)):
        p = parameters[name]
        assert (p["Type"], p["Default"], p["MinValue"], p["MaxValue"]) == ("Number", 0, 0, high)


def test_outputs_name_everything_the_tool_reads() -> None:
    assert set(load()["Outputs"]) >= {  # type: ignore[arg-type]
        "ALBDNS",
        "ListenerArn",
        "TargetGroupStableArn",
        "TargetGroupCanaryArn",
        "ClusterName",
        "ServiceStableName",
        "ServiceCanaryName",
        "TargetGroupBaselineArn",
        "ServiceBaselineName",
        *(f"TesterTargetGroup{group}Arn" for group in GROUPS),
    }


def test_listener_forwards_by_weight_to_all_three_groups_with_stickiness() -> None:
    resources = load()["Resources"]
    assert isinstance(resources, dict)
    action = resources["Listener"]["Properties"]["DefaultActions"][0]
    groups = action["ForwardConfig"]["TargetGroups"]
    assert [(g["TargetGroupArn"], g["Weight"]) for g in groups] == [
        ({"Ref": f"TargetGroup{group}"}, {"Ref": f"{group}Weight"}) for group in GROUPS
    ]
    assert "TargetGroupStickinessConfig" in action["ForwardConfig"]
    for name in ("ServiceStable", "ServiceCanary", "ServiceBaseline"):
        breaker = resources[name]["Properties"]["DeploymentConfiguration"][
            "DeploymentCircuitBreaker"
        ]
        assert breaker == {"Enable": True, "Rollback": True}


def test_the_six_target_groups_are_alike_and_all_take_the_slow_start_setting() -> None:
    resources = load()["Resources"]
    assert isinstance(resources, dict)
    stable, canary, baseline = (resources[f"TargetGroup{g}"]["Properties"] for g in GROUPS)
    assert baseline == stable == canary  # same health check, port, matcher, attributes
    for group in GROUPS:  # a tester group checks its tasks as the main group does
        assert resources[f"TesterTargetGroup{group}"]["Properties"] == stable
    assert {"Key": "slow_start.duration_seconds", "Value": {"Ref": "SlowStartSeconds"}} in (
        baseline["TargetGroupAttributes"]
    )


def test_baseline_service_runs_stables_task_definition_in_the_baseline_group() -> None:
    resources = load()["Resources"]
    assert isinstance(resources, dict)
    stable = resources["ServiceStable"]["Properties"]
    baseline = resources["ServiceBaseline"]["Properties"]
    # Stable's task definition itself (not a copy): a promotion moves the baseline along.
    assert baseline["TaskDefinition"] == {"Ref": "TaskDefinitionStable"}
    assert baseline["DesiredCount"] == {"Ref": "DesiredCountBaseline"}
    assert baseline["LoadBalancers"][0]["TargetGroupArn"] == {"Ref": "TargetGroupBaseline"}
    for key in ("LaunchType", "DeploymentConfiguration", "NetworkConfiguration"):
        assert baseline[key] == stable[key], key
    assert resources["ServiceBaseline"]["DependsOn"] == ["Listener", "TesterGroupsRule"]


def test_every_service_registers_its_tasks_in_its_main_and_its_tester_group() -> None:
    resources = load()["Resources"]
    assert isinstance(resources, dict)
    for group in GROUPS:
        service = resources[f"Service{group}"]
        assert service["Properties"]["LoadBalancers"] == [
            {
                "ContainerName": "app",
                "ContainerPort": {"Ref": "ContainerPort"},
                "TargetGroupArn": {"Ref": name},
            }
            for name in (f"TargetGroup{group}", f"TesterTargetGroup{group}")
        ]
        # ECS refuses a target group no listener uses: the rule must exist first.
        assert "TesterGroupsRule" in service["DependsOn"]


def test_tester_groups_are_in_no_weighted_action_and_a_rule_no_request_matches_holds_them() -> None:
    resources = load()["Resources"]
    assert isinstance(resources, dict)
    weighted = resources["Listener"]["Properties"]["DefaultActions"][0]["ForwardConfig"]
    named = [g["TargetGroupArn"]["Ref"] for g in weighted["TargetGroups"]]
    assert not [name for name in named if name.startswith("Tester")]
    rule = resources["TesterGroupsRule"]["Properties"]
    assert rule["Priority"] == 50000  # the last: every tester route comes before it
    assert rule["Conditions"] == [
        {"Field": "source-ip", "SourceIpConfig": {"Values": ["255.255.255.255/32"]}}
    ]
    (action,) = rule["Actions"]
    held = [g["TargetGroupArn"] for g in action["ForwardConfig"]["TargetGroups"]]
    assert held == [{"Ref": f"TesterTargetGroup{group}"} for group in GROUPS]


def test_the_weighted_listener_serves_https_with_a_modern_policy_once_a_certificate_is_set() -> (
    None
):
    resources = load()["Resources"]
    assert isinstance(resources, dict)
    listener = resources["Listener"]["Properties"]
    # One listener carries the split either way: adding a certificate updates it in place
    # (same ARN), so its weights and tester rules stay and `ListenerArn` names it.
    assert listener["Port"] == {"If": ["Https", 443, 80]}
    assert listener["Protocol"] == {"If": ["Https", "HTTPS", "HTTP"]}
    assert listener["SslPolicy"]["If"][1] == "ELBSecurityPolicy-TLS13-1-2-2021-06"
    redirect = resources["HttpRedirectListener"]
    assert (redirect["Condition"], redirect["DependsOn"]) == ("Https", "Listener")
    (action,) = redirect["Properties"]["DefaultActions"]
    assert action["RedirectConfig"] == {
        "Protocol": "HTTPS",
        "Port": "443",
        "StatusCode": "HTTP_301",
    }
    assert resources["TesterGroupsRule"]["Properties"]["ListenerArn"] == {"Ref": "Listener"}
    assert load()["Outputs"]["ListenerArn"]["Value"] == {"Ref": "Listener"}  # type: ignore[index]


def test_only_stable_is_autoscaled_and_only_when_asked_for() -> None:
    resources = load()["Resources"]
    assert isinstance(resources, dict)
    scaled = {
        name: r
        for name, r in resources.items()
        if r["Type"].startswith("AWS::ApplicationAutoScaling")
    }
    assert set(scaled) == {"StableScalableTarget", "StableScalingPolicy"}
    assert {r["Condition"] for r in scaled.values()} == {"AutoScaling"}
    target = scaled["StableScalableTarget"]["Properties"]
    assert target["ResourceId"] == {"Sub": "service/${Cluster}/${ServiceStable.Name}"}


def test_the_log_group_is_deleted_with_the_stack_unless_retention_is_asked_for() -> None:
    resources = load()["Resources"]
    assert isinstance(resources, dict)
    groups = {n: r for n, r in resources.items() if r["Type"] == "AWS::Logs::LogGroup"}
    assert {(r["Condition"], r["DeletionPolicy"]) for r in groups.values()} == {
        ("LogsDeletedWithStack", "Delete"),
        ("LogsRetained", "Retain"),
    }
    # Same name either way: `canary logs` and the operator's policy read /ecs/<stack>.
    assert {str(r["Properties"]["LogGroupName"]) for r in groups.values()} == {
        str({"Sub": "/ecs/${AWS::StackName}"})
    }
