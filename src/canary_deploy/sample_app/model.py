"""A small real model: a logistic scorer whose coefficients differ between v1 and v2."""

from __future__ import annotations

import math
from dataclasses import dataclass

from pydantic import BaseModel, Field


class PredictRequest(BaseModel):
    """One applicant to score; bounds reject nonsense with a 422 before the model runs."""

    age: float = Field(ge=0, le=120)
    income: float = Field(ge=0, description="yearly income, thousands")
    debt_ratio: float = Field(ge=0, le=10)
    late_payments: int = Field(default=0, ge=0, le=100)


class PredictResponse(BaseModel):
    version: str
    probability: float
    label: int


@dataclass(frozen=True)
class LogisticScorer:
    """p = sigmoid(bias + w . x); `label` is p >= threshold."""

    bias: float
    age: float
    income: float
    debt_ratio: float
    late_payments: float
    threshold: float = 0.5

    def probability(self, req: PredictRequest) -> float:
        z = (
            self.bias
            + self.age * req.age
            + self.income * req.income
            + self.debt_ratio * req.debt_ratio
            + self.late_payments * req.late_payments
        )
        # Split by sign so exp() never overflows for extreme inputs.
        if z >= 0:
            return 1.0 / (1.0 + math.exp(-z))
        e = math.exp(z)
        return e / (1.0 + e)

    def predict(self, version: str, req: PredictRequest) -> PredictResponse:
        p = self.probability(req)
        return PredictResponse(
            version=version, probability=round(p, 6), label=int(p >= self.threshold)
        )


# v2 is "retrained": it weighs late payments more and income less, so the two
# versions disagree on some inputs, as a real model update would.
MODELS: dict[str, LogisticScorer] = {
    "v1": LogisticScorer(bias=-1.0, age=-0.01, income=-0.02, debt_ratio=1.2, late_payments=0.4),
    "v2": LogisticScorer(bias=-1.3, age=-0.015, income=-0.012, debt_ratio=1.1, late_payments=0.7),
}


def model_for(version: str) -> LogisticScorer:
    """The scorer for a version; unknown versions get v1's coefficients."""
    return MODELS.get(version, MODELS["v1"])
