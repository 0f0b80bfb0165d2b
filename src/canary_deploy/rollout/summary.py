"""A rollout in brief and who runs it, as `status` and the steering commands report it."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from canary_deploy.rollout.store import Rollout


@dataclass(frozen=True)
class RolloutSummary:
    """A rollout in one line's worth of facts; `step` counts from 1."""

    id: int
    status: str
    step: int
    steps: int
    canary_weight: int
    canary_image: str | None
    reason: str | None
    last: str  # what happened last: why it paused or ends, else the judge's explanation

    @classmethod
    def of(cls, r: Rollout) -> RolloutSummary:
        step = r.plan.steps[min(r.step, len(r.plan.steps) - 1)]
        explained = None if r.last_decision is None else r.last_decision.explanation
        # Paused or ending: why says more than the last batch's verdict.
        last = r.reason if r.status != "running" and r.reason else explained or r.reason
        return cls(
            id=r.id,
            status=str(r.status),
            step=r.step + 1,
            steps=len(r.plan.steps),
            canary_weight=step.canary_weight,
            canary_image=r.canary_image,
            reason=r.reason,
            last=last or "starting",
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class ControllerSummary:
    """Who runs a rollout: the controller's last tick, or since when nothing does."""

    pid: int | None  # None while nobody runs it
    last_tick: float
    last_tick_s: float
    unattended_since: float | None
    unattended_s: float | None


@dataclass(frozen=True)
class ActiveRollout:
    rollout: RolloutSummary
    controller: ControllerSummary

    def to_dict(self) -> dict[str, Any]:
        return {**self.rollout.to_dict(), "controller": asdict(self.controller)}
