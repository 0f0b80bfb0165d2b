"""The `[rollout]` table of canary.toml, typed: what a user may write there, checked when
the settings are loaded, long before a rollout starts.

A value left out (None) means the target's default (`plan.TARGET_DEFAULTS`): the local
target reads its metrics every second, AWS reads CloudWatch's minutes.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    field_validator,
    model_validator,
)

from canary_deploy.analysis import JudgeConfig

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_seconds(value: Any) -> float:
    """Accept 30, 30.0, "30", "30s", "500ms", "5m", "1h".

    >>> parse_seconds("5m"), parse_seconds("500ms"), parse_seconds(30)
    (300.0, 0.5, 30.0)
    """
    if isinstance(value, bool):
        raise ValueError(f"expected seconds like 30, 30s or 5m, got {value!r}")
    if isinstance(value, int | float):
        return float(value)
    text = str(value).strip().lower()
    for suffix in ("ms", "s", "m", "h"):  # "ms" before "s" and "m"
        if text.endswith(suffix):
            number = text[: -len(suffix)]
            try:
                return float(number) * _UNITS[suffix]
            except ValueError:
                break
    try:
        return float(text)
    except ValueError:
        raise ValueError(f"expected seconds like 30, 30s or 5m, got {value!r}") from None


Seconds = Annotated[float, BeforeValidator(parse_seconds), Field(ge=0)]
PositiveSeconds = Annotated[float, BeforeValidator(parse_seconds), Field(gt=0)]
Count = Annotated[int, Field(ge=0)]
Percent = Annotated[int, Field(ge=1, le=100)]
# CloudWatch's limit on an alarm name.
AlarmName = Annotated[str, Field(min_length=1, max_length=255)]


class _Table(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


def _durations_in_order(low: float | None, high: float | None, where: str) -> None:
    if low is not None and high is not None and high < low:
        raise ValueError(
            f"{where}max_duration ({high:g}s) must not be shorter than min_duration ({low:g}s)"
        )


class StepSettings(_Table):
    """One step: a weight (`25`) or a table (`{weight = 25, min_duration = "2m"}`)."""

    weight: Percent
    min_duration: Seconds | None = None
    max_duration: Seconds | None = None
    min_requests: Count | None = None

    @model_validator(mode="before")
    @classmethod
    def _weight_alone(cls, value: Any) -> Any:
        return value if isinstance(value, Mapping | StepSettings) else {"weight": value}

    @model_validator(mode="after")
    def _ordered(self) -> StepSettings:
        _durations_in_order(self.min_duration, self.max_duration, f"step {self.weight}%: ")
        return self


HOOK_NAMES = ("pre_rollout", "pre_step", "post_step", "pre_promote", "post_rollout", "on_rollback")
# The hooks whose failure changes the rollout, and what it does by default: a failing
# `pre_rollout` ends it before any traffic moves; the others hold it for a human.
GATE_DEFAULTS: dict[str, Literal["pause", "rollback"]] = {
    "pre_rollout": "rollback",
    "pre_step": "pause",
    "pre_promote": "pause",
}


def _http_url(value: str | None) -> str | None:
    if value is not None and not value.startswith(("http://", "https://")):
        raise ValueError(f"url must start with http:// or https://, got {value!r}")
    return value


class HookSettings(_Table):
    """One lifecycle hook: a command (`command = "./smoke.sh"`, run by /bin/sh; or a list
    of arguments, run as is) or an HTTP call (`url`: a POST with a JSON body)."""

    command: str | tuple[str, ...] | None = None
    url: str | None = None
    headers: dict[str, str] = Field(default_factory=dict)
    timeout: PositiveSeconds = 30.0
    retries: Annotated[int, Field(ge=0, le=10)] = 0
    on_failure: Literal["pause", "rollback"] | None = None

    @model_validator(mode="before")
    @classmethod
    def _command_alone(cls, value: Any) -> Any:
        return {"command": value} if isinstance(value, str | list | tuple) else value

    @model_validator(mode="after")
    def _one_action(self) -> HookSettings:
        _http_url(self.url)
        if (self.command is None) == (self.url is None):
            raise ValueError("a hook needs exactly one of command or url")
        if self.command is not None and not "".join(self.command).strip():
            raise ValueError("command is empty")
        return self


class HooksSettings(_Table):
    """`[rollout.hooks]`: the lifecycle hooks (see rollout/hooks.py for when each runs),
    where their commands run, and the header that routes a tester to the canary."""

    pre_rollout: HookSettings | None = None
    pre_step: HookSettings | None = None
    post_step: HookSettings | None = None
    pre_promote: HookSettings | None = None
    post_rollout: HookSettings | None = None
    on_rollback: HookSettings | None = None
    # Passed to every hook as CANARY_TESTER_HEADER ("X-Canary: always"); `canary route
    # add --header X-Canary=always --to canary` makes the listener honour it.
    tester_header: str | None = None
    # Where commands run; None: the directory `canary rollout` was started in.
    workdir: Path | None = None

    @field_validator("tester_header")
    @classmethod
    def _header(cls, value: str | None) -> str | None:
        return None if value is None else normalize_header(value)

    @model_validator(mode="after")
    def _gates_only(self) -> HooksSettings:
        for name in ("post_step", "post_rollout", "on_rollback"):
            hook = getattr(self, name)
            if hook is not None and hook.on_failure is not None:
                raise ValueError(
                    f"{name}: on_failure is for the gates (pre_rollout, pre_step, "
                    f"pre_promote); a failing {name} is recorded and changes nothing"
                )
        return self

    def get(self, name: str) -> HookSettings | None:
        hook: HookSettings | None = getattr(self, name)
        return hook

    def on_failure(self, name: str) -> Literal["pause", "rollback"]:
        hook = self.get(name)
        return (hook.on_failure if hook else None) or GATE_DEFAULTS[name]


def normalize_header(value: str) -> str:
    """`X-Canary: always` from that or `X-Canary=always`.

    >>> normalize_header("X-Canary=always"), normalize_header(" X-Canary:always ")
    ('X-Canary: always', 'X-Canary: always')
    """
    name, sep, rest = value.strip().partition(":")
    if not sep:
        name, sep, rest = value.strip().partition("=")
    name, rest = name.strip(), rest.strip()
    if not sep or not name or not rest or any(c in name for c in " \t\r\n:="):
        raise ValueError(f"expected a header like 'X-Canary: always', got {value!r}")
    return f"{name}: {rest}"


NotifyEvent = Literal["started", "step", "paused", "rolled_back", "promoted"]
NOTIFY_EVENTS: tuple[str, ...] = ("started", "step", "paused", "rolled_back", "promoted")


class NotificationSettings(_Table):
    """One `[[notifications]]` webhook: which rollout events it gets and in what format."""

    url: str
    format: Literal["json", "slack"] = "json"
    events: tuple[NotifyEvent, ...] = ("started", "step", "paused", "rolled_back", "promoted")
    headers: dict[str, str] = Field(default_factory=dict)
    timeout: PositiveSeconds = 5.0
    retries: Annotated[int, Field(ge=0, le=10)] = 3

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        _http_url(value)
        return value


class RolloutSettings(_Table):
    """Everything `[rollout]` may hold; see `plan.build_plan` for what each one does."""

    steps: tuple[StepSettings, ...] | None = None
    min_duration: Seconds | None = None
    max_duration: Seconds | None = None
    min_requests: Count | None = None
    interval: PositiveSeconds | None = None
    metrics_lag: Seconds | None = None
    baseline_window: PositiveSeconds | None = None
    latency_settle: Seconds | None = None
    warmup: Seconds | None = None
    reread: Seconds | None = None
    tick: PositiveSeconds | None = None
    post_rollback_canary_count: Count | None = None
    idle_canary_count: Count | None = None
    max_canary_tasks: Annotated[int, Field(ge=1)] | None = None
    baseline: StrictBool | None = None
    # CloudWatch alarms (AWS): any of them in ALARM rolls the rollout back at once.
    alarms: tuple[AlarmName, ...] | None = None
    judge: JudgeConfig = Field(default_factory=JudgeConfig)
    hooks: HooksSettings = Field(default_factory=HooksSettings)

    @model_validator(mode="before")
    @classmethod
    def _notifications_are_top_level(cls, value: Any) -> Any:
        if isinstance(value, Mapping) and "notifications" in value:
            raise ValueError(
                "notifications: webhooks go in a top-level [[notifications]] table, not "
                "under [rollout]"
            )
        return value

    @field_validator("judge", mode="before")
    @classmethod
    def _retired_judge_keys(cls, value: Any) -> Any:
        # `burst_guard.max_task_share` was retired with the task-share rule (replaced by
        # leave-one-task-out evidence); files that still carry it keep loading.
        if isinstance(value, Mapping) and isinstance(value.get("burst_guard"), Mapping):
            guard = {k: v for k, v in value["burst_guard"].items() if k != "max_task_share"}
            value = {**value, "burst_guard": guard}
        return value

    @model_validator(mode="after")
    def _consistent(self) -> RolloutSettings:
        if self.steps == ():
            raise ValueError("steps: a rollout needs at least one step, e.g. [5, 25, 50, 100]")
        if self.steps is not None:
            weights = [s.weight for s in self.steps]
            if weights != sorted(set(weights)):
                raise ValueError(
                    f"steps: the canary's weight must increase from step to step, got {weights}"
                )
        _durations_in_order(self.min_duration, self.max_duration, "")
        if self.alarms is not None and len(set(self.alarms)) != len(self.alarms):
            twice = sorted({a for a in self.alarms if self.alarms.count(a) > 1})
            raise ValueError(f"alarms: each alarm once, got {', '.join(twice)} twice")
        return self

    def merged(self, overrides: Mapping[str, Any]) -> RolloutSettings:
        """These settings with the given ones (None = not given) on top, validated."""
        given = {k: v for k, v in overrides.items() if v is not None}
        if not given:
            return self
        return RolloutSettings.model_validate({**self.model_dump(exclude_none=True), **given})
