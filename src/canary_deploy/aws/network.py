"""Where the stack lives: the given VPC and subnets, or the account's default VPC."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from canary_deploy.aws.errors import ErrorScope
from canary_deploy.errors import OperationFailed, UsageError

if TYPE_CHECKING:
    from mypy_boto3_ec2 import EC2Client


@dataclass(frozen=True)
class Network:
    vpc_id: str
    subnet_ids: tuple[str, ...]
    discovered: bool  # True when we picked the default VPC ourselves

    def describe(self) -> str:
        how = "default VPC" if self.discovered else "VPC"
        return f"{how} {self.vpc_id}, subnets {', '.join(self.subnet_ids)}"


def resolve_network(
    ec2: EC2Client, errors: ErrorScope, vpc_id: str | None, subnet_ids: Sequence[str]
) -> Network:
    """The VPC and subnets to use: as given, or the default VPC with one subnet per AZ.

    An ALB needs subnets in at least two availability zones.
    """
    if subnet_ids and not vpc_id:
        raise UsageError(
            "SUBNET_IDS was given without VPC_ID",
            hint="set both VPC_ID and SUBNET_IDS, or neither to use the default VPC",
        )
    if vpc_id and not subnet_ids:
        raise UsageError(
            "VPC_ID was given without SUBNET_IDS",
            hint="set SUBNET_IDS to two or more public subnets of that VPC (comma-separated)",
        )
    if vpc_id:
        if len(subnet_ids) < 2:
            raise UsageError(
                "an Application Load Balancer needs at least two subnets",
                hint="set SUBNET_IDS to subnets in two or more availability zones",
            )
        return Network(vpc_id, tuple(subnet_ids), discovered=False)
    with errors("find the default VPC"):
        vpcs = ec2.describe_vpcs(Filters=[{"Name": "isDefault", "Values": ["true"]}])["Vpcs"]
    if not vpcs:
        raise OperationFailed(
            f"this account has no default VPC in {errors.region}",
            hint="set VPC_ID and SUBNET_IDS (two public subnets in different zones)",
        )
    default_vpc = vpcs[0]["VpcId"]
    with errors("list the default VPC's subnets"):
        subnets = ec2.describe_subnets(Filters=[{"Name": "vpc-id", "Values": [default_vpc]}])[
            "Subnets"
        ]
    by_zone: dict[str, str] = {}
    for subnet in sorted(subnets, key=lambda s: (s.get("AvailabilityZone", ""), s["SubnetId"])):
        by_zone.setdefault(subnet.get("AvailabilityZone", subnet["SubnetId"]), subnet["SubnetId"])
    chosen = tuple(by_zone.values())
    if len(chosen) < 2:
        raise OperationFailed(
            f"the default VPC {default_vpc} has subnets in fewer than two availability zones",
            hint="set VPC_ID and SUBNET_IDS explicitly",
        )
    return Network(default_vpc, chosen, discovered=True)
