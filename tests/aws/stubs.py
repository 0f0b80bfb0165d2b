"""Stubber-backed clients and small fakes for what moto cannot do (health, metrics, events)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import boto3
from botocore.config import Config
from botocore.stub import Stubber

from canary_deploy.aws.errors import ErrorScope
from canary_deploy.aws.outputs import StackOutputs
from canary_deploy.weights import Weights

REGION = "us-east-1"
ERRORS = ErrorScope("demo", REGION)
LB_ARN = "arn:aws:elasticloadbalancing:us-east-1:1:loadbalancer/app/demo-lb/50dc6c495c0c9188"
TG_PREFIX = "arn:aws:elasticloadbalancing:us-east-1:1:targetgroup"
OUTPUTS = StackOutputs(
    alb_dns="demo-lb-1.us-east-1.elb.amazonaws.com",
    listener_arn="arn:aws:elasticloadbalancing:us-east-1:1:listener/app/demo-lb/50dc/f2f7",
    load_balancer_arn=LB_ARN,
    target_group_stable_arn="arn:aws:elasticloadbalancing:us-east-1:1:targetgroup/demo-st/73e2",
    target_group_canary_arn="arn:aws:elasticloadbalancing:us-east-1:1:targetgroup/demo-ca/9a1b",
    cluster_name="demo-cluster",
    service_stable_name="demo-stable",
    service_canary_name="demo-canary",
    target_group_baseline_arn="arn:aws:elasticloadbalancing:us-east-1:1:targetgroup/demo-bl/5c0d",
    service_baseline_name="demo-baseline",
    tester_target_group_stable_arn=f"{TG_PREFIX}/demo-tst/1e57",
    tester_target_group_canary_arn=f"{TG_PREFIX}/demo-tca/2e57",
    tester_target_group_baseline_arn=f"{TG_PREFIX}/demo-tbl/3e57",
)
# A stack created before the tester groups existed.
OUTPUTS_NO_TESTER_GROUPS = replace(
    OUTPUTS,
    tester_target_group_stable_arn=None,
    tester_target_group_canary_arn=None,
    tester_target_group_baseline_arn=None,
)
# A stack created before the baseline group existed: no baseline outputs (nor tester ones).
OUTPUTS_TWO_GROUPS = replace(
    OUTPUTS_NO_TESTER_GROUPS, target_group_baseline_arn=None, service_baseline_name=None
)


def stubbed(service: str) -> tuple[Any, Stubber]:
    """A client that never touches the network (no retries, so errors surface at once)."""
    client = boto3.client(
        service,
        region_name=REGION,
        aws_access_key_id="x",
        aws_secret_access_key="x",
        config=Config(retries={"mode": "standard", "max_attempts": 1}),
    )
    return client, Stubber(client)


class RecordingProgress:
    """A Progress that remembers what it was told."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.updates: list[str] = []

    def update(self, message: str) -> None:
        self.updates.append(message)

    def log(self, message: str) -> None:
        self.lines.append(message)


class FakeListener:
    """A TrafficRouter holding weights in memory; `set_weights` calls are recorded, and
    `stuck_on` (if set) is what it reports whatever it was told."""

    def __init__(self, weights: Weights) -> None:
        self.weights = weights
        self.calls: list[Weights] = []
        self.stuck_on: Weights | None = None

    def get_weights(self) -> Weights:
        return self.stuck_on or self.weights

    def set_weights(self, weights: Weights) -> None:
        self.calls.append(weights)
        self.weights = weights

    def verify_weights(self, weights: Weights) -> bool:
        return self.get_weights() == weights
