"""Translate botocore exceptions into CanaryErrors with hints, where AWS calls enter."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager

from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    EndpointConnectionError,
    NoCredentialsError,
    NoRegionError,
    PartialCredentialsError,
    ProfileNotFound,
    WaiterError,
)
from botocore.parsers import ResponseParserError

from canary_deploy.errors import CanaryError, OperationFailed, UsageError

THROTTLING_CODES = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "RequestLimitExceeded",
        "TooManyRequestsException",
        "RequestThrottled",
    }
)
ACCESS_DENIED_CODES = frozenset(
    {"AccessDenied", "AccessDeniedException", "UnauthorizedOperation", "AuthorizationError"}
)
BAD_CREDENTIALS_CODES = frozenset(
    {
        "InvalidClientTokenId",
        "UnrecognizedClientException",
        "ExpiredToken",
        "ExpiredTokenException",
        "SignatureDoesNotMatch",
    }
)
CREDENTIALS_HINT = (
    "configure credentials: `aws configure`, `aws sso login --profile X` and AWS_PROFILE=X, "
    "or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY"
)


class StackNotFound(OperationFailed):
    """The named stack does not exist in this account and region."""

    def __init__(self, stack_name: str, region: str) -> None:
        super().__init__(
            f"stack {stack_name} does not exist in {region}",
            hint="run `canary --target aws deploy` first, or check STACK_NAME / AWS_REGION",
        )


def error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def is_stack_missing(exc: ClientError) -> bool:
    """CloudFormation says "Stack with id X does not exist" as a plain ValidationError."""
    message = str(exc.response.get("Error", {}).get("Message", ""))
    return error_code(exc) == "ValidationError" and "does not exist" in message


def translate(exc: Exception, *, action: str, stack_name: str, region: str) -> CanaryError:
    """The CanaryError a user should see for a botocore exception raised while `action`.
    (Long as a flat table: one branch per exception or error code, in order.)"""
    if isinstance(exc, CanaryError):
        return exc
    if isinstance(exc, NoCredentialsError | PartialCredentialsError):
        return UsageError(
            f"no AWS credentials found while trying to {action}", hint=CREDENTIALS_HINT
        )
    if isinstance(exc, ProfileNotFound):
        return UsageError(str(exc), hint="check AWS_PROFILE / --profile against ~/.aws/config")
    if isinstance(exc, NoRegionError):
        return UsageError("no AWS region is set", hint="set AWS_REGION or pass --region")
    if isinstance(exc, EndpointConnectionError):
        return OperationFailed(
            f"cannot reach AWS while trying to {action}: {exc}",
            hint="check the network, AWS_REGION and AWS_ENDPOINT_URL",
        )
    if isinstance(exc, WaiterError):
        return OperationFailed(f"gave up waiting to {action}: {exc}")
    if isinstance(exc, ClientError):
        code = error_code(exc)
        message = str(exc.response.get("Error", {}).get("Message", "")) or str(exc)
        if is_stack_missing(exc):
            return StackNotFound(stack_name, region)
        if code == "ListenerNotFound":
            return OperationFailed(
                f"the listener of stack {stack_name} no longer exists",
                hint="it was deleted outside canary; `canary --target aws deploy` restores it",
            )
        if code in THROTTLING_CODES:
            return OperationFailed(
                f"AWS throttled the request to {action} (retried with backoff)",
                hint="wait a minute and try again; other tools may be calling the same API",
            )
        if code in ACCESS_DENIED_CODES:
            return OperationFailed(
                f"access denied while trying to {action}: {message}",
                hint="the credentials in use lack this IAM permission; see docs/aws.md",
            )
        if code in BAD_CREDENTIALS_CODES:
            return UsageError(
                f"AWS rejected the credentials while trying to {action}: {message}",
                hint=CREDENTIALS_HINT,
            )
        return OperationFailed(f"AWS refused to {action}: {code}: {message}")
    if isinstance(exc, BotoCoreError):
        return OperationFailed(f"AWS call failed while trying to {action}: {exc}")
    if isinstance(exc, ResponseParserError):  # not a BotoCoreError
        return OperationFailed(
            f"the answer of AWS could not be read while trying to {action}: {exc}",
            hint="something between canary and AWS answered instead (a proxy, or the "
            "endpoint in AWS_ENDPOINT_URL); retry, or check the network settings",
        )
    raise exc


@contextmanager
def aws_errors(action: str, *, stack_name: str, region: str) -> Iterator[None]:
    """Turn botocore exceptions raised in the block into CanaryErrors."""
    try:
        yield
    except (BotoCoreError, ClientError, ResponseParserError) as exc:
        raise translate(exc, action=action, stack_name=stack_name, region=region) from exc


class ErrorScope:
    """`aws_errors` bound to one stack and region, handed to each AWS component."""

    def __init__(self, stack_name: str, region: str) -> None:
        self.stack_name = stack_name
        self.region = region

    def __call__(self, action: str) -> AbstractContextManager[None]:
        return aws_errors(action, stack_name=self.stack_name, region=self.region)
