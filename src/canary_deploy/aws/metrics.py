"""CloudWatch `AWS/ApplicationELB` metrics per target group, as a MetricsSource."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from canary_deploy.aws.errors import ErrorScope
from canary_deploy.aws.outputs import StackOutputs
from canary_deploy.backend import Role, RoleCounts, TrafficStatus

if TYPE_CHECKING:
    from mypy_boto3_cloudwatch import CloudWatchClient
    from mypy_boto3_cloudwatch.type_defs import (
        DimensionTypeDef,
        MetricDataQueryTypeDef,
        MetricStatTypeDef,
    )

NAMESPACE = "AWS/ApplicationELB"
PERIOD_SECONDS = 60
# CloudWatch's newest minute is still filling up: status reads windows ending this far back.
LAG_SECONDS = 60
STATUS_WINDOW_SECONDS = 300


def arn_suffix(arn: str, marker: str) -> str:
    """The CloudWatch dimension value: the ARN from `marker` on.

    >>> arn_suffix("arn:aws:elasticloadbalancing:us-east-1:1:loadbalancer/app/a/b", "app/")
    'app/a/b'
    """
    index = arn.find(marker)
    return arn[index:] if index >= 0 else arn


def _stat_name(q: float) -> str:
    """CloudWatch percentile statistic for a quantile: 0.95 -> "p95", 0.999 -> "p99.9"."""
    return f"p{round(q * 100, 4):g}"


@dataclass(frozen=True)
class _Series:
    total: float
    points: int


# Per group, summed over a window: what each `_error_queries` id reads.
_ANSWERED = ("t2", "t3", "t4", "t5")
_ERROR_METRICS = {
    "req": "RequestCount",
    "t2": "HTTPCode_Target_2XX_Count",
    "t3": "HTTPCode_Target_3XX_Count",
    "t4": "HTTPCode_Target_4XX_Count",
    "t5": "HTTPCode_Target_5XX_Count",
    "conn": "TargetConnectionErrorCount",
}


def group_errors(totals: dict[str, float]) -> int:
    """A group's errors over a window: its targets' 5xx, plus the requests routed to it
    that no target answered (the balancer's 502/503/504 for that group), at least its
    failed target connections.

    >>> group_errors({"req": 1000, "t2": 940, "t3": 0, "t4": 20, "t5": 10, "conn": 0})
    40
    >>> group_errors({"req": 100, "t2": 100, "t5": 0, "conn": 3})  # retried elsewhere
    3
    >>> group_errors({"req": 99, "t2": 100, "t5": 0})  # minute edges: never negative
    0
    """
    answered = sum(totals.get(k, 0.0) for k in _ANSWERED)
    unanswered = max(0.0, totals.get("req", 0.0) - answered, totals.get("conn", 0.0))
    return round(totals.get("t5", 0.0) + unanswered)


class CloudWatchMetrics:
    """Requests, errors and response-time statistics per target group from CloudWatch
    (stable, canary and, on a stack that has it, baseline).

    An error is a target's 5xx or a request the balancer routed to the group that got
    no answer from a target (see `group_errors`): ALB's own 502/504 for a crashed or
    hanging task carry no TargetGroup dimension in `HTTPCode_ELB_5XX_Count`, but the
    request is in the group's `RequestCount` and in none of its `HTTPCode_Target_*`.
    """

    def __init__(
        self,
        client: CloudWatchClient,
        outputs: Callable[[], StackOutputs],
        errors: ErrorScope,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._cw = client
        self._outputs = outputs
        self._errors = errors
        self._clock = clock

    def _dimensions(self, role: Role) -> list[DimensionTypeDef]:
        out = self._outputs()
        tg_arn = out.target_group_arn(role)
        return [
            {"Name": "LoadBalancer", "Value": arn_suffix(out.load_balancer_arn, "app/")},
            {"Name": "TargetGroup", "Value": arn_suffix(tg_arn, "targetgroup/")},
        ]

    def _query(
        self, qid: str, role: Role, metric: str, stat: str, period: int
    ) -> MetricDataQueryTypeDef:
        metric_stat: MetricStatTypeDef = {
            "Metric": {
                "Namespace": NAMESPACE,
                "MetricName": metric,
                "Dimensions": self._dimensions(role),
            },
            "Period": period,
            "Stat": stat,
        }
        return {"Id": qid, "MetricStat": metric_stat, "ReturnData": True}

    def _error_queries(self, role: Role, period: int) -> list[MetricDataQueryTypeDef]:
        """Requests, target answers by class and failed connections: what `group_errors`
        needs (ids `<group>_req`, `<group>_t5`, ...)."""
        return [
            self._query(f"{role}_{key}", role, metric, "Sum", period)
            for key, metric in _ERROR_METRICS.items()
        ]

    @staticmethod
    def _error_count(data: dict[str, _Series], role: Role) -> int:
        return group_errors({key: data[f"{role}_{key}"].total for key in _ERROR_METRICS})

    def _fetch(
        self, queries: list[MetricDataQueryTypeDef], start: float, end: float
    ) -> dict[str, _Series]:
        result: dict[str, _Series] = {q["Id"]: _Series(0.0, 0) for q in queries}
        kwargs = {
            "MetricDataQueries": queries,
            "StartTime": datetime.fromtimestamp(start, UTC),
            "EndTime": datetime.fromtimestamp(end, UTC),
        }
        token: str | None = None
        with self._errors("read CloudWatch metrics"):
            while True:
                page = (
                    self._cw.get_metric_data(**kwargs, NextToken=token)  # type: ignore[arg-type]
                    if token
                    else self._cw.get_metric_data(**kwargs)  # type: ignore[arg-type]
                )
                for series in page.get("MetricDataResults", []):
                    qid = series.get("Id", "")
                    values = series.get("Values", [])
                    prev = result.get(qid, _Series(0.0, 0))
                    result[qid] = _Series(prev.total + sum(values), prev.points + len(values))
                token = page.get("NextToken")
                if not token:
                    return result

    def counts(
        self, start: float, end: float, thresholds_s: Sequence[float] = ()
    ) -> dict[Role, RoleCounts]:
        """Requests, target 5xx and, per threshold, requests slower than it.

        "Slower than T" is SampleCount minus the trimmed count `TC(:T)` of
        TargetResponseTime (requests that took at most T seconds).
        """
        groups = self._outputs().groups
        queries: list[MetricDataQueryTypeDef] = []
        for v in groups:
            queries.extend(self._error_queries(v, PERIOD_SECONDS))
            if thresholds_s:
                queries.append(
                    self._query(f"{v}_n", v, "TargetResponseTime", "SampleCount", PERIOD_SECONDS)
                )
            for i, threshold in enumerate(thresholds_s):
                queries.append(
                    self._query(
                        f"{v}_le{i}", v, "TargetResponseTime", f"TC(:{threshold:g})", PERIOD_SECONDS
                    )
                )
        data = self._fetch(queries, start, end)
        result: dict[Role, RoleCounts] = {}
        for v in groups:
            samples = data[f"{v}_n"].total if thresholds_s else 0.0
            slower = tuple(
                max(0, round(samples - data[f"{v}_le{i}"].total)) for i in range(len(thresholds_s))
            )
            result[v] = RoleCounts(
                requests=round(data[f"{v}_req"].total),
                errors=self._error_count(data, v),
                slower_than=slower,
            )
        return result

    def quantiles(
        self, role: Role, start: float, end: float, qs: Sequence[float]
    ) -> tuple[float | None, ...]:
        """TargetResponseTime percentiles over the whole window (one period spans it)."""
        period = max(PERIOD_SECONDS, math.ceil((end - start) / PERIOD_SECONDS) * PERIOD_SECONDS)
        queries = [
            self._query(f"q{i}", role, "TargetResponseTime", _stat_name(q), period)
            for i, q in enumerate(qs)
        ]
        data = self._fetch(queries, start, end)
        return tuple(
            data[f"q{i}"].total if data[f"q{i}"].points == 1 else None for i in range(len(qs))
        )

    def traffic(self, window_s: int = STATUS_WINDOW_SECONDS) -> dict[Role, TrafficStatus | None]:
        """What each group served in the last `window_s` (ending a minute ago), if known."""
        end = (self._clock() - LAG_SECONDS) // PERIOD_SECONDS * PERIOD_SECONDS
        start = end - window_s
        groups = self._outputs().groups
        queries: list[MetricDataQueryTypeDef] = []
        for v in groups:
            queries.extend(self._error_queries(v, window_s))
            for name, stat in (("p50", "p50"), ("p95", "p95"), ("p99", "p99")):
                queries.append(self._query(f"{v}_{name}", v, "TargetResponseTime", stat, window_s))
        data = self._fetch(queries, start, end)
        result: dict[Role, TrafficStatus | None] = {}
        for v in groups:
            if data[f"{v}_req"].points == 0:
                result[v] = None
                continue

            def pick(name: str, role: Role = v) -> float | None:
                series = data[f"{role}_{name}"]
                return series.total if series.points == 1 else None

            result[v] = TrafficStatus(
                window_seconds=window_s,
                requests=round(data[f"{v}_req"].total),
                errors=self._error_count(data, v),
                p50_s=pick("p50"),
                p95_s=pick("p95"),
                p99_s=pick("p99"),
            )
        return result
