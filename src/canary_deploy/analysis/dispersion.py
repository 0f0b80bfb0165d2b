# ruff: noqa: RUF002, RUF003
"""Overdispersion of the control's hit counts, and the variance-inflation factor it implies.

The conditional test treats the k hits of a batch as k independent Bernoulli(θ0) labels.
When each version's hit rate varies from batch to batch beyond binomial noise (a GC
pause, a noisy neighbour), independently per version, those labels are positively
correlated within a batch and the per-batch likelihood ratio has expectation > 1 under
the null. Quasi-likelihood tempering divides each batch's log-likelihood ratio by a
variance-inflation factor φ ≥ 1 fixed *before* the batch is seen.

Model: per batch, a version's rate is drawn around its mean with intra-class correlation
ρ (Beta(p(1/ρ − 1), (1 − p)(1/ρ − 1))), so its hit count has variance
n·p(1 − p)·(1 + (n − 1)ρ). The canary's split x − θ0·k of a batch then has variance
k·θ0(1 − θ0)·(1 + ρ·(2·n_c·n_s/(n_c + n_s) − 1)) on average; we use
φ = 1 + 2ρ·n_c·n_s/(n_c + n_s) (the same inflation of var(log rate ratio), slightly
on the safe side).

ρ is estimated by the method of moments from the control's own per-batch counts against
its own pooled rate (Pearson χ²), plus a margin for its uncertainty that vanishes when
the counts look binomial (`icc_upper`). The canary does not enter: a real regression shifts
the canary's rate, never the control's, so the estimate cannot inflate and slow a true
detection; under the null the versions are exchangeable, so the control's dispersion is
the canary's.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

# How many standard errors of the estimate's *excess* spread (beyond what binomial counts
# would show) are added to ρ̂: the moment estimate is very skewed under heavy
# overdispersion (a few rare high-rate batches carry it), so early on it usually
# underestimates; binomial-looking data adds (almost) nothing. Chosen in bench/decisions.py
# on seeds independent of the reported run.
UPPER_Z = 3.0


@dataclass
class ControlDispersion:
    """Running power sums of the control's per-batch hit counts (exact to resume).

    With n_i requests and y_i hits in batch i, N = Σ n_i, Y = Σ y_i, p̂ = Y/N, the
    Pearson statistic is χ² = Σ c_i, c_i = (y_i − n_i·p̂)² / (n_i·p̂(1 − p̂)). Under the
    beta-binomial model E[χ²] ≈ (B − 1) + ρ·(N − B + 1 − Σ n_i²/N), which gives the
    moment estimate ρ̂; the upper estimate adds UPPER_Z·√(B·v) to χ², v the variance of
    the c_i beyond the ≈ 2 + 1/(n_i·p) that binomial counts show.

    >>> d = ControlDispersion()
    >>> for y in (2, 2, 2, 2):
    ...     d.add(200, y)
    >>> d.icc(), d.icc_upper()  # less spread than binomial: clipped at 0
    (0.0, 0.0)
    >>> for y in (0, 12, 0, 9):
    ...     d.add(200, y)
    >>> round(d.icc(), 4), round(d.icc_upper(), 4)
    (0.0224, 0.0586)
    """

    batches: int = 0
    requests: int = 0
    requests_squared: int = 0  # Σ n_i²
    hits: int = 0
    hits_squared_per_request: float = 0.0  # Σ y_i² / n_i
    # For the spread of the c_i: Σ y_i², Σ y_i³/n_i, Σ y_i⁴/n_i², Σ y_i·n_i, Σ 1/n_i.
    hits_squared: int = 0
    hits_cubed_per_request: float = 0.0
    hits_fourth_per_request_squared: float = 0.0
    hits_times_requests: int = 0
    inverse_requests: float = 0.0

    def add(self, requests: int, hits: int) -> None:
        """Count one batch of the control (a batch without requests carries nothing)."""
        if requests <= 0:
            return
        self.batches += 1
        self.requests += requests
        self.requests_squared += requests * requests
        self.hits += hits
        self.hits_squared_per_request += hits * hits / requests
        self.hits_squared += hits * hits
        self.hits_cubed_per_request += hits * hits * hits / requests
        self.hits_fourth_per_request_squared += hits * hits * hits * hits / (requests * requests)
        self.hits_times_requests += hits * requests
        self.inverse_requests += 1 / requests

    def icc(self) -> float:
        """Method-of-moments ρ̂ in [0, 1]; 0 until there is something to estimate from."""
        return self._estimate(0.0)

    def icc_upper(self, z: float = UPPER_Z) -> float:
        """ρ̂ plus `z` standard errors of the excess spread (what the judge tempers with)."""
        return self._estimate(z)

    def _estimate(self, z: float) -> float:
        n, y, b = self.requests, self.hits, self.batches
        if b < 2 or y <= 0 or y >= n:
            return 0.0
        p = y / n
        pq = p * (1.0 - p)
        chi2 = (self.hits_squared_per_request - p * y) / pq
        scale = n - b + 1 - self.requests_squared / n
        if scale <= 0.0:
            return 0.0
        spread = 0.0
        if z:
            # Σ c_i² expanded in powers of p̂, so the sums above suffice.
            sum_c2 = (
                self.hits_fourth_per_request_squared
                - 4 * p * self.hits_cubed_per_request
                + 6 * p * p * self.hits_squared
                - 4 * p * p * p * self.hits_times_requests
                + p * p * p * p * self.requests_squared
            ) / (pq * pq)
            variance = max(sum_c2 / b - (chi2 / b) ** 2, 0.0)
            excess = max(variance - (2 + self.inverse_requests / b / p), 0.0)
            spread = z * math.sqrt(b * excess)
        return min(1.0, max(0.0, (chi2 + spread - (b - 1)) / scale))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> ControlDispersion:
        return cls(
            batches=int(doc["batches"]),
            requests=int(doc["requests"]),
            requests_squared=int(doc["requests_squared"]),
            hits=int(doc["hits"]),
            hits_squared_per_request=float(doc["hits_squared_per_request"]),
            hits_squared=int(doc["hits_squared"]),
            hits_cubed_per_request=float(doc["hits_cubed_per_request"]),
            hits_fourth_per_request_squared=float(doc["hits_fourth_per_request_squared"]),
            hits_times_requests=int(doc["hits_times_requests"]),
            inverse_requests=float(doc["inverse_requests"]),
        )


def variance_inflation(icc: float, canary_requests: int, control_requests: int) -> float:
    """φ = 1 + 2ρ·n_c·n_s/(n_c + n_s) for one batch; 1 when either side served nothing.

    >>> variance_inflation(0.05, 10, 190)  # 5% canary share, 200 requests per look
    1.95
    >>> variance_inflation(0.0, 10, 190)
    1.0
    """
    total = canary_requests + control_requests
    if icc <= 0.0 or canary_requests <= 0 or control_requests <= 0:
        return 1.0
    return 1.0 + 2.0 * icc * canary_requests * control_requests / total
