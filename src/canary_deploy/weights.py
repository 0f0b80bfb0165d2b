"""The traffic split between the stable, canary and baseline target groups, as a value type."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from canary_deploy.errors import UsageError

# ALB forward-action weights are integers 0..999 (relative, not percentages).
ALB_MAX_WEIGHT = 999

# A role: one of the three target groups and the service behind it.
Role = Literal["stable", "canary", "baseline"]
_HINT = "weights are whole percents 0-100 that sum to 100, e.g. 90 10"


@dataclass(frozen=True, slots=True)
class Weights:
    """Percent of requests sent to each target group; always sums to 100.

    `baseline` is the third group a rollout runs beside the canary (stable's image, the
    canary's size and share); it is 0 outside rollouts, and the seed's two-number
    interface (`set-weights S C`) never sets it.

    >>> Weights(95, 5).canary_share
    0.05
    >>> str(Weights(90, 5, 5))
    '90/5/5'
    """

    stable: int
    canary: int
    baseline: int = 0

    def __post_init__(self) -> None:
        for name, value in (
            ("stable", self.stable),
            ("canary", self.canary),
            ("baseline", self.baseline),
        ):
            if isinstance(value, bool) or not isinstance(value, int):
                raise UsageError(f"{name} weight must be an integer, got {value!r}", hint=_HINT)
            if not 0 <= value <= 100:
                raise UsageError(
                    f"{name} weight must be between 0 and 100, got {value}", hint=_HINT
                )
        total = self.stable + self.canary + self.baseline
        if total != 100:
            shown = f"{self.stable} + {self.canary}"
            if self.baseline:
                shown += f" + {self.baseline} (baseline)"
            raise UsageError(f"weights must sum to 100, got {shown} = {total}", hint=_HINT)

    @classmethod
    def parse(cls, stable: str | int, canary: str | int) -> Weights:
        """Build from user input (strings allowed), with a clear error for non-integers."""
        values: list[int] = []
        for name, raw in (("stable", stable), ("canary", canary)):
            try:
                values.append(int(str(raw).strip()))
            except ValueError:
                raise UsageError(
                    f"{name} weight must be an integer, got {raw!r}",
                    hint=_HINT,
                ) from None
        return cls(values[0], values[1])

    @classmethod
    def from_alb(cls, stable: int, canary: int, baseline: int = 0) -> Weights | None:
        """Convert ALB relative weights (0..999 each) to percent, rounding to sum 100;
        None when every weight is 0 (no split: the listener forwards nothing).

        >>> Weights.from_alb(190, 10)
        Weights(stable=95, canary=5, baseline=0)
        >>> Weights.from_alb(90, 5, 5)
        Weights(stable=90, canary=5, baseline=5)
        >>> print(Weights.from_alb(0, 0, 0))
        None
        """
        total = stable + canary + baseline
        if total <= 0:
            return None
        canary_pct = round(100 * canary / total)
        baseline_pct = min(round(100 * baseline / total), 100 - canary_pct)
        return cls(100 - canary_pct - baseline_pct, canary_pct, baseline_pct)

    def of(self, group: Role) -> int:
        """The weight of one target group, by name."""
        if group == "stable":
            return self.stable
        return self.canary if group == "canary" else self.baseline

    @property
    def canary_share(self) -> float:
        return self.canary / 100

    def to_dict(self) -> dict[str, int]:
        return {"stable": self.stable, "canary": self.canary, "baseline": self.baseline}

    @classmethod
    def from_dict(cls, doc: dict[str, object]) -> Weights:
        """The inverse of `to_dict`; a missing `baseline` (older state) is 0."""
        return cls(
            int(str(doc["stable"])), int(str(doc["canary"])), int(str(doc.get("baseline", 0)))
        )

    def __str__(self) -> str:
        if self.baseline:
            return f"{self.stable}/{self.canary}/{self.baseline}"
        return f"{self.stable}/{self.canary}"


STABLE_ONLY = Weights(100, 0)
