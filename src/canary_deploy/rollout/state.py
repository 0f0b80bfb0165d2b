"""The contract of a rollout state store, which both the SQLite store (local) and the
DynamoDB one (AWS) implement, and what `status` derives from it."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Protocol

from canary_deploy.backend import Progress, SilentProgress
from canary_deploy.rollout.model import LeaseLost, StaleState
from canary_deploy.rollout.plan import RolloutPlan
from canary_deploy.rollout.store import Command, Event, EventRecord, Rollout

if TYPE_CHECKING:
    from canary_deploy.rollout.store import RolloutStore

__all__ = ["LeaseLost", "RenewingProgress", "RolloutState", "StaleState", "unattended_since"]


class RolloutState(Protocol):
    """Rollouts of one stack, their audit log, the commands sent to them and who runs them.

    At most one rollout of a stack is active (not terminal); at most one live controller
    runs it. Every method that changes state either happens entirely or not at all."""

    stack: str

    def get(self, rollout_id: int) -> Rollout:
        """The rollout `rollout_id`; UsageError when the stack has none by that id."""
        ...

    def latest(self) -> Rollout | None:
        """The most recently created rollout of the stack, ended or not."""
        ...

    def active(self) -> Rollout | None:
        """The rollout that has not finished yet, if any."""
        ...

    def create(
        self,
        plan: RolloutPlan,
        judge: dict[str, Any],
        *,
        now: float,
        canary_image: str | None,
        actor: str,
    ) -> Rollout:
        """A new running rollout, claimed by the caller, with a "started" event; UsageError
        while another rollout of the stack is active."""
        ...

    def save(
        self,
        rollout: Rollout,
        *,
        now: float,
        events: Sequence[EventRecord] = (),
        consumed: Sequence[int] = (),
    ) -> Rollout:
        """Write the rollout's new state, its events and the commands it consumed at once."""
        ...

    def claim(self, rollout_id: int, *, now: float) -> None:
        """Become the rollout's controller; UsageError while another live one holds it."""
        ...

    def renew(self, rollout_id: int, *, now: float) -> None:
        """Show that this controller is alive during an action longer than its lease (a
        promotion's stack update): nobody takes over a controller that is busy, not gone."""
        ...

    def release(self, rollout_id: int) -> None:
        """Stop being the rollout's controller (a no-op when another one holds it)."""
        ...

    def controller_alive(self, rollout: Rollout, *, now: float) -> bool:
        """Whether a controller holds the rollout and has renewed its claim recently."""
        ...

    def events(self, rollout_id: int | None = None) -> list[Event]:
        """The audit log of one rollout, or of every rollout of the stack, oldest first."""
        ...

    def send(self, rollout_id: int, command: Command, *, actor: str) -> int:
        """Queue a command for the rollout's controller; returns its id."""
        ...

    def withdraw(self, command_id: int, *, now: float, why: str) -> bool:
        """Take back a command no controller consumed (recorded as an event); False when a
        controller consumed it first."""
        ...

    def pending_commands(self, rollout_id: int) -> list[tuple[int, Command, str]]:
        """(command id, command, actor) not yet consumed by a save, oldest first."""
        ...

    def close(self) -> None: ...


class RenewingProgress:
    """The Progress a controller's long actions report to: each report renews its lease
    (at most every `every_s`), so a promotion that waits minutes for ECS keeps it."""

    def __init__(
        self,
        state: RolloutState,
        rollout_id: int,
        inner: Progress | None = None,
        *,
        every_s: float = 5.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.state = state
        self.rollout_id = rollout_id
        self.inner = inner or SilentProgress()
        self.every_s = every_s
        self.clock = clock
        self._last = clock()

    def update(self, message: str) -> None:
        self.inner.update(message)
        self._renew()

    def log(self, message: str) -> None:
        self.inner.log(message)
        self._renew()

    def _renew(self) -> None:
        now = self.clock()
        if now - self._last >= self.every_s:
            self.state.renew(self.rollout_id, now=now)
            self._last = now


def unattended_since(state: RolloutState, rollout: Rollout, *, now: float) -> float | None:
    """When the controller of an unfinished rollout last showed it was alive, if nobody
    runs it now (`status`: "unattended since …"); None while attended or once ended."""
    if rollout.status.terminal or state.controller_alive(rollout, now=now):
        return None
    return rollout.heartbeat if rollout.heartbeat is not None else rollout.created_at


if TYPE_CHECKING:
    # The SQLite store is the reference implementation: keep it conforming.
    _sqlite: type[RolloutState] = RolloutStore
