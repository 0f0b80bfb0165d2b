"""`deploy --dry-run`: what a deploy would change, as values every target can return."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any, Literal, Protocol, runtime_checkable

from canary_deploy.backend import Progress, ReleaseSpec


@dataclass(frozen=True)
class ParameterChange:
    """One setting the deploy would change (`before` is None where the stack is new)."""

    name: str
    before: str | None
    after: str

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "before": self.before, "after": self.after}


@dataclass(frozen=True)
class ResourceChange:
    """One resource CloudFormation would add, modify or remove, and what causes it."""

    action: str  # CloudFormation's words: Add, Modify, Remove, Import, Dynamic
    logical_id: str
    resource_type: str
    # Modify only: "True" (replaced: a new physical resource), "False", or "Conditional".
    replacement: str | None = None
    # "ContainerDefinitions <- parameter ImageURICanary", one per cause.
    causes: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "action": self.action,
            "logical_id": self.logical_id,
            "resource_type": self.resource_type,
            "replacement": self.replacement,
            "causes": list(self.causes),
        }


@dataclass(frozen=True)
class Preview:
    """A deploy's changes, computed without making them.

    `resources` is None when the target could not compute them (`not_computed` says why;
    the parameter changes are still ours to compute)."""

    target: str
    stack_name: str
    operation: Literal["create", "update"]
    parameters: tuple[ParameterChange, ...]
    resources: tuple[ResourceChange, ...] | None = ()
    not_computed: str | None = None
    notes: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "dry_run": True,
            "target": self.target,
            "stack_name": self.stack_name,
            "operation": self.operation,
            "parameters": [p.to_dict() for p in self.parameters],
            "resources": None if self.resources is None else [r.to_dict() for r in self.resources],
            "not_computed": self.not_computed,
            "notes": list(self.notes),
        }


@runtime_checkable
class Previewable(Protocol):
    """A target that can say what `deploy(spec)` would change, changing nothing."""

    def preview(self, spec: ReleaseSpec, progress: Progress) -> Preview:
        """The changes `deploy(spec, progress)` would make; nothing is changed."""
        ...


def parameter_changes(
    before: Mapping[str, str] | None, after: Mapping[str, str | None]
) -> tuple[ParameterChange, ...]:
    """The values in `after` that differ from `before` (None in `after`: kept as is).

    >>> parameter_changes({"A": "1", "B": "2"}, {"A": "1", "B": "3", "C": None})
    (ParameterChange(name='B', before='2', after='3'),)
    >>> parameter_changes(None, {"A": "1"})
    (ParameterChange(name='A', before=None, after='1'),)
    """
    old = before or {}
    return tuple(
        ParameterChange(name, old.get(name), value)
        for name, value in after.items()
        if value is not None and old.get(name) != value
    )


# Not what the stack runs: how to deploy (`check_images`), or a rollout's own (the
# baseline's task count).
_NOT_COMPARED = ("check_images", "desired_count_baseline")


def spec_changes(before: ReleaseSpec | None, after: ReleaseSpec) -> tuple[ParameterChange, ...]:
    """What deploying `after` over a stack that runs `before` (None: no stack) changes.
    A running stack keeps its live weights, so they are a change only for a new one.

    >>> from canary_deploy.weights import Weights
    >>> old = ReleaseSpec("builtin:v1", "builtin:v2", 2, 1, 8000, Weights(95, 5))
    >>> spec_changes(old, ReleaseSpec("builtin:v1", "builtin:v3", 2, 2, 8000, Weights(50, 50)))
    (ParameterChange(name='image_canary', before='builtin:v2', after='builtin:v3'), \
ParameterChange(name='desired_count_canary', before='1', after='2'))
    """
    skipped = (*_NOT_COMPARED, "weights") if before is not None else _NOT_COMPARED
    values = {f.name: getattr(after, f.name) for f in fields(after) if f.name not in skipped}
    old = None if before is None else {name: _shown(getattr(before, name)) for name in values}
    return parameter_changes(old, {name: _shown(value) for name, value in values.items()})


def _shown(value: object) -> str:
    return "-" if value is None else str(value)
