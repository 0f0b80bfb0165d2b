"""What a deploy sends CloudFormation: the stack's parameters (from the release, the `[aws]`
settings, the live values and the network) and the template body (with the app's
environment and secrets rendered in), and the updates it refuses before sending them."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from canary_deploy.aws import stack
from canary_deploy.aws.errors import ErrorScope
from canary_deploy.aws.images import parse_image
from canary_deploy.aws.network import resolve_network
from canary_deploy.aws.settings import AwsSettings
from canary_deploy.aws.stack import StackInfo
from canary_deploy.aws.task_config import render
from canary_deploy.backend import Progress, ReleaseSpec
from canary_deploy.errors import UsageError
from canary_deploy.validation import as_sentence, describe_errors

if TYPE_CHECKING:
    from mypy_boto3_ec2 import EC2Client

Parameters = dict[str, str | None]  # None: the stack's previous value (updates only)
# CreateStack/UpdateStack's TemplateBody limit (bytes); larger ones go through S3.
TEMPLATE_BODY_LIMIT = 51_200


# The production settings an existing stack keeps unless the user names them (a flag, an
# environment variable or canary.toml): a shell without ALB_SCHEME or AUTOSCALING_METRIC
# must not turn an internal load balancer public or autoscaling off. Parameter -> the
# `[aws]` setting (dotted below it). CertificateArn is not here: dropping it is refused.
KEPT_SETTINGS: dict[str, str] = {
    "AlbScheme": "alb_scheme",
    "AssignPublicIp": "assign_public_ip",
    "AllowedIngressCidr": "allowed_ingress_cidr",
    "HealthCheckSuccessCodes": "health_check_success_codes",
    "HealthCheckGracePeriodSeconds": "health_check_grace_period_seconds",
    "TaskRoleArn": "task_role_arn",
    "CpuArchitecture": "cpu_architecture",
    "ContainerInsights": "container_insights",
    "LogRetentionDays": "log_retention_days",
    "RetainLogs": "retain_logs",
    "DeletionProtection": "deletion_protection",
    "AccessLogsBucket": "access_logs_bucket",
    "AutoScalingMetric": "autoscaling.metric",
    "AutoScalingMinCapacity": "autoscaling.min_capacity",
    "AutoScalingMaxCapacity": "autoscaling.max_capacity",
    "AutoScalingTargetValue": "autoscaling.target_value",
}


def named(aws: AwsSettings, path: str) -> bool:
    """Whether the user gave the setting at `path` (pydantic's record of the fields given:
    the loader validates the merge of flags, environment and canary.toml, so a field is set
    when any of them named it).

    >>> named(AwsSettings(alb_scheme="internal"), "alb_scheme")
    True
    >>> named(AwsSettings(), "autoscaling.metric")
    False
    """
    head, _, rest = path.partition(".")
    if head not in aws.model_fields_set:
        return False
    return not rest or rest in getattr(aws, head).model_fields_set


def _kept(aws: AwsSettings, current: StackInfo | None) -> dict[str, str]:
    """The stack's values of the production settings the user did not name."""
    if current is None:
        return {}
    return {
        parameter: current.parameters[parameter]
        for parameter, path in KEPT_SETTINGS.items()
        if parameter in current.parameters and not named(aws, path)
    }


def settings_for(aws: AwsSettings, current: StackInfo | None) -> AwsSettings:
    """The settings a deploy applies to `current` (None: a new stack): `aws`, with the
    stack's own values for the production settings the user did not name."""
    kept = _kept(aws, current)
    if not kept or current is None:
        return aws
    tree: dict[str, Any] = aws.model_dump()
    for parameter, value in kept.items():
        head, _, rest = KEPT_SETTINGS[parameter].partition(".")
        if rest:
            tree[head][rest] = value
        else:
            tree[head] = value
    try:
        return AwsSettings.model_validate(tree)
    except ValidationError as exc:
        problems = describe_errors(exc, AwsSettings, prefix="aws")
        raise UsageError(
            as_sentence(f"stack {current.name}'s settings with the ones given", problems),
            hint="name the settings in question (flag, environment variable or canary.toml)",
        ) from None


def _flag(value: bool) -> str:
    return "true" if value else "false"


def release_parameters(spec: ReleaseSpec, aws: AwsSettings) -> dict[str, str]:
    """Everything a deploy applies as the settings say now (the seed's parameters, the
    listener's and target groups' setup, the production settings)."""
    scaling = aws.autoscaling
    return {
        "ImageURIStable": spec.image_stable,
        "ImageURICanary": spec.image_canary,
        "ContainerPort": str(spec.container_port),
        "DesiredCountStable": str(scaling.clamp(spec.desired_count_stable)),
        "DesiredCountCanary": str(spec.desired_count_canary),
        "TaskCpu": str(aws.task_cpu),
        "TaskMemory": str(aws.task_memory),
        "HealthCheckPath": spec.health_check_path,
        "StickinessEnabled": _flag(bool(spec.stickiness_seconds)),
        "StickinessDurationSeconds": str(spec.stickiness_seconds or 3600),
        "AllowedIngressCidr": aws.allowed_ingress_cidr,
        "SlowStartSeconds": str(spec.slow_start_seconds),
        "AssignPublicIp": aws.assign_public_ip,
        "AlbScheme": aws.alb_scheme,
        "CertificateArn": aws.certificate_arn or "",
        "HealthCheckSuccessCodes": aws.health_check_success_codes,
        "HealthCheckGracePeriodSeconds": str(aws.health_check_grace_period_seconds),
        "TaskRoleArn": aws.task_role_arn or "",
        "CpuArchitecture": aws.cpu_architecture,
        "ContainerInsights": aws.container_insights,
        "LogRetentionDays": str(aws.log_retention_days),
        "RetainLogs": _flag(aws.retain_logs),
        "DeletionProtection": _flag(aws.deletion_protection),
        "AccessLogsBucket": aws.access_logs_bucket or "",
        "AutoScalingMetric": scaling.metric,
        "AutoScalingMinCapacity": str(scaling.min_capacity),
        "AutoScalingMaxCapacity": str(scaling.max_capacity),
        "AutoScalingTargetValue": str(scaling.target_value),
    }


def network_parameters(
    ec2: EC2Client,
    errors: ErrorScope,
    aws: AwsSettings,
    current: StackInfo | None,
    progress: Progress,
) -> Parameters:
    """VPC and subnets: an existing stack stays in its network unless the settings name
    one; a new stack without any takes the default VPC (and says so)."""
    named = aws.vpc_id or aws.subnet_ids or aws.alb_subnet_ids or aws.task_subnet_ids
    if current is not None and not named:
        keys = ("VpcId", "SubnetIds", "AlbSubnetIds", "TaskSubnetIds")
        return dict.fromkeys(keys)
    if (aws.alb_subnet_ids or aws.task_subnet_ids) and not aws.vpc_id:
        raise UsageError(
            "ALB_SUBNET_IDS/TASK_SUBNET_IDS were given without VPC_ID",
            hint="set VPC_ID to the VPC of those subnets",
        )
    if aws.task_subnet_ids and not (aws.subnet_ids or aws.alb_subnet_ids):
        raise UsageError(
            "TASK_SUBNET_IDS was given without the load balancer's subnets",
            hint="set ALB_SUBNET_IDS (or SUBNET_IDS) to two or more subnets in different zones",
        )
    network = resolve_network(ec2, errors, aws.vpc_id, aws.subnet_ids or aws.alb_subnet_ids)
    if network.discovered:
        progress.log(f"No VPC_ID/SUBNET_IDS given: using the {network.describe()}")
    return {
        "VpcId": network.vpc_id,
        "SubnetIds": ",".join(network.subnet_ids),
        "AlbSubnetIds": ",".join(aws.alb_subnet_ids),
        "TaskSubnetIds": ",".join(aws.task_subnet_ids),
    }


def stack_parameters(
    spec: ReleaseSpec,
    aws: AwsSettings,
    current: StackInfo | None,
    *,
    live: Mapping[str, str | None],
    network: Mapping[str, str | None],
) -> Parameters:
    """A deploy's parameters: the release and settings, then the live values (`live`:
    weights, task counts changed by API calls) over them, then the network.

    An existing stack keeps the production settings the user did not name (their previous
    values); a stack from before such a parameter gets the settings' value.

    With autoscaling, stable's live count (in `live`) is kept within the new min..max;
    without it (or once it is turned off), stable gets the settings' count."""
    applied = settings_for(aws, current)
    release = release_parameters(spec, applied)
    kept = dict.fromkeys(_kept(aws, current))
    parameters: Parameters = {**release, **kept, **live, **network}
    stable = parameters.get("DesiredCountStable")
    scaling = applied.autoscaling
    if not scaling.enabled:  # never on, or turned off now: the settings' count
        parameters["DesiredCountStable"] = release["DesiredCountStable"]
    elif stable is not None:
        parameters["DesiredCountStable"] = str(scaling.clamp(int(stable)))
    if current is not None:
        check_update(current, parameters)
        # A parameter the stack does not have yet takes the template's default.
        parameters = {
            k: v for k, v in parameters.items() if v is not None or k in current.parameters
        }
    return parameters


def check_update(current: StackInfo, parameters: Mapping[str, str | None]) -> None:
    """Refuse what CloudFormation would fail on halfway (then roll back): changes that
    must be made when the stack is created."""
    before, after = current.parameters, parameters
    # A stack from before RetainLogs has the log group deleted with it: "false".
    retained = before.get("RetainLogs", "false")
    if after.get("RetainLogs") not in (None, retained):
        raise UsageError(
            f"stack {current.name} was created with retain_logs = "
            f"{retained}: it cannot change on an existing stack (the new log "
            "group would take the same name before the old one is gone)",
            hint=f"set retain_logs (RETAIN_LOGS) back to {retained} (or leave it unset: an "
            "existing stack keeps its value), or create the stack anew",
        )
    # A stack from before AlbScheme has the prototype's internet-facing balancer.
    scheme = before.get("AlbScheme", "internet-facing")
    if after.get("AlbScheme") not in (None, scheme):
        raise UsageError(
            f"stack {current.name}'s load balancer is {scheme}: alb_scheme = "
            f"{after['AlbScheme']} would replace it, and CloudFormation fails halfway (the "
            "new load balancer's listener forwards to the same target groups, and a target "
            "group cannot belong to two load balancers)",
            hint=f"set alb_scheme (ALB_SCHEME) back to {scheme} (or leave it unset: an existing "
            "stack keeps its scheme), or delete the stack and create it with the new scheme "
            "(a new DNS name)",
        )
    if before.get("CertificateArn") and after.get("CertificateArn") == "":
        raise UsageError(
            f"stack {current.name} serves HTTPS: it cannot go back to HTTP in place (the "
            "redirect on port 80 is removed only after the listener would need the port)",
            hint="keep certificate_arn (CERTIFICATE_ARN) set, or delete the stack and create it "
            "without one",
        )


def check_certificate_region(aws: AwsSettings, region: str) -> None:
    """Refuse a certificate from another region: an ALB takes ACM certificates of its own
    region only, and CloudFormation would fail the listener halfway.

    >>> check_certificate_region(AwsSettings(), "eu-west-1")  # none: nothing to check
    """
    arn = aws.certificate_arn
    if arn is None:
        return
    where = arn.split(":")[3]
    if where != region:
        raise UsageError(
            f"certificate {arn} is in {where}, and the stack is in {region}: a load balancer "
            "takes ACM certificates of its own region only",
            hint=f"request or import the certificate in ACM in {region} and set "
            "certificate_arn (CERTIFICATE_ARN) to it, or deploy in "
            f"{where} (--region / AWS_REGION)",
        )


def check_log_group_free(stack_name: str, existing: list[str]) -> None:
    """Refuse creating a stack whose log group name `/ecs/<stack>` is taken (`existing`:
    the names DescribeLogGroups lists under that prefix), e.g. kept by a deleted stack's
    retain_logs: CloudFormation would fail the create and roll it back.

    >>> check_log_group_free("shop", ["/ecs/shop-2"])
    """
    name = f"/ecs/{stack_name}"
    if name in existing:
        raise UsageError(
            f"log group {name} already exists (kept by an earlier stack of this name with "
            "retain_logs, or made by hand): the new stack would create it and fail",
            hint=f"delete it (aws logs delete-log-group --log-group-name {name}) once its "
            "logs are no longer needed, or use another stack name (--stack-name / STACK_NAME)",
        )


def check_delete(current: StackInfo) -> None:
    """Refuse deleting a stack whose load balancer refuses deletion: CloudFormation would
    delete everything else first and end in DELETE_FAILED."""
    if current.parameters.get("DeletionProtection") == "true":
        raise UsageError(
            f"stack {current.name}'s load balancer has deletion protection on",
            hint="turn it off with `DELETION_PROTECTION=false canary --target aws deploy` "
            "(with the images it runs; the stack keeps every other production setting you do "
            "not name), then `canary --target aws delete`",
        )


def template_for(aws: AwsSettings, images: Iterable[str] = ()) -> str:
    """The template body a deploy sends: the packaged one with the app's environment and
    secrets (and the execution role's read access to them) rendered in, and the pull of
    the ECR `images` (another account's or region's too)."""
    repositories = tuple(
        image.repository_arn for uri in images if (image := parse_image(uri)) is not None
    )
    config = dataclasses.replace(aws.task_config, image_repositories=repositories)
    body = render(stack.template_body(), config)  # looked up when called
    size = len(body.encode())
    if size > TEMPLATE_BODY_LIMIT:
        raise UsageError(
            f"the stack's template with the app's environment and secrets is {size:,} bytes; "
            f"CloudFormation takes at most {TEMPLATE_BODY_LIMIT:,} in a request",
            hint="move large values out of [aws] env (a Secrets Manager secret or SSM "
            "parameter holds up to 64 KiB / 8 KiB)",
        )
    return body


def listener_url(parameters: Mapping[str, str], dns_name: str) -> str:
    """Where users reach the weighted listener: https:// when the stack has a certificate.

    >>> listener_url({"CertificateArn": ""}, "alb-1.elb.amazonaws.com")
    'http://alb-1.elb.amazonaws.com/'
    """
    scheme = "https" if parameters.get("CertificateArn") else "http"
    return f"{scheme}://{dns_name}/"
