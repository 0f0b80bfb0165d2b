"""Reading what the dashboard shows, each part at its own pace: the chain from the target's
status, traffic from its MetricsSource, rollouts from the rollout store. One thread owns
the reader (a store's connection stays in the thread that opened it)."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field

from canary_deploy.backend import Status, Target
from canary_deploy.errors import CanaryError, OperationFailed
from canary_deploy.rollout.model import Event, Rollout
from canary_deploy.rollout.state import RolloutState
from canary_deploy.web.rollouts import HistoryRow, history_rows
from canary_deploy.web.series import TrafficSeries


@dataclass(frozen=True)
class Pace:
    """How often each part is read again, and what the page says about it."""

    status_s: float
    metrics_s: float
    rollout_s: float
    bucket_s: float  # the charts' resolution
    lag_s: float  # the newest data is this old (CloudWatch: minutes)
    partial: bool  # draw the bucket still filling
    note: str


PACES = {
    "local": Pace(
        1.0, 2.0, 1.0, 10.0, 1.0, True,
        "Live from the local balancer: traffic every 2 s in 10-s buckets, the chain and "
        "the rollout every second.",
    ),
    "aws": Pace(
        15.0, 60.0, 5.0, 60.0, 120.0, False,
        "AWS: traffic from CloudWatch (AWS/ApplicationELB, 1-minute periods) refreshed "
        "every 60 s, at CloudWatch's pace; its newest 2 minutes are still filling up and "
        "not shown. The chain is read every 15 s, the rollout every 5 s.",
    ),
}  # fmt: skip


@dataclass(frozen=True)
class RolloutSnapshot:
    rollout: Rollout
    events: list[Event]  # the whole audit log, the judge's batches included


@dataclass
class Snapshot:
    """The latest of each part, with when it was read and what failed."""

    status: Status | None = None
    series: TrafficSeries | None = None
    rollout: RolloutSnapshot | None = None
    history: list[HistoryRow] = field(default_factory=list)
    read_at: dict[str, float] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)


StoreOpener = Callable[[], AbstractContextManager[RolloutState | None]]


class Reader:
    """Refreshes a Snapshot part by part, each when its pace says so."""

    def __init__(
        self,
        target: Target,
        open_store: StoreOpener,
        pace: Pace,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.target = target
        self.open_store = open_store
        self.pace = pace
        self.clock = clock
        self.snapshot = Snapshot(
            series=TrafficSeries(
                target.metrics, bucket_s=pace.bucket_s, lag_s=pace.lag_s, partial=pace.partial
            )
        )
        self._history_cache: dict[int, HistoryRow] = {}
        self._store: RolloutState | None = None
        self._store_cm: AbstractContextManager[RolloutState | None] | None = None

    def refresh(self) -> set[str]:
        """Read the parts that are due; returns the names of those read (or failed)."""
        now = self.clock()
        due = {
            name
            for name, every in (
                ("status", self.pace.status_s),
                ("traffic", self.pace.metrics_s),
                ("rollout", self.pace.rollout_s),
            )
            if now - self.snapshot.read_at.get(name, -1e18) >= every
        }
        for name in sorted(due):
            self._read(name, now)
        return due

    def force(self, *names: str) -> None:
        """Read these parts at the next refresh (after a steering action)."""
        for name in names:
            self.snapshot.read_at.pop(name, None)

    def _read(self, name: str, now: float) -> None:
        snap = self.snapshot
        try:
            if name == "status":
                snap.status = self.target.status()
            elif name == "traffic":
                assert snap.series is not None
                if snap.status is not None and snap.status.listener is None:
                    # Stopped: the local target's metrics would start its daemon again,
                    # and a dashboard only looks.
                    raise OperationFailed(
                        "the stack is not running", hint="`canary deploy` starts it"
                    )
                snap.series.refresh(now)
            else:
                self._read_rollouts()
        except CanaryError as exc:
            snap.errors[name] = exc.message + (f"; {exc.hint}" if exc.hint else "")
            if name == "rollout":
                self.close()  # opened again at the next read
        else:
            snap.errors.pop(name, None)
        snap.read_at[name] = now

    def _read_rollouts(self) -> None:
        store = self.store()
        if store is None:
            return
        latest = store.latest()
        snap = self.snapshot
        snap.rollout = None if latest is None else RolloutSnapshot(latest, store.events(latest.id))
        snap.history = history_rows(store, self._history_cache)

    def store(self) -> RolloutState | None:
        """The store, opened once it exists (none before the first rollout)."""
        if self._store is None:
            cm = self.open_store()
            store = cm.__enter__()
            if store is None:
                cm.__exit__(None, None, None)
                return None
            self._store, self._store_cm = store, cm
        return self._store

    def close(self) -> None:
        cm, self._store, self._store_cm = self._store_cm, None, None
        if cm is not None:
            # A store that failed may fail to close too: it is dropped either way.
            with contextlib.suppress(Exception):
                cm.__exit__(None, None, None)
