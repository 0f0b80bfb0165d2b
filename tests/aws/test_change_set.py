"""The dry run's change set against a stubbed CloudFormation: what AWS computes (which moto
does not for an update), and that the change set never outlives the dry run."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from botocore.stub import ANY

from canary_deploy.aws.change_set import ChangeSetPreview
from canary_deploy.aws.stack import StackInfo
from canary_deploy.errors import OperationFailed
from tests.aws.stubs import ERRORS, RecordingProgress, stubbed

CURRENT = StackInfo(
    "demo", "UPDATE_COMPLETE", None,
    {"ImageURICanary": "repo/app:v2", "StableWeight": "95", "CanaryWeight": "5"}, {},
)  # fmt: skip
TEMPLATE = "the rendered template"  # what the deploy would send, sent as is
PARAMETERS: dict[str, str | None] = {
    "ImageURICanary": "repo/app:v3",
    "StableWeight": "95",
    "CanaryWeight": "5",
    "VpcId": None,  # kept: not a change
}
TASK_DEFINITION_CHANGE = {
    "Type": "Resource",
    "ResourceChange": {
        "Action": "Modify",
        "LogicalResourceId": "TaskDefinitionCanary",
        "ResourceType": "AWS::ECS::TaskDefinition",
        "Replacement": "True",
        "Details": [
            {
                "Target": {"Attribute": "Properties", "Name": "ContainerDefinitions",
                           "RequiresRecreation": "Always"},
                "Evaluation": "Static",
                "ChangeSource": "ParameterReference",
                "CausingEntity": "ImageURICanary",
            }
        ],
    },
}  # fmt: skip
SERVICE_CHANGE = {
    "Type": "Resource",
    "ResourceChange": {
        "Action": "Modify",
        "LogicalResourceId": "ServiceCanary",
        "ResourceType": "AWS::ECS::Service",
        "Replacement": "False",
        "Details": [
            {
                "Target": {"Attribute": "Properties", "Name": "TaskDefinition",
                           "RequiresRecreation": "Never"},
                "Evaluation": "Dynamic",
                "ChangeSource": "ResourceReference",
                "CausingEntity": "TaskDefinitionCanary",
            }
        ],
    },
}  # fmt: skip


def described(status: str, changes: list[Any] | None = None, **extra: Any) -> dict[str, Any]:
    return {"ChangeSetName": "x", "StackName": "demo", "Status": status,
            "ExecutionStatus": "AVAILABLE", "CreationTime": datetime(2026, 1, 1, tzinfo=UTC),
            "Changes": changes or [], **extra}  # fmt: skip


def preview_with(stub_calls: Any, current: StackInfo | None = CURRENT) -> Any:
    cf, stub = stubbed("cloudformation")
    stub_calls(stub)
    with stub:
        result = ChangeSetPreview(cf, "demo", ERRORS, sleep=lambda _: None).preview(
            PARAMETERS, current, RecordingProgress(), template=TEMPLATE
        )
    stub.assert_no_pending_responses()
    return result


def created(stub: Any, kind: str = "UPDATE") -> None:
    stub.add_response(
        "create_change_set",
        {"Id": "arn:cs", "StackId": "arn:stack"},
        {"StackName": "demo", "ChangeSetName": ANY, "ChangeSetType": kind,
         "TemplateBody": TEMPLATE, "Parameters": ANY, "Capabilities": ["CAPABILITY_IAM"],
         "Description": ANY},
    )  # fmt: skip


def deleted(stub: Any) -> None:
    stub.add_response("delete_change_set", {}, {"ChangeSetName": ANY, "StackName": "demo"})


def test_an_update_lists_each_resource_change_with_its_cause_across_pages() -> None:
    def calls(stub: Any) -> None:
        created(stub)
        stub.add_response("describe_change_set", described("CREATE_IN_PROGRESS"))
        stub.add_response(
            "describe_change_set", described("CREATE_COMPLETE", [TASK_DEFINITION_CHANGE],
                                             NextToken="page2"),
        )  # fmt: skip
        stub.add_response("describe_change_set", described("CREATE_COMPLETE", [SERVICE_CHANGE]))
        deleted(stub)

    preview = preview_with(calls)
    assert preview.operation == "update"
    assert [(p.name, p.before, p.after) for p in preview.parameters] == [
        ("ImageURICanary", "repo/app:v2", "repo/app:v3")
    ]
    task_definition, service = preview.resources
    assert (task_definition.action, task_definition.replacement) == ("Modify", "True")
    assert task_definition.causes == (
        "ContainerDefinitions <- parameter ImageURICanary (replaces it)",
    )
    assert service.causes == (
        "TaskDefinition <- resource TaskDefinitionCanary (if its value changes)",
    )
    assert preview.not_computed is None


def test_an_update_that_changes_nothing_says_so() -> None:
    def calls(stub: Any) -> None:
        created(stub)
        stub.add_response(
            "describe_change_set",
            described("FAILED", StatusReason="The submitted information didn't contain "
                      "changes. Submit different information to create a change set."),
        )  # fmt: skip
        deleted(stub)

    preview = preview_with(calls)
    assert preview.resources == ()
    assert preview.not_computed is None


def test_a_change_set_cloudformation_refuses_degrades_to_the_parameter_diff() -> None:
    def calls(stub: Any) -> None:
        stub.add_client_error("create_change_set", "ValidationError", "Template error: boom")
        deleted(stub)

    preview = preview_with(calls)
    assert preview.resources is None
    assert preview.not_computed is not None
    assert "could not compute the change set: ValidationError: Template error: boom" in (
        preview.not_computed
    )
    assert [p.name for p in preview.parameters] == ["ImageURICanary"]


def test_access_denied_is_an_error_with_the_iam_hint_and_cleans_up() -> None:
    cf, stub = stubbed("cloudformation")
    stub.add_client_error("create_change_set", "AccessDenied", "not authorized")
    deleted(stub)
    with stub, pytest.raises(OperationFailed) as exc:
        ChangeSetPreview(cf, "demo", ERRORS).preview(
            PARAMETERS, CURRENT, RecordingProgress(), template=TEMPLATE
        )
    assert "access denied" in exc.value.message
    stub.assert_no_pending_responses()


def test_ctrl_c_while_waiting_deletes_the_change_set_and_the_empty_new_stack() -> None:
    cf, stub = stubbed("cloudformation")
    created(stub, "CREATE")
    stub.add_response("describe_change_set", described("CREATE_IN_PROGRESS"))
    deleted(stub)
    stub.add_response(
        "describe_stacks",
        {"Stacks": [{"StackName": "demo", "StackStatus": "REVIEW_IN_PROGRESS",
                     "CreationTime": datetime(2026, 1, 1, tzinfo=UTC)}]},
    )  # fmt: skip
    stub.add_response("delete_stack", {}, {"StackName": "demo"})
    stub.add_client_error("describe_stacks", "ValidationError", "Stack with id demo does not exist")

    def interrupted(_: float) -> None:
        raise KeyboardInterrupt

    with stub, pytest.raises(KeyboardInterrupt):
        ChangeSetPreview(cf, "demo", ERRORS, sleep=interrupted).preview(
            PARAMETERS, None, RecordingProgress(), template=TEMPLATE
        )
    stub.assert_no_pending_responses()


def test_a_change_set_that_cannot_be_deleted_is_named_with_the_command() -> None:
    cf, stub = stubbed("cloudformation")
    created(stub)
    stub.add_response("describe_change_set", described("CREATE_COMPLETE", [SERVICE_CHANGE]))
    stub.add_client_error("delete_change_set", "InvalidChangeSetStatus", "busy")
    progress = RecordingProgress()
    with stub:
        preview = ChangeSetPreview(cf, "demo", ERRORS).preview(
            PARAMETERS, CURRENT, progress, template=TEMPLATE
        )
    assert len(preview.resources or ()) == 1
    assert "aws cloudformation delete-change-set --stack-name demo" in progress.lines[-1]
