"""Rollout state and the controller lease in one DynamoDB table, keyed by account, region
and stack, so any machine with the credentials can watch, steer or resume a rollout.

Every write that can race is conditional: a rollout is created only while none is active
(the HEAD item's `active_id`), a save only when the rollout's version is the one this
process read, and only by the lease holder once it claimed; a command is consumed once."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from canary_deploy.aws.state_codec import (
    COMMANDS_PREFIX,
    HEAD,
    Lease,
    command_from_item,
    command_item,
    command_key,
    event_from_item,
    event_item,
    events_prefix,
    get_int,
    number,
    owner_pid,
    rollout_from_item,
    rollout_key,
    started_message,
)
from canary_deploy.aws.state_lease import LEASE_S, STEER_HINT, LeaseKeeper
from canary_deploy.aws.state_partition import TRANSACTION_LIMIT, Partition, Refused
from canary_deploy.aws.state_table import (
    StateErrors,
)
from canary_deploy.aws.state_writes import (
    consume,
    count_events,
    head_activates,
    head_ends,
    put_rollout,
    update_rollout,
    withdraw_command,
)
from canary_deploy.errors import OperationFailed, UsageError
from canary_deploy.rollout.plan import RolloutPlan
from canary_deploy.rollout.state import RolloutState, StaleState
from canary_deploy.rollout.store import (
    Command,
    Event,
    EventRecord,
    Rollout,
    RolloutStatus,
)

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_dynamodb.type_defs import AttributeValueTypeDef

    Item = Mapping[str, AttributeValueTypeDef]

_WITHDRAW_ATTEMPTS = 5


@dataclass(frozen=True)
class _Seen:
    """What this process last read or wrote of a rollout: its next save expects these."""

    version: int
    event_seq: int
    terminal: bool


class DynamoRolloutState:
    """Rollouts of one stack in the state table (implements `RolloutState`)."""

    def __init__(
        self,
        client: DynamoDBClient,
        *,
        table: str,
        partition: str,
        stack: str,
        region: str,
        lease_s: float = LEASE_S,
        owner: str | None = None,
    ) -> None:
        self.stack = stack
        errors = StateErrors(table=table, region=region, stack_name=stack)
        self._items = Partition(client, table=table, partition=partition, errors=errors)
        self._lease = LeaseKeeper(self._items, stack=stack, owner=owner, lease_s=lease_s)
        self._seen: dict[int, _Seen] = {}

    @property
    def owner(self) -> str:
        """This process's name as a controller, `host:pid:token`."""
        return self._lease.owner

    def close(self) -> None:
        self._items.client.close()

    def __enter__(self) -> DynamoRolloutState:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- reading

    def get(self, rollout_id: int) -> Rollout:
        item = self._items.get_item(rollout_key(rollout_id), f"read rollout {rollout_id}")
        if item is None:
            raise UsageError(f"no rollout {rollout_id} for stack {self.stack}")
        return self._remember(item)

    def latest(self) -> Rollout | None:
        head = self._head()
        return None if "latest_id" not in head else self.get(get_int(head, "latest_id"))

    def active(self) -> Rollout | None:
        """The rollout that has not finished yet, if any."""
        head = self._head()
        if "active_id" not in head:
            return None
        rollout = self.get(get_int(head, "active_id"))
        return None if rollout.status.terminal else rollout

    def events(self, rollout_id: int | None = None) -> list[Event]:
        if rollout_id is None:  # every rollout's, in (rollout, sequence) order
            items = self._items.query(
                "read the rollout history", "R#", only="attribute_exists(#kind)"
            )
        else:
            items = self._items.query(
                f"read rollout {rollout_id}'s history", events_prefix(rollout_id)
            )
        return [event_from_item(item) for item in items]

    def pending_commands(self, rollout_id: int) -> list[tuple[int, Command, str]]:
        items = self._items.query(
            f"read commands for rollout {rollout_id}",
            COMMANDS_PREFIX,
            only="#rollout = :rollout AND attribute_not_exists(#consumed)",
            values={":rollout": number(rollout_id)},
        )
        return [command_from_item(item) for item in items]

    # ---- the lease

    def lease(self, rollout_id: int) -> Lease:
        """Who runs the rollout, until when, and when they last renewed."""
        return self._lease.read(rollout_id)

    def controller_alive(self, rollout: Rollout, *, now: float) -> bool:
        return self._lease.read(rollout.id).alive(now)

    def claim(self, rollout_id: int, *, now: float) -> None:
        """Become the rollout's controller, refusing while another live one holds it."""
        self._lease.claim(rollout_id, now=now)

    def renew(self, rollout_id: int, *, now: float) -> None:
        """Extend this controller's lease (during an action longer than the lease)."""
        self._lease.renew(rollout_id, now=now)

    def release(self, rollout_id: int) -> None:
        self._lease.release(rollout_id)

    # ---- writing

    def create(
        self,
        plan: RolloutPlan,
        judge: dict[str, Any],
        *,
        now: float,
        canary_image: str | None,
        actor: str,
    ) -> Rollout:
        """A running rollout claimed by this process, unless another one is active."""
        head = self._head()
        stale = 0  # never an id
        if "active_id" in head:
            current = self.get(get_int(head, "active_id"))
            if not current.status.terminal:
                raise self._busy()
            stale = current.id  # ended without clearing HEAD (not by this store): move on
        latest = get_int(head, "latest_id")
        rollout = self._new_rollout(latest + 1, plan, judge, now=now, canary_image=canary_image)
        started = EventRecord("started", actor, started_message(rollout))
        try:
            self._items.transact(
                f"start rollout {rollout.id}",
                [
                    head_activates(self._items, rollout.id, latest=latest, stale=stale),
                    put_rollout(self._items, rollout, self._lease.holder(now)),
                    self._items.put(event_item(self._items.partition, rollout.id, 1, now, started)),
                ],
            )
        except Refused:
            raise self._busy() from None  # another process started one a moment ago
        self._seen[rollout.id] = _Seen(version=1, event_seq=1, terminal=False)
        self._lease.took(rollout.id)
        return rollout

    def _new_rollout(
        self,
        rollout_id: int,
        plan: RolloutPlan,
        judge: dict[str, Any],
        *,
        now: float,
        canary_image: str | None,
    ) -> Rollout:
        """A rollout at its start: running step 0, owned by this process."""
        return Rollout(
            id=rollout_id,
            stack=self.stack,
            status=RolloutStatus.RUNNING,
            step=0,
            step_started_at=now,
            step_canary_requests=0,
            cursor=now,
            plan=plan,
            judge=judge,
            last_decision=None,
            canary_image=canary_image,
            reason=None,
            owner_pid=owner_pid(self.owner),
            heartbeat=now,
            created_at=now,
            updated_at=now,
        )

    def save(
        self,
        rollout: Rollout,
        *,
        now: float,
        events: Sequence[EventRecord] = (),
        consumed: Sequence[int] = (),
    ) -> Rollout:
        """Write the rollout's new state, its events and the commands it consumed at once,
        so a crash never applies a command twice nor loses a recorded action. Nothing is
        written when another process changed the rollout since this one read it
        (StaleState), took over this controller's lease (LeaseLost), or runs it now.
        (Long as one DynamoDB transaction: its conditions and writes read together.)"""
        seen = self._seen.get(rollout.id)
        if seen is None:  # never read here: expect what is stored now
            self.get(rollout.id)
            seen = self._seen[rollout.id]
        mine = self._lease.holds(rollout.id)
        new = replace(rollout, updated_at=now)
        if mine:
            new = replace(new, heartbeat=now, owner_pid=owner_pid(self.owner))
        writes = [
            update_rollout(
                self._items,
                new,
                version=seen.version,
                event_seq=seen.event_seq + len(events),
                holder=self._lease.holder(now),
                leased=mine,
            )
        ]
        writes += [consume(self._items, new.id, command_id, now) for command_id in consumed]
        if new.status.terminal and not seen.terminal:
            writes.append(head_ends(self._items, new.id))
        puts = [
            self._items.put(
                event_item(self._items.partition, new.id, seen.event_seq + i, now, record)
            )
            for i, record in enumerate(events, start=1)
        ]
        room = TRANSACTION_LIMIT - len(writes)
        if room < 0:
            raise OperationFailed(f"cannot consume {len(consumed)} commands in one save")
        try:
            self._items.transact(f"save rollout {new.id}", writes + puts[:room])
        except Refused:
            raise self._save_refused(new.id, now) from None
        self._seen[new.id] = _Seen(
            seen.version + 1, seen.event_seq + len(events), new.status.terminal
        )
        # Rare overflow: the state and the first events committed; the rest follow in order.
        for start in range(room, len(puts), TRANSACTION_LIMIT):
            chunk = puts[start : start + TRANSACTION_LIMIT]
            self._items.transact(f"save rollout {new.id}'s events", chunk)
        return new

    def send(self, rollout_id: int, command: Command, *, actor: str) -> int:
        """Queue a command for the rollout's controller; returns its id (unique in the
        stack, from HEAD's counter)."""
        action = f"send {command.value} to rollout {rollout_id}"
        try:
            attributes = self._items.update_item(
                action,
                HEAD,
                "ADD #commands :one",
                "#latest >= :id",  # ids 1..latest all exist
                {":one": number(1), ":id": number(rollout_id)},
                returns=True,
            )
        except Refused:
            raise UsageError(f"no rollout {rollout_id} for stack {self.stack}") from None
        command_id = get_int(attributes, "command_seq")
        item = command_item(
            self._items.partition, rollout_id, command_id, time.time(), command, actor
        )
        self._items.put_item(action, item)
        return command_id

    def withdraw(self, command_id: int, *, now: float, why: str) -> bool:
        """Take back a command no controller consumed, so it can never fire later; the
        withdrawal is recorded. False when a controller consumed it first."""
        for _ in range(_WITHDRAW_ATTEMPTS):
            item = self._items.get_item(command_key(command_id), f"read command {command_id}")
            if item is None or "consumed_at" in item:
                return False
            rollout_id, command, actor = get_int(item, "rollout"), *command_from_item(item)[1:]
            self.get(rollout_id)  # the version the event numbers are reserved against
            seen = self._seen[rollout_id]
            withdrawn = EventRecord("withdrawn", actor, f"{command} withdrawn: {why}", None)
            event = event_item(
                self._items.partition, rollout_id, seen.event_seq + 1, now, withdrawn
            )
            try:
                self._items.transact(
                    f"withdraw command {command_id}",
                    [
                        withdraw_command(self._items, command_id),
                        count_events(
                            self._items,
                            rollout_id,
                            version=seen.version,
                            event_seq=seen.event_seq + 1,
                        ),
                        self._items.put(event),
                    ],
                )
            except Refused:
                continue  # consumed meanwhile (the next read says so), or the rollout saved
            self._seen[rollout_id] = replace(
                seen, version=seen.version + 1, event_seq=seen.event_seq + 1
            )
            return True
        raise StaleState(
            f"could not withdraw command {command_id}: its rollout kept changing",
            hint="run the command again",
        )

    # ---- why a write was refused

    def _busy(self) -> UsageError:
        return UsageError(f"a rollout of {self.stack} is already in progress")

    def _save_refused(self, rollout_id: int, now: float) -> OperationFailed:
        """Why a save's conditions failed: lost lease, a live controller, or a stale read."""
        claimed = self._lease.holds(rollout_id)
        self._seen.pop(rollout_id, None)  # the next read takes the stored version
        item = self._items.get_item(rollout_key(rollout_id), f"read rollout {rollout_id}")
        lease = Lease.from_item(item or {})
        if lease.owner != self.owner and claimed:
            return self._lease.lost(rollout_id, item)
        if lease.owner != self.owner and lease.alive(now):
            return OperationFailed(
                f"rollout {rollout_id} of {self.stack} is run by {lease.describe()}: only its "
                "controller saves it; nothing was saved",
                hint=STEER_HINT,
            )
        return StaleState(
            f"rollout {rollout_id} of {self.stack} changed since this process read it (saved "
            "elsewhere, or its commands applied or withdrawn there); nothing was saved",
            hint="run the command again: it starts from the stored state",
        )

    # ---- items and conditions

    def _remember(self, item: Item) -> Rollout:
        rollout = rollout_from_item(item)
        self._seen[rollout.id] = _Seen(
            get_int(item, "version"), get_int(item, "event_seq"), rollout.status.terminal
        )
        return rollout

    def _head(self) -> Item:
        return self._items.get_item(HEAD, "read the stack's rollouts") or {}


if TYPE_CHECKING:
    _conforms: type[RolloutState] = DynamoRolloutState
