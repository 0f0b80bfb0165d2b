# ruff: noqa: RUF002
"""JudgeConfig: every knob of the judge, frozen, validated and round-trippable to a dict."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Literal

BurstAction = Literal["hold", "report"]


@dataclass(frozen=True)
class BurstGuardConfig:
    """When is a would-be rollback suspected to rest on clustered errors.

    A "burst interval" is one look interval in which the canary had at least `min_hits`
    hits making up at least `min_rate` of its requests (a 10-second blip, not a steady
    regression, which spreads its extra errors thinly). A rollback is burst-driven when
    the evidence *without the strongest burst interval* would not reach the threshold,
    or, when batches carry per-task canary counts, when the error evidence has not yet
    reached the threshold without some canary task that served while another did too
    (leave-one-task-out, see `guard.TaskGuard`).
    `hold` turns such a rollback into CONTINUE with a warning until the evidence stands
    without the burst; `report` rolls back anyway but flags the decision.
    """

    enabled: bool = True
    min_hits: int = 5
    min_rate: float = 0.2
    action: BurstAction = "hold"

    def __post_init__(self) -> None:
        if not 0.0 <= self.min_rate <= 1.0:
            raise ValueError(f"burst guard min_rate must be in [0, 1], got {self.min_rate}")
        if self.min_hits < 1:
            raise ValueError(f"burst guard min_hits must be >= 1, got {self.min_hits}")
        if self.action not in ("hold", "report"):
            raise ValueError(f"burst guard action must be 'hold' or 'report', got {self.action!r}")


# The harm grid puts half its weight on R = 2: a mixture pays about ln(1/w) nats for the
# component nearest the truth, and 1.5x-2x is where detection is slow; 4x and 10x keep
# large regressions quick (a handful of errors). Chosen by simulation in
# bench/decisions.py; the equal-weight grid {1.25, 1.5, 2, 3, 5, 10} of DESIGN.md §6 needs
# about 20% more canary requests at 2x.
DEFAULT_HARM_RATIOS = (1.75, 2.0, 2.5, 4.0, 10.0)
DEFAULT_HARM_WEIGHTS = (1.5, 5.0, 1.0, 2.0, 0.2)
# Latency gets its own grid: a 10% slowdown moves the share of requests above stable's
# p95/p99 by only 1.2x-1.6x, below the error grid's reach.
DEFAULT_LATENCY_HARM_RATIOS = (1.25, 1.5, 2.0, 3.0, 5.0)
DEFAULT_LATENCY_HARM_WEIGHTS = (2.0, 3.0, 2.0, 1.0, 0.5)
# Non-inferiority alternatives: "as good as stable" (1.0) carries most weight.
DEFAULT_PROMOTE_RATIOS = (0.5, 0.75, 1.0, 1.2)
DEFAULT_PROMOTE_WEIGHTS = (1.0, 2.0, 4.0, 2.0)


@dataclass(frozen=True)
class JudgeConfig:
    """How the judge decides.

    - `alpha`: bound on the probability of ever rolling back a canary that is as good
      as stable, over all metrics together; `error_alpha_share` of it goes to the error
      rate, the rest is split equally among latency thresholds (all of it to errors
      when latency is not judged).
    - `harm_ratios`/`harm_weights`: the mixing distribution over "canary is R× worse"
      for the error rate; `latency_harm_*` the same for latency exceedances.
    - `promote_margin` M and `promote_alpha`: promote early once every metric shows the
      canary is not worse than M× stable, with error probability `promote_alpha`.
    - `latency_thresholds_s` (fixed, in seconds) or `latency_quantiles` of stable's
      window, to be frozen with `Judge.freeze_thresholds` before the first batch;
      `latency_quantiles = ()` (and no fixed thresholds) switches latency judging off.
    - `latency_tolerance` (relative) and `latency_tolerance_ms` (absolute): the canary is
      counted against `T * (1 + latency_tolerance) + latency_tolerance_ms` where the
      control is counted against `T`, so a canary within that tolerance is rolled back
      with probability at most its share of `alpha` (see `Judge.canary_thresholds_s`).
    - `min_canary_requests` before any verdict; `max_canary_requests` is the cap after
      which an undecided analysis is INCONCLUSIVE (a human decides, never a silent pass).
    - `max_error_rate_to_promote`: never promote a canary failing this often, even when
      stable fails as much (a relative test alone cannot see that both are broken).
    - `temper_overdispersion`: divide each batch's evidence by the variance inflation
      φ = 1 + 2ρ̂·n_c·n_s/(n_c + n_s), ρ̂ the control's overdispersion estimated from
      earlier batches (see `analysis.dispersion`); off = the plain binomial test.
    """

    alpha: float = 0.05
    error_alpha_share: float = 0.6
    harm_ratios: tuple[float, ...] = DEFAULT_HARM_RATIOS
    harm_weights: tuple[float, ...] = DEFAULT_HARM_WEIGHTS
    latency_harm_ratios: tuple[float, ...] = DEFAULT_LATENCY_HARM_RATIOS
    latency_harm_weights: tuple[float, ...] = DEFAULT_LATENCY_HARM_WEIGHTS
    promote_margin: float = 1.5
    promote_alpha: float = 0.05
    promote_ratios: tuple[float, ...] = DEFAULT_PROMOTE_RATIOS
    promote_weights: tuple[float, ...] = DEFAULT_PROMOTE_WEIGHTS
    latency_thresholds_s: tuple[float, ...] | None = None
    latency_quantiles: tuple[float, ...] = (0.95, 0.99)
    latency_tolerance: float = 0.10
    latency_tolerance_ms: float = 1.0
    min_canary_requests: int = 50
    max_canary_requests: int = 10_000
    max_error_rate_to_promote: float = 0.5
    burst_guard: BurstGuardConfig = field(default_factory=BurstGuardConfig)
    temper_overdispersion: bool = True

    def __post_init__(self) -> None:
        # Settings come from TOML: a wrong type is the user's mistake, said in their words.
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.type in ("float", "int") and (
                isinstance(value, bool) or not isinstance(value, int | float)
            ):
                raise ValueError(f"{f.name} must be a number, got {value!r}")
            if f.type == "bool" and not isinstance(value, bool):
                raise ValueError(f"{f.name} must be true or false, got {value!r}")
        for name in (*_GRIDS, "latency_quantiles", "latency_thresholds_s"):
            values = getattr(self, name)
            if values is None:
                continue
            if isinstance(values, str | bytes) or not isinstance(values, list | tuple):
                raise ValueError(
                    f"{name} must be a list of numbers, e.g. [0.95, 0.99], got {values!r}"
                )
            if any(isinstance(v, bool) or not isinstance(v, int | float) for v in values):
                raise ValueError(f"{name} must be a list of numbers, got {list(values)!r}")
            object.__setattr__(self, name, tuple(float(v) for v in values))
        self._validate()

    def _validate(self) -> None:
        for name in ("alpha", "promote_alpha"):
            value = getattr(self, name)
            if not 0.0 < value < 1.0:
                raise ValueError(f"{name} must be in (0, 1), got {value}")
        if not 0.0 < self.error_alpha_share <= 1.0:
            raise ValueError(f"error_alpha_share must be in (0, 1], got {self.error_alpha_share}")
        if self.promote_margin <= 1.0:
            raise ValueError(f"promote_margin must be > 1, got {self.promote_margin}")
        _check_grid("harm", self.harm_ratios, self.harm_weights)
        _check_grid("latency_harm", self.latency_harm_ratios, self.latency_harm_weights)
        if min(self.harm_ratios + self.latency_harm_ratios) <= 1.0:
            raise ValueError("harm_ratios must all be > 1 (they are 'canary is R times worse')")
        _check_grid("promote", self.promote_ratios, self.promote_weights)
        if max(self.promote_ratios) >= self.promote_margin:
            raise ValueError("promote_ratios must all be below promote_margin")
        if self.latency_thresholds_s is not None and any(t <= 0 for t in self.latency_thresholds_s):
            raise ValueError("latency_thresholds_s must be positive seconds")
        if any(not 0.0 < q < 1.0 for q in self.latency_quantiles):
            raise ValueError("latency_quantiles must be in (0, 1), e.g. (0.95, 0.99)")
        if not 0.0 <= self.latency_tolerance <= 10.0:
            raise ValueError(
                f"latency_tolerance must be a fraction in [0, 10], e.g. 0.1 for 10%, "
                f"got {self.latency_tolerance}"
            )
        if not 0.0 <= self.latency_tolerance_ms <= 60_000.0:
            raise ValueError(
                f"latency_tolerance_ms must be in [0, 60000] ms, got {self.latency_tolerance_ms}"
            )
        if self.min_canary_requests < 0:
            raise ValueError("min_canary_requests must not be negative")
        if self.max_canary_requests <= self.min_canary_requests:
            raise ValueError("max_canary_requests must exceed min_canary_requests")
        if not 0.0 < self.max_error_rate_to_promote <= 1.0:
            raise ValueError("max_error_rate_to_promote must be in (0, 1]")

    def metric_alphas(self, latency_metrics: int) -> tuple[float, float]:
        """The false-rollback budget of the error rate and of each latency threshold.

        >>> [round(a, 6) for a in JudgeConfig(alpha=0.05).metric_alphas(2)]
        [0.03, 0.01]
        >>> JudgeConfig(alpha=0.05).metric_alphas(0)
        (0.05, 0.0)
        """
        if not latency_metrics:
            return self.alpha, 0.0
        error_alpha = self.alpha * self.error_alpha_share
        return error_alpha, (self.alpha - error_alpha) / latency_metrics

    def to_dict(self) -> dict[str, Any]:
        doc = dataclasses.asdict(self)
        for key, value in doc.items():
            if isinstance(value, tuple):
                doc[key] = list(value)
        return doc

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> JudgeConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(doc) - known
        if unknown:
            raise ValueError(f"unknown judge settings: {', '.join(sorted(unknown))}")
        values = dict(doc)
        if "burst_guard" in values and isinstance(values["burst_guard"], dict):
            guard = dict(values["burst_guard"])
            # Retired with the task-share rule (replaced by leave-one-task-out evidence).
            guard.pop("max_task_share", None)
            values["burst_guard"] = BurstGuardConfig(**guard)
        # Lists stay lists here: __post_init__ checks and converts them (a string is not
        # silently split into characters).
        return cls(**values)


_GRIDS = (
    "harm_ratios",
    "harm_weights",
    "latency_harm_ratios",
    "latency_harm_weights",
    "promote_ratios",
    "promote_weights",
)


def _check_grid(name: str, ratios: tuple[float, ...], weights: tuple[float, ...]) -> None:
    if not ratios or len(ratios) != len(weights):
        raise ValueError(f"{name}_ratios and {name}_weights must be non-empty and equally long")
    if any(w <= 0 for w in weights):
        raise ValueError(f"{name}_weights must be positive")
