"""How a stack's rollouts, events, commands and controller lease are laid out as items of
the DynamoDB state table (one partition per account, region and stack).

Sort keys, in the order a Query returns them::

    C#000000001             a command: rollout, t, command, actor, consumed_at once applied
    HEAD                    latest_id, active_id (while a rollout is active), command_seq
    R#000001                the rollout: state document, version, event_seq, and the
                            controller lease: owner, expires_at, renewed_at
    R#000001#E#000000001    an event: t, kind, actor, message, data

Command ids are unique in the stack (a command is named by its id alone); event ids count
from 1 in each rollout.
"""

from __future__ import annotations

import json
import types
from collections.abc import Mapping
from dataclasses import MISSING, dataclass, fields
from datetime import UTC, datetime
from enum import Enum
from functools import cache
from typing import TYPE_CHECKING, Any, Union, get_args, get_origin, get_type_hints

from canary_deploy.errors import OperationFailed
from canary_deploy.rollout.store import Command, Event, EventRecord, Rollout

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.type_defs import AttributeValueTypeDef

    Item = Mapping[str, AttributeValueTypeDef]

HEAD = "HEAD"

# Rollout fields that live in the lease attributes, not in the state document.
_LEASE_FIELDS = frozenset({"owner_pid", "heartbeat"})


def rollout_key(rollout_id: int) -> str:
    return f"R#{rollout_id:06d}"


def events_prefix(rollout_id: int) -> str:
    return f"{rollout_key(rollout_id)}#E#"


COMMANDS_PREFIX = "C#"


def event_key(rollout_id: int, seq: int) -> str:
    return f"{events_prefix(rollout_id)}{seq:09d}"


def command_key(command_id: int) -> str:
    return f"{COMMANDS_PREFIX}{command_id:09d}"


def _event_ids(sort_key: str) -> tuple[int, int]:
    """(rollout id, sequence number) of an event's sort key."""
    _, rollout_id, _, seq = sort_key.split("#")
    return int(rollout_id), int(seq)


# ---- attribute values


def text(value: str) -> AttributeValueTypeDef:
    return {"S": value}


def number(value: float) -> AttributeValueTypeDef:
    # repr is the shortest string that reads back as the same float: times round-trip.
    return {"N": repr(value) if isinstance(value, float) else str(value)}


def get_number(item: Item, name: str) -> float | None:
    value = item.get(name)
    return None if value is None else float(value["N"])


def get_int(item: Item, name: str, default: int = 0) -> int:
    value = item.get(name)
    return default if value is None else int(value["N"])


def get_text(item: Item, name: str) -> str | None:
    value = item.get(name)
    return None if value is None else value["S"]


# ---- the controller lease


@dataclass(frozen=True)
class Lease:
    """Who runs a rollout (`host:pid:token`) and until when, unless renewed."""

    owner: str | None
    expires_at: float | None
    renewed_at: float | None

    def alive(self, now: float) -> bool:
        return self.owner is not None and self.expires_at is not None and now <= self.expires_at

    def describe(self) -> str:
        until = "" if self.expires_at is None else f"; its lease expires at {utc(self.expires_at)}"
        return f"{self.owner}{until} unless renewed"

    @classmethod
    def from_item(cls, item: Item) -> Lease:
        return cls(
            get_text(item, "owner"), get_number(item, "expires_at"), get_number(item, "renewed_at")
        )


def utc(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def owner_pid(owner: str | None) -> int | None:
    """The process id in an owner `host:pid:token` (informational: the host may differ)."""
    if owner is None:
        return None
    parts = owner.rsplit(":", 2)
    return int(parts[1]) if len(parts) == 3 and parts[1].isdigit() else None


# ---- the rollout, serialised field by field from the dataclass itself


def rollout_document(rollout: Rollout) -> str:
    """The rollout's fields as JSON, so a field added to `Rollout` is stored unasked."""
    doc = {
        f.name: _plain(getattr(rollout, f.name))
        for f in fields(rollout)
        if f.name not in _LEASE_FIELDS
    }
    return json.dumps(doc)


def rollout_from_item(item: Item) -> Rollout:
    """The rollout of a `R#…` item: its document, with the lease's owner and renewal."""
    doc = json.loads(item["state"]["S"])
    hints = _rollout_types()
    values: dict[str, Any] = {
        f.name: _typed(hints[f.name], doc[f.name])
        for f in fields(Rollout)
        if f.name in doc and f.name not in _LEASE_FIELDS
    }
    values["owner_pid"] = owner_pid(get_text(item, "owner"))
    values["heartbeat"] = get_number(item, "renewed_at")
    missing = [
        f.name
        for f in fields(Rollout)
        if f.name not in values and f.default is MISSING and f.default_factory is MISSING
    ]
    if missing:
        raise OperationFailed(
            f"rollout {item['sk']['S']} was stored without {', '.join(missing)}",
            hint="it was written by an older canary; finish it with that version",
        )
    return Rollout(**values)


@cache
def _rollout_types() -> dict[str, Any]:
    return get_type_hints(Rollout)


def _plain(value: Any) -> Any:
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    to_dict = getattr(value, "to_dict", None)
    return to_dict() if callable(to_dict) else value


def _typed(hint: Any, value: Any) -> Any:
    """`value` read back from JSON as the type `hint` says (enums, `from_dict`, tuples)."""
    if value is None:
        return None
    origin = get_origin(hint)
    if origin in (Union, types.UnionType):
        (inner, *rest) = [a for a in get_args(hint) if a is not type(None)]
        return value if rest else _typed(inner, value)
    if origin is tuple:
        args = get_args(hint)
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_typed(args[0], v) for v in value)
        return tuple(value)
    if isinstance(hint, type):
        if issubclass(hint, Enum):
            return hint(value)
        from_dict = getattr(hint, "from_dict", None)
        if callable(from_dict):
            return from_dict(value)
    return value


# ---- events and commands


def started_message(rollout: Rollout) -> str:
    """The first event of every rollout (the same words as the SQLite store's)."""
    weights = " -> ".join(f"{s.canary_weight}%" for s in rollout.plan.steps)
    return f"rollout started: canary {weights}"


def event_item(
    partition: str, rollout_id: int, seq: int, t: float, record: EventRecord
) -> dict[str, AttributeValueTypeDef]:
    kind, actor, message, data = record
    item = {
        "pk": text(partition),
        "sk": text(event_key(rollout_id, seq)),
        "t": number(t),
        "kind": text(kind),
        "actor": text(actor),
        "message": text(message),
    }
    if data is not None:
        item["data"] = text(json.dumps(data))
    return item


def event_from_item(item: Item) -> Event:
    rollout_id, seq = _event_ids(item["sk"]["S"])
    data = get_text(item, "data")
    return Event(
        id=seq,
        rollout_id=rollout_id,
        t=float(item["t"]["N"]),
        kind=item["kind"]["S"],
        actor=item["actor"]["S"],
        message=item["message"]["S"],
        data=None if data is None else json.loads(data),
    )


def command_item(
    partition: str, rollout_id: int, command_id: int, t: float, command: Command, actor: str
) -> dict[str, AttributeValueTypeDef]:
    return {
        "pk": text(partition),
        "sk": text(command_key(command_id)),
        "rollout": number(rollout_id),
        "t": number(t),
        "command": text(command.value),
        "actor": text(actor),
    }


def command_from_item(item: Item) -> tuple[int, Command, str]:
    """(command id, command, actor) of a `C#…` item."""
    command_id = int(item["sk"]["S"].removeprefix(COMMANDS_PREFIX))
    return command_id, Command(item["command"]["S"]), item["actor"]["S"]
