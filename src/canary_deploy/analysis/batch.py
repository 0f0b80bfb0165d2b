"""The counts of one look interval, per role, validated on construction."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any


def _check_count(where: str, name: str, value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{where}{name} must be an integer count, got {value!r}")
    if value < 0:
        raise ValueError(f"{where}{name} must not be negative, got {value}")


@dataclass(frozen=True, slots=True)
class TaskCounts:
    """What one task (one ECS task / local process) served in the interval."""

    requests: int
    errors: int

    def __post_init__(self) -> None:
        _check_count("task: ", "requests", self.requests)
        _check_count("task: ", "errors", self.errors)
        if self.errors > self.requests:
            raise ValueError(
                f"task: errors ({self.errors}) cannot exceed requests ({self.requests})"
            )


@dataclass(frozen=True, slots=True)
class RoleBatch:
    """One role's counts in one interval.

    `slower_than[i]` is the number of requests slower than the judge's i-th frozen
    latency threshold; `tasks` optionally breaks the counts down per task so the burst
    guard can see one bad task.
    """

    requests: int
    errors: int
    slower_than: tuple[int, ...] = ()
    tasks: Mapping[str, TaskCounts] = field(default_factory=dict)
    role: str = ""

    def __post_init__(self) -> None:
        where = f"{self.role}: " if self.role else ""
        _check_count(where, "requests", self.requests)
        _check_count(where, "errors", self.errors)
        if self.errors > self.requests:
            raise ValueError(
                f"{where}errors ({self.errors}) cannot exceed requests ({self.requests})"
            )
        object.__setattr__(self, "slower_than", tuple(self.slower_than))
        for i, slow in enumerate(self.slower_than):
            _check_count(where, f"slower_than[{i}]", slow)
            if slow > self.requests:
                raise ValueError(
                    f"{where}slower_than[{i}] ({slow}) cannot exceed requests ({self.requests})"
                )
        object.__setattr__(self, "tasks", MappingProxyType(dict(self.tasks)))

    def to_dict(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "errors": self.errors,
            "slower_than": list(self.slower_than),
            "tasks": {
                k: {"requests": t.requests, "errors": t.errors} for k, t in self.tasks.items()
            },
        }


@dataclass(frozen=True, slots=True)
class Batch:
    """Counts observed in one interval per group (the judge's only input).

    `baseline`, when the rollout runs one, is stable's version on tasks started with the
    canary's and given the canary's share: the like-for-like control. The canary's
    `slower_than` may be counted against its own (tolerance-widened) thresholds; the
    controls' against the judge's frozen ones.
    """

    stable: RoleBatch
    canary: RoleBatch
    baseline: RoleBatch | None = None
    # False during a warm-up or just after a weight change (decided by the clock): the
    # batch's latency counts are not evidence either way; errors still are.
    latency_judged: bool = True

    def __post_init__(self) -> None:
        controls = [("stable", self.stable)]
        if self.baseline is not None:
            controls.append(("baseline", self.baseline))
        for name, control in controls:
            if len(control.slower_than) != len(self.canary.slower_than):
                raise ValueError(
                    f"{name} and canary must report slower_than for the same thresholds, got "
                    f"{len(control.slower_than)} and {len(self.canary.slower_than)} counts"
                )

    @classmethod
    def of(
        cls,
        stable: tuple[int, int] | tuple[int, int, tuple[int, ...]],
        canary: tuple[int, int] | tuple[int, int, tuple[int, ...]],
    ) -> Batch:
        """Shorthand: `Batch.of((19_000, 190), (1_000, 12))` = (requests, errors[, slower])."""
        return cls(stable=_role_batch("stable", stable), canary=_role_batch("canary", canary))


def _role_batch(role: str, counts: tuple[int, int] | tuple[int, int, tuple[int, ...]]) -> RoleBatch:
    slower = counts[2] if len(counts) == 3 else ()
    return RoleBatch(counts[0], counts[1], slower_than=slower, role=role)
