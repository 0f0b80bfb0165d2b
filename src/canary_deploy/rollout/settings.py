"""The `[rollout]` table of canary.toml, typed: what a user may write there, checked when
the settings are loaded, long before a rollout starts.

A value left out (None) means the target's default (`plan.TARGET_DEFAULTS`): the local
target reads its metrics every second, AWS reads CloudWatch's minutes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any

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
