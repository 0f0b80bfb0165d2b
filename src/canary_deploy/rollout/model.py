"""What a rollout is, as every rollout store keeps it: its status, the commands sent to
it, the rollout row and its audit log's events, and whether a controller process lives."""

from __future__ import annotations

import os
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, NamedTuple

from canary_deploy.analysis.evidence import Decision
from canary_deploy.errors import OperationFailed
from canary_deploy.rollout.late import FedWindow
from canary_deploy.rollout.plan import RolloutPlan
from canary_deploy.weights import Weights

# The actor the controller's own events are recorded under.
ACTOR = "controller"


# (kind, actor, message, data): one line of the audit log.
class EventRecord(NamedTuple):
    """One entry of a rollout's audit log, before the store stamps it (id, time)."""

    kind: str
    actor: str
    message: str
    data: dict[str, Any] | None = None


# A controller that has not written a heartbeat for this long is considered gone.
HEARTBEAT_STALE_S = 30.0


class RolloutStatus(StrEnum):
    RUNNING = "running"
    PAUSED = "paused"
    ROLLING_BACK = "rolling_back"
    PROMOTING = "promoting"
    ROLLED_BACK = "rolled_back"
    PROMOTED = "promoted"

    @property
    def terminal(self) -> bool:
        return self in (RolloutStatus.ROLLED_BACK, RolloutStatus.PROMOTED)

    @property
    def ending(self) -> bool:
        """Rolling back, promoting, or ended: no more judged steps."""
        return self.terminal or self in (RolloutStatus.ROLLING_BACK, RolloutStatus.PROMOTING)


@dataclass(frozen=True)
class RecordedDecision:
    """The judge's decision on one batch and the window it judged, as the controller
    records it: the `batch`/`decision` event's data and the rollout's `last_decision`.
    `to_dict` is that document; `from_dict` reads it back (from the store or an event)."""

    decision: Decision
    window: tuple[float, float]
    step: int
    # Late datapoints of [reread_from, window[0]) were fed with this batch.
    reread_from: float | None = None

    @property
    def explanation(self) -> str:
        return self.decision.explanation

    def to_dict(self) -> dict[str, Any]:
        doc = self.decision.to_dict()
        doc["window"] = list(self.window)
        if self.reread_from is not None:
            doc["reread_from"] = self.reread_from
        doc["step"] = self.step
        return doc

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> RecordedDecision:
        start, end = doc["window"]
        reread_from = doc.get("reread_from")
        return cls(
            decision=Decision.from_dict(doc),
            window=(float(start), float(end)),
            step=int(doc["step"]),
            reread_from=None if reread_from is None else float(reread_from),
        )


class Command(StrEnum):
    PROMOTE = "promote"  # skip to the next step
    PROMOTE_FULL = "promote_full"  # skip to promotion
    ABORT = "abort"  # roll back now
    PAUSE = "pause"
    RESUME = "resume"


@dataclass(frozen=True)
class Rollout:
    id: int
    stack: str
    status: RolloutStatus
    step: int
    step_started_at: float
    step_canary_requests: int
    cursor: float
    plan: RolloutPlan
    judge: dict[str, Any]
    last_decision: RecordedDecision | None
    canary_image: str | None
    reason: str | None
    owner_pid: int | None
    heartbeat: float | None
    created_at: float
    updated_at: float
    # The weights the controller last put on the listener (or, once it paused on a change
    # made outside it, last saw there); None until its first listener call.
    applied_weights: Weights | None = None
    # The windows of the last `plan.reread_s` seconds the judge was fed, with what it got
    # for each: read again at each batch for datapoints that arrived late (late.py).
    fed_windows: tuple[FedWindow, ...] = ()
    # Since when the step waits for the canary (and baseline) to have the healthy targets
    # its share needs; None while it does not wait.
    health_wait_since: float | None = None


@dataclass(frozen=True)
class Event:
    id: int
    rollout_id: int
    t: float
    kind: str
    actor: str
    message: str
    data: dict[str, Any] | None

    def judged(self) -> Decision | None:
        """The judge's decision a `batch` or `decision` event records; None for any other
        event, and for a soak's batch (nothing to compare: no verdict)."""
        if self.kind not in ("batch", "decision") or not self.data or "verdict" not in self.data:
            return None
        return Decision.from_dict(self.data)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "rollout_id": self.rollout_id,
            "time": self.t,
            "kind": self.kind,
            "actor": self.actor,
            "message": self.message,
            "data": self.data,
        }


def pid_alive(pid: int) -> bool:
    """True while `pid` runs. A zombie (exited, not yet reaped by its parent, e.g. a
    controller just killed by SIGTERM) is not alive: it will never tick again."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[-1].split()[0] != "Z"
    except ProcessLookupError:
        return False  # reaped between the signal and the read
    except (OSError, IndexError):
        return True  # no /proc (macOS): signal 0 is all we can tell


class StaleState(OperationFailed):
    """The rollout changed since this process read it (another process saved it or applied
    its commands); nothing was written. Read it again and decide again."""


class LeaseLost(OperationFailed):
    """Another controller took over the rollout after this one's lease lapsed; nothing was
    written, and this controller must stop."""
