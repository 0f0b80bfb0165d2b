"""Options where hands put them, weights parsed as weights, shell completion (issue 13,
items 4, 5, 8, 10)."""

import json
from pathlib import Path

import pytest
import typer

from canary_deploy.cli.app import _register_optional_commands, app
from canary_deploy.cli.argv import reorder
from tests.unit.cli import canary


@pytest.fixture(scope="module")
def group() -> typer.core.TyperGroup:
    _register_optional_commands()
    command = typer.main.get_command(app)
    assert isinstance(command, typer.core.TyperGroup)
    return command


@pytest.mark.parametrize(
    "argv,expected",
    [
        (["deploy", "--listen", "h:1"], ["--listen", "h:1", "deploy"]),
        (["status", "--state-dir=x", "-o", "json"], ["--state-dir=x", "status", "-o", "json"]),
        (["-o", "json", "status"], ["status", "-o", "json"]),
        (["--target", "aws", "-o", "json", "status"], ["--target", "aws", "status", "-o", "json"]),
        # The standalone balancer has a --listen of its own: it stays.
        (["balancer", "--listen", "h:1"], ["balancer", "--listen", "h:1"]),
        # A value that looks like a command is still the option's value.
        (["--stack-name", "status", "status"], ["--stack-name", "status", "status"]),
        # A global option without its value stays where click will complain about it.
        (["set-weights", "50", "50", "--listen"], ["set-weights", "50", "50", "--listen"]),
        (["nosuchcommand", "--listen", "x"], ["nosuchcommand", "--listen", "x"]),
        (["status", "--", "--listen"], ["status", "--", "--listen"]),
    ],
)
def test_options_move_to_where_click_reads_them(
    group: typer.core.TyperGroup, argv: list[str], expected: list[str]
) -> None:
    assert reorder(group, argv) == expected


def test_global_options_after_the_command_take_effect(tmp_path: Path) -> None:
    done = canary(tmp_path, "config", "--stack-name", "after", "--target", "aws", "-o", "json")
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    assert (doc["settings"]["stack_name"], doc["settings"]["target"]) == ("after", "aws")
    assert doc["origins"]["stack_name"] == "flag"


def test_output_before_the_command_takes_effect(tmp_path: Path) -> None:
    done = canary(tmp_path, "-o", "json", "config")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["settings"]["target"] == "local"


def test_state_dir_after_status_is_the_one_read(tmp_path: Path) -> None:
    done = canary(tmp_path, "status", "--state-dir", str(tmp_path / "elsewhere"))
    assert done.returncode == 1
    assert f"no local stack in {tmp_path / 'elsewhere'}" in done.stderr
    assert "No such option" not in done.stderr


@pytest.mark.parametrize(
    "args,needle",
    [
        (["-5", "105"], "stable weight must be between 0 and 100, got -5"),
        (["101", "-1"], "stable weight must be between 0 and 100, got 101"),
        (["90", "-10"], "canary weight must be between 0 and 100, got -10"),
        (["abc"], "set-weights takes two weights, stable and canary, got only 'abc'"),
        ([], "set-weights takes two weights, stable and canary"),
        (["50", "x"], "canary weight must be an integer, got 'x'"),
        (["1.5", "98.5"], "stable weight must be an integer, got '1.5'"),
        (["60", "60"], "weights must sum to 100, got 60 + 60 = 120"),
    ],
)
def test_every_wrong_weight_gets_the_weights_message(
    tmp_path: Path, args: list[str], needle: str
) -> None:
    done = canary(tmp_path, "set-weights", *args)
    assert done.returncode == 2
    assert needle in done.stderr
    assert "hint:" in done.stderr and "No such option" not in done.stderr
    assert not (tmp_path / ".canary").exists()


def test_a_standalone_balancer_weights_hint_names_no_other_command(tmp_path: Path) -> None:
    done = canary(
        tmp_path, "balancer", "--stable", "127.0.0.1:1", "--canary", "", "--weights", "90", "5"
    )
    assert done.returncode == 2
    assert "weights must sum to 100" in done.stderr
    assert "set-weights" not in done.stderr


def test_shell_completion_is_offered(tmp_path: Path) -> None:
    # Typer detects the shell it runs under (the parent process); its test hook pins one.
    done = canary(
        tmp_path, "--show-completion", "bash", _TYPER_COMPLETE_TEST_DISABLE_SHELL_DETECTION="1"
    )
    assert done.returncode == 0, done.stderr
    assert "complete" in done.stdout and "canary" in done.stdout
    help_text = canary(tmp_path, "--help").stdout
    assert "--install-completion" in help_text
    assert "<bool>" not in help_text  # flags show no type


def test_delete_has_a_json_document_and_deleting_nothing_succeeds(tmp_path: Path) -> None:
    """Issue 13 items 6 and 13: one JSON document; nothing to delete is rc 0, said so, with
    or without --purge."""
    for purge in ([], ["--purge"]):
        done = canary(tmp_path, "delete", "--yes", *purge, "-o", "json", "--state-dir", "st")
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout) == {
            "deleted": None,
            "target": "local",
            "nothing_to_delete": f"no local stack in {tmp_path / 'st'}",
        }
    text = canary(tmp_path, "delete", "--yes", "--state-dir", "st")
    assert text.returncode == 0
    assert f"Nothing to delete: no local stack in {tmp_path / 'st'}." in text.stdout


def test_an_arn_with_secret_in_it_is_printed_as_typed(capsys: pytest.CaptureFixture[str]) -> None:
    """rich's emoji codes would draw ":secret:" (every Secrets Manager ARN has it) as an
    emoji, garbling the ARN a message quotes or teaches."""
    from canary_deploy.cli.output import console, error

    arn = "arn:aws:secretsmanager:us-east-1:123456789012:secret:db-AbCdEf"
    error(f"no such secret {arn}", hint=f"e.g. {arn}")
    console.print(arn)
    captured = capsys.readouterr()
    assert captured.err.count(arn) == 2 and arn in captured.out
