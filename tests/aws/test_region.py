"""Which region the AWS target works in: AWS_REGION (the seed's) > AWS_DEFAULT_REGION >
the profile's region > us-east-1 (the seed's default); --region and canary.toml as any
other setting (flags > environment > canary.toml)."""

from __future__ import annotations

from pathlib import Path

import pytest

from canary_deploy.aws.clients import AwsClients
from canary_deploy.config import load_settings
from tests.aws.conftest import AwsEnv, CliRunner

AWS_CONFIG = """\
[default]
region = ap-southeast-2

[profile ml]
region = eu-west-3
"""


@pytest.fixture
def aws_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An AWS config file with a region for the default profile and for `ml`; no region
    variable set."""
    path = tmp_path / "aws-config"
    path.write_text(AWS_CONFIG)
    for name in ("AWS_REGION", "AWS_DEFAULT_REGION", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(path))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "absent"))
    return path


def region(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, **env: str) -> str:
    """The region the AWS clients get for this environment (and canary.toml, if any)."""
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    settings = load_settings(config_file=tmp_path / "canary.toml")
    clients = AwsClients.create(
        region=settings.aws.region, profile=settings.aws.profile, stack_name="demo"
    )
    assert clients.cloudformation.meta.region_name == clients.region
    assert clients.elbv2.meta.region_name == clients.region
    return clients.region


@pytest.mark.usefixtures("aws_config")
def test_aws_region_beats_aws_default_region_beats_the_profiles_region(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert region(tmp_path, monkeypatch, AWS_PROFILE="ml") == "eu-west-3"
    assert region(tmp_path, monkeypatch, AWS_DEFAULT_REGION="eu-central-1") == "eu-central-1"
    assert region(tmp_path, monkeypatch, AWS_REGION="us-west-2") == "us-west-2"


@pytest.mark.usefixtures("aws_config")
def test_the_default_profiles_region_is_used_without_aws_profile(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert region(tmp_path, monkeypatch) == "ap-southeast-2"


def test_us_east_1_when_nothing_names_a_region(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("AWS_REGION", "AWS_DEFAULT_REGION", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "absent"))
    assert region(tmp_path, monkeypatch) == "us-east-1"


@pytest.mark.usefixtures("aws_config")
def test_canary_toml_beats_the_profile_and_the_environment_beats_canary_toml(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "canary.toml").write_text('[aws]\nregion = "sa-east-1"\n')
    assert region(tmp_path, monkeypatch, AWS_PROFILE="ml") == "sa-east-1"
    assert region(tmp_path, monkeypatch, AWS_DEFAULT_REGION="eu-north-1") == "eu-north-1"


def test_the_cli_looks_for_the_stack_in_the_region_aws_default_region_names(
    aws_env: AwsEnv, cli: CliRunner
) -> None:
    assert cli("deploy").exit_code == 0  # in us-east-1, AWS_REGION's
    shown = cli("status", AWS_REGION="", AWS_DEFAULT_REGION="eu-west-1")
    assert shown.exit_code == 1
    assert f"stack {aws_env.stack_name} does not exist in eu-west-1" in shown.stderr
    assert cli("status", AWS_REGION="", AWS_DEFAULT_REGION="us-east-1").exit_code == 0
