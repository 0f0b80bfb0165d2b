"""`deploy --dry-run` on AWS: a CloudFormation change set, created, read, and always deleted."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Literal

from botocore.exceptions import ClientError

from canary_deploy.aws.errors import (
    ACCESS_DENIED_CODES,
    BAD_CREDENTIALS_CODES,
    THROTTLING_CODES,
    ErrorScope,
    error_code,
)
from canary_deploy.aws.live import LIVE_PARAMETERS
from canary_deploy.aws.stack import CAPABILITIES, StackInfo, cloudformation_parameters
from canary_deploy.backend import Progress
from canary_deploy.errors import CanaryError, OperationFailed
from canary_deploy.preview import ParameterChange, Preview, ResourceChange, parameter_changes

if TYPE_CHECKING:
    from mypy_boto3_cloudformation import CloudFormationClient
    from mypy_boto3_cloudformation.type_defs import ChangeTypeDef, ResourceChangeDetailTypeDef

NAME_PREFIX = "canary-dry-run"
POLL_SECONDS = 2.0
TIMEOUT_SECONDS = 600.0
# A change set that changes nothing FAILS, with one of these reasons: not an error for us.
NO_CHANGES = ("didn't contain changes", "No updates are to be performed")
# Errors the real deploy would meet too: raised, not reported as an uncomputed change set.
RAISED_CODES = ACCESS_DENIED_CODES | BAD_CREDENTIALS_CODES | THROTTLING_CODES
# Who causes a change (a detail's ChangeSource), in the operator's words.
SOURCES = {
    "ParameterReference": "parameter {}",
    "ResourceReference": "resource {}",
    "ResourceAttribute": "{}",
    "DirectModification": "the template",
    "Automatic": "a nested stack",
}
RECREATION = {"Always": " (replaces it)", "Conditionally": " (may replace it)"}


class NotComputed(Exception):
    """CloudFormation did not compute the change set (its reason is the message)."""


def describe_cause(detail: ResourceChangeDetailTypeDef) -> str:
    """One change detail: which property changes, because of what.

    >>> describe_cause({"Target": {"Attribute": "Properties", "Name": "ContainerDefinitions",
    ...     "RequiresRecreation": "Always"}, "ChangeSource": "ParameterReference",
    ...     "CausingEntity": "ImageURICanary"})
    'ContainerDefinitions <- parameter ImageURICanary (replaces it)'
    """
    target = detail.get("Target", {})
    what = target.get("Name") or target.get("Attribute") or "?"
    source = detail.get("ChangeSource", "")
    by = SOURCES.get(source, source or "?").format(detail.get("CausingEntity", "?"))
    if detail.get("Evaluation") == "Dynamic":
        by += " (if its value changes)"
    return f"{what} <- {by}{RECREATION.get(target.get('RequiresRecreation', ''), '')}"


def resource_change(change: ChangeTypeDef) -> ResourceChange:
    """A change set's `Changes` entry as a ResourceChange."""
    resource = change.get("ResourceChange", {})
    causes = tuple(dict.fromkeys(describe_cause(d) for d in resource.get("Details", [])))
    return ResourceChange(
        action=resource.get("Action", "?"),
        logical_id=resource.get("LogicalResourceId", "?"),
        resource_type=resource.get("ResourceType", "?"),
        replacement=resource.get("Replacement"),
        causes=causes,
    )


class ChangeSetPreview:
    """What a stack create or update would change, from a change set of the same template
    and parameters; the change set (and the empty stack a CREATE one makes) is deleted
    whatever happens, Ctrl-C included."""

    def __init__(
        self,
        client: CloudFormationClient,
        stack_name: str,
        errors: ErrorScope,
        *,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._cf = client
        self.stack_name = stack_name
        self._errors = errors
        self._sleep = sleep
        self._clock = clock

    def preview(
        self,
        parameters: Mapping[str, str | None],
        current: StackInfo | None,
        progress: Progress,
        *,
        template: str,
    ) -> Preview:
        """The changes `Stack.apply(parameters)` would make to the stack `current` (None: a
        new one). Where CloudFormation cannot compute them, the parameter changes alone."""
        operation: Literal["create", "update"] = "create" if current is None else "update"
        changed = parameter_changes(None if current is None else current.parameters, parameters)
        notes = live_notes(changed) if current is not None else ()
        name = f"{NAME_PREFIX}-{uuid.uuid4().hex[:12]}"
        try:
            resources = self._compute(name, operation, parameters, template, progress)
        except NotComputed as exc:
            return Preview(
                "aws", self.stack_name, operation, changed, None, not_computed(exc), notes
            )
        finally:
            self._clean_up(name, operation, progress)
        if resources is None:  # CloudFormation's own word: nothing changes
            return Preview("aws", self.stack_name, operation, changed, (), None, notes)
        if not resources and changed and operation == "update":
            # moto computes no change for an update (DESIGN.md section 4).
            reason = not_computed(
                NotComputed(
                    "it lists no resource change although parameters change, which moto's "
                    "CloudFormation returns for every update (AWS's lists the resources "
                    "they reach)"
                )
            )
            return Preview("aws", self.stack_name, operation, changed, None, reason, notes)
        if operation == "create":
            notes = (*notes, *condition_notes(resources))
        return Preview("aws", self.stack_name, operation, changed, resources, None, notes)

    def _compute(
        self,
        name: str,
        operation: str,
        parameters: Mapping[str, str | None],
        template: str,
        progress: Progress,
    ) -> tuple[ResourceChange, ...] | None:
        progress.update(f"creating change set {name}")
        self._call(
            f"create change set {name}",
            lambda: self._cf.create_change_set(
                StackName=self.stack_name,
                ChangeSetName=name,
                ChangeSetType="CREATE" if operation == "create" else "UPDATE",
                TemplateBody=template,
                Parameters=cloudformation_parameters(parameters),
                Capabilities=CAPABILITIES,
                Description="canary deploy --dry-run (deleted once read)",
            ),
        )
        changes = self._wait(name, progress)
        if changes is None:
            return None
        return tuple(resource_change(c) for c in changes if c.get("Type") == "Resource")

    def _wait(self, name: str, progress: Progress) -> list[ChangeTypeDef] | None:
        """Poll until CloudFormation has computed the change set: every page of changes, or
        None when it says that nothing changes."""
        deadline = self._clock() + TIMEOUT_SECONDS
        while True:
            page = self._describe(name, None)
            status = page.get("Status", "")
            if status == "FAILED":
                reason = page.get("StatusReason", "")
                if any(text in reason for text in NO_CHANGES):
                    return None
                raise NotComputed(reason or "it FAILED without a reason")
            if status not in ("CREATE_PENDING", "CREATE_IN_PROGRESS"):
                break
            if self._clock() >= deadline:
                raise OperationFailed(f"change set {name} is still {status} after 10 minutes")
            progress.update(f"change set {name}: {status}")
            self._sleep(POLL_SECONDS)
        changes = list(page.get("Changes", []))
        while page.get("NextToken"):
            page = self._describe(name, page["NextToken"])
            changes += page.get("Changes", [])
        return changes

    def _describe(self, name: str, token: str | None) -> Any:
        if token is None:
            return self._call(
                f"describe change set {name}",
                lambda: self._cf.describe_change_set(ChangeSetName=name, StackName=self.stack_name),
            )
        return self._call(
            f"describe change set {name}",
            lambda: self._cf.describe_change_set(
                ChangeSetName=name, StackName=self.stack_name, NextToken=token
            ),
        )

    def _call(self, action: str, call: Callable[[], Any]) -> Any:
        """One CloudFormation call: what the real deploy would meet too (access denied,
        credentials, throttling) is raised; any other refusal means no change set."""
        with self._errors(action):
            try:
                return call()
            except ClientError as exc:
                if error_code(exc) in RAISED_CODES:
                    raise  # translated by the error scope
                message = str(exc.response.get("Error", {}).get("Message", "")) or str(exc)
                raise NotComputed(f"{error_code(exc)}: {message}") from exc

    def _clean_up(self, name: str, operation: str, progress: Progress) -> None:
        """Delete the change set, and for a new stack the empty REVIEW_IN_PROGRESS stack it
        made (such a stack has no resource, so deleting it destroys nothing). Never raises:
        it runs while another error (or Ctrl-C) may be on its way out."""
        try:
            with self._errors(f"delete change set {name}"):
                try:
                    self._cf.delete_change_set(ChangeSetName=name, StackName=self.stack_name)
                except ClientError as exc:
                    if "NotFound" not in error_code(exc) and "does not exist" not in str(exc):
                        raise
                if operation == "create":
                    self._delete_review_stack(progress)
        except CanaryError as exc:
            progress.log(
                f"Could not delete the dry run's change set {name} ({exc.message}): delete it "
                f"with `aws cloudformation delete-change-set --stack-name {self.stack_name} "
                f"--change-set-name {name} --region {self._errors.region}`"
                + (
                    f" and `aws cloudformation delete-stack --stack-name {self.stack_name}`"
                    if operation == "create"
                    else ""
                )
            )

    def _delete_review_stack(self, progress: Progress) -> None:
        try:
            stacks = self._cf.describe_stacks(StackName=self.stack_name)["Stacks"]
        except ClientError:
            return  # gone already (or never made)
        if not stacks or stacks[0]["StackStatus"] != "REVIEW_IN_PROGRESS":
            return
        self._cf.delete_stack(StackName=self.stack_name)
        progress.update(f"deleting the dry run's empty stack {self.stack_name}")
        # Gone in seconds; waiting lets a `deploy` right after create the stack.
        deadline = self._clock() + 60.0
        while self._clock() < deadline:
            try:
                stacks = self._cf.describe_stacks(StackName=self.stack_name)["Stacks"]
            except ClientError:
                return
            if not stacks or stacks[0]["StackStatus"] == "DELETE_COMPLETE":
                return
            self._sleep(POLL_SECONDS)


def live_notes(changed: tuple[ParameterChange, ...]) -> tuple[str, ...]:
    """Why a live value (weights, the baseline's count) is among an update's changes."""
    live = [c.name for c in changed if c.name in LIVE_PARAMETERS]
    if not live:
        return ()
    return (
        f"{', '.join(live)}: the live values (set by API calls), recorded in the stack first "
        "by a weights-only update; the listener and services keep them",
    )


# Resources under a template condition; LogGroup and RetainedLogGroup exclude each other.
CONDITIONAL = ("LogGroup", "RetainedLogGroup", "HttpRedirectListener", "AlbHttpsIngress",
               "StableScalableTarget", "StableScalingPolicy")  # fmt: skip


def condition_notes(resources: tuple[ResourceChange, ...]) -> tuple[str, ...]:
    """A note when the change set lists resources whose conditions exclude each other: the
    CloudFormation in use did not evaluate the template's conditions (moto's does not)."""
    added = {r.logical_id for r in resources if r.action == "Add"}
    if not {"LogGroup", "RetainedLogGroup"} <= added:
        return ()
    listed = ", ".join(name for name in CONDITIONAL if name in added)
    return (
        f"{listed} are created only when their template condition holds; this CloudFormation "
        "(moto) lists them all without evaluating the conditions (AWS's leaves out the ones "
        "whose condition is false)",
    )


def not_computed(exc: NotComputed) -> str:
    return (
        f"CloudFormation could not compute the change set: {exc}; the parameters that "
        "would change are listed (the resources they reach are not)"
    )
