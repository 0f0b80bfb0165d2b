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


@dataclass(frozen=True)
class AwsClients:
    cloudformation: CloudFormationClient
    elbv2: ElasticLoadBalancingv2Client
    ecs: ECSClient
    ec2: EC2Client
    cloudwatch: CloudWatchClient
    region: str

    @classmethod
    def create(cls, *, region: str, profile: str | None, stack_name: str) -> AwsClients:
        """Clients for `region` (and `profile`); AWS_ENDPOINT_URL is honoured by boto3."""
        with aws_errors("open an AWS session", stack_name=stack_name, region=region):
            session = boto3.Session(profile_name=profile, region_name=region)
            return cls(
                cloudformation=session.client("cloudformation", config=CLIENT_CONFIG),
                elbv2=session.client("elbv2", config=CLIENT_CONFIG),
                ecs=session.client("ecs", config=CLIENT_CONFIG),
                ec2=session.client("ec2", config=CLIENT_CONFIG),
                cloudwatch=session.client("cloudwatch", config=CLIENT_CONFIG),
                region=region,
            )
