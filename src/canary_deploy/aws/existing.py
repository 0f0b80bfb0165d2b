"""`[aws.existing]`: the user's own listener (or rule), target groups and ECS services that
`canary adopt` validated and recorded, driven instead of a stack of ours."""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

TABLE = "aws.existing"


class ExistingService(BaseModel):
    """What `canary adopt` found and checked; every later command drives these resources
    (and never creates or deletes one of them)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    # The key of this setup's rollout state (as STACK_NAME is for a stack of ours).
    name: str = Field(min_length=1, max_length=128)
    listener_arn: str = Field(min_length=1)
    # Set: the weighted forward is this listener rule's action, not the default action.
    rule_arn: str | None = None
    load_balancer_arn: str = Field(min_length=1)
    dns_name: str = ""
    cluster: str = Field(min_length=1)
    stable_service: str = Field(min_length=1)
    canary_service: str = Field(min_length=1)
    baseline_service: str | None = None
    stable_target_group_arn: str = Field(min_length=1)
    canary_target_group_arn: str = Field(min_length=1)
    baseline_target_group_arn: str | None = None
    # Each service's second target group, outside the weighted action: where tester routes
    # forward (absent: no tester routes, their requests would be judged).
    tester_stable_target_group_arn: str | None = None
    tester_canary_target_group_arn: str | None = None
    tester_baseline_target_group_arn: str | None = None
    # The forward action's AWSALBTG stickiness as adopt found it (None: off); every weight
    # change sends it back (off while stable or canary has weight 0, as on our stack).
    stickiness_seconds: int | None = Field(default=None, ge=1, le=604800)
    # Where clients reach the split, from the listener's protocol and port (and a rule's
    # single exact host): status and the hooks' CANARY_LISTENER_URL. Empty in a record
    # of an older adopt: http://<dns_name>/ then.
    listener_url: str = ""
    # An adopted rule's conditions as AWS lists them, e.g. "path-pattern /api/*".
    rule_conditions: str | None = None

    @property
    def url(self) -> str:
        """Where clients reach the weighted forward."""
        return self.listener_url or f"http://{self.dns_name}/"

    @model_validator(mode="after")
    def _baseline_pairs(self) -> ExistingService:
        if bool(self.baseline_service) != bool(self.baseline_target_group_arn):
            raise ValueError("baseline_service and baseline_target_group_arn go together")
        return self

    def to_toml(self) -> str:
        """The `[aws.existing]` table `canary adopt` writes (unset keys left out)."""
        lines = [f"[{TABLE}]"]
        for key, value in self.model_dump(exclude_none=True).items():
            shown = json.dumps(value) if isinstance(value, str) else str(value)
            lines.append(f"{key} = {shown}")
        return "\n".join(lines) + "\n"


def without_table(text: str) -> str:
    """A TOML document without its `[aws.existing]` table (every other line kept).

    >>> without_table('target = "aws"\\n[aws.existing]\\nname = "a"\\n[rollout]\\nsteps = [5]\\n')
    'target = "aws"\\n[rollout]\\nsteps = [5]\\n'
    """
    kept: list[str] = []
    inside = False
    for line in text.splitlines(keepends=True):
        header = line.strip()
        if header.startswith("["):
            inside = header.replace(" ", "") == f"[{TABLE}]"
        if not inside:
            kept.append(line)
    return "".join(kept)


def with_table(text: str, existing: ExistingService) -> str:
    """A TOML document with `existing` as its `[aws.existing]` table (replacing one).

    >>> with_table("", ExistingService(name="n", listener_arn="l", load_balancer_arn="b",
    ...     cluster="c", stable_service="s", canary_service="k",
    ...     stable_target_group_arn="t1", canary_target_group_arn="t2")).splitlines()[:2]
    ['[aws.existing]', 'name = "n"']
    """
    kept = without_table(text).rstrip("\n")
    return (kept + "\n\n" if kept else "") + existing.to_toml()


def listener_url(protocol: str, port: int, host: str) -> str:
    """Where clients reach a listener: https for HTTPS, the port unless the default.

    >>> listener_url("HTTPS", 443, "shop.example.com"), listener_url("HTTP", 8080, "alb-1")
    ('https://shop.example.com/', 'http://alb-1:8080/')
    """
    scheme = "https" if protocol.upper() == "HTTPS" else "http"
    default = 443 if scheme == "https" else 80
    return f"{scheme}://{host}/" if port == default else f"{scheme}://{host}:{port}/"


def describe_conditions(conditions: list[dict[str, Any]]) -> str:
    """A rule's conditions in one line, as the ELB console lists them.

    >>> describe_conditions([{"Field": "path-pattern", "Values": ["/api/*"]},
    ...     {"Field": "host-header", "HostHeaderConfig": {"Values": ["a.com", "b.com"]}}])
    'path-pattern /api/*; host-header a.com or b.com'
    """
    parts = []
    for condition in conditions:
        field = str(condition.get("Field"))
        configs = [v for k, v in condition.items() if k.endswith("Config") and isinstance(v, dict)]
        config = configs[0] if configs else {}
        values = config.get("Values") or condition.get("Values") or []
        shown = [
            f"{v.get('Key') or ''}={v.get('Value')}" if isinstance(v, dict) else str(v)
            for v in values
        ]
        name = f" {config['HttpHeaderName']}:" if config.get("HttpHeaderName") else ""
        parts.append(f"{field}{name} {' or '.join(shown)}")
    return "; ".join(parts)


def exact_host(conditions: list[dict[str, Any]]) -> str | None:
    """The one host a rule's host-header condition names, when it names exactly one
    without wildcards (clients reach the rule there, not at the load balancer's name)."""
    for condition in conditions:
        if condition.get("Field") == "host-header":
            config = condition.get("HostHeaderConfig") or {}
            values = config.get("Values") or condition.get("Values") or []
            if len(values) == 1 and not any(c in values[0] for c in "*?"):
                return str(values[0])
    return None
