"""The state store's writes as transaction actions, each with the condition that makes it
safe against another process doing the same at the same time."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from canary_deploy.aws.state_codec import (
    HEAD,
    command_key,
    number,
    rollout_document,
    rollout_key,
    text,
)
from canary_deploy.aws.state_partition import Partition
from canary_deploy.rollout.store import Rollout

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.type_defs import AttributeValueTypeDef, TransactWriteItemTypeDef


@dataclass(frozen=True)
class Holder:
    """A controller: who (`host:pid:token`), at what time, for how long it holds a lease."""

    owner: str
    now: float
    lease_s: float


def put_rollout(items: Partition, rollout: Rollout, holder: Holder) -> TransactWriteItemTypeDef:
    """A new rollout item, version 1, its lease held by `holder`."""
    item = items.key(rollout_key(rollout.id)) | {
        "state": text(rollout_document(rollout)),
        "status": text(rollout.status.value),
        "version": number(1),
        "event_seq": number(1),
        "command_seq": number(0),
        "owner": text(holder.owner),
        "expires_at": number(holder.now + holder.lease_s),
        "renewed_at": number(holder.now),
    }
    return items.put(item)


def update_rollout(
    items: Partition, new: Rollout, *, version: int, event_seq: int, holder: Holder, leased: bool
) -> TransactWriteItemTypeDef:
    """Store `new` as version `version + 1` if the stored one is still `version`: a save
    from a stale read changes nothing. A `leased` save renews the holder's lease and needs
    it still held by them; any other (e.g. a steering command acting while no controller
    runs) needs nobody else to hold a live lease."""
    values: dict[str, AttributeValueTypeDef] = {
        ":state": text(rollout_document(new)),
        ":status": text(new.status.value),
        ":version": number(version),
        ":next": number(version + 1),
        ":seq": number(event_seq),
        ":me": text(holder.owner),
        ":now": number(holder.now),
    }
    update = "SET #state = :state, #status = :status, #version = :next, #seq = :seq"
    if leased:
        update += ", #expires = :expires, #renewed = :now"
        values[":expires"] = number(holder.now + holder.lease_s)
        lease = "#owner = :me"
    else:
        lease = "(attribute_not_exists(#owner) OR #owner = :me OR #expires < :now)"
    return items.update(rollout_key(new.id), update, f"#version = :version AND {lease}", values)


def consume(
    items: Partition, rollout_id: int, command_id: int, now: float
) -> TransactWriteItemTypeDef:
    """Mark the rollout's command applied, unless it already was or was withdrawn: a
    command is applied once."""
    return items.update(
        command_key(command_id),
        "SET #consumed = :now",
        "#rollout = :rollout AND attribute_not_exists(#consumed)",
        {":now": number(now), ":rollout": number(rollout_id)},
    )


def withdraw_command(items: Partition, command_id: int) -> TransactWriteItemTypeDef:
    """Delete a command no controller consumed yet."""
    return items.delete(
        command_key(command_id),
        "attribute_exists(#sk) AND attribute_not_exists(#consumed)",
    )


def count_events(
    items: Partition, rollout_id: int, *, version: int, event_seq: int
) -> TransactWriteItemTypeDef:
    """Reserve event numbers up to `event_seq` for events written beside a rollout's
    state (as a new version: a save from an older read must not reuse the numbers)."""
    return items.update(
        rollout_key(rollout_id),
        "SET #version = :next, #seq = :seq",
        "#version = :version",
        {":version": number(version), ":next": number(version + 1), ":seq": number(event_seq)},
    )


def head_activates(
    items: Partition, rollout_id: int, *, latest: int, stale: int
) -> TransactWriteItemTypeDef:
    """HEAD points at the new rollout as latest and active, unless another rollout became
    active or was created since HEAD was read (`stale`: an ended rollout HEAD still names)."""
    return items.update(
        HEAD,
        "SET #latest = :id, #active = :id",
        "(attribute_not_exists(#active) OR #active = :stale) AND "
        "(attribute_not_exists(#latest) OR #latest = :latest)",
        {":id": number(rollout_id), ":latest": number(latest), ":stale": number(stale)},
    )


def head_ends(items: Partition, rollout_id: int) -> TransactWriteItemTypeDef:
    """The rollout is no longer the active one (it reached a terminal status)."""
    return items.update(HEAD, "REMOVE #active", "#active = :id", {":id": number(rollout_id)})
