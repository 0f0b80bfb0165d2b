"""Fixtures for the AWS target: one patched moto server per session, a fresh stack per test."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import boto3
import pytest

from canary_deploy.aws import emulator
from canary_deploy.aws.clients import CALL_LOG_ENV
from canary_deploy.cli.app import main
from canary_deploy.weights import Weights
from tests.aws.iam_policy import load_policy, not_allowed, recorded_calls

IMAGES = {"IMAGE_URI_STABLE": "repo/app:v1", "IMAGE_URI_CANARY": "repo/app:v2"}


@pytest.fixture(scope="session")
def moto_server() -> Iterator[emulator.MotoServer]:
    server = emulator.start()
    try:
        yield server
    finally:
        server.stop()


@dataclass
class Result:
    exit_code: int
    stdout: str
    stderr: str


@dataclass
class AwsEnv:
    """The environment a test runs `canary` in, and helpers to look at the listener."""

    env: dict[str, str]
    stack_name: str
    # Every AWS call `canary` makes in this environment, as IAM actions (CANARY_AWS_CALL_LOG).
    call_log: Path

    def calls_outside_policy(self) -> list[str]:
        """The recorded calls the operator's IAM policy does not allow."""
        return not_allowed(load_policy(), recorded_calls(self.call_log))

    def outputs(self) -> dict[str, str]:
        stack = boto3.client("cloudformation").describe_stacks(StackName=self.stack_name)
        return {o["OutputKey"]: o["OutputValue"] for o in stack["Stacks"][0]["Outputs"]}

    def listener(self) -> dict[str, object]:
        arn = self.outputs()["ListenerArn"]
        action = boto3.client("elbv2").describe_listeners(ListenerArns=[arn])["Listeners"][0][
            "DefaultActions"
        ][0]
        return dict(action["ForwardConfig"])

    def live_weights(self) -> Weights:
        """The listener's weights read by target group ARN (all three must be there)."""
        groups = self.listener()["TargetGroups"]
        assert isinstance(groups, list)
        by_arn = {g["TargetGroupArn"]: int(g["Weight"]) for g in groups}
        outputs = self.outputs()
        arns = [outputs[f"TargetGroup{g}Arn"] for g in ("Stable", "Canary", "Baseline")]
        assert sorted(by_arn) == sorted(arns)
        return Weights(*(by_arn[arn] for arn in arns))

    def stack_parameters(self) -> dict[str, str]:
        stack = boto3.client("cloudformation").describe_stacks(StackName=self.stack_name)
        return {p["ParameterKey"]: p["ParameterValue"] for p in stack["Stacks"][0]["Parameters"]}

    def stack_exists(self) -> bool:
        stacks = boto3.client("cloudformation").list_stacks()["StackSummaries"]
        return any(
            s["StackName"] == self.stack_name and s["StackStatus"] != "DELETE_COMPLETE"
            for s in stacks
        )

    def run(self, *args: str, **extra_env: str) -> Result:
        """`canary ARGS` as a real subprocess (the installed entry point)."""
        proc = subprocess.run(
            [sys.executable, "-m", "canary_deploy", *args],
            env={**self.env, **extra_env},
            capture_output=True,
            text=True,
            timeout=120,
            stdin=subprocess.DEVNULL,
        )
        return Result(proc.returncode, proc.stdout, proc.stderr)


CliRunner = Callable[..., Result]


def isolate_env(
    monkeypatch: pytest.MonkeyPatch, server: emulator.MotoServer, stack_name: str, tmp: Path
) -> AwsEnv:
    """Point the process at the emulator with target aws, `stack_name` and the two images."""
    for key in list(os.environ):
        if key.startswith(("AWS_", "CANARY_", "IMAGE_URI_")) or key in (
            "STACK_NAME",
            "STABLE_WEIGHT",
            "CANARY_WEIGHT",
        ):
            monkeypatch.delenv(key)
    # Never read a canary.toml or AWS config from the developer's machine.
    no_settings = tmp / "empty-canary.toml"
    tmp.mkdir(parents=True, exist_ok=True)
    no_settings.write_text("")
    values = {
        **server.env,
        "CANARY_TARGET": "aws",
        "STACK_NAME": stack_name,
        "CANARY_CONFIG": str(no_settings),
        "AWS_CONFIG_FILE": str(tmp / "absent-aws-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp / "absent-aws-credentials"),
        "AWS_EC2_METADATA_DISABLED": "true",
        CALL_LOG_ENV: str(tmp / "aws-calls.log"),
        **IMAGES,
    }
    for key, value in values.items():
        monkeypatch.setenv(key, value)
    return AwsEnv(env=dict(os.environ), stack_name=stack_name, call_log=tmp / "aws-calls.log")


def new_stack_name() -> str:
    return f"t-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def aws_env(
    moto_server: emulator.MotoServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Iterator[AwsEnv]:
    """Env for this test: the emulator, target aws, a unique stack name, the two images.
    Afterwards, every AWS call canary made must be one the operator's IAM policy allows."""
    env = isolate_env(monkeypatch, moto_server, new_stack_name(), tmp_path)
    yield env
    outside = env.calls_outside_policy()
    assert not outside, (
        f"canary called AWS APIs that docs/operator-policy.json does not allow: {outside}"
    )


@pytest.fixture
def cli(
    aws_env: AwsEnv, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> Iterator[CliRunner]:
    """`canary ARGS` in-process (fast), returning exit code and captured output."""

    def run(*args: str, **extra_env: str) -> Result:
        with monkeypatch.context() as m:
            for key, value in extra_env.items():
                if value == "":
                    m.delenv(key, raising=False)
                else:
                    m.setenv(key, value)
            capsys.readouterr()
            try:
                main(list(args))
                code = 0
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else 1
            out = capsys.readouterr()
        return Result(code, out.out, out.err)

    yield run
