"""`[aws.existing]`: the user's own listener (or rule), target groups and ECS services that
`canary adopt` validated and recorded, driven instead of a stack of ours."""

from __future__ import annotations

import json

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
