"""The traffic split between the stable and canary target groups, as a value type."""

from __future__ import annotations

from dataclasses import dataclass

from canary_deploy.errors import UsageError

# ALB forward-action weights are integers 0..999 (relative, not percentages).
ALB_MAX_WEIGHT = 999


@dataclass(frozen=True, slots=True)
class Weights:
    """Percent of requests sent to each target group; always sums to 100.

    >>> Weights(95, 5).canary_share
    0.05
    """

    stable: int
    canary: int

    def __post_init__(self) -> None:
        for name, value in (("stable", self.stable), ("canary", self.canary)):
            if isinstance(value, bool) or not isinstance(value, int):
                raise UsageError(f"{name} weight must be an integer, got {value!r}")
            if not 0 <= value <= 100:
                raise UsageError(f"{name} weight must be between 0 and 100, got {value}")
        total = self.stable + self.canary
        if total != 100:
            raise UsageError(
                f"weights must sum to 100, got {self.stable} + {self.canary} = {total}",
                hint="e.g. `canary set-weights 75 25`",
            )

    @classmethod
    def parse(cls, stable: str | int, canary: str | int) -> Weights:
        """Build from user input (strings allowed), with a clear error for non-integers."""
        values: list[int] = []
        for name, raw in (("stable", stable), ("canary", canary)):
            try:
                values.append(int(str(raw).strip()))
            except ValueError:
                raise UsageError(f"{name} weight must be an integer, got {raw!r}") from None
        return cls(values[0], values[1])

    @classmethod
    def from_alb(cls, stable: int, canary: int) -> Weights:
        """Convert ALB relative weights (0..999 each) to percent, rounding to sum 100.

        >>> Weights.from_alb(190, 10)
        Weights(stable=95, canary=5)
        """
        total = stable + canary
        if total <= 0:
            # ALB with both weights 0 sends nothing anywhere; show it as all-stable intent.
            return cls(100, 0)
        canary_pct = round(100 * canary / total)
        return cls(100 - canary_pct, canary_pct)

    @property
    def canary_share(self) -> float:
        return self.canary / 100

    def __str__(self) -> str:
        return f"{self.stable}/{self.canary}"


STABLE_ONLY = Weights(100, 0)
