"""`resolve_network`: the VPC and subnets given, or the default VPC's, one subnet per zone."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError

from canary_deploy.aws.network import Network, resolve_network
from canary_deploy.errors import OperationFailed, UsageError
from tests.aws.stubs import ERRORS


class FakeEc2:
    """The two EC2 calls `resolve_network` makes, over a fixed account."""

    def __init__(self, vpcs: list[str], subnets: list[dict[str, str]], denied: bool = False):
        self.vpcs = vpcs
        self.subnets = subnets
        self.denied = denied
        self.calls: list[str] = []

    def describe_vpcs(self, **kwargs: Any) -> dict[str, Any]:
        self.calls.append("describe_vpcs")
        assert kwargs["Filters"] == [{"Name": "isDefault", "Values": ["true"]}]
        if self.denied:
            error = {"Error": {"Code": "UnauthorizedOperation", "Message": "not allowed"}}
            raise ClientError(error, "DescribeVpcs")  # type: ignore[arg-type]
        return {"Vpcs": [{"VpcId": v} for v in self.vpcs]}

    def describe_subnets(self, **kwargs: Any) -> dict[str, Any]:
        self.calls.append("describe_subnets")
        assert kwargs["Filters"] == [{"Name": "vpc-id", "Values": [self.vpcs[0]]}]
        return {"Subnets": self.subnets}


def _subnet(subnet_id: str, zone: str) -> dict[str, str]:
    return {"SubnetId": subnet_id, "AvailabilityZone": zone}


def resolve(ec2: FakeEc2, vpc_id: str | None = None, subnets: tuple[str, ...] = ()) -> Network:
    return resolve_network(ec2, ERRORS, vpc_id, subnets)  # type: ignore[arg-type]


def test_a_given_vpc_and_subnets_are_used_as_they_are_without_asking_ec2() -> None:
    ec2 = FakeEc2([], [])
    network = resolve(ec2, "vpc-1", ("subnet-b", "subnet-a"))
    assert network == Network("vpc-1", ("subnet-b", "subnet-a"), discovered=False)
    assert network.describe() == "VPC vpc-1, subnets subnet-b, subnet-a"
    assert ec2.calls == []


@pytest.mark.parametrize(
    ("vpc_id", "subnets", "message"),
    [
        (None, ("subnet-a", "subnet-b"), "SUBNET_IDS was given without VPC_ID"),
        ("vpc-1", (), "VPC_ID was given without SUBNET_IDS"),
        ("vpc-1", ("subnet-a",), "an Application Load Balancer needs at least two subnets"),
    ],
)
def test_half_given_or_too_few_subnets_are_refused_with_a_hint(
    vpc_id: str | None, subnets: tuple[str, ...], message: str
) -> None:
    with pytest.raises(UsageError) as refused:
        resolve(FakeEc2([], []), vpc_id, subnets)
    assert refused.value.message == message and refused.value.hint


def test_the_default_vpc_gets_one_subnet_per_zone_the_first_by_id() -> None:
    subnets = [
        _subnet("subnet-9", "us-east-1b"),
        _subnet("subnet-3", "us-east-1a"),
        _subnet("subnet-1", "us-east-1a"),
        _subnet("subnet-5", "us-east-1c"),
    ]
    network = resolve(FakeEc2(["vpc-default"], subnets))
    assert network == Network("vpc-default", ("subnet-1", "subnet-9", "subnet-5"), discovered=True)
    assert network.describe().startswith("default VPC vpc-default")


def test_an_account_without_a_default_vpc_is_told_to_name_one() -> None:
    with pytest.raises(OperationFailed) as failed:
        resolve(FakeEc2([], []))
    assert failed.value.message == "this account has no default VPC in us-east-1"
    assert failed.value.hint is not None and "VPC_ID and SUBNET_IDS" in failed.value.hint


def test_a_default_vpc_in_one_zone_is_not_enough_for_a_load_balancer() -> None:
    subnets = [_subnet("subnet-1", "us-east-1a"), _subnet("subnet-2", "us-east-1a")]
    with pytest.raises(OperationFailed) as failed:
        resolve(FakeEc2(["vpc-default"], subnets))
    assert "fewer than two availability zones" in failed.value.message


def test_an_ec2_error_is_translated_where_it_enters() -> None:
    with pytest.raises(OperationFailed) as failed:
        resolve(FakeEc2(["vpc-default"], [], denied=True))
    assert failed.value.message == "access denied while trying to find the default VPC: not allowed"
    assert failed.value.hint is not None and "IAM permission" in failed.value.hint
