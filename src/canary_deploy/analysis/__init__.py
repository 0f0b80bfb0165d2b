"""Anytime-valid canary analysis: pure counts in, verdict and evidence out."""

from canary_deploy.analysis.batch import Batch, RoleBatch, TaskCounts
from canary_deploy.analysis.config import BurstGuardConfig, JudgeConfig
from canary_deploy.analysis.eprocess import RateRatioEProcess
from canary_deploy.analysis.evidence import Decision, MetricEvidence, Verdict
from canary_deploy.analysis.intervals import wilson
from canary_deploy.analysis.judge import Judge

__all__ = [
    "Batch",
    "BurstGuardConfig",
    "Decision",
    "Judge",
    "JudgeConfig",
    "MetricEvidence",
    "RateRatioEProcess",
    "RoleBatch",
    "TaskCounts",
    "Verdict",
    "wilson",
]
