"""A stack's events as progress lines: what happened since a given event, oldest first."""

from __future__ import annotations

from typing import TYPE_CHECKING

from canary_deploy.aws.errors import ErrorScope, StackNotFound

if TYPE_CHECKING:
    from mypy_boto3_cloudformation import CloudFormationClient


class StackEvents:
    """Reads one stack's events (DescribeStackEvents lists them newest first)."""

    def __init__(self, client: CloudFormationClient, name: str, errors: ErrorScope) -> None:
        self._cf = client
        self._name = name
        self._errors = errors

    def newest_id(self) -> str | None:
        """The newest event's id, so waiting shows only what happens from now on."""
        try:
            with self._errors(f"read events of stack {self._name}"):
                events = self._cf.describe_stack_events(StackName=self._name)["StackEvents"]
        except StackNotFound:
            return None
        return events[0]["EventId"] if events else None

    def since(self, since: str | None, *, limit_pages: int = 20) -> list[tuple[str, str]]:
        """(event id, text) of events newer than `since`, oldest first."""
        found: list[tuple[str, str]] = []
        token: str | None = None
        for _ in range(limit_pages):
            try:
                with self._errors(f"read events of stack {self._name}"):
                    page = (
                        self._cf.describe_stack_events(StackName=self._name, NextToken=token)
                        if token
                        else self._cf.describe_stack_events(StackName=self._name)
                    )
            except StackNotFound:
                break
            for event in page["StackEvents"]:
                if event["EventId"] == since:
                    return list(reversed(found))
                reason = event.get("ResourceStatusReason")
                text = (
                    f"{event.get('ResourceStatus', '?'):<20} {event.get('LogicalResourceId', '?')}"
                    + (f" - {reason}" if reason else "")
                )
                found.append((event["EventId"], text))
            token = page.get("NextToken")
            if not token:
                break
        return list(reversed(found))
