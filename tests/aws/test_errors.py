"""botocore errors become CanaryErrors with a message, a hint and the right exit code."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError, NoRegionError
from botocore.parsers import ResponseParserError

from canary_deploy.aws.errors import aws_errors, translate
from canary_deploy.errors import EXIT_FAILED, EXIT_USAGE, OperationFailed


def client_error(code: str, message: str) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": message}}, "AnyOperation")


def test_no_region_asks_for_one() -> None:
    err = translate(NoRegionError(), action="x", stack_name="s", region="")
    assert err.exit_code == EXIT_USAGE
    assert err.hint is not None and "AWS_REGION" in err.hint


def test_unreachable_endpoint_fails_with_a_network_hint() -> None:
    exc = EndpointConnectionError(endpoint_url="http://127.0.0.1:1")
    err = translate(exc, action="read the listener", stack_name="s", region="eu-west-1")
    assert err.exit_code == EXIT_FAILED
    assert "cannot reach AWS while trying to read the listener" in err.message
    assert err.hint is not None and "AWS_ENDPOINT_URL" in err.hint


def test_expired_token_is_a_credentials_problem() -> None:
    err = translate(
        client_error("ExpiredToken", "The security token included in the request is expired"),
        action="describe stack s",
        stack_name="s",
        region="us-east-1",
    )
    assert err.exit_code == EXIT_USAGE
    assert "expired" in err.message
    assert err.hint is not None and "aws sso login" in err.hint


def test_stack_missing_names_stack_and_region() -> None:
    err = translate(
        client_error("ValidationError", "Stack with id prod does not exist"),
        action="describe stack prod",
        stack_name="prod",
        region="eu-west-1",
    )
    assert err.exit_code == EXIT_FAILED
    assert err.message == "stack prod does not exist in eu-west-1"


def test_other_errors_keep_aws_code_and_message() -> None:
    err = translate(
        client_error("ValidationError", "Template format error"),
        action="create stack s",
        stack_name="s",
        region="us-east-1",
    )
    assert err.exit_code == EXIT_FAILED
    assert err.message == "AWS refused to create stack s: ValidationError: Template format error"


def test_an_unreadable_response_is_an_error_with_a_hint_not_a_traceback() -> None:
    # What botocore raises when a proxy or a broken endpoint answers with an HTML page.
    exc = ResponseParserError("Unable to parse response, invalid XML received")
    with pytest.raises(OperationFailed) as raised, aws_errors("update stack s", stack_name="s",
                                                              region="eu-west-1"):  # fmt: skip
        raise exc
    assert "could not be read while trying to update stack s" in raised.value.message
    assert raised.value.hint is not None and "AWS_ENDPOINT_URL" in raised.value.hint
