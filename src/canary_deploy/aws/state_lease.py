"""This process's side of the controller lease on a stack's rollouts: claim it, renew it,
release it, and say who holds it when a claim or a save is refused."""

from __future__ import annotations

import contextlib
import os
import socket
import uuid
from typing import TYPE_CHECKING

from canary_deploy.aws.state_codec import Lease, number, rollout_key, text
from canary_deploy.aws.state_partition import Partition, Refused
from canary_deploy.aws.state_writes import Holder
from canary_deploy.errors import UsageError
from canary_deploy.rollout.state import LeaseLost
from canary_deploy.rollout.store import HEARTBEAT_STALE_S

if TYPE_CHECKING:
    from collections.abc import Mapping

    from mypy_boto3_dynamodb.type_defs import AttributeValueTypeDef

    Item = Mapping[str, AttributeValueTypeDef]

# A controller that has not renewed its lease for this long has lost it (as in SQLite).
LEASE_S = HEARTBEAT_STALE_S
STEER_HINT = "watch it with `canary status`, or steer it with `canary promote|abort|pause|resume`"


def default_owner() -> str:
    """`host:pid:token`: the token tells apart two controllers in one process."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class LeaseKeeper:
    """Claims, renews and releases leases as `owner`, remembering which it holds."""

    def __init__(self, items: Partition, *, stack: str, owner: str | None, lease_s: float) -> None:
        self.owner = owner or default_owner()
        self.lease_s = lease_s
        self._items = items
        self._stack = stack
        self._held: set[int] = set()

    def holder(self, now: float) -> Holder:
        return Holder(self.owner, now, self.lease_s)

    def holds(self, rollout_id: int) -> bool:
        """Whether this process claimed the rollout (and has not been told it lost it)."""
        return rollout_id in self._held

    def took(self, rollout_id: int) -> None:
        """The rollout was created with this process holding its lease."""
        self._held.add(rollout_id)

    def read(self, rollout_id: int) -> Lease:
        item = self._items.get_item(rollout_key(rollout_id), f"read rollout {rollout_id}'s lease")
        return Lease.from_item(item or {})

    def claim(self, rollout_id: int, *, now: float) -> None:
        """Take the lease unless another live controller holds it."""
        try:
            self._items.update_item(
                f"claim rollout {rollout_id}",
                rollout_key(rollout_id),
                "SET #owner = :me, #expires = :expires, #renewed = :now",
                "attribute_exists(#sk) AND "
                "(attribute_not_exists(#owner) OR #owner = :me OR #expires < :now)",
                self._values(now),
            )
        except Refused as refused:
            if refused.item is None:
                raise UsageError(f"no rollout {rollout_id} for stack {self._stack}") from None
            holder = Lease.from_item(refused.item).describe()
            raise UsageError(
                f"rollout {rollout_id} of {self._stack} is already being run by {holder}",
                hint=STEER_HINT,
            ) from None
        self._held.add(rollout_id)

    def renew(self, rollout_id: int, *, now: float) -> None:
        """Extend the lease this process holds; LeaseLost when another took it over."""
        try:
            self._items.update_item(
                f"renew the lease on rollout {rollout_id}",
                rollout_key(rollout_id),
                "SET #expires = :expires, #renewed = :now",
                "#owner = :me",
                self._values(now),
            )
        except Refused as refused:
            raise self.lost(rollout_id, refused.item) from None

    def release(self, rollout_id: int) -> None:
        self._held.discard(rollout_id)
        # Refused when another controller holds it, or nobody does: nothing of ours to free.
        with contextlib.suppress(Refused):
            self._items.update_item(
                f"release rollout {rollout_id}",
                rollout_key(rollout_id),
                "REMOVE #owner, #expires",
                "#owner = :me",
                {":me": text(self.owner)},
            )

    def lost(self, rollout_id: int, item: Item | None) -> LeaseLost:
        """The error for a controller whose lease another one took; it holds it no more."""
        self._held.discard(rollout_id)
        holder = Lease.from_item(item or {})
        by = "nobody" if holder.owner is None else holder.describe()
        return LeaseLost(
            f"this controller ({self.owner}) lost its lease on rollout {rollout_id} of "
            f"{self._stack}: it is now held by {by}; nothing was saved",
            hint=f"its lease lapsed (not renewed for {self.lease_s:g}s) and another controller "
            "took over; watch the rollout with `canary status`",
        )

    def _values(self, now: float) -> dict[str, AttributeValueTypeDef]:
        return {
            ":me": text(self.owner),
            ":expires": number(now + self.lease_s),
            ":now": number(now),
        }
