"""What the judge concludes: a verdict, and per metric the evidence behind it."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from enum import StrEnum
from typing import Any


class Verdict(StrEnum):
    CONTINUE = "continue"
    ROLLBACK = "rollback"
    PROMOTE = "promote"
    INCONCLUSIVE = "inconclusive"


@dataclass(frozen=True)
class MetricEvidence:
    """What one metric (error rate, or one latency threshold) shows so far."""

    name: str
    canary_requests: int
    canary_hits: int
    stable_requests: int
    stable_hits: int
    canary_rate: float | None
    canary_interval: tuple[float, float]
    stable_rate: float | None
    stable_interval: tuple[float, float]
    e_harm: float
    harm_threshold: float
    e_non_inferiority: float
    non_inferiority_threshold: float
    explanation: str
    burst: str | None = None

    @property
    def harmful(self) -> bool:
        return self.e_harm >= self.harm_threshold

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> MetricEvidence:
        """One metric of `Decision.to_dict`, read back."""
        values = {f.name: doc[f.name] for f in fields(cls) if f.name in doc}
        for name in ("canary_interval", "stable_interval"):
            low, high = doc[name]
            values[name] = (float(low), float(high))
        return cls(**values)

    @property
    def non_inferior(self) -> bool:
        return self.e_non_inferiority >= self.non_inferiority_threshold


@dataclass(frozen=True)
class Decision:
    verdict: Verdict
    metrics: tuple[MetricEvidence, ...]
    explanation: str
    canary_requests: int = 0
    warnings: tuple[str, ...] = field(default=())
    # What the canary was compared with: (for errors, for latency).
    controls: tuple[str, str] = ("stable", "stable")

    def to_dict(self) -> dict[str, Any]:
        doc = asdict(self)
        doc["verdict"] = str(self.verdict)
        doc["controls"] = {"errors": self.controls[0], "latency": self.controls[1]}
        for metric in doc["metrics"]:
            metric["canary_interval"] = list(metric["canary_interval"])
            metric["stable_interval"] = list(metric["stable_interval"])
        doc["metrics"] = list(doc["metrics"])
        doc["warnings"] = list(self.warnings)
        return doc

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> Decision:
        """The inverse of `to_dict` (keys it does not write are ignored); what a decision
        recorded before a field existed lacks takes that field's default."""
        controls = doc.get("controls") or {}
        return cls(
            verdict=Verdict(doc["verdict"]),
            metrics=tuple(MetricEvidence.from_dict(m) for m in doc["metrics"]),
            explanation=doc["explanation"],
            canary_requests=int(doc.get("canary_requests", 0)),
            warnings=tuple(doc.get("warnings", ())),
            controls=(controls.get("errors", "stable"), controls.get("latency", "stable")),
        )

    @property
    def harmful(self) -> tuple[str, ...]:
        """The metrics whose evidence of harm reached its threshold."""
        return tuple(m.name for m in self.metrics if m.harmful)
