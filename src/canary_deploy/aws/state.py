"""Rollout state and the controller lease in one DynamoDB table, keyed by account, region
and stack, so any machine with the credentials can watch, steer or resume a rollout.

Every write that can race is conditional: a rollout is created only while none is active
(the HEAD item's `active_id`), a save only when the rollout's version is the one this
process read, and only by the lease holder once it claimed; a command is consumed once."""

from __future__ import annotations

import contextlib
import os
import socket
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import boto3

from canary_deploy.aws.clients import CLIENT_CONFIG
from canary_deploy.aws.errors import aws_errors
from canary_deploy.aws.state_codec import (
    HEAD,
    Lease,
    command_from_item,
    command_item,
    commands_prefix,
    event_from_item,
    event_item,
    events_prefix,
    get_int,
    number,
    owner_pid,
    rollout_from_item,
    rollout_key,
    started_message,
    text,
)
from canary_deploy.aws.state_partition import TRANSACTION_LIMIT, Partition, Refused
from canary_deploy.aws.state_table import (
    StateErrors,
    caller_account,
    ensure_table,
    partition_key,
    table_name,
)
from canary_deploy.aws.state_writes import (
    Holder,
    consume,
    head_activates,
    head_ends,
    put_rollout,
    update_rollout,
)
from canary_deploy.backend import Progress, SilentProgress
from canary_deploy.errors import OperationFailed, UsageError
from canary_deploy.rollout.plan import RolloutPlan
from canary_deploy.rollout.store import (
    HEARTBEAT_STALE_S,
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

# A controller that has not renewed its lease for this long has lost it (as in SQLite).
LEASE_S = HEARTBEAT_STALE_S
STEER_HINT = "watch it with `canary status`, or steer it with `canary promote|abort|pause|resume`"


@dataclass(frozen=True)
class _Seen:
    """What this process last read or wrote of a rollout: its next save expects these."""

    version: int
    event_seq: int
    terminal: bool


def default_owner() -> str:
    """`host:pid:token`: the token tells apart two controllers in one process."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


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
        self.lease_s = lease_s
        self.owner = owner or default_owner()
        errors = StateErrors(table=table, region=region, stack_name=stack)
        self._items = Partition(client, table=table, partition=partition, errors=errors)
        self._seen: dict[int, _Seen] = {}
        self._claimed: set[int] = set()

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
            items = self._items.query("read the rollout history", "R#", only_with="kind")
        else:
            items = self._items.query(
                f"read rollout {rollout_id}'s history", events_prefix(rollout_id)
            )
        return [event_from_item(item) for item in items]

    def pending_commands(self, rollout_id: int) -> list[tuple[int, Command, str]]:
        items = self._items.query(
            f"read commands for rollout {rollout_id}",
            commands_prefix(rollout_id),
            only_without="consumed_at",
        )
        return [command_from_item(item) for item in items]

    # ---- the lease

    def lease(self, rollout_id: int) -> Lease:
        """Who runs the rollout, until when, and when they last renewed."""
        item = self._items.get_item(rollout_key(rollout_id), f"read rollout {rollout_id}'s lease")
        return Lease.from_item(item or {})

    def controller_alive(self, rollout: Rollout, *, now: float) -> bool:
        return self.lease(rollout.id).alive(now)

    def claim(self, rollout_id: int, *, now: float) -> None:
        """Become the rollout's controller, refusing while another live one holds it."""
        try:
            self._items.update_item(
                f"claim rollout {rollout_id}",
                rollout_key(rollout_id),
                "SET #owner = :me, #expires = :expires, #renewed = :now",
                "attribute_exists(#sk) AND "
                "(attribute_not_exists(#owner) OR #owner = :me OR #expires < :now)",
                {":me": text(self.owner), ":expires": number(now + self.lease_s)}
                | {":now": number(now)},
            )
        except Refused as refused:
            if refused.item is None:
                raise UsageError(f"no rollout {rollout_id} for stack {self.stack}") from None
            holder = Lease.from_item(refused.item).describe()
            raise UsageError(
                f"rollout {rollout_id} of {self.stack} is already being run by {holder}",
                hint=STEER_HINT,
            ) from None
        self._claimed.add(rollout_id)

    def renew(self, rollout_id: int, *, now: float) -> None:
        """Extend this controller's lease (during an action longer than the lease)."""
        try:
            self._items.update_item(
                f"renew the lease on rollout {rollout_id}",
                rollout_key(rollout_id),
                "SET #expires = :expires, #renewed = :now",
                "#owner = :me",
                {":me": text(self.owner), ":expires": number(now + self.lease_s)}
                | {":now": number(now)},
            )
        except Refused as refused:
            raise self._lost(rollout_id, refused.item) from None

    def release(self, rollout_id: int) -> None:
        self._claimed.discard(rollout_id)
        # Refused when another controller holds it, or nobody does: nothing of ours to free.
        with contextlib.suppress(Refused):
            self._items.update_item(
                f"release rollout {rollout_id}",
                rollout_key(rollout_id),
                "REMOVE #owner, #expires",
                "#owner = :me",
                {":me": text(self.owner)},
            )

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
        rollout = Rollout(
            id=latest + 1,
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
        started: EventRecord = ("started", actor, started_message(rollout), None)
        try:
            self._items.transact(
                f"start rollout {rollout.id}",
                [
                    head_activates(self._items, rollout.id, latest=latest, stale=stale),
                    put_rollout(self._items, rollout, self._holder(now)),
                    self._items.put(event_item(self._items.partition, rollout.id, 1, now, started)),
                ],
            )
        except Refused:
            raise self._busy() from None  # another process started one a moment ago
        self._seen[rollout.id] = _Seen(version=1, event_seq=1, terminal=False)
        self._claimed.add(rollout.id)
        return rollout

    def save(
        self,
        rollout: Rollout,
        *,
        now: float,
        events: Sequence[EventRecord] = (),
        consumed: Sequence[int] = (),
    ) -> Rollout:
        """Write the rollout's new state, its events and the commands it consumed at once,
        so a crash never applies a command twice nor loses a recorded action; refused
        (OperationFailed, nothing written) when another process changed the rollout since
        this one read it, or took over its lease."""
        seen = self._seen.get(rollout.id)
        if seen is None:  # never read here: expect what is stored now
            self.get(rollout.id)
            seen = self._seen[rollout.id]
        mine = rollout.id in self._claimed
        new = replace(rollout, updated_at=now)
        if mine:
            new = replace(new, heartbeat=now, owner_pid=owner_pid(self.owner))
        writes = [
            update_rollout(
                self._items,
                new,
                version=seen.version,
                event_seq=seen.event_seq + len(events),
                holder=self._holder(now),
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

    def send(self, rollout_id: int, command: Command, *, actor: str) -> None:
        try:
            attributes = self._items.update_item(
                f"send {command.value} to rollout {rollout_id}",
                rollout_key(rollout_id),
                "ADD #commands :one",
                "attribute_exists(#sk)",
                {":one": number(1)},
                returns=True,
            )
        except Refused:
            raise UsageError(f"no rollout {rollout_id} for stack {self.stack}") from None
        seq = get_int(attributes, "command_seq")
        item = command_item(self._items.partition, rollout_id, seq, time.time(), command, actor)
        self._items.put_item(f"send {command.value} to rollout {rollout_id}", item)

    # ---- why a write was refused

    def _busy(self) -> UsageError:
        return UsageError(f"a rollout of {self.stack} is already in progress")

    def _lost(self, rollout_id: int, item: Item | None) -> OperationFailed:
        self._claimed.discard(rollout_id)
        holder = Lease.from_item(item or {})
        by = "nobody" if holder.owner is None else holder.describe()
        return OperationFailed(
            f"this controller ({self.owner}) lost its lease on rollout {rollout_id} of "
            f"{self.stack}: it is now held by {by}; nothing was saved",
            hint=f"its lease lapsed (not renewed for {self.lease_s:g}s) and another controller "
            "took over; watch the rollout with `canary status`",
        )

    def _save_refused(self, rollout_id: int, now: float) -> OperationFailed:
        self._seen.pop(rollout_id, None)  # the next read takes the stored version
        item = self._items.get_item(rollout_key(rollout_id), f"read rollout {rollout_id}")
        lease = Lease.from_item(item or {})
        if lease.owner != self.owner and (rollout_id in self._claimed or lease.alive(now)):
            return self._lost(rollout_id, item)
        return OperationFailed(
            f"rollout {rollout_id} of {self.stack} was changed by another process since this "
            "one read it (or its commands were applied there); nothing was saved",
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

    def _holder(self, now: float) -> Holder:
        return Holder(self.owner, now, self.lease_s)


def open_state(
    *,
    region: str,
    profile: str | None,
    stack_name: str,
    table: str | None = None,
    progress: Progress | None = None,
    lease_s: float = LEASE_S,
) -> DynamoRolloutState:
    """The state of `stack_name` in `region`, creating the table on first use
    (AWS_ENDPOINT_URL is honoured by boto3, as for every other client)."""
    table = table or table_name()
    with aws_errors("open an AWS session", stack_name=stack_name, region=region):
        session = boto3.Session(profile_name=profile, region_name=region)
        client = session.client("dynamodb", config=CLIENT_CONFIG)
        sts = session.client("sts", config=CLIENT_CONFIG)
    errors = StateErrors(table=table, region=region, stack_name=stack_name)
    with errors("look up the AWS account"):
        account = caller_account(sts)
    with errors(f"open the rollout state table {table}"):
        ensure_table(client, table, progress or SilentProgress())
    return DynamoRolloutState(
        client,
        table=table,
        partition=partition_key(account, region, stack_name),
        stack=stack_name,
        region=region,
        lease_s=lease_s,
    )
