"""One frozen, validated settings object: flags > environment > canary.toml > defaults."""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from canary_deploy.aws.existing import ExistingService
from canary_deploy.aws.settings import AwsSettings as AwsSettings  # re-exported
from canary_deploy.errors import UsageError
from canary_deploy.rollout.settings import NotificationSettings, RolloutSettings
from canary_deploy.validation import as_sentence, describe_errors
from canary_deploy.weights import Weights

TargetKind = Literal["aws", "local"]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class LocalSettings(_Frozen):
    """What only the local target uses."""

    state_dir: Path = Path(".canary")
    listen: str = "127.0.0.1:8080"
    health_profile: Literal["alb", "fast"] = "fast"
    # None = the health profile's default (fast: 2 s, alb: ALB's 300 s).
    deregistration_delay_s: float | None = Field(default=None, ge=0, le=3600)
    # Prometheus text on http://127.0.0.1:PORT/metrics too (None: the admin socket only;
    # 0 picks a free port, shown by `canary status`).
    metrics_port: int | None = Field(default=None, ge=0, le=65535)


class Settings(_Frozen):
    """Everything a command needs, validated once."""

    target: TargetKind = "local"
    stack_name: str = Field(default="ecs-canary-demo-stack", min_length=1, max_length=128)
    image_uri_stable: str | None = None
    image_uri_canary: str | None = None
    container_port: int = Field(default=8000, ge=1, le=65535)
    desired_count_stable: int = Field(default=2, ge=0, le=100)
    desired_count_canary: int = Field(default=1, ge=0, le=100)
    stable_weight: int = Field(default=95, ge=0, le=100)
    canary_weight: int = Field(default=5, ge=0, le=100)
    health_check_path: str = Field(default="/", pattern=r"^/")
    stickiness_enabled: bool = False
    stickiness_duration_seconds: int = Field(default=3600, ge=1, le=604800)
    # ALB slow start: a newly healthy target's share ramps up linearly over this many
    # seconds (0 = off; ALB allows 30..900).
    slow_start_seconds: int = Field(default=0, ge=0, le=900)
    aws: AwsSettings = AwsSettings()
    local: LocalSettings = LocalSettings()
    rollout: RolloutSettings = Field(default_factory=RolloutSettings)
    # `[[notifications]]`: webhooks told about each rollout's events (rollout/notify.py).
    notifications: tuple[NotificationSettings, ...] = ()

    @field_validator("notifications", mode="before")
    @classmethod
    def _one_webhook(cls, value: Any) -> Any:
        # `[notifications]` (one table) means what `[[notifications]]` (a list) does.
        return [value] if isinstance(value, Mapping) else value

    @model_validator(mode="after")
    def _weights_sum(self) -> Settings:
        if self.stable_weight + self.canary_weight != 100:
            total = self.stable_weight + self.canary_weight
            raise ValueError(
                f"stable_weight + canary_weight must sum to 100, got "
                f"{self.stable_weight} + {self.canary_weight} = {total}"
            )
        return self

    @model_validator(mode="after")
    def _slow_start_range(self) -> Settings:
        if 0 < self.slow_start_seconds < 30:
            raise ValueError(
                f"slow_start_seconds must be 0 (off) or 30..900 like ALB's, "
                f"got {self.slow_start_seconds}"
            )
        return self

    @property
    def initial_weights(self) -> Weights:
        return Weights(self.stable_weight, self.canary_weight)

    @property
    def adopted(self) -> ExistingService | None:
        """The adopted setup the AWS target drives instead of a stack (`canary adopt`)."""
        return self.aws.existing if self.target == "aws" else None

    @property
    def state_name(self) -> str:
        """What the rollout state is kept under: the stack's name, or the adoption's."""
        adopted = self.adopted
        return self.stack_name if adopted is None else adopted.name


# Environment variable -> dotted settings path. The seed's names come first, unchanged.
ENV_VARS: dict[str, str] = {
    "AWS_PROFILE": "aws.profile",
    "AWS_REGION": "aws.region",
    "STACK_NAME": "stack_name",
    "IMAGE_URI_STABLE": "image_uri_stable",
    "IMAGE_URI_CANARY": "image_uri_canary",
    "CONTAINER_PORT": "container_port",
    "DESIRED_COUNT_STABLE": "desired_count_stable",
    "DESIRED_COUNT_CANARY": "desired_count_canary",
    "TASK_CPU": "aws.task_cpu",
    "TASK_MEMORY": "aws.task_memory",
    "STABLE_WEIGHT": "stable_weight",
    "CANARY_WEIGHT": "canary_weight",
    # Ours.
    "CANARY_TARGET": "target",
    "VPC_ID": "aws.vpc_id",
    "SUBNET_IDS": "aws.subnet_ids",
    "ALLOWED_INGRESS_CIDR": "aws.allowed_ingress_cidr",
    "ALB_SUBNET_IDS": "aws.alb_subnet_ids",
    "TASK_SUBNET_IDS": "aws.task_subnet_ids",
    "ASSIGN_PUBLIC_IP": "aws.assign_public_ip",
    "ALB_SCHEME": "aws.alb_scheme",
    "CERTIFICATE_ARN": "aws.certificate_arn",
    "CPU_ARCHITECTURE": "aws.cpu_architecture",
    "TASK_ROLE_ARN": "aws.task_role_arn",
    "HEALTH_CHECK_SUCCESS_CODES": "aws.health_check_success_codes",
    "HEALTH_CHECK_GRACE_PERIOD_SECONDS": "aws.health_check_grace_period_seconds",
    "SECRETS_KMS_KEY_ARNS": "aws.secrets_kms_key_arns",
    "CONTAINER_INSIGHTS": "aws.container_insights",
    "LOG_RETENTION_DAYS": "aws.log_retention_days",
    "RETAIN_LOGS": "aws.retain_logs",
    "DELETION_PROTECTION": "aws.deletion_protection",
    "ACCESS_LOGS_BUCKET": "aws.access_logs_bucket",
    "AUTOSCALING_METRIC": "aws.autoscaling.metric",
    "AUTOSCALING_MIN_CAPACITY": "aws.autoscaling.min_capacity",
    "AUTOSCALING_MAX_CAPACITY": "aws.autoscaling.max_capacity",
    "AUTOSCALING_TARGET_VALUE": "aws.autoscaling.target_value",
    "HEALTH_CHECK_PATH": "health_check_path",
    "STICKINESS_ENABLED": "stickiness_enabled",
    "STICKINESS_DURATION_SECONDS": "stickiness_duration_seconds",
    "SLOW_START_SECONDS": "slow_start_seconds",
    "CANARY_STATE_DIR": "local.state_dir",
    "CANARY_LISTEN": "local.listen",
    "CANARY_HEALTH_PROFILE": "local.health_profile",
    "CANARY_DEREGISTRATION_DELAY": "local.deregistration_delay_s",
    "CANARY_METRICS_PORT": "local.metrics_port",
}
# Read only when the variable of ENV_VARS for the same setting is unset: boto3's own name
# for the region ranks below the seed's AWS_REGION.
ENV_FALLBACKS: dict[str, str] = {"AWS_DEFAULT_REGION": "aws.region"}
_ENV_BY_PATH = {path: name for name, path in ENV_VARS.items()}
_LIST_PATHS = {
    "aws.subnet_ids",
    "aws.alb_subnet_ids",
    "aws.task_subnet_ids",
    "aws.secrets_kms_key_arns",
}
CONFIG_FILE = "canary.toml"


def _set(tree: dict[str, Any], path: str, value: Any) -> None:
    head, _, rest = path.partition(".")
    if rest:
        _set(tree.setdefault(head, {}), rest, value)
    else:
        tree[head] = value


def _merge(base: dict[str, Any], top: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in top.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def _from_env(env: Mapping[str, str]) -> dict[str, Any]:
    tree: dict[str, Any] = {}
    for name, path in [*ENV_FALLBACKS.items(), *ENV_VARS.items()]:
        raw = env.get(name)
        if raw is None or raw == "":
            continue
        value: Any = raw
        if path in _LIST_PATHS:
            value = tuple(part.strip() for part in raw.split(",") if part.strip())
        _set(tree, path, value)
    return tree


def _from_file(path: Path, *, named: bool) -> dict[str, Any]:
    """canary.toml's settings; a file the user named (`--config`, CANARY_CONFIG) must exist."""
    if not path.is_file():
        if named:
            why = "is a directory" if path.is_dir() else "does not exist"
            raise UsageError(
                f"config file {path} {why}",
                hint="fix the --config flag or CANARY_CONFIG, or leave both unset to read "
                f"./{CONFIG_FILE} when it exists",
            )
        return {}
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(
            f"{path} is not valid TOML: {exc}",
            hint="see https://toml.io: strings in quotes, tables as [name], one key per line",
        ) from None
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror}") from None


def _holds(tree: Any, path: str) -> bool:
    """Whether a (TOML or flag) tree sets the dotted `path` (list items by index)."""
    node = tree
    for key in path.split("."):
        if isinstance(node, list) and key.isdigit() and int(key) < len(node):
            node = node[int(key)]
        elif isinstance(node, Mapping) and key in node:
            node = node[key]
        else:
            return False
    return True


@dataclass(frozen=True)
class _Sources:
    """What each source said, kept to tell the user where a setting came from."""

    file: Path
    file_tree: dict[str, Any]
    env: Mapping[str, str]
    flag_tree: dict[str, Any]

    def origin(self, path: str) -> str | None:
        """ "flag", "env NAME", "file PATH", or None (the default)."""
        if path and _holds(self.flag_tree, path):
            return "flag"
        names = [n for n, p in [*ENV_VARS.items(), *ENV_FALLBACKS.items()] if p == path]
        name = next((n for n in names if self.env.get(n)), None)
        if name:
            return f"env {name}"
        if path and _holds(self.file_tree, path):
            return f"file {self.file}"
        return None

    def describe(self, path: str) -> str:
        """A path in an error message, with where its value came from."""
        origin = self.origin(path)
        if origin is None or origin == "flag":
            return path
        if origin.startswith("env "):
            return f"{path} ({origin})"
        return f"{self.file}: {path}"


def _gather(
    flags: Mapping[str, Any] | None,
    env: Mapping[str, str] | None,
    config_file: Path | None,
    config_required: bool,
) -> tuple[dict[str, Any], _Sources]:
    env = os.environ if env is None else env
    if config_file is None:
        config_required = config_required or bool(env.get("CANARY_CONFIG"))
        config_file = Path(env.get("CANARY_CONFIG") or CONFIG_FILE)
    file_tree = _from_file(config_file, named=config_required)
    flag_tree: dict[str, Any] = {}
    for path, value in (flags or {}).items():
        if value is not None:
            _set(flag_tree, path, value)
    tree = _merge(_merge(file_tree, _from_env(env)), flag_tree)
    return tree, _Sources(config_file, file_tree, env, flag_tree)


def _validate(tree: dict[str, Any], sources: _Sources) -> Settings:
    try:
        return Settings.model_validate(tree)
    except ValidationError as exc:
        problems = describe_errors(exc, Settings, where=sources.describe)
        raise UsageError(
            as_sentence("invalid configuration", problems),
            hint=f"check the flags, the environment variables and {sources.file}",
        ) from None


def load_settings(
    flags: Mapping[str, Any] | None = None,
    env: Mapping[str, str] | None = None,
    config_file: Path | None = None,
    *,
    config_required: bool = False,
) -> Settings:
    """Build the settings from flags (dotted paths, None = not given), env and canary.toml.

    `config_file` (else CANARY_CONFIG, else ./canary.toml) is read when it exists; a file
    the user named (`config_required`, or CANARY_CONFIG) must exist."""
    tree, sources = _gather(flags, env, config_file, config_required)
    settings = _validate(tree, sources)
    _refuse_two_setups(settings, sources)
    return settings


def _refuse_two_setups(settings: Settings, sources: _Sources) -> None:
    """A stack name given for this run (flag or environment) next to an adoption in the
    config file: either could be meant, and driving the wrong one moves production
    traffic, so neither is picked. A stack_name in the same file as the adoption is the
    file's own history and does not count."""
    adopted = settings.adopted
    origin = sources.origin("stack_name") or ""
    if adopted is None or not (origin == "flag" or origin.startswith("env ")):
        return
    given = "--stack-name" if origin == "flag" else origin.removeprefix("env ")
    undo = "drop --stack-name" if origin == "flag" else f"unset {given}"
    raise UsageError(
        f"two setups to drive: stack {settings.stack_name} ({given}) and your own service "
        f"{adopted.name} ([aws.existing] in {sources.file}); canary does not guess which "
        "listener to change, so nothing was changed",
        hint=f"to drive {adopted.name}, {undo}; to drive stack {settings.stack_name}, "
        f"use a config file without [aws.existing] (--config FILE) or `canary adopt "
        f"--forget`",
    )


def explain_settings(
    flags: Mapping[str, Any] | None = None,
    env: Mapping[str, str] | None = None,
    config_file: Path | None = None,
    *,
    config_required: bool = False,
) -> tuple[Settings, dict[str, str]]:
    """`load_settings`, and where each setting came from: every leaf of the settings
    (dotted path, `rollout` only where set) -> "default", "flag", "env NAME", "file PATH"."""
    tree, sources = _gather(flags, env, config_file, config_required)
    settings = _validate(tree, sources)
    doc = settings.model_dump(mode="json", exclude={"rollout"})
    doc["rollout"] = settings.rollout.model_dump(mode="json", exclude_none=True)
    return settings, {path: sources.origin(path) or "default" for path in _leaves(doc)}


def _leaves(doc: Mapping[str, Any], prefix: str = "") -> list[str]:
    paths = []
    for key, value in doc.items():
        path = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            paths += _leaves(value, f"{path}.")
        else:
            paths.append(path)
    return paths
