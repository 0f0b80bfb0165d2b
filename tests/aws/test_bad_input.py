"""Every bad input gets a clear message and exit code, and leaves the listener unchanged."""

from __future__ import annotations

import pytest

from canary_deploy.aws import emulator
from canary_deploy.cli.app import main
from canary_deploy.weights import Weights
from tests.aws.conftest import AwsEnv, CliRunner, isolate_env, new_stack_name


@pytest.fixture(scope="module")
def shared_stack(moto_server: emulator.MotoServer, tmp_path_factory: pytest.TempPathFactory) -> str:
    """One stack deployed at 95/5 for this module: every test here must leave it unchanged."""
    name = new_stack_name()
    with pytest.MonkeyPatch.context() as monkeypatch:
        isolate_env(monkeypatch, moto_server, name, tmp_path_factory.mktemp("aws"))
        with pytest.raises(SystemExit) as exc:
            main(["deploy"])
        assert exc.value.code in (0, None)
    return name


@pytest.fixture
def deployed(aws_env: AwsEnv, shared_stack: str, monkeypatch: pytest.MonkeyPatch) -> AwsEnv:
    monkeypatch.setenv("STACK_NAME", shared_stack)
    aws_env.stack_name = shared_stack
    aws_env.env["STACK_NAME"] = shared_stack
    assert aws_env.live_weights() == Weights(95, 5)
    return aws_env


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("set-weights", "70", "20"), "must sum to 100, got 70 + 20 = 90"),
        (("set-weights", "80", "30"), "= 110"),
        (("set-weights", "abc", "5"), "stable weight must be an integer, got 'abc'"),
        (("set-weights", "--", "101", "-1"), "between 0 and 100, got 101"),
        (("set-weights", "50.5", "49.5"), "must be an integer"),
    ],
)
def test_bad_weights_change_nothing(
    deployed: AwsEnv, cli: CliRunner, args: tuple[str, ...], message: str
) -> None:
    result = cli(*args)
    assert result.exit_code == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert deployed.live_weights() == Weights(95, 5)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"IMAGE_URI_CANARY": ""}, "IMAGE_URI_CANARY must be set"),
        ({"IMAGE_URI_STABLE": "", "IMAGE_URI_CANARY": ""}, "IMAGE_URI_STABLE and IMAGE_URI_CANARY"),
        ({"TASK_CPU": "300"}, "task_cpu must be one of 256"),
        ({"TASK_MEMORY": "64"}, "aws.task_memory (env TASK_MEMORY)"),
        ({"CONTAINER_PORT": "70000"}, "container_port (env CONTAINER_PORT)"),
        ({"DESIRED_COUNT_CANARY": "many"}, "desired_count_canary"),
        ({"STABLE_WEIGHT": "90", "CANARY_WEIGHT": "20"}, "must sum to 100"),
        ({"CANARY_TARGET": "gcp"}, "target"),
    ],
)
def test_bad_deploy_configuration_changes_nothing(
    deployed: AwsEnv, cli: CliRunner, env: dict[str, str], message: str
) -> None:
    before = deployed.stack_parameters()
    result = cli("deploy", **env)
    assert result.exit_code == 2
    assert message in result.stderr
    assert deployed.live_weights() == Weights(95, 5)
    assert deployed.stack_parameters() == before


def test_bad_vpc_flags_change_nothing(deployed: AwsEnv, cli: CliRunner) -> None:
    before = deployed.stack_parameters()
    result = cli("deploy", VPC_ID="vpc-123")
    assert result.exit_code == 2
    assert "VPC_ID was given without SUBNET_IDS" in result.stderr
    assert deployed.stack_parameters() == before


@pytest.mark.parametrize("args", [("status",), ("set-weights", "75", "25"), ("rollback",)])
def test_missing_stack_is_explained(aws_env: AwsEnv, cli: CliRunner, args: tuple[str, ...]) -> None:
    result = cli(*args)
    assert result.exit_code == 1
    assert f"stack {aws_env.stack_name} does not exist in us-east-1" in result.stderr
    assert "canary --target aws deploy" in result.stderr  # the hint
    assert not aws_env.stack_exists()


def test_delete_of_missing_stack_deletes_nothing_and_says_so(
    aws_env: AwsEnv, cli: CliRunner
) -> None:
    """Issue 13 item 13: deleting nothing is consistent on both targets: rc 0."""
    result = cli("delete", "--yes")
    assert result.exit_code == 0
    assert "Nothing to delete: stack" in result.stdout and "does not exist" in result.stdout


def test_delete_without_confirmation_keeps_the_stack(deployed: AwsEnv, cli: CliRunner) -> None:
    result = cli("delete")
    assert result.exit_code == 2
    assert "without confirmation" in result.stderr
    assert deployed.stack_exists()
    assert deployed.live_weights() == Weights(95, 5)


def test_no_credentials_is_a_usage_error(deployed: AwsEnv, cli: CliRunner) -> None:
    result = cli(
        "set-weights",
        "75",
        "25",
        AWS_ACCESS_KEY_ID="",
        AWS_SECRET_ACCESS_KEY="",
        AWS_SESSION_TOKEN="",
    )
    assert result.exit_code == 2
    assert "no AWS credentials found" in result.stderr
    assert "aws configure" in result.stderr
    assert deployed.live_weights() == Weights(95, 5)


def test_unknown_profile_is_a_usage_error(deployed: AwsEnv, cli: CliRunner) -> None:
    result = cli("status", AWS_PROFILE="nobody")
    assert result.exit_code == 2
    assert "nobody" in result.stderr
    assert "AWS_PROFILE" in result.stderr


def test_unknown_command_is_usage(cli: CliRunner) -> None:
    result = cli("promote-everything")
    assert result.exit_code == 2
