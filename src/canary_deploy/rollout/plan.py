"""The rollout plan: weight steps, their gates, and the judge's settings."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from pydantic import ValidationError

from canary_deploy.analysis import JudgeConfig
from canary_deploy.errors import UsageError
from canary_deploy.rollout.settings import RolloutSettings, StepSettings
from canary_deploy.validation import as_sentence, describe_errors
from canary_deploy.weights import Weights

DEFAULT_WEIGHTS = (5, 25, 50, 100)  # the seed's schedule
T = TypeVar("T")


@dataclass(frozen=True)
class Step:
    """One step: hold the canary at `canary_weight` percent until its gate opens.

    The gate opens once `min_duration_s` has passed and the step has served at least
    `min_requests` canary requests, and then either the judge says PROMOTE or
    `max_duration_s` is reached without a verdict against the canary.
    """

    canary_weight: int
    min_duration_s: float
    max_duration_s: float
    min_requests: int = 0

    def __post_init__(self) -> None:
        if not 1 <= self.canary_weight <= 100:
            raise UsageError(f"step weight must be 1..100 percent, got {self.canary_weight}")
        if self.min_duration_s < 0 or self.max_duration_s < self.min_duration_s:
            raise UsageError(
                f"step {self.canary_weight}%: need 0 <= min_duration ({self.min_duration_s}s) "
                f"<= max_duration ({self.max_duration_s}s)"
            )
        if self.min_requests < 0:
            raise UsageError(f"step {self.canary_weight}%: min_requests must be >= 0")

    def weights(self, baseline: bool) -> Weights:
        """The listener's weights during this step; see `step_weights`."""
        return step_weights(self.canary_weight, baseline)


# A baseline gets the canary's share up to 50%: there stable serves nothing and every
# request goes to tasks of the same age and size. Above 50% there is no room for an
# equal baseline; those steps are soak steps: errors judged against stable, latency not
# judged (stable's tasks are not a like-for-like control).
MAX_BASELINE_WEIGHT = 50


def load_imbalance(plan: RolloutPlan, stable_tasks: int, canary_tasks: int) -> str | None:
    """Without a baseline: a warning when, at some step, a canary task and a stable task
    get more than 2x different traffic (a lightly loaded task answers at another speed
    for reasons that are not its version).

    >>> plan = RolloutPlan((Step(5, 1, 2), Step(50, 1, 2)), baseline=False)
    >>> load_imbalance(plan, 2, 1).split(";")[0].split("at ")[1]
    'step 5% (9.5x less per canary task)'
    """
    if plan.baseline or stable_tasks <= 0 or canary_tasks <= 0:
        return None
    for step in plan.steps:
        stable_share = 100 - step.canary_weight
        if stable_share == 0:
            continue
        ratio = (step.canary_weight / canary_tasks) / (stable_share / stable_tasks)
        if ratio > 2 or ratio < 0.5:
            how = f"{1 / ratio:.3g}x less" if ratio < 1 else f"{ratio:.3g}x more"
            return (
                f"per-task load differs by more than 2x between canary and stable at step "
                f"{step.canary_weight}% ({how} per canary task); latency is not compared "
                "like for like: size the canary for its share, or use a baseline"
            )
    return None


def tasks_for_share(weights: Weights, stable_tasks: int, cap: int | None = None) -> int:
    """The tasks the canary (and the baseline: the same) needs so that none of its tasks
    carries more traffic than a stable task: ceil(stable tasks x share / stable's share),
    where a stable share of 0 counts as 100 (stable's tasks are sized for all traffic).
    At least 1; at most `cap` (default: stable's task count).

    >>> tasks_for_share(Weights(90, 5, 5), 4), tasks_for_share(Weights(50, 25, 25), 4)
    (1, 2)
    >>> tasks_for_share(Weights(0, 50, 50), 4), tasks_for_share(Weights(0, 100), 4)
    (2, 4)
    >>> tasks_for_share(Weights(25, 75), 4), tasks_for_share(Weights(25, 75), 4, cap=20)
    (4, 12)
    """
    share = max(weights.canary, weights.baseline)
    if share == 0 or stable_tasks <= 0:
        return 1
    need = math.ceil(stable_tasks * share / (weights.stable or 100))
    return max(1, min(need, stable_tasks if cap is None else cap))


def step_weights(canary_weight: int, baseline: bool) -> Weights:
    """The split for a step holding the canary at `canary_weight` percent.

    >>> str(step_weights(5, True)), str(step_weights(50, True)), str(step_weights(75, True))
    ('90/5/5', '0/50/50', '25/75')
    >>> str(step_weights(5, False))
    '95/5'
    """
    if baseline and canary_weight <= MAX_BASELINE_WEIGHT:
        return Weights(100 - 2 * canary_weight, canary_weight, canary_weight)
    return Weights(100 - canary_weight, canary_weight)


@dataclass(frozen=True)
class RolloutPlan:
    """Everything a rollout needs to know before it starts; stored with the rollout."""

    steps: tuple[Step, ...]
    judge: JudgeConfig = field(default_factory=JudgeConfig)
    interval_s: float = 2.0  # how often the controller feeds the judge a batch
    metrics_lag_s: float = 1.0  # read metrics this far behind "now" (CloudWatch: minutes)
    baseline_window_s: float = 300.0  # stable's window that freezes latency thresholds
    # Latency is not judged for this long after each weight change: the canary's new
    # connections and a just-started task are slow for reasons a user would not blame on
    # the new version. Skipping is decided by the clock alone, so the test stays valid.
    latency_settle_s: float = 3.0
    post_rollback_canary_count: int = 0
    idle_canary_count: int = 0
    # Run a baseline (stable's image, the canary's task count and share, started with the
    # canary's tasks) and judge against it; False compares with stable's tasks.
    baseline: bool = True
    # Latency is not judged for this long after the canary's and baseline's tasks became
    # healthy (the rollout's start): cold caches, lazy imports, new connections.
    warmup_s: float = 5.0
    # At most this many canary (and baseline) tasks when a step is sized for its share
    # (`tasks_for_share`); None: stable's task count.
    max_canary_tasks: int | None = None
    # Re-read this many seconds of already judged windows at each batch and feed the judge
    # what arrived late (CloudWatch adds to a minute after it was first read); 0: never.
    reread_s: float = 0.0
    # How often the controller ticks (reads the listener, the commands, the state): the
    # API budget, not the judging pace (`interval_s`).
    tick_s: float = 0.25
    # CloudWatch alarms (AWS) whose ALARM state rolls the rollout back at once.
    alarms: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.steps:
            raise UsageError("a rollout plan needs at least one step")
        weights = [s.canary_weight for s in self.steps]
        if weights != sorted(weights) or len(set(weights)) != len(weights):
            raise UsageError(f"step weights must increase, got {weights}")
        if self.interval_s <= 0 or self.metrics_lag_s < 0 or self.latency_settle_s < 0:
            raise UsageError("interval must be > 0, metrics lag and latency settle >= 0 seconds")
        if self.warmup_s < 0:
            raise UsageError(f"warmup must be >= 0 seconds, got {self.warmup_s}")
        if self.post_rollback_canary_count < 0 or self.idle_canary_count < 0:
            raise UsageError("canary task counts must be >= 0")
        if self.max_canary_tasks is not None and self.max_canary_tasks < 1:
            raise UsageError(f"max_canary_tasks must be >= 1, got {self.max_canary_tasks}")
        if self.reread_s < 0 or self.tick_s <= 0:
            raise UsageError("reread must be >= 0 and tick > 0 seconds")

    def to_dict(self) -> dict[str, Any]:
        return {
            "steps": [
                {
                    "canary_weight": s.canary_weight,
                    "min_duration_s": s.min_duration_s,
                    "max_duration_s": s.max_duration_s,
                    "min_requests": s.min_requests,
                }
                for s in self.steps
            ],
            "judge": self.judge.to_dict(),
            "interval_s": self.interval_s,
            "metrics_lag_s": self.metrics_lag_s,
            "baseline_window_s": self.baseline_window_s,
            "latency_settle_s": self.latency_settle_s,
            "post_rollback_canary_count": self.post_rollback_canary_count,
            "idle_canary_count": self.idle_canary_count,
            "baseline": self.baseline,
            "warmup_s": self.warmup_s,
            "max_canary_tasks": self.max_canary_tasks,
            "reread_s": self.reread_s,
            "tick_s": self.tick_s,
            "alarms": list(self.alarms),
        }

    def weights(self, step: int) -> Weights:
        """The listener's weights during step `step` (0-based)."""
        return self.steps[step].weights(self.baseline)

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any]) -> RolloutPlan:
        values = dict(doc)
        # Rollouts stored before baselines existed ran without one.
        values.setdefault("baseline", False)
        values.setdefault("warmup_s", 0.0)
        values["steps"] = tuple(Step(**s) for s in values["steps"])
        values["judge"] = JudgeConfig.from_dict(dict(values["judge"]))
        values["alarms"] = tuple(values.get("alarms", ()))
        return cls(**values)


@dataclass(frozen=True)
class TargetDefaults:
    """Timing that suits a target: local data arrives every second, CloudWatch per minute."""

    interval_s: float
    metrics_lag_s: float
    min_duration_s: float
    max_duration_s: float
    min_requests: int
    settle_s: float
    warmup_s: float
    reread_s: float
    tick_s: float


TARGET_DEFAULTS = {
    # The daemon's metrics are complete once a second has passed: nothing to re-read.
    "local": TargetDefaults(2.0, 1.0, 10.0, 60.0, 50, 3.0, 5.0, 0.0, 0.25),
    # CloudWatch publishes 1-minute periods and the newest one is incomplete; a minute
    # is already long next to a connection warm-up, but a new Fargate task (JIT, caches,
    # model loading) can take longer. Datapoints may still arrive after the 3-minute lag:
    # the last 3 minutes are read again. One tick (DescribeListeners and the state
    # store) every 5 s: 720 an hour instead of 14,400 at 4 a second.
    "aws": TargetDefaults(60.0, 180.0, 300.0, 1800.0, 200, 0.0, 120.0, 180.0, 5.0),
}


def build_plan(
    target: str,
    config: RolloutSettings | Mapping[str, Any] | None = None,
    *,
    steps: Sequence[int] | None = None,
    overrides: Mapping[str, Any] | None = None,
    warn: Callable[[str], None] | None = None,
) -> RolloutPlan:
    """The plan from `canary.toml`'s `[rollout]` table, then flags, on the target's defaults.

    `[rollout]` may hold `steps = [5, 25, 50, 100]` (or a list of tables with
    `weight`, `min_duration`, `max_duration`, `min_requests`), step defaults
    `min_duration = "30s"`, `max_duration = "5m"`, `min_requests = 200`, `interval`,
    `metrics_lag`, `post_rollback_canary_count`, `idle_canary_count`, `max_canary_tasks`
    (the most tasks a step sizes the canary and baseline to; default stable's count),
    `reread` (late CloudWatch data), `tick` (how often the controller reads the
    listener), `alarms` (CloudWatch alarms that roll back at once; AWS only), and a
    `[rollout.judge]` table of `JudgeConfig` fields
    (`settings.RolloutSettings` types every one of them).
    """
    r = _merged(config, {**(overrides or {}), "steps": list(steps) if steps else None})
    d = TARGET_DEFAULTS[target]
    return RolloutPlan(
        steps=_steps(r, d),
        judge=r.judge,
        interval_s=_interval(target, _or(r.interval, d.interval_s), warn),
        metrics_lag_s=_or(r.metrics_lag, d.metrics_lag_s),
        baseline_window_s=_or(r.baseline_window, 300.0),
        latency_settle_s=_or(r.latency_settle, d.settle_s),
        post_rollback_canary_count=_or(r.post_rollback_canary_count, 0),
        idle_canary_count=_or(r.idle_canary_count, 0),
        baseline=_or(r.baseline, True),
        warmup_s=_or(r.warmup, d.warmup_s),
        max_canary_tasks=r.max_canary_tasks,
        reread_s=_or(r.reread, d.reread_s),
        tick_s=_or(r.tick, d.tick_s),
        alarms=_alarms(target, r.alarms),
    )


def _merged(
    config: RolloutSettings | Mapping[str, Any] | None, given: Mapping[str, Any]
) -> RolloutSettings:
    """`[rollout]` with the flags `given` on top, validated; a problem is one UsageError
    naming the flag or the file's key it came from."""
    flags = {key for key, value in given.items() if value is not None}

    def where(path: str) -> str:
        key = path.split(".")[1] if "." in path else ""
        return f"--{key.replace('_', '-')}" if key in flags else path

    try:
        if not isinstance(config, RolloutSettings):
            config = RolloutSettings.model_validate(dict(config or {}))
        return config.merged(given)
    except ValidationError as exc:
        problems = describe_errors(exc, RolloutSettings, prefix="rollout", where=where)
        raise UsageError(
            as_sentence("invalid rollout settings", problems),
            hint="check the rollout command's flags and [rollout] in canary.toml",
        ) from None


def _steps(r: RolloutSettings, d: TargetDefaults) -> tuple[Step, ...]:
    """Each step with its own limits, else the table's, else the target's defaults; a
    step's own minimum beyond the maximum stretches that step's maximum."""
    step_min = _or(r.min_duration, d.min_duration_s)
    step_max = _or(r.max_duration, max(d.max_duration_s, step_min))
    step_requests = _or(r.min_requests, d.min_requests)
    return tuple(
        Step(
            s.weight,
            _or(s.min_duration, step_min),
            _or(s.max_duration, max(step_max, _or(s.min_duration, step_min))),
            _or(s.min_requests, step_requests),
        )
        for s in r.steps or (StepSettings(weight=w) for w in DEFAULT_WEIGHTS)
    )


def _alarms(target: str, names: tuple[str, ...] | None) -> tuple[str, ...]:
    """CloudWatch alarms exist on AWS only: naming some for a local rollout is an error."""
    if names and target != "aws":
        raise UsageError(
            f"[rollout] alarms ({', '.join(names)}) are CloudWatch alarms, an AWS feature: "
            f"the {target} target has none to watch",
            hint="remove `alarms` from [rollout] in canary.toml for local rollouts, or run "
            "with --target aws",
        )
    return names or ()


def _interval(target: str, seconds: float, warn: Callable[[str], None] | None) -> float:
    """On AWS metrics come in CloudWatch's 1-minute periods: judge on whole minutes."""
    if target != "aws" or seconds % 60 == 0:
        return seconds
    rounded = 60.0 * math.ceil(seconds / 60)
    if warn is not None:
        warn(
            f"interval {seconds:g}s: CloudWatch reports the ALB's metrics per minute, "
            f"so the judge looks every {rounded:g}s"
        )
    return rounded


def _or(value: T | None, default: T) -> T:
    return default if value is None else value


def align_to_batches(t: float, plan: RolloutPlan) -> float:
    """Batch edges on whole seconds (whole minutes for minute-level metrics)."""
    step = 60.0 if plan.interval_s >= 60 else 1.0
    return math.floor(t / step) * step
