"""One stack's partition of the state table: consistent reads, and conditional writes
whose failed condition is an exception the store can explain (never a botocore one)."""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from canary_deploy.aws.errors import error_code
from canary_deploy.aws.state_codec import text
from canary_deploy.aws.state_table import StateErrors

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_dynamodb.type_defs import AttributeValueTypeDef, TransactWriteItemTypeDef

    Item = Mapping[str, AttributeValueTypeDef]
    Values = Mapping[str, AttributeValueTypeDef]

# DynamoDB's limit of actions in one TransactWriteItems call.
TRANSACTION_LIMIT = 100
_TRANSACTION_ATTEMPTS = 3

# Attribute names the expressions use: several are DynamoDB reserved words.
_ATTRIBUTES = {
    "#sk": "sk",
    "#state": "state",
    "#status": "status",
    "#version": "version",
    "#seq": "event_seq",
    "#commands": "command_seq",
    "#owner": "owner",
    "#expires": "expires_at",
    "#renewed": "renewed_at",
    "#consumed": "consumed_at",
    "#latest": "latest_id",
    "#active": "active_id",
    "#rollout": "rollout",
    "#kind": "kind",
}


def names(*expressions: str) -> dict[str, str]:
    """The `#name` placeholders the expressions use (DynamoDB rejects unused ones)."""
    return {name: _ATTRIBUTES[name] for name in re.findall(r"#\w+", " ".join(expressions))}


class Refused(Exception):
    """A write's condition did not hold; `item` is the old item when DynamoDB returned it."""

    def __init__(self, item: Item | None = None) -> None:
        super().__init__("condition failed")
        self.item = item


class Partition:
    """The items of one partition key in one table."""

    def __init__(
        self,
        client: DynamoDBClient,
        *,
        table: str,
        partition: str,
        errors: StateErrors,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.client = client
        self.table = table
        self.partition = partition
        self.errors = errors
        self._sleep = sleep

    def key(self, sort_key: str) -> dict[str, AttributeValueTypeDef]:
        return {"pk": text(self.partition), "sk": text(sort_key)}

    # ---- transaction actions

    def delete(self, sort_key: str, condition: str) -> TransactWriteItemTypeDef:
        """Delete an item if `condition` (which uses no values) holds."""
        return {
            "Delete": {
                "TableName": self.table,
                "Key": self.key(sort_key),
                "ConditionExpression": condition,
                "ExpressionAttributeNames": names(condition),
            }
        }

    def put(self, item: Mapping[str, AttributeValueTypeDef]) -> TransactWriteItemTypeDef:
        """Put a new item (refused if its key exists)."""
        return {
            "Put": {
                "TableName": self.table,
                "Item": item,
                "ConditionExpression": "attribute_not_exists(sk)",
            }
        }

    def update(
        self, sort_key: str, update: str, condition: str, values: Values
    ) -> TransactWriteItemTypeDef:
        """Update an item if `condition` holds."""
        return {
            "Update": {
                "TableName": self.table,
                "Key": self.key(sort_key),
                "UpdateExpression": update,
                "ConditionExpression": condition,
                "ExpressionAttributeNames": names(update, condition),
                "ExpressionAttributeValues": values,
            }
        }

    # ---- calls

    def get_item(self, sort_key: str, action: str) -> Item | None:
        with self.errors(action):
            response = self.client.get_item(
                TableName=self.table, Key=self.key(sort_key), ConsistentRead=True
            )
        return response.get("Item")

    def query(
        self,
        action: str,
        prefix: str,
        *,
        only: str | None = None,
        values: Values | None = None,
    ) -> Iterator[Item]:
        """Items whose sort key starts with `prefix`, in sort key order; `only` filters
        them (an expression over `values`)."""
        kwargs: dict[str, Any] = {
            "TableName": self.table,
            "ConsistentRead": True,
            "KeyConditionExpression": "pk = :pk AND begins_with(sk, :prefix)",
            "ExpressionAttributeValues": {":pk": text(self.partition), ":prefix": text(prefix)}
            | dict(values or {}),
        }
        if only is not None:
            kwargs["FilterExpression"] = only
            kwargs["ExpressionAttributeNames"] = names(only)
        with self.errors(action):
            for page in self.client.get_paginator("query").paginate(**kwargs):
                yield from page["Items"]

    def update_item(
        self,
        action: str,
        sort_key: str,
        update: str,
        condition: str,
        values: Values,
        *,
        returns: bool = False,
    ) -> Item:
        """One conditional UpdateItem (the updated attributes when `returns`); Refused,
        with the old item, when the condition fails."""
        with self.errors(action):
            try:
                response = self.client.update_item(
                    TableName=self.table,
                    Key=self.key(sort_key),
                    UpdateExpression=update,
                    ConditionExpression=condition,
                    ExpressionAttributeNames=names(update, condition),
                    ExpressionAttributeValues=values,
                    ReturnValues="UPDATED_NEW" if returns else "NONE",
                    ReturnValuesOnConditionCheckFailure="ALL_OLD",
                )
            except ClientError as exc:
                if error_code(exc) == "ConditionalCheckFailedException":
                    raise Refused(exc.response.get("Item")) from exc  # type: ignore[arg-type]
                raise
        return response.get("Attributes", {})

    def put_item(self, action: str, item: Mapping[str, AttributeValueTypeDef]) -> None:
        """Put a new item; Refused if its key exists."""
        with self.errors(action):
            try:
                self.client.put_item(
                    TableName=self.table, Item=item, ConditionExpression="attribute_not_exists(sk)"
                )
            except ClientError as exc:
                if error_code(exc) == "ConditionalCheckFailedException":
                    raise Refused() from exc
                raise

    def transact(self, action: str, writes: list[TransactWriteItemTypeDef]) -> None:
        """All of `writes` or none; Refused when a condition fails. A conflict with another
        transaction on the same items (no condition failed) is retried."""
        for attempt in range(1, _TRANSACTION_ATTEMPTS + 1):
            with self.errors(action):
                try:
                    self.client.transact_write_items(TransactItems=writes)
                    return
                except ClientError as exc:
                    reasons = _cancellation_reasons(exc)
                    if "ConditionalCheckFailed" in reasons:
                        raise Refused() from exc
                    if "TransactionConflict" not in reasons or attempt == _TRANSACTION_ATTEMPTS:
                        raise
            self._sleep(0.05 * attempt)


def _cancellation_reasons(exc: ClientError) -> list[str]:
    """The per-action reason codes of a TransactionCanceledException ([] for others)."""
    reasons: list[Mapping[str, Any]] = exc.response.get("CancellationReasons", [])  # type: ignore[assignment]
    return [str(reason.get("Code")) for reason in reasons]
