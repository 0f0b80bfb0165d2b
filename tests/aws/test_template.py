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


def test_parameters_are_the_seeds_plus_network_health_and_stickiness() -> None:
    assert set(load()["Parameters"]) == SEED_PARAMETERS | OUR_PARAMETERS  # type: ignore[arg-type]


def test_outputs_name_everything_the_tool_reads() -> None:
    assert set(load()["Outputs"]) >= {  # type: ignore[arg-type]
        "ALBDNS",
        "ListenerArn",
        "TargetGroupStableArn",
        "TargetGroupCanaryArn",
        "ClusterName",
        "ServiceStableName",
        "ServiceCanaryName",
    }


def test_listener_forwards_by_weight_to_both_groups_with_stickiness() -> None:
    resources = load()["Resources"]
    assert isinstance(resources, dict)
    action = resources["Listener"]["Properties"]["DefaultActions"][0]
    groups = action["ForwardConfig"]["TargetGroups"]
    assert [g["Weight"] for g in groups] == [{"Ref": "StableWeight"}, {"Ref": "CanaryWeight"}]
    assert "TargetGroupStickinessConfig" in action["ForwardConfig"]
    for name in ("ServiceStable", "ServiceCanary"):
        breaker = resources[name]["Properties"]["DeploymentConfiguration"][
            "DeploymentCircuitBreaker"
        ]
        assert breaker == {"Enable": True, "Rollback": True}
