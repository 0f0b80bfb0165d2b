"""Alarm-based rollback: the alarms a rollout watches (`[rollout] alarms`), read through a
small Protocol so the controller stays free of AWS; any alarm in ALARM rolls it back."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any, Protocol, runtime_checkable

from canary_deploy.errors import OperationFailed, UsageError
from canary_deploy.rollout.model import ACTOR, EventRecord, Rollout, RolloutStatus

IN_ALARM = "ALARM"  # CloudWatch's states: OK, ALARM, INSUFFICIENT_DATA


@dataclass(frozen=True)
class AlarmState:
    """One alarm as its service reports it: its state and why it is in it."""

    name: str
    state: str
    reason: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@runtime_checkable
class AlarmSource(Protocol):
    """Alarms by name (CloudWatch on AWS; the local target has none)."""

    def alarm_states(self, names: Sequence[str]) -> dict[str, AlarmState]:
        """The state of each named alarm that exists; a name with no alarm is absent."""
        ...


def alarm_source(target: object) -> AlarmSource | None:
    """The target's alarms (`alarms` attribute of the AWS target), or None."""
    found = getattr(target, "alarms", None)
    return found if isinstance(found, AlarmSource) else None


def firing(states: Mapping[str, AlarmState]) -> list[AlarmState]:
    """The alarms in ALARM, in name order.

    >>> firing({"a": AlarmState("a", "OK"), "b": AlarmState("b", "ALARM", "3 > 1")})
    [AlarmState(name='b', state='ALARM', reason='3 > 1')]
    """
    return [states[name] for name in sorted(states) if states[name].state == IN_ALARM]


def rollback_reason(alarms: Sequence[AlarmState]) -> str:
    """What the rollout's history says about the alarms that rolled it back.

    >>> rollback_reason([AlarmState("p99-high", "ALARM", "Threshold Crossed: 1 > 0.5")])
    'CloudWatch alarm p99-high is in ALARM: Threshold Crossed: 1 > 0.5'
    """
    if len(alarms) == 1:
        (alarm,) = alarms
        return f"CloudWatch alarm {alarm.name} is in ALARM" + (
            f": {alarm.reason}" if alarm.reason else ""
        )
    shown = "; ".join(f"{a.name}: {a.reason}" if a.reason else a.name for a in alarms)
    return f"CloudWatch alarms in ALARM: {shown}"


def require_alarms(source: AlarmSource | None, names: Sequence[str]) -> None:
    """Fail before a rollout starts when it names alarms that cannot be watched: no alarm
    source (a target without alarms), or alarms that do not exist."""
    if not names:
        return
    if source is None:
        raise UsageError(
            "[rollout] alarms are CloudWatch alarms, an AWS feature: this target has none",
            hint="remove `alarms` from [rollout] in canary.toml, or use --target aws",
        )
    found = source.alarm_states(names)
    missing = [name for name in names if name not in found]
    if missing:
        raise UsageError(
            f"no CloudWatch alarm named {', '.join(missing)} (in [rollout] alarms)",
            hint="create it first (aws cloudwatch put-metric-alarm), or fix the name; "
            "alarms are looked up in the stack's region (AWS_REGION)",
        )


def watch_alarms(source: AlarmSource | None, r: Rollout, events: list[EventRecord]) -> Rollout:
    """Roll back at once when an alarm the plan watches is in ALARM (as CodeDeploy and
    ECS deployments do). One read per tick; a failed read fails the tick, so no step
    advances without the alarms checked."""
    if not r.plan.alarms:
        return r
    if source is None:
        raise OperationFailed(
            f"rollout #{r.id} watches CloudWatch alarms but this controller cannot read "
            "them (a bug: the target gives no alarm source)"
        )
    fired = firing(source.alarm_states(r.plan.alarms))
    if not fired:
        return r
    reason = rollback_reason(fired)
    data = {"alarms": [a.to_dict() for a in fired]}
    events.append(EventRecord("rollback", ACTOR, reason, data))
    return replace(r, status=RolloutStatus.ROLLING_BACK, reason=reason)
