"""The local stack's metrics for Prometheus: a snapshot of plain data (what the listener
served since it started, its weights and refusals, the latest rollout and its judge's
evidence) in, text exposition out. The daemon's `GET /metrics` gathers the snapshot."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

from canary_deploy.backend import GROUPS, Role
from canary_deploy.balancer.metrics import WindowStats, cumulative_buckets, latency_sum
from canary_deploy.observability.exposition import Family, Sample, histogram, render
from canary_deploy.rollout.model import Rollout
from canary_deploy.weights import Weights


@dataclass(frozen=True)
class EValue:
    """One metric's evidence from the judge's latest decision."""

    metric: str  # "errors", or a latency threshold ("slower than 120 ms (stable p95)")
    harm: float
    harm_threshold: float
    non_inferiority: float
    non_inferiority_threshold: float


@dataclass(frozen=True)
class RolloutSnapshot:
    """The latest rollout: where it is, and (while it is not over) its e-values."""

    id: int
    status: str
    step: int  # 1-based, as `canary status` shows it
    steps: int
    active: bool
    e_values: tuple[EValue, ...] = ()

    @classmethod
    def of(cls, rollout: Rollout) -> RolloutSnapshot:
        active = not rollout.status.terminal
        recorded = rollout.last_decision
        metrics = () if recorded is None else recorded.decision.metrics
        e_values = tuple(
            EValue(
                m.name, m.e_harm, m.harm_threshold, m.e_non_inferiority, m.non_inferiority_threshold
            )
            for m in metrics
        )
        return cls(
            id=rollout.id,
            status=str(rollout.status),
            step=rollout.step + 1,
            steps=len(rollout.plan.steps),
            active=active,
            e_values=e_values if active else (),
        )


@dataclass(frozen=True)
class StackSnapshot:
    """Everything `/metrics` shows; counters are since the data plane started."""

    groups: Mapping[Role, WindowStats]
    weights: Weights
    rejections: Mapping[str, int] = field(default_factory=dict)  # status -> count
    rollout: RolloutSnapshot | None = None
    # False when the rollout state could not be read: its metrics are left out (no
    # `canary_rollout_active 0` that would be a guess).
    rollout_known: bool = True


# Each response a client got for a group, by class: the target's status class, or the
# balancer's own error (ALB's HTTPCode_ELB_5XX, which CloudWatch cannot give per group).
_CLASSES: tuple[tuple[str, str], ...] = (
    ("2xx", "status_2xx"),
    ("3xx", "status_3xx"),
    ("4xx", "status_4xx"),
    ("5xx", "status_5xx"),
    ("balancer_502", "balancer_502"),
    ("balancer_503", "balancer_503"),
    ("balancer_504", "balancer_504"),
)


def render_stack(snapshot: StackSnapshot) -> str:
    """The snapshot as Prometheus text."""
    rollout = _rollout(snapshot.rollout) if snapshot.rollout_known else iter(())
    return render([*_traffic(snapshot), *_listener(snapshot), *rollout])


def _traffic(snapshot: StackSnapshot) -> Iterator[Family]:
    groups = [(g, snapshot.groups[g]) for g in GROUPS if g in snapshot.groups]
    yield Family(
        "canary_requests_total",
        "counter",
        "Requests the listener routed to a target group.",
        [Sample({"group": g}, s.requests) for g, s in groups],
    )
    yield Family(
        "canary_responses_total",
        "counter",
        "Responses by class: the target's status class (2xx..5xx), or the balancer's own "
        "502/503/504 for the group.",
        [
            Sample({"group": g, "class": name}, getattr(s, attr))
            for g, s in groups
            for name, attr in _CLASSES
        ],
    )
    yield Family(
        "canary_errors_total",
        "counter",
        "Errors as the judge counts them: target 5xx plus the balancer's 502/503/504.",
        [Sample({"group": g}, s.errors) for g, s in groups],
    )
    yield Family(
        "canary_target_response_seconds",
        "histogram",
        "Target response time (as ALB's TargetResponseTime); buckets within 1/16, the sum "
        "from bucket midpoints.",
        [
            sample
            for g, s in groups
            for sample in histogram(
                {"group": g}, cumulative_buckets(s.histogram), latency_sum(s.histogram)
            )
        ],
    )


def _listener(snapshot: StackSnapshot) -> Iterator[Family]:
    yield Family(
        "canary_weight_ratio",
        "gauge",
        "The listener's weight of each target group, 0..1 (0.95 = 95%).",
        [Sample({"group": g}, snapshot.weights.of(g) / 100) for g in GROUPS],
    )
    yield Family(
        "canary_rejected_requests_total",
        "counter",
        "Requests the balancer answered itself, booked on no target group, by status.",
        [Sample({"code": code}, n) for code, n in sorted(snapshot.rejections.items())],
    )


def _rollout(rollout: RolloutSnapshot | None) -> Iterator[Family]:
    yield Family(
        "canary_rollout_active",
        "gauge",
        "1 while a rollout runs (not yet promoted or rolled back), else 0.",
        [Sample({}, 1 if rollout is not None and rollout.active else 0)],
    )
    if rollout is None:
        return
    labels = {"rollout": str(rollout.id)}
    yield Family(
        "canary_rollout_info",
        "gauge",
        "The latest rollout and its status (always 1).",
        [Sample({**labels, "status": rollout.status}, 1)],
    )
    yield Family(
        "canary_rollout_step",
        "gauge",
        "The latest rollout's step (1-based).",
        [Sample(labels, rollout.step)],
    )
    yield Family(
        "canary_rollout_steps",
        "gauge",
        "How many steps the latest rollout has.",
        [Sample(labels, rollout.steps)],
    )
    yield from _judge(rollout, labels)


def _judge(rollout: RolloutSnapshot, labels: dict[str, str]) -> Iterator[Family]:
    """The judge's latest e-values and their thresholds, per metric and test."""
    yield Family(
        "canary_judge_e_value",
        "gauge",
        "The judge's e-value per metric in its latest decision: `harm` rolls back and "
        "`non_inferiority` promotes when it reaches its threshold.",
        [
            Sample({**labels, "metric": e.metric, "test": test}, value)
            for e in rollout.e_values
            for test, value in (("harm", e.harm), ("non_inferiority", e.non_inferiority))
        ],
    )
    yield Family(
        "canary_judge_e_value_threshold",
        "gauge",
        "The e-value at which each test decides (1/alpha).",
        [
            Sample({**labels, "metric": e.metric, "test": test}, value)
            for e in rollout.e_values
            for test, value in (
                ("harm", e.harm_threshold),
                ("non_inferiority", e.non_inferiority_threshold),
            )
        ],
    )
