"""Stack create/update/delete against a stubbed CloudFormation (events moto does not emit)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from botocore.stub import ANY

from canary_deploy.aws.stack import Stack
from canary_deploy.errors import OperationFailed
from canary_deploy.weights import Weights
from tests.aws.stubs import ERRORS, FakeListener, RecordingProgress, stubbed

T0 = datetime(2026, 1, 1, tzinfo=UTC)
MISSING = ("ValidationError", "Stack with id demo does not exist")


def stack(status: str, reason: str | None = None) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "StackName": "demo",
        "StackStatus": status,
        "CreationTime": T0,
        "Parameters": [{"ParameterKey": "StableWeight", "ParameterValue": "95"}],
        "Outputs": [],
    }
    if reason:
        doc["StackStatusReason"] = reason
    return {"Stacks": [doc]}


def event(n: int, status: str, logical: str, reason: str | None = None) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "StackId": "id",
        "EventId": f"e{n}",
        "StackName": "demo",
        "Timestamp": T0,
        "ResourceStatus": status,
        "LogicalResourceId": logical,
    }
    if reason:
        doc["ResourceStatusReason"] = reason
    return doc


def new_stack() -> tuple[Stack, Any]:
    client, stub = stubbed("cloudformation")
    return Stack(client, "demo", ERRORS, FakeListener(Weights(95, 5)), sleep=lambda _: None), stub


def test_rollback_complete_is_explained_and_nothing_is_sent() -> None:
    s, stub = new_stack()
    stub.add_response("describe_stacks", stack("ROLLBACK_COMPLETE"))
    with stub, pytest.raises(OperationFailed) as exc:
        s.apply({"ImageURIStable": "a"}, RecordingProgress())
    assert "ROLLBACK_COMPLETE" in exc.value.message
    assert "cannot be updated" in exc.value.message
    assert exc.value.hint is not None and "delete --yes" in exc.value.hint
    stub.assert_no_pending_responses()


def test_no_changes_is_not_an_error() -> None:
    s, stub = new_stack()
    progress = RecordingProgress()
    stub.add_response("describe_stacks", stack("UPDATE_COMPLETE"))
    stub.add_response(
        "describe_stack_events", {"StackEvents": [event(1, "UPDATE_COMPLETE", "demo")]}
    )
    stub.add_client_error("update_stack", "ValidationError", "No updates are to be performed.")
    with stub:
        info = s.apply({"ImageURIStable": "a", "VpcId": None}, progress)
    assert info.status == "UPDATE_COMPLETE"
    assert any("No changes" in line for line in progress.lines)


def test_update_keeps_previous_values_for_parameters_given_as_none() -> None:
    s, stub = new_stack()
    stub.add_response("describe_stacks", stack("CREATE_COMPLETE"))
    stub.add_response(
        "describe_stack_events", {"StackEvents": [event(1, "CREATE_COMPLETE", "demo")]}
    )
    stub.add_response(
        "update_stack",
        {"StackId": "id"},
        {
            "StackName": "demo",
            "TemplateBody": ANY,
            "Capabilities": ["CAPABILITY_IAM"],
            "Parameters": [
                {"ParameterKey": "ImageURICanary", "ParameterValue": "b"},
                {"ParameterKey": "VpcId", "UsePreviousValue": True},
            ],
        },
    )
    stub.add_response(
        "describe_stack_events", {"StackEvents": [event(1, "CREATE_COMPLETE", "demo")]}
    )
    stub.add_response("describe_stacks", stack("UPDATE_COMPLETE"))
    with stub:
        assert s.apply({"ImageURICanary": "b", "VpcId": None}, RecordingProgress()).status == (
            "UPDATE_COMPLETE"
        )


def test_failed_create_streams_events_in_order_and_reports_the_cause() -> None:
    s, stub = new_stack()
    progress = RecordingProgress()
    stub.add_client_error("describe_stacks", *MISSING)
    stub.add_response("create_stack", {"StackId": "id"})  # a new stack has no events to skip
    stub.add_response(
        "describe_stack_events",
        {
            "StackEvents": [
                event(2, "CREATE_IN_PROGRESS", "Cluster"),
                event(1, "CREATE_IN_PROGRESS", "demo"),
            ]
        },
    )
    stub.add_response("describe_stacks", stack("CREATE_IN_PROGRESS"))
    stub.add_response(
        "describe_stack_events",
        {
            "StackEvents": [
                event(4, "ROLLBACK_COMPLETE", "demo"),
                event(3, "CREATE_FAILED", "ServiceCanary", "Invalid image"),
                event(2, "CREATE_IN_PROGRESS", "Cluster"),
                event(1, "CREATE_IN_PROGRESS", "demo"),
            ]
        },
    )
    stub.add_response(
        "describe_stacks", stack("ROLLBACK_COMPLETE", "The following resource(s) failed")
    )
    with stub, pytest.raises(OperationFailed) as exc:
        s.apply({"ImageURIStable": "a"}, progress)
    assert "ended in ROLLBACK_COMPLETE: The following resource(s) failed" in exc.value.message
    events = [line.split() for line in progress.lines if line.startswith("  ")]
    assert [e[:2] for e in events] == [
        ["CREATE_IN_PROGRESS", "demo"],
        ["CREATE_IN_PROGRESS", "Cluster"],
        ["CREATE_FAILED", "ServiceCanary"],
        ["ROLLBACK_COMPLETE", "demo"],
    ]
    assert "Invalid image" in progress.lines[-2]
    assert progress.updates == ["demo: CREATE_IN_PROGRESS"]


def test_delete_waits_until_the_stack_is_gone() -> None:
    s, stub = new_stack()
    progress = RecordingProgress()
    stub.add_response("describe_stacks", stack("UPDATE_COMPLETE"))
    stub.add_response(
        "describe_stack_events", {"StackEvents": [event(1, "UPDATE_COMPLETE", "demo")]}
    )
    stub.add_response("delete_stack", {})
    stub.add_response(
        "describe_stack_events",
        {
            "StackEvents": [
                event(2, "DELETE_IN_PROGRESS", "demo"),
                event(1, "UPDATE_COMPLETE", "demo"),
            ]
        },
    )
    stub.add_response("describe_stacks", stack("DELETE_IN_PROGRESS"))
    stub.add_client_error("describe_stack_events", *MISSING)
    stub.add_client_error("describe_stacks", *MISSING)
    with stub:
        s.delete(progress)
        stub.assert_no_pending_responses()
    assert any("DELETE_IN_PROGRESS" in line for line in progress.lines)
