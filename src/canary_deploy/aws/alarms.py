"""CloudWatch alarms by name (DescribeAlarms), the rollout's `AlarmSource` on AWS."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from canary_deploy.aws.errors import ErrorScope
from canary_deploy.rollout.alarms import AlarmState

if TYPE_CHECKING:
    from mypy_boto3_cloudwatch import CloudWatchClient

# DescribeAlarms takes at most 100 names (and answers at most 100 alarms) per call.
MAX_NAMES = 100


class CloudWatchAlarms:
    """Metric and composite alarms, one DescribeAlarms call per 100 names."""

    def __init__(self, client: CloudWatchClient, errors: ErrorScope) -> None:
        self._client = client
        self._errors = errors

    def alarm_states(self, names: Sequence[str]) -> dict[str, AlarmState]:
        """The state of each named alarm that exists; a name with no alarm is absent."""
        found: dict[str, AlarmState] = {}
        unique = list(dict.fromkeys(names))
        for start in range(0, len(unique), MAX_NAMES):
            found.update(self._describe(unique[start : start + MAX_NAMES]))
        return found

    def _describe(self, names: list[str]) -> dict[str, AlarmState]:
        found: dict[str, AlarmState] = {}
        with self._errors("read the rollout's CloudWatch alarms"):
            page = self._client.describe_alarms(
                AlarmNames=names,
                AlarmTypes=["CompositeAlarm", "MetricAlarm"],
                MaxRecords=MAX_NAMES,
            )
        alarms: list[Any] = [*page.get("MetricAlarms", []), *page.get("CompositeAlarms", [])]
        for alarm in alarms:
            name = str(alarm["AlarmName"])
            found[name] = AlarmState(
                name, str(alarm.get("StateValue", "")), str(alarm.get("StateReason", ""))
            )
        return found
