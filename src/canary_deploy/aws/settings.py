"""The `[aws]` settings: what only the AWS target uses, validated with the reason."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from canary_deploy.aws.existing import ExistingService
from canary_deploy.aws.task_config import KMS_KEY_ARN, TaskConfig, name_problem, secret_problem

FARGATE_CPU = (256, 512, 1024, 2048, 4096, 8192, 16384)
# What CloudWatch Logs accepts as a retention (PutRetentionPolicy).
LOG_RETENTION_DAYS = (1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096,
                      1827, 2192, 2557, 2922, 3288, 3653)  # fmt: skip
CERTIFICATE_ARN = re.compile(r"^arn:aws[a-z-]*:acm:[a-z0-9-]+:\d{12}:certificate/[A-Za-z0-9-]+$")
ROLE_ARN = re.compile(r"^arn:aws[a-z-]*:iam::\d{12}:role/[\w+=,.@/-]+$")
BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class AutoScalingSettings(_Frozen):
    """Target tracking of the stable service (`[aws.autoscaling]`); off by default."""

    metric: Literal["off", "cpu", "requests"] = "off"
    min_capacity: int = Field(default=1, le=1000)
    max_capacity: int = Field(default=4, ge=1, le=1000)
    # CPU percent, or requests per target per minute.
    target_value: int = Field(default=60, ge=1)

    @field_validator("min_capacity")
    @classmethod
    def _min_one(cls, count: int) -> int:
        if count < 1:
            raise ValueError(
                f"min_capacity must be 1 or more, got {count}: while the canary holds the "
                "traffic, autoscaling scales stable in to min_capacity, and a rollback or a "
                "promotion would then put all traffic on no task"
            )
        return count

    @model_validator(mode="after")
    def _min_below_max(self) -> AutoScalingSettings:
        if self.min_capacity > self.max_capacity:
            raise ValueError(
                f"min_capacity {self.min_capacity} is above max_capacity {self.max_capacity}"
            )
        if self.metric == "cpu" and self.target_value > 100:
            raise ValueError(f"a CPU target is a percentage (1..100), got {self.target_value}")
        return self

    @property
    def enabled(self) -> bool:
        return self.metric != "off"

    def clamp(self, count: int) -> int:
        """A stable task count autoscaling would accept (within min..max when on)."""
        return min(max(count, self.min_capacity), self.max_capacity) if self.enabled else count


class AwsSettings(_Frozen):
    """What only the AWS target uses."""

    profile: str | None = None
    # None: nothing named one; the AWS session then takes the profile's region, else
    # us-east-1 (aws/clients.py), so read the region in use from AwsClients.region.
    region: str | None = None
    vpc_id: str | None = None
    subnet_ids: tuple[str, ...] = ()
    # Empty: subnet_ids. Private task subnets go with assign_public_ip DISABLED.
    alb_subnet_ids: tuple[str, ...] = ()
    task_subnet_ids: tuple[str, ...] = ()
    assign_public_ip: Literal["ENABLED", "DISABLED"] = "ENABLED"
    alb_scheme: Literal["internet-facing", "internal"] = "internet-facing"
    allowed_ingress_cidr: str = "0.0.0.0/0"
    certificate_arn: str | None = None  # HTTPS on 443, port 80 redirects
    task_cpu: int = 256
    task_memory: int = Field(default=512, ge=512, le=122880)
    cpu_architecture: Literal["X86_64", "ARM64"] = "X86_64"
    task_role_arn: str | None = None
    health_check_success_codes: str = Field(default="200", pattern=r"^\d{3}([,-]\d{3})*$")
    health_check_grace_period_seconds: int = Field(default=30, ge=0, le=2147483647)
    # The app's environment and secrets (name -> Secrets Manager or SSM parameter ARN),
    # in every task definition (`deploy --env/--secret` add to them).
    env: dict[str, str] = Field(default_factory=dict)
    secrets: dict[str, str] = Field(default_factory=dict)
    # Only for secrets encrypted with a customer managed KMS key (kms:Decrypt on them).
    secrets_kms_key_arns: tuple[str, ...] = ()
    container_insights: Literal["enabled", "enhanced", "disabled"] = "enabled"
    log_retention_days: int = 14
    retain_logs: bool = False
    deletion_protection: bool = False
    access_logs_bucket: str | None = None
    autoscaling: AutoScalingSettings = AutoScalingSettings()
    # `canary adopt`'s record: the user's own listener and services instead of our stack.
    existing: ExistingService | None = None

    @model_validator(mode="after")
    def _cpu_is_fargate(self) -> AwsSettings:
        if self.task_cpu not in FARGATE_CPU:
            allowed = ", ".join(map(str, FARGATE_CPU))
            raise ValueError(f"task_cpu must be one of {allowed} (Fargate CPU units)")
        return self

    @field_validator("log_retention_days")
    @classmethod
    def _retention(cls, days: int) -> int:
        if days not in LOG_RETENTION_DAYS:
            raise ValueError(
                f"CloudWatch Logs keeps logs {', '.join(map(str, LOG_RETENTION_DAYS))} days"
            )
        return days

    @field_validator("certificate_arn", "task_role_arn", "access_logs_bucket", mode="before")
    @classmethod
    def _empty_is_none(cls, value: object) -> object:
        return None if value == "" else value

    @field_validator("certificate_arn")
    @classmethod
    def _certificate(cls, arn: str | None) -> str | None:
        if arn is not None and not CERTIFICATE_ARN.match(arn):
            raise ValueError(
                "not an ACM certificate ARN (arn:aws:acm:REGION:ACCOUNT:certificate/ID)"
            )
        return arn

    @field_validator("task_role_arn")
    @classmethod
    def _role(cls, arn: str | None) -> str | None:
        if arn is not None and not ROLE_ARN.match(arn):
            raise ValueError("not an IAM role ARN (arn:aws:iam::ACCOUNT:role/NAME)")
        return arn

    @field_validator("access_logs_bucket")
    @classmethod
    def _bucket(cls, name: str | None) -> str | None:
        if name is not None and not BUCKET.match(name):
            raise ValueError("not an S3 bucket name (3-63 lower-case letters, digits, . and -)")
        return name

    @field_validator("env")
    @classmethod
    def _env_names(cls, env: dict[str, str]) -> dict[str, str]:
        problems = [p for name in env if (p := name_problem(name))]
        if problems:
            raise ValueError("; ".join(problems))
        return env

    @field_validator("secrets")
    @classmethod
    def _secret_arns(cls, secrets: dict[str, str]) -> dict[str, str]:
        problems = [
            p for name, arn in secrets.items() if (p := name_problem(name) or secret_problem(arn))
        ]
        if problems:
            raise ValueError("; ".join(problems))
        return secrets

    @field_validator("secrets_kms_key_arns")
    @classmethod
    def _kms_keys(cls, arns: tuple[str, ...]) -> tuple[str, ...]:
        bad = [arn for arn in arns if not KMS_KEY_ARN.match(arn)]
        if bad:
            raise ValueError(
                f"not KMS key ARNs (arn:aws:kms:REGION:ACCOUNT:key/ID): {', '.join(bad)}"
            )
        return arns

    @model_validator(mode="after")
    def _env_or_secret(self) -> AwsSettings:
        both = sorted(set(self.env) & set(self.secrets))
        if both:
            raise ValueError(
                f"{', '.join(both)} named in both env and secrets: a variable is one or the other"
            )
        return self

    @property
    def task_config(self) -> TaskConfig:
        return TaskConfig(self.env, self.secrets, self.secrets_kms_key_arns)
