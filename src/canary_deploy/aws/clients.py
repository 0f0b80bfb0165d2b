"""The boto3 clients one AWS target uses, built once from the settings."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import boto3
from botocore.config import Config

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


def open_session(
    *, region: str | None, profile: str | None, stack_name: str
) -> tuple[boto3.Session, str]:
    """A session for `profile`, and the region to work in: `region` when the settings name
    one (--region, AWS_REGION, AWS_DEFAULT_REGION, canary.toml), else the profile's, else
    us-east-1. Clients must be created with that region (`session.client(name,
    region_name=...)`): the session alone would fail without one."""
    with aws_errors("open an AWS session", stack_name=stack_name, region=region or DEFAULT_REGION):
        session = boto3.Session(profile_name=profile, region_name=region)
        return session, session.region_name or DEFAULT_REGION


@dataclass(frozen=True)
class AwsClients:
    cloudformation: CloudFormationClient
    elbv2: ElasticLoadBalancingv2Client
    ecs: ECSClient
    ec2: EC2Client
    cloudwatch: CloudWatchClient
    region: str

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
            )
