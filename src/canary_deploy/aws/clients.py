"""The AWS session and clients one target uses: the region it works in, and (for the
tests) a log of every API call as the IAM action it needs."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import boto3
from botocore.config import Config
from botocore.model import OperationModel

from canary_deploy.aws.errors import aws_errors

if TYPE_CHECKING:
    from mypy_boto3_cloudformation import CloudFormationClient
    from mypy_boto3_cloudwatch import CloudWatchClient
    from mypy_boto3_ec2 import EC2Client
    from mypy_boto3_ecs import ECSClient
    from mypy_boto3_elbv2 import ElasticLoadBalancingv2Client

# Standard mode retries throttling and transient errors with backoff (botocore's advice).
CLIENT_CONFIG = Config(retries={"mode": "standard", "max_attempts": 5})
DEFAULT_REGION = "us-east-1"  # the seed's, when nothing names a region
# A file path: every AWS API call made through `open_session`'s clients is appended to it as
# the IAM action it needs (`elasticloadbalancing:ModifyListener`), one per line; the test
# suite checks them against the operator's policy (docs/operator-policy.json).
CALL_LOG_ENV = "CANARY_AWS_CALL_LOG"
# botocore's signing name where it is not the IAM service prefix.
_IAM_PREFIX = {"monitoring": "cloudwatch"}


def iam_action(operation: OperationModel) -> str:
    """The IAM action an API operation is named by (`service:Operation`)."""
    prefix = operation.service_model.signing_name
    return f"{_IAM_PREFIX.get(prefix, prefix)}:{operation.name}"


def _record_calls(session: boto3.Session, path: Path) -> None:
    def record(model: OperationModel, **_: Any) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a", encoding="utf-8") as log:
            log.write(f"{iam_action(model)}\n")

    # provide-client-params: every handler sees it (a Stubber answers before-call first).
    session.events.register("provide-client-params", record)


def open_session(
    *, region: str | None, profile: str | None, stack_name: str
) -> tuple[boto3.Session, str]:
    """A session for `profile`, and the region to work in: `region` when the settings name
    one (--region, AWS_REGION, AWS_DEFAULT_REGION, canary.toml), else the profile's, else
    us-east-1. Clients must be created with that region (`session.client(name,
    region_name=...)`): the session alone would fail without one."""
    with aws_errors("open an AWS session", stack_name=stack_name, region=region or DEFAULT_REGION):
        session = boto3.Session(profile_name=profile, region_name=region)
        if os.environ.get(CALL_LOG_ENV):
            _record_calls(session, Path(os.environ[CALL_LOG_ENV]))
        return session, session.region_name or DEFAULT_REGION


@dataclass(frozen=True)
class AwsClients:
    cloudformation: CloudFormationClient
    elbv2: ElasticLoadBalancingv2Client
    ecs: ECSClient
    ec2: EC2Client
    cloudwatch: CloudWatchClient
    region: str
    logs: Any = None  # CloudWatch Logs (`canary logs`); no stubs are installed for it
    ecr: Any = None  # ECR (the image check before a deploy); no stubs either
    # For clients in another region (an image in an ECR registry elsewhere).
    session: boto3.Session | None = None

    def ecr_in(self, region: str) -> Any:
        """An ECR client for `region`: this one's, or a new one from the same session."""
        if region == self.region or self.session is None:
            return self.ecr
        with aws_errors("open an AWS session", stack_name="", region=region):
            return self.session.client("ecr", region_name=region, config=CLIENT_CONFIG)

    @classmethod
    def create(cls, *, region: str | None, profile: str | None, stack_name: str) -> AwsClients:
        """Clients for the region `open_session` resolves (and `profile`);
        AWS_ENDPOINT_URL is honoured by boto3."""
        session, resolved = open_session(region=region, profile=profile, stack_name=stack_name)
        with aws_errors("open an AWS session", stack_name=stack_name, region=resolved):
            return cls(
                cloudformation=session.client(
                    "cloudformation", region_name=resolved, config=CLIENT_CONFIG
                ),
                elbv2=session.client("elbv2", region_name=resolved, config=CLIENT_CONFIG),
                ecs=session.client("ecs", region_name=resolved, config=CLIENT_CONFIG),
                ec2=session.client("ec2", region_name=resolved, config=CLIENT_CONFIG),
                cloudwatch=session.client("cloudwatch", region_name=resolved, config=CLIENT_CONFIG),
                region=resolved,
                logs=session.client("logs", region_name=resolved, config=CLIENT_CONFIG),
                ecr=session.client("ecr", region_name=resolved, config=CLIENT_CONFIG),
                session=session,
            )
