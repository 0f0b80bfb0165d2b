"""The DynamoDB rollout state against the moto server: the table made on first use, the
partition per account, region and stack, and every race a conditional write closes (a
lost lease, a stale read, a command applied twice, two rollouts started at once)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from dataclasses import fields, replace
from typing import Any

import boto3
import pytest

from canary_deploy.analysis import Judge, Verdict
from canary_deploy.aws.state import DynamoRolloutState
from canary_deploy.aws.state_codec import HEAD, number, rollout_document, rollout_key
from canary_deploy.aws.state_open import open_state
from canary_deploy.aws.state_table import StateErrors, ensure_table
from canary_deploy.errors import EXIT_FAILED, OperationFailed, UsageError
from canary_deploy.rollout.plan import build_plan
from canary_deploy.rollout.state import LeaseLost, StaleState, unattended_since
from canary_deploy.rollout.store import Command, RecordedDecision, Rollout, RolloutStatus
from tests.analysis import helpers
from tests.aws.conftest import AwsEnv
from tests.aws.stubs import REGION, RecordingProgress, stubbed

T0 = 1_000_000.0
PLAN = build_plan("aws", {})
OpenState = Callable[..., DynamoRolloutState]


@pytest.fixture
def table() -> str:
    return f"state-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def open_(aws_env: AwsEnv, table: str) -> Iterator[OpenState]:
    """Open the test stack's state (as a new process would), closed after the test."""
    opened: list[DynamoRolloutState] = []

    def open_one(**kwargs: Any) -> DynamoRolloutState:
        kwargs = {"region": REGION, "stack_name": aws_env.stack_name, "table": table} | kwargs
        store = open_state(profile=None, **kwargs)
        opened.append(store)
        return store

    yield open_one
    for store in opened:
        store.close()


def start(store: DynamoRolloutState, *, now: float = T0) -> Rollout:
    judge = Judge(PLAN.judge).to_dict()
    return store.create(PLAN, judge, now=now, canary_image="repo/app:v2", actor="alice")


# ---- the table


def test_the_table_is_created_on_first_use_and_then_reused(open_: OpenState, table: str) -> None:
    progress = RecordingProgress()
    open_(progress=progress)
    assert progress.lines == [
        f"Creating the DynamoDB table {table} that keeps rollout state "
        "(once per account and region)"
    ]
    description = boto3.client("dynamodb").describe_table(TableName=table)["Table"]
    assert description["TableStatus"] == "ACTIVE"
    assert description["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"
    again = RecordingProgress()
    open_(progress=again)
    assert again.lines == []


def test_the_table_name_comes_from_canary_state_table(
    open_: OpenState, table: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CANARY_STATE_TABLE", f"{table}-team")
    start(open_(table=None))
    assert f"{table}-team" in boto3.client("dynamodb").list_tables()["TableNames"]


def test_a_table_with_another_key_is_refused_with_a_hint(open_: OpenState, table: str) -> None:
    boto3.client("dynamodb").create_table(
        TableName=table,
        BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
    )
    with pytest.raises(OperationFailed, match=f"table {table} exists but is not") as refused:
        open_()
    assert refused.value.hint is not None and "CANARY_STATE_TABLE" in refused.value.hint


def test_a_table_still_being_created_is_waited_for() -> None:
    client, stub = stubbed("dynamodb")
    keys = [
        {"AttributeName": "pk", "KeyType": "HASH"},
        {"AttributeName": "sk", "KeyType": "RANGE"},
    ]
    for status in ("CREATING", "CREATING", "ACTIVE"):
        stub.add_response(
            "describe_table",
            {"Table": {"TableStatus": status, "KeySchema": keys}},
            {"TableName": "t"},
        )
    progress, sleeps = RecordingProgress(), []
    with stub:
        ensure_table(client, "t", progress, sleep=sleeps.append)
    stub.assert_no_pending_responses()
    assert sleeps == [2.0, 2.0]
    assert progress.updates[-1] == "waiting for table t to become ACTIVE (CREATING)"


def test_a_table_another_canary_is_creating_at_the_same_time_is_used() -> None:
    client, stub = stubbed("dynamodb")
    keys = [
        {"AttributeName": "pk", "KeyType": "HASH"},
        {"AttributeName": "sk", "KeyType": "RANGE"},
    ]
    stub.add_client_error("describe_table", "ResourceNotFoundException", "not found")
    stub.add_client_error("create_table", "ResourceInUseException", "Table already exists: t")
    stub.add_response("describe_table", {"Table": {"TableStatus": "ACTIVE", "KeySchema": keys}})
    with stub:
        ensure_table(client, "t", RecordingProgress(), sleep=lambda _: None)
    stub.assert_no_pending_responses()


def test_a_table_deleted_while_in_use_says_the_next_command_recreates_it(
    open_: OpenState, table: str
) -> None:
    store = open_()
    boto3.client("dynamodb").delete_table(TableName=table)
    with pytest.raises(OperationFailed, match=f"table {table} does not exist") as failed:
        store.latest()
    assert failed.value.hint is not None and "creates the table" in failed.value.hint


def test_access_denied_on_the_table_names_the_missing_permission() -> None:
    client, stub = stubbed("dynamodb")
    denied = "User: arn:aws:iam::1:user/ci is not authorized to perform: dynamodb:GetItem"
    stub.add_client_error("get_item", "AccessDeniedException", denied)
    state = DynamoRolloutState(
        client,
        table="canary-deploy-state",
        partition="1:us-east-1:shop",
        stack="shop",
        region=REGION,
    )
    with stub, pytest.raises(OperationFailed) as failed:
        state.latest()
    assert failed.value.exit_code == EXIT_FAILED
    assert "access denied to the rollout state table canary-deploy-state" in failed.value.message
    assert failed.value.hint is not None
    assert "lack dynamodb:GetItem on table canary-deploy-state in us-east-1" in failed.value.hint


def test_access_denied_on_a_save_names_the_permissions_a_transaction_needs() -> None:
    client, stub = stubbed("dynamodb")
    stub.add_response("get_item", {})  # no rollout yet
    stub.add_client_error("transact_write_items", "AccessDeniedException", "not authorized")
    state = DynamoRolloutState(
        client,
        table="canary-deploy-state",
        partition="1:us-east-1:shop",
        stack="shop",
        region=REGION,
    )
    with stub, pytest.raises(OperationFailed) as failed:
        state.create(PLAN, {}, now=T0, canary_image=None, actor="alice")
    assert failed.value.hint is not None
    assert "dynamodb:PutItem, dynamodb:UpdateItem and dynamodb:DeleteItem" in failed.value.hint


def test_access_denied_creating_the_table_names_create_table() -> None:
    client, stub = stubbed("dynamodb")
    stub.add_client_error("describe_table", "ResourceNotFoundException", "not found")
    stub.add_client_error("create_table", "AccessDeniedException", "not authorized")
    errors = StateErrors(table="t", region=REGION, stack_name="shop")
    with stub, pytest.raises(OperationFailed) as failed, errors("open the table"):
        ensure_table(client, "t", RecordingProgress())
    assert failed.value.hint is not None and "dynamodb:CreateTable" in failed.value.hint


# ---- the partition


def test_a_stack_is_keyed_by_account_region_and_name(
    open_: OpenState, aws_env: AwsEnv, table: str
) -> None:
    r = start(open_())
    account = boto3.client("sts").get_caller_identity()["Account"]
    item = boto3.client("dynamodb").get_item(
        TableName=table,
        Key={
            "pk": {"S": f"{account}:{REGION}:{aws_env.stack_name}"},
            "sk": {"S": rollout_key(r.id)},
        },
    )
    assert item["Item"]["status"] == {"S": "running"}


def test_the_same_stack_in_two_regions_runs_two_rollouts(open_: OpenState) -> None:
    east, west = open_(), open_(region="eu-west-1")
    start(east)
    west_rollout = start(west)
    west.send(west_rollout.id, Command.ABORT, actor="bob")
    assert east.pending_commands(1) == [] and len(west.pending_commands(1)) == 1


def test_a_missing_rollout_is_a_usage_error_everywhere(open_: OpenState) -> None:
    store = open_()
    for call in (
        lambda: store.get(7),
        lambda: store.claim(7, now=T0),
        lambda: store.send(7, Command.ABORT, actor="bob"),
    ):
        with pytest.raises(UsageError, match="no rollout 7 for stack"):
            call()


# ---- races closed by conditional writes


def test_a_controller_that_lost_its_lease_cannot_save(open_: OpenState) -> None:
    first, second = open_(), open_()
    r = start(first)
    second.claim(r.id, now=T0 + 31)  # the first one stopped renewing
    with pytest.raises(LeaseLost) as lost:
        first.save(replace(r, step=2), now=T0 + 32, events=[("step", "controller", "x", None)])
    assert second.owner in lost.value.message and "nothing was saved" in lost.value.message
    assert second.get(r.id).step == 0 and len(second.events(r.id)) == 1
    with pytest.raises(LeaseLost):
        first.renew(r.id, now=T0 + 33)


def test_a_save_from_a_stale_read_is_refused_and_writes_nothing(open_: OpenState) -> None:
    controller, other = open_(), open_()
    r = start(controller)
    controller.release(r.id)  # nobody runs it: any process may act on it
    stale = other.get(r.id)
    controller.save(replace(controller.get(r.id), step=1), now=T0 + 5)
    with pytest.raises(StaleState, match="changed since this process read it"):
        other.save(replace(stale, step=3), now=T0 + 6, events=[("step", "bob", "x", None)])
    assert other.get(r.id).step == 1 and len(other.events(r.id)) == 1
    other.save(replace(other.get(r.id), step=2), now=T0 + 7)  # after reading again: fine
    assert controller.get(r.id).step == 2


def test_a_command_is_applied_once_even_by_two_processes(open_: OpenState) -> None:
    controller, other = open_(), open_()
    r = start(controller)
    abort = controller.send(r.id, Command.ABORT, actor="bob")
    assert other.pending_commands(r.id) == [(abort, Command.ABORT, "bob")]
    controller.save(controller.get(r.id), now=T0 + 1, consumed=[abort])
    controller.release(r.id)
    rolling_back = replace(other.get(r.id), status=RolloutStatus.ROLLING_BACK)
    with pytest.raises(StaleState):
        other.save(rolling_back, now=T0 + 2, consumed=[abort])
    assert other.get(r.id).status is RolloutStatus.RUNNING


def test_a_steering_process_cannot_save_while_a_controller_runs(open_: OpenState) -> None:
    controller, steering = open_(), open_()
    r = start(controller)
    with pytest.raises(OperationFailed, match="only its controller saves it") as refused:
        steering.save(replace(steering.get(r.id), step=1), now=T0 + 5)
    assert not isinstance(refused.value, StaleState | LeaseLost)
    assert controller.get(r.id).step == 0


def test_two_rollouts_started_at_once_make_one(
    open_: OpenState, monkeypatch: pytest.MonkeyPatch
) -> None:
    first, second = open_(), open_()
    # The second read HEAD before the first wrote it: only the conditional write can refuse.
    monkeypatch.setattr(second, "_head", dict)
    r = start(first)
    with pytest.raises(UsageError, match="already in progress"):
        start(second, now=T0 + 1)
    assert first.latest() == r and [e.kind for e in first.events()] == ["started"]


def test_a_stale_active_pointer_does_not_block_the_next_rollout(
    open_: OpenState, aws_env: AwsEnv, table: str
) -> None:
    store = open_()
    r = start(store)
    store.save(replace(r, status=RolloutStatus.PROMOTED), now=T0 + 1)
    # A HEAD that still names the ended rollout (e.g. written by hand in the console).
    account = boto3.client("sts").get_caller_identity()["Account"]
    boto3.client("dynamodb").update_item(
        TableName=table,
        Key={"pk": {"S": f"{account}:{REGION}:{aws_env.stack_name}"}, "sk": {"S": HEAD}},
        UpdateExpression="SET active_id = :id",
        ExpressionAttributeValues={":id": number(r.id)},
    )
    assert store.active() is None
    assert start(store, now=T0 + 2).id == r.id + 1


# ---- the lease and what a save stores


def test_saves_and_renewals_extend_the_lease(open_: OpenState) -> None:
    controller, status = open_(lease_s=30.0), open_()
    r = start(controller)
    controller.save(controller.get(r.id), now=T0 + 10)
    lease = status.lease(r.id)
    assert (lease.owner, lease.renewed_at, lease.expires_at) == (controller.owner, T0 + 10, T0 + 40)
    controller.renew(r.id, now=T0 + 20)
    assert status.controller_alive(r, now=T0 + 49) and not status.controller_alive(r, now=T0 + 51)
    assert unattended_since(status, status.get(r.id), now=T0 + 51) == T0 + 20


def test_a_refused_claim_names_the_holder_and_when_its_lease_ends(open_: OpenState) -> None:
    first, second = open_(), open_()
    r = start(first)
    with pytest.raises(UsageError) as refused:
        second.claim(r.id, now=T0 + 5)
    assert refused.value.message == (
        f"rollout 1 of {first.stack} is already being run by {first.owner}; its lease "
        "expires at 1970-01-12 13:47:10 UTC unless renewed"
    )


def test_every_field_of_a_rollout_survives_a_round_trip(open_: OpenState) -> None:
    store = open_()
    r = start(store)
    decision = RecordedDecision(
        helpers.decision(
            Verdict.ROLLBACK, helpers.evidence("errors", float("inf")), explanation="ünïcode"
        ),
        (T0, T0 + 0.1),
        2,
    )
    saved = store.save(
        replace(r, step=2, cursor=T0 + 0.1, last_decision=decision, reason="judge: worse"),
        now=T0 + 1.25,
    )
    elsewhere = open_().get(r.id)
    assert elsewhere == saved and elsewhere.last_decision == decision
    assert elsewhere.plan == PLAN and elsewhere.status is RolloutStatus.RUNNING


def test_more_events_than_one_transaction_holds_are_all_saved_in_order(
    open_: OpenState,
) -> None:
    store = open_()
    r = start(store)
    events = [("batch", "judge", f"batch {i}", {"i": i}) for i in range(150)]
    store.save(store.get(r.id), now=T0 + 1, events=events)
    store.save(store.get(r.id), now=T0 + 2, events=[("step", "controller", "after", None)])
    logged = store.events(r.id)
    assert [e.message for e in logged] == (
        ["rollout started: canary 5% -> 25% -> 50% -> 100%"]
        + [f"batch {i}" for i in range(150)]
        + ["after"]
    )
    assert [e.id for e in logged] == list(range(1, 153))


def test_a_field_added_to_rollout_is_stored_without_touching_the_store(open_: OpenState) -> None:
    r = start(open_())
    stored = json.loads(rollout_document(r))
    assert set(stored) == {f.name for f in fields(Rollout)} - {"owner_pid", "heartbeat"}
