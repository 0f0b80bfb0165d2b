"""The DynamoDB table that keeps rollout state: its name, its creation on first use, the
partition of one stack, and the errors a user sees when it cannot be reached."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Literal

from botocore.exceptions import BotoCoreError, ClientError

from canary_deploy.aws.errors import ACCESS_DENIED_CODES, error_code, translate
from canary_deploy.backend import Progress
from canary_deploy.errors import OperationFailed

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_dynamodb.type_defs import TableDescriptionTypeDef
    from mypy_boto3_sts import STSClient

TABLE_ENV = "CANARY_STATE_TABLE"
DEFAULT_TABLE = "canary-deploy-state"
KEY_SCHEMA: tuple[tuple[str, Literal["HASH", "RANGE"]], ...] = (("pk", "HASH"), ("sk", "RANGE"))
# Creating an on-demand table takes seconds to a minute; past this something is wrong.
CREATE_TIMEOUT_S = 300.0


def table_name(environ: Mapping[str, str] = os.environ) -> str:
    return environ.get(TABLE_ENV) or DEFAULT_TABLE


def partition_key(account: str, region: str, stack: str) -> str:
    """One stack's partition: the same stack name in two accounts or regions never meets."""
    return f"{account}:{region}:{stack}"


def caller_account(sts: STSClient) -> str:
    """The account the credentials belong to (GetCallerIdentity needs no permission)."""
    return sts.get_caller_identity()["Account"]


# A transaction is authorised action by action: its Put, Update and Delete need the
# permissions of PutItem, UpdateItem and DeleteItem (there is no permission of its own).
_TRANSACTION_PERMISSIONS = "dynamodb:PutItem, dynamodb:UpdateItem and dynamodb:DeleteItem"


def permissions(operation: str) -> str:
    """The IAM permission(s) an API operation of the state store needs."""
    if operation == "TransactWriteItems":
        return _TRANSACTION_PERMISSIONS
    service = "sts" if operation == "GetCallerIdentity" else "dynamodb"
    return f"{service}:{operation}"


class StateErrors:
    """Botocore errors on the state table as CanaryErrors; access denied names the
    permission the credentials lack."""

    def __init__(self, *, table: str, region: str, stack_name: str) -> None:
        self.table = table
        self.region = region
        self.stack_name = stack_name

    @contextmanager
    def __call__(self, action: str) -> Iterator[None]:
        try:
            yield
        except ClientError as exc:
            raise self._translate(exc, action) from exc
        except BotoCoreError as exc:
            raise translate(
                exc, action=action, stack_name=self.stack_name, region=self.region
            ) from exc

    def _translate(self, exc: ClientError, action: str) -> Exception:
        code = error_code(exc)
        if code in ACCESS_DENIED_CODES:
            message = str(exc.response.get("Error", {}).get("Message", ""))
            return OperationFailed(
                f"access denied to the rollout state table {self.table} while trying to "
                f"{action}: {message}",
                hint=f"the credentials lack {permissions(exc.operation_name)} on table "
                f"{self.table} in {self.region}; grant it (see the operator's IAM policy in "
                f"docs/aws.md), or name another table with {TABLE_ENV}",
            )
        if code == "ResourceNotFoundException":
            return OperationFailed(
                f"the rollout state table {self.table} does not exist in {self.region} "
                f"(deleted while in use?) while trying to {action}",
                hint="run the command again: it creates the table (the history it held is lost)",
            )
        return translate(exc, action=action, stack_name=self.stack_name, region=self.region)


def table_exists(client: DynamoDBClient, table: str) -> bool:
    """Whether the table is there (a command that only looks for a rollout creates none)."""
    try:
        client.describe_table(TableName=table)
    except ClientError as exc:
        if error_code(exc) == "ResourceNotFoundException":
            return False
        raise
    return True


def ensure_table(
    client: DynamoDBClient,
    table: str,
    progress: Progress,
    *,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> None:
    """Create the table when it is missing (on demand capacity) and wait until ACTIVE."""
    try:
        description = client.describe_table(TableName=table)["Table"]
    except ClientError as exc:
        if error_code(exc) != "ResourceNotFoundException":
            raise
        description = _create(client, table, progress)
    _check_keys(description, table)
    deadline = clock() + CREATE_TIMEOUT_S
    while description.get("TableStatus") != "ACTIVE":
        status = description.get("TableStatus")
        if status not in ("CREATING", "UPDATING"):
            raise OperationFailed(
                f"the rollout state table {table} is {status}",
                hint=f"wait until it is gone or ACTIVE, or name another table with {TABLE_ENV}",
            )
        if clock() > deadline:
            raise OperationFailed(
                f"the rollout state table {table} was not ACTIVE after {CREATE_TIMEOUT_S:.0f}s"
            )
        progress.update(f"waiting for table {table} to become ACTIVE ({status})")
        sleep(2.0)
        description = client.describe_table(TableName=table)["Table"]


def _create(client: DynamoDBClient, table: str, progress: Progress) -> TableDescriptionTypeDef:
    progress.log(
        f"Creating the DynamoDB table {table} that keeps rollout state "
        "(once per account and region)"
    )
    try:
        return client.create_table(
            TableName=table,
            BillingMode="PAY_PER_REQUEST",
            AttributeDefinitions=[
                {"AttributeName": name, "AttributeType": "S"} for name, _ in KEY_SCHEMA
            ],
            KeySchema=[{"AttributeName": name, "KeyType": kind} for name, kind in KEY_SCHEMA],
        )["TableDescription"]
    except ClientError as exc:
        if error_code(exc) != "ResourceInUseException":
            raise
        # Another canary created it a moment ago: use theirs.
        return client.describe_table(TableName=table)["Table"]


def _check_keys(description: TableDescriptionTypeDef, table: str) -> None:
    keys = tuple((k["AttributeName"], k["KeyType"]) for k in description.get("KeySchema", []))
    if keys != KEY_SCHEMA:
        raise OperationFailed(
            f"table {table} exists but is not a canary state table (its key is {keys})",
            hint=f"name another table with {TABLE_ENV}",
        )
