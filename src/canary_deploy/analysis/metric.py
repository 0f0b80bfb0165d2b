"""One judged metric (errors, or one latency threshold): running totals, its harm and
non-inferiority e-processes, the burst record and the control's dispersion."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from canary_deploy.analysis.config import BurstGuardConfig
from canary_deploy.analysis.dispersion import ControlDispersion, variance_inflation
from canary_deploy.analysis.eprocess import RateRatioEProcess


@dataclass
class Metric:
    """Running totals and both e-processes of one metric."""

    name: str
    harm_alpha: float
    harm: RateRatioEProcess
    non_inferiority: RateRatioEProcess
    canary_requests: int = 0
    canary_hits: int = 0
    stable_requests: int = 0
    stable_hits: int = 0
    # Burst guard: per harm ratio, the largest contribution of one interval with at
    # least `min_hits` canary hits, and the hits of the biggest such interval.
    max_burst_llr: list[float] = field(default_factory=list)
    max_burst_hits: int = 0
    # Overdispersion: the control's per-batch hit counts so far, and the variance
    # inflation φ the last batch was tempered with (shown as evidence).
    control_dispersion: ControlDispersion = field(default_factory=ControlDispersion)
    inflation: float = 1.0

    def observe(
        self,
        stable_requests: int,
        stable_hits: int,
        canary_requests: int,
        canary_hits: int,
        burst: BurstGuardConfig,
        *,
        temper: bool = True,
    ) -> None:
        total = stable_requests + canary_requests
        theta0 = canary_requests / total if total else 0.0
        # φ comes from earlier batches only (predictable), so the tempered increments
        # stay a supermartingale's; this batch's control counts are added afterwards.
        icc = self.control_dispersion.icc_upper() if temper else 0.0
        self.inflation = variance_inflation(icc, canary_requests, stable_requests)
        increments = self.harm.update(canary_hits, stable_hits, theta0, self.inflation)
        if not self.max_burst_llr:
            self.max_burst_llr = [0.0] * len(increments)
        if canary_hits >= max(burst.min_hits, burst.min_rate * canary_requests):
            self.max_burst_llr = [
                max(a, b) for a, b in zip(self.max_burst_llr, increments, strict=True)
            ]
            self.max_burst_hits = max(self.max_burst_hits, canary_hits)
        self.non_inferiority.update(canary_hits, stable_hits, theta0, self.inflation)
        self.control_dispersion.add(stable_requests, stable_hits)
        self.canary_requests += canary_requests
        self.canary_hits += canary_hits
        self.stable_requests += stable_requests
        self.stable_hits += stable_hits

    def to_dict(self) -> dict[str, Any]:
        doc = asdict(self)
        doc["harm"] = self.harm.to_dict()
        doc["non_inferiority"] = self.non_inferiority.to_dict()
        doc["control_dispersion"] = self.control_dispersion.to_dict()
        return doc

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> Metric:
        values = dict(doc)
        values["harm"] = RateRatioEProcess.from_dict(doc["harm"])
        values["non_inferiority"] = RateRatioEProcess.from_dict(doc["non_inferiority"])
        # A state saved before the dispersion estimate existed starts estimating now.
        if "control_dispersion" in doc:
            values["control_dispersion"] = ControlDispersion.from_dict(doc["control_dispersion"])
        return cls(**values)
