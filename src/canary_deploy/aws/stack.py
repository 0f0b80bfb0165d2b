"""The CloudFormation stack: create or update it (streaming events), read it, delete it."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from importlib import resources
from typing import TYPE_CHECKING, Literal

from botocore.exceptions import ClientError

from canary_deploy.aws.errors import ErrorScope, StackNotFound
from canary_deploy.aws.live import apply_weights, live_keys, weights_of
from canary_deploy.aws.stack_events import StackEvents
from canary_deploy.aws.stack_states import failure_hint, refuse_update
from canary_deploy.backend import Progress, TrafficRouter
from canary_deploy.errors import CanaryError, OperationFailed
from canary_deploy.weights import Weights

if TYPE_CHECKING:
    from mypy_boto3_cloudformation import CloudFormationClient
    from mypy_boto3_cloudformation.type_defs import (
        ParameterTypeDef,
        StackTypeDef,
        UpdateStackInputTypeDef,
    )

TEMPLATE_NAME = "canary-stack.yml"
# The template names no IAM resource, so CAPABILITY_IAM is enough (NAMED_IAM is broader).
CAPABILITIES: list[Literal["CAPABILITY_IAM"]] = ["CAPABILITY_IAM"]
POLL_SECONDS = 2.0
TIMEOUT_SECONDS = 3600.0
# CloudFormation's wording when an update would change nothing: not an error for us.
NO_UPDATES = "No updates are to be performed"


def cloudformation_parameters(parameters: Mapping[str, str | None]) -> list[ParameterTypeDef]:
    """CloudFormation's form: None keeps the stack's previous value."""
    return [
        {"ParameterKey": key, "UsePreviousValue": True}
        if value is None
        else {"ParameterKey": key, "ParameterValue": value}
        for key, value in parameters.items()
    ]


def _describe(stack: Mapping[str, str], lagging: Mapping[str, str]) -> str:
    """What the stack is about to learn, in the operator's words.

    >>> _describe({"StableWeight": "0", "CanaryWeight": "100"}, {"StableWeight": "100",
    ...           "CanaryWeight": "0"})
    'weights 100/0 (the stack said 0/100)'
    >>> _describe({"DesiredCountBaseline": "0"}, {"DesiredCountBaseline": "2"})
    'baseline task count 2 (the stack said 0)'
    """
    shown = []
    old, new = weights_of(stack), weights_of({**stack, **lagging})
    if new is not None and new != old:
        shown.append(f"weights {new} (the stack said {old})")
    for key, role in (("DesiredCountBaseline", "baseline"), ("DesiredCountStable", "stable")):
        if key in lagging:
            shown.append(f"{role} task count {lagging[key]} (the stack said {stack[key]})")
    return " and ".join(shown)


def template_body() -> str:
    """The stack template shipped as package data."""
    return (resources.files("canary_deploy.aws") / "templates" / TEMPLATE_NAME).read_text()


@dataclass(frozen=True)
class StackInfo:
    """A described stack: status, parameters and outputs."""

    name: str
    status: str
    status_reason: str | None
    parameters: dict[str, str]
    outputs: dict[str, str]

    @property
    def weights(self) -> Weights | None:
        """The weights the stack's parameters hold (None if absent or unreadable)."""
        try:
            stable = int(self.parameters["StableWeight"])
            canary = int(self.parameters["CanaryWeight"])
            baseline = int(self.parameters.get("BaselineWeight", "0"))
        except (KeyError, ValueError):
            return None
        return Weights.from_alb(stable, canary, baseline)


def _info(stack: StackTypeDef) -> StackInfo:
    return StackInfo(
        name=stack["StackName"],
        status=stack["StackStatus"],
        status_reason=stack.get("StackStatusReason"),
        parameters={
            p["ParameterKey"]: p.get("ParameterValue", "") for p in stack.get("Parameters", [])
        },
        outputs={o["OutputKey"]: o.get("OutputValue", "") for o in stack.get("Outputs", [])},
    )


class Stack:
    """One named CloudFormation stack built from the packaged template.

    Every update keeps the weights the listener holds (`apply`): the stack is told the live
    values first, and a failed update never leaves the listener on stale ones.
    """

    def __init__(
        self,
        client: CloudFormationClient,
        name: str,
        errors: ErrorScope,
        listener: TrafficRouter,
        *,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._cf = client
        self.name = name
        self._errors = errors
        self._listener = listener
        self._events = StackEvents(client, name, errors)
        self._sleep = sleep
        self._clock = clock

    def describe(self) -> StackInfo | None:
        """The stack, or None when it does not exist."""
        try:
            with self._errors(f"describe stack {self.name}"):
                stacks = self._cf.describe_stacks(StackName=self.name)["Stacks"]
        except StackNotFound:
            return None
        return _info(stacks[0]) if stacks else None

    def require(self) -> StackInfo:
        """The stack, or a StackNotFound error with a hint."""
        info = self.describe()
        if info is None:
            raise StackNotFound(self.name, self._errors.region)
        return info

    def apply(
        self,
        parameters: Mapping[str, str | None],
        progress: Progress,
        *,
        template: str | None = None,
        keep_template: bool = False,
    ) -> StackInfo:
        """Create the stack, or update it in place; "no changes" is not an error.

        `template` is the body to send (default: the packaged template as it is; a deploy
        sends it with the app's environment rendered in); `keep_template` updates with the
        stack's own template instead (a promotion changes parameters only, so it never drops
        what a deploy rendered).

        A parameter given as None keeps the stack's previous value (updates only). An update
        is given the live values of what API calls change (`live_keys`: the listener's
        weights, the baseline's task count, stable's when autoscaling sets it) and keeps the
        listener on those weights whatever happens to it:

        1. when the stack's own values of them lag behind, a weights-only update (previous
           template, every other parameter kept) records them first, so that what a later
           rollback restores is what runs now, never an older split;
        2. the update itself;
        3. when either fails or is rolled back, the listener is set back to the weights
           given (one ModifyListener) and verified.
        """
        current = self.describe()
        body = template or template_body()
        if current is None:
            return self._create(parameters, progress, body)
        refuse_update(self.name, current.status, self._errors.region)
        return self._guarded(current, parameters, progress, body=None if keep_template else body)

    def record_live(self, parameters: Mapping[str, str | None], progress: Progress) -> StackInfo:
        """Only step 1 of `apply` (and 3 if it fails): write the live values among
        `parameters` into the stack when its own lag behind; nothing else changes."""
        current = self.require()
        refuse_update(self.name, current.status, self._errors.region)
        return self._guarded(current, parameters, progress, body=None, record_only=True)

    def _guarded(
        self,
        current: StackInfo,
        parameters: Mapping[str, str | None],
        progress: Progress,
        *,
        body: str | None,
        record_only: bool = False,
    ) -> StackInfo:
        """`body` None: the stack's own template."""
        kept = weights_of(parameters)
        try:
            current = self._record(current, parameters, progress)
            if record_only:
                return current
            return self._update(current, parameters, progress, body)
        except OperationFailed as failure:
            if kept is None:
                raise
            raise self._restore(kept, failure, progress) from failure

    def _create(
        self, parameters: Mapping[str, str | None], progress: Progress, body: str
    ) -> StackInfo:
        progress.log(f"Creating stack {self.name}")
        with self._errors(f"create stack {self.name}"):
            self._cf.create_stack(
                StackName=self.name,
                TemplateBody=body,
                Parameters=cloudformation_parameters(parameters),
                Capabilities=CAPABILITIES,
            )
        return self._finished(self._wait(progress, since=None))

    def _record(
        self, current: StackInfo, parameters: Mapping[str, str | None], progress: Progress
    ) -> StackInfo:
        """Step 1: the weights-only update, when the stack's live values lag behind."""
        lagging = {
            key: value
            for key in live_keys(current.parameters, parameters)
            if (value := parameters.get(key)) is not None
            and key in current.parameters
            and current.parameters[key] != value
        }
        if not lagging:
            return current
        progress.log(
            f"Recording the live {_describe(current.parameters, lagging)} in stack {self.name} "
            "first (a weights-only update), so that a failed update rolls back to what runs now"
        )
        recorded: dict[str, str | None] = {key: None for key in current.parameters}
        recorded.update(lagging)
        since = self._events.newest_id()
        with self._errors(f"update stack {self.name}"):
            self._cf.update_stack(
                StackName=self.name,
                UsePreviousTemplate=True,
                Parameters=cloudformation_parameters(recorded),
                Capabilities=CAPABILITIES,
            )
        return self._finished(self._wait(progress, since=since))

    def _update(
        self,
        current: StackInfo,
        parameters: Mapping[str, str | None],
        progress: Progress,
        body: str | None,
    ) -> StackInfo:
        """Step 2: the update itself (`body` None: with the stack's own template)."""
        progress.log(f"Updating stack {self.name}")
        since = self._events.newest_id()
        with self._errors(f"update stack {self.name}"):
            request: UpdateStackInputTypeDef = {
                "StackName": self.name,
                "Parameters": cloudformation_parameters(parameters),
                "Capabilities": CAPABILITIES,
            }
            if body is None:
                request["UsePreviousTemplate"] = True
            else:
                request["TemplateBody"] = body
            try:
                self._cf.update_stack(**request)
            except ClientError as exc:
                if NO_UPDATES not in str(exc):
                    raise  # translated by the error scope
                progress.log("No changes: the stack is already up to date")
                return current
        return self._finished(self._wait(progress, since=since))

    def _restore(
        self, weights: Weights, failure: OperationFailed, progress: Progress
    ) -> CanaryError:
        """Step 3: the listener back on `weights` (one ModifyListener), verified."""
        try:
            apply_weights(self._listener, weights, sleep=self._sleep, clock=self._clock)
        except CanaryError as exc:
            return OperationFailed(
                f"{failure.message}; the listener could not be set back to its live weights "
                f"{weights} afterwards: {exc.message}",
                hint="a rollback may have restored older weights: check them with "
                "`canary --target aws status` and set them with `canary --target aws "
                "set-weights` (or `rollback`) now",
            )
        progress.log(f"The listener keeps its live weights {weights} (set again and verified)")
        return OperationFailed(
            f"{failure.message}; the listener keeps its live weights {weights}",
            hint=failure.hint,
        )

    def _finished(self, info: StackInfo | None) -> StackInfo:
        """The stack after an operation, or the error naming how it ended."""
        if info is not None and info.status in ("CREATE_COMPLETE", "UPDATE_COMPLETE"):
            return info
        status = "DELETED" if info is None else info.status
        reason = "" if info is None or not info.status_reason else f": {info.status_reason}"
        raise OperationFailed(
            f"stack {self.name} ended in {status}{reason}",
            hint=failure_hint(self.name, status, self._errors.region),
        )

    def delete(self, progress: Progress) -> None:
        """Delete the stack and wait until it is gone (missing is already done)."""
        if self.describe() is None:
            raise StackNotFound(self.name, self._errors.region)
        since = self._events.newest_id()
        with self._errors(f"delete stack {self.name}"):
            self._cf.delete_stack(StackName=self.name)
        info = self._wait(progress, since=since)
        if info is not None and info.status != "DELETE_COMPLETE":
            raise OperationFailed(
                f"stack {self.name} ended in {info.status}"
                + (f": {info.status_reason}" if info.status_reason else ""),
                hint="a resource could not be deleted; see the events above",
            )

    def _wait(self, progress: Progress, *, since: str | None) -> StackInfo | None:
        """Poll until the stack leaves *_IN_PROGRESS, logging each new event once."""
        deadline = self._clock() + TIMEOUT_SECONDS
        seen = since
        while True:
            for event_id, text in self._events.since(seen):
                progress.log(f"  {text}")
                seen = event_id
            try:
                with self._errors(f"describe stack {self.name}"):
                    stacks = self._cf.describe_stacks(StackName=self.name)["Stacks"]
            except StackNotFound:
                # Deleted stacks can only be described by id; by name they "do not exist".
                return None
            info = _info(stacks[0])
            if not info.status.endswith("_IN_PROGRESS"):
                return info
            progress.update(f"{self.name}: {info.status}")
            if self._clock() >= deadline:
                raise OperationFailed(f"stack {self.name} is still {info.status} after 1 hour")
            self._sleep(POLL_SECONDS)
