# ruff: noqa: RUF002
"""The conditional rate-ratio e-process: a grid mixture of likelihood ratios on counts.

Conditional on the number of "hits" (errors, or requests slower than a threshold) in a
batch, each hit lands in the canary with probability θ0 = canary requests / all
requests when both versions have the same rate. If the canary's rate is R times
stable's, that probability is θR = θ0·R / (θ0·R + 1 − θ0). Per alternative R the
log-likelihood ratio against a null ratio r is x·ln(θR/θr) + y·ln((1−θR)/(1−θr)),
x and y the canary and stable hits of the batch. θ0 is recomputed for every batch, so a
weight change in the middle of an analysis is handled exactly.

The mixture e = Σ w_R·exp(LLR_R) is a test supermartingale under the null, so by
Ville's inequality P(e ever reaches 1/α) ≤ α however often one looks:

- harm:            null r = 1, alternatives R > 1  (canary worse -> roll back)
- non-inferiority: null r = M, alternatives R < M  (canary not worse than M -> promote)

Because the likelihood ratio is monotone in x, each is valid for the whole one-sided
null (r ≤ 1, resp. r ≥ M), not only its boundary.

Overdispersed hits (rates varying per batch, per version) break the binomial split; a
batch can then be tempered by a variance-inflation factor fixed beforehand (`update`'s
`inflation`, estimated in `dispersion`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any


def theta(theta0: float, ratio: float) -> float:
    """P(a hit is the canary's) when the canary's rate is `ratio` times stable's.

    >>> theta(0.5, 2.0)
    0.6666666666666666
    """
    return theta0 * ratio / (theta0 * ratio + 1.0 - theta0)


def batch_llr(
    canary_hits: int, stable_hits: int, theta0: float, ratio: float, null: float
) -> float:
    """Log-likelihood ratio of one batch for rate ratio `ratio` against `null`.

    A batch where one version got no requests (θ0 = 0 or 1) carries no information.

    >>> round(batch_llr(1, 0, 0.5, 2.0, 1.0), 6)  # ln((2/3)/(1/2))
    0.287682
    """
    if not 0.0 < theta0 < 1.0:
        return 0.0
    t_alt = theta(theta0, ratio)
    t_null = theta(theta0, null)
    llr = 0.0
    if canary_hits:
        llr += canary_hits * math.log(t_alt / t_null)
    if stable_hits:
        llr += stable_hits * math.log((1.0 - t_alt) / (1.0 - t_null))
    return llr


def log_sum_exp(values: Sequence[float]) -> float:
    top = max(values)
    if top == -math.inf:
        return -math.inf
    return top + math.log(sum(math.exp(v - top) for v in values))


@dataclass
class RateRatioEProcess:
    """One mixture e-process over a grid of rate ratios, tested against `null`.

    State is the per-ratio cumulative log-likelihood ratio, so the process is exactly
    reproducible from `to_dict()`.
    """

    null: float
    ratios: tuple[float, ...]
    log_weights: tuple[float, ...]
    llr: list[float]

    @classmethod
    def new(
        cls, null: float, ratios: Sequence[float], weights: Sequence[float]
    ) -> RateRatioEProcess:
        if len(ratios) != len(weights) or not ratios:
            raise ValueError("the rate-ratio grid and its weights must be non-empty and aligned")
        if any(r <= 0 for r in ratios) or any(w <= 0 for w in weights):
            raise ValueError("rate ratios and their weights must be positive")
        total = float(sum(weights))
        return cls(
            null=float(null),
            ratios=tuple(float(r) for r in ratios),
            log_weights=tuple(math.log(w / total) for w in weights),
            llr=[0.0] * len(ratios),
        )

    def update(
        self, canary_hits: int, stable_hits: int, theta0: float, inflation: float = 1.0
    ) -> list[float]:
        """Add one batch; returns that batch's log-likelihood ratio per grid ratio.

        `inflation` φ ≥ 1 tempers the batch (quasi-likelihood: its log-likelihood ratio is
        divided by φ). It must be fixed before the batch is seen (see `dispersion`): by
        Jensen, E[LR^(1/φ)] ≤ E[LR]^(1/φ) ≤ 1 where the model holds, so tempering never
        breaks validity, and under overdispersion it brings E[LR^(1/φ)] back to about 1.
        """
        if inflation < 1.0:
            raise ValueError(f"variance inflation must be >= 1, got {inflation}")
        increments = [
            batch_llr(canary_hits, stable_hits, theta0, ratio, self.null) / inflation
            for ratio in self.ratios
        ]
        for i, inc in enumerate(increments):
            self.llr[i] += inc
        return increments

    def log_e_value_without(self, llr_removed: Sequence[float]) -> float:
        """The log e-value with `llr_removed[i]` taken out of ratio i's evidence."""
        return log_sum_exp(
            [
                lw + llr - removed
                for lw, llr, removed in zip(self.log_weights, self.llr, llr_removed, strict=True)
            ]
        )

    @property
    def log_e_value(self) -> float:
        return log_sum_exp([lw + llr for lw, llr in zip(self.log_weights, self.llr, strict=True)])

    @property
    def e_value(self) -> float:
        # Capped so a very strong signal shows as a huge number, not an overflow.
        return math.exp(min(self.log_e_value, 700.0))

    def best_ratio(self) -> float:
        """The grid ratio carrying most of the evidence (shown to users as "looks like R×")."""
        scores = [lw + llr for lw, llr in zip(self.log_weights, self.llr, strict=True)]
        return self.ratios[scores.index(max(scores))]

    def to_dict(self) -> dict[str, Any]:
        return {
            "null": self.null,
            "ratios": list(self.ratios),
            "log_weights": list(self.log_weights),
            "llr": list(self.llr),
        }

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> RateRatioEProcess:
        return cls(
            null=float(doc["null"]),
            ratios=tuple(float(r) for r in doc["ratios"]),
            log_weights=tuple(float(w) for w in doc["log_weights"]),
            llr=[float(v) for v in doc["llr"]],
        )
