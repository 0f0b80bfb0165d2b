"""Opening a stack's rollout state: the session and region as for the stack's clients,
the account, the table (created on first use, or not: `open_existing_state`)."""

from __future__ import annotations

from canary_deploy.aws.clients import CLIENT_CONFIG, open_session
from canary_deploy.aws.errors import aws_errors
from canary_deploy.aws.state import DynamoRolloutState
from canary_deploy.aws.state_lease import LEASE_S
from canary_deploy.aws.state_table import (
    StateErrors,
    caller_account,
    ensure_table,
    partition_key,
    table_exists,
    table_name,
)
from canary_deploy.backend import Progress, SilentProgress


def open_state(
    *,
    region: str | None,
    profile: str | None,
    stack_name: str,
    table: str | None = None,
    progress: Progress | None = None,
    lease_s: float = LEASE_S,
) -> DynamoRolloutState:
    """The state of `stack_name` in `region` (None: resolved as for the stack's clients),
    creating the table on first use (AWS_ENDPOINT_URL is honoured by boto3, as for every
    other client)."""
    state = _open(region, profile, stack_name, table, progress, lease_s, create=True)
    assert state is not None  # created when missing
    return state


def open_existing_state(
    *, region: str | None, profile: str | None, stack_name: str, table: str | None = None
) -> DynamoRolloutState | None:
    """As `open_state`, but None when the table does not exist (nothing ever ran)."""
    return _open(region, profile, stack_name, table, None, LEASE_S, create=False)


def _open(
    region: str | None,
    profile: str | None,
    stack_name: str,
    table: str | None,
    progress: Progress | None,
    lease_s: float,
    *,
    create: bool,
) -> DynamoRolloutState | None:
    table = table or table_name()
    # open_session: the region resolved like the stack's clients', and their call log.
    session, resolved = open_session(region=region, profile=profile, stack_name=stack_name)
    with aws_errors("open an AWS session", stack_name=stack_name, region=resolved):
        client = session.client("dynamodb", region_name=resolved, config=CLIENT_CONFIG)
        sts = session.client("sts", region_name=resolved, config=CLIENT_CONFIG)
    errors = StateErrors(table=table, region=resolved, stack_name=stack_name)
    with errors(f"open the rollout state table {table}"):
        if not create and not table_exists(client, table):
            return None
        ensure_table(client, table, progress or SilentProgress())
    with errors("look up the AWS account"):
        account = caller_account(sts)
    sts.close()
    return DynamoRolloutState(
        client,
        table=table,
        partition=partition_key(account, resolved, stack_name),
        stack=stack_name,
        region=resolved,
        lease_s=lease_s,
    )
