"""What each CloudFormation stack state allows, and what to do when a stack is stuck."""

from __future__ import annotations

from canary_deploy.errors import OperationFailed

# A stack whose creation failed and was rolled back (or whose rollback failed): CloudFormation
# cannot update it; only deleting it helps.
UNUPDATABLE_CREATIONS = ("ROLLBACK_COMPLETE", "ROLLBACK_FAILED")
# An update failed and so did its rollback: CloudFormation refuses every update until the
# rollback is continued (ContinueUpdateRollback), possibly skipping the resources that failed.
UPDATE_ROLLBACK_FAILED = "UPDATE_ROLLBACK_FAILED"
# A stack a CREATE change set made and nobody executed: no resources, never finishes.
REVIEW_IN_PROGRESS = "REVIEW_IN_PROGRESS"


def continue_rollback_hint(stack_name: str, region: str) -> str:
    """The exact command that gets a stack out of UPDATE_ROLLBACK_FAILED.

    >>> continue_rollback_hint("demo", "eu-west-1")
    'run `aws cloudformation continue-update-rollback --stack-name demo --region eu-west-1` ...'
    """
    return (
        f"run `aws cloudformation continue-update-rollback --stack-name {stack_name} "
        f"--region {region}` (if a resource still cannot roll back, fix it or add "
        "`--resources-to-skip <LogicalId>`), wait for UPDATE_ROLLBACK_COMPLETE, then "
        "`canary --target aws deploy` again"
    )


def delete_hint(stack_name: str) -> str:
    return (
        "see why in the CloudFormation console events, then "
        f"`canary --target aws delete --yes` (STACK_NAME={stack_name}) and deploy again"
    )


def refuse_update(stack_name: str, status: str, region: str) -> None:
    """Raise when CloudFormation would refuse to update a stack in `status`; say what to do."""
    if status in UNUPDATABLE_CREATIONS:
        raise OperationFailed(
            f"stack {stack_name} is in {status}: its first creation failed and "
            "CloudFormation rolled it back; such a stack cannot be updated",
            hint=delete_hint(stack_name),
        )
    if status == UPDATE_ROLLBACK_FAILED:
        raise OperationFailed(
            f"stack {stack_name} is in {UPDATE_ROLLBACK_FAILED}: an update failed and so did "
            "its rollback; CloudFormation refuses any update until the rollback is continued",
            hint=continue_rollback_hint(stack_name, region),
        )
    if status == REVIEW_IN_PROGRESS:
        raise OperationFailed(
            f"stack {stack_name} is in {REVIEW_IN_PROGRESS}: an empty stack that a change "
            "set for a new stack made (a `deploy --dry-run` that was killed?); it never "
            "finishes on its own",
            hint=f"delete it (it has no resources): `aws cloudformation delete-stack "
            f"--stack-name {stack_name} --region {region}`, then deploy again",
        )
    if status.endswith("_IN_PROGRESS"):
        raise OperationFailed(
            f"stack {stack_name} is busy ({status})",
            hint="wait for the running operation to finish, then try again",
        )


def failure_hint(stack_name: str, status: str, region: str) -> str:
    """The hint for an operation that left the stack in `status` instead of *_COMPLETE."""
    if status == UPDATE_ROLLBACK_FAILED:
        return continue_rollback_hint(stack_name, region)
    if status in UNUPDATABLE_CREATIONS:
        return "the stack events above say which resource failed; " + delete_hint(stack_name)
    return "the stack events above say which resource failed"


def status_note(stack_name: str, status: str, region: str) -> str | None:
    """What `status` says about a stack state that needs the operator, if anything."""
    if status in UNUPDATABLE_CREATIONS:
        return (
            "the stack's creation failed and was rolled back; it cannot be updated: "
            "`canary --target aws delete --yes`, fix the cause, then deploy again"
        )
    if status == UPDATE_ROLLBACK_FAILED:
        return (
            "the last update failed and so did its rollback: no update is possible until "
            f"the rollback is continued; {continue_rollback_hint(stack_name, region)}"
        )
    if status == "UPDATE_ROLLBACK_COMPLETE":
        return (
            "the last update failed and was rolled back (the stack events say why); "
            "the stack runs what it ran before it"
        )
    return None
