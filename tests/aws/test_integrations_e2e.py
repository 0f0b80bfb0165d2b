"""Hooks and notifications end to end on AWS (moto server): `canary rollout` runs as its
own process (on AWS that process is the rollout's controller), runs the command hooks of
`[rollout.hooks]` and posts `[[notifications]]` to a receiver on 127.0.0.1; the test
steers it from the outside (`canary abort`, `canary history`) as an operator would.

What moto cannot do is filled in inside that process (`python -m
tests.aws.test_integrations_e2e ARGS`): services that reach steady state, healthy
targets, and traffic that follows the live listener weights (moto computes no ALB
metrics) with the error rate the test asks for."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from canary_deploy.weights import Weights
from tests.aws.conftest import AwsEnv, CliRunner
from tests.rollout.receiver import Receiver, receiver

ROOT = Path(__file__).resolve().parents[2]
# The canary's error rate in the rollout's process (the fake traffic's).
ERROR_RATE_ENV = "TEST_CANARY_ERROR_RATE"

# Short steps, a tick 5x a second, no CloudWatch lag: a rollout of three steps in seconds.
FAST = """\
[rollout]
steps = [10, 50, 100]
min_duration = "1s"
max_duration = "2s"
min_requests = 0
interval = "1s"
metrics_lag = 0
reread = 0
warmup = 0
tick = "0.2s"
"""

# An on_rollback hook that reads the listener's weights from moto itself (not what the
# controller tells it), by the stack's outputs; the hook inherits the endpoint settings.
READ_LISTENER = """
import os, boto3
stack = os.environ["CANARY_STACK"]
out = boto3.client("cloudformation").describe_stacks(StackName=stack)["Stacks"][0]["Outputs"]
out = {o["OutputKey"]: o["OutputValue"] for o in out}
listener = boto3.client("elbv2").describe_listeners(ListenerArns=[out["ListenerArn"]])
groups = listener["Listeners"][0]["DefaultActions"][0]["ForwardConfig"]["TargetGroups"]
weight = {g["TargetGroupArn"]: g["Weight"] for g in groups}
live = "/".join(str(weight[out[f"TargetGroup{g}Arn"]]) for g in ("Stable", "Canary", "Baseline"))
print("on_rollback", live, os.environ["CANARY_WEIGHTS"], os.environ["CANARY_STATUS"])
"""


def configure(tmp_path: Path, hooks: str, webhook: Receiver) -> Path:
    """A canary.toml with FAST steps, the hooks (run in `tmp_path`) and one webhook."""
    config = tmp_path / "canary.toml"
    config.write_text(
        f"{FAST}\n[rollout.hooks]\n"
        f'workdir = "{tmp_path}"\ntester_header = "X-Canary: always"\n{hooks}\n\n'
        f'[[notifications]]\nurl = "{webhook.url}"\n'
    )
    return config


@contextmanager
def rolling_out(
    aws_env: AwsEnv, config: Path, canary_error_rate: float
) -> Iterator[subprocess.Popen[str]]:
    """`canary rollout` in a process of its own (see `_rollout_process`); killed if the
    test leaves it running."""
    env = {
        **aws_env.env,
        "CANARY_CONFIG": str(config),
        ERROR_RATE_ENV: str(canary_error_rate),
        "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)]),
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.aws.test_integrations_e2e", "rollout"],
        env=env,
        cwd=ROOT,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()


def ended(proc: subprocess.Popen[str], timeout: float = 60) -> tuple[int, str]:
    out, _ = proc.communicate(timeout=timeout)
    return proc.returncode, out


def wait_for(check: Callable[[], object], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


def lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def notified(webhook: Receiver) -> list[str]:
    return [body["event"] for body in webhook.received()]


def hook_runs(cli: CliRunner) -> list[dict[str, Any]]:
    shown = cli("history", "-o", "json")
    assert shown.exit_code == 0, shown.stderr
    return [e["data"] for e in json.loads(shown.stdout) if e["kind"] == "hook"]


@pytest.fixture
def deployed(aws_env: AwsEnv, cli: CliRunner) -> AwsEnv:
    assert cli("deploy").exit_code == 0
    return aws_env


def test_hooks_and_notifications_around_a_promoted_aws_rollout(
    deployed: AwsEnv, cli: CliRunner, tmp_path: Path
) -> None:
    log = tmp_path / "hooks.log"
    env_line = "$CANARY_ROLLOUT_ID $CANARY_STACK $CANARY_LISTENER_URL $CANARY_TESTER_HEADER"
    with receiver() as webhook:
        config = configure(
            tmp_path,
            f'pre_step = "echo pre_step $CANARY_STEP/$CANARY_STEPS $CANARY_STEP_WEIGHTS '
            f'{env_line} >> hooks.log"\n'
            'pre_promote = "echo pre_promote $CANARY_WEIGHTS $CANARY_IMAGE >> hooks.log"\n'
            'post_rollout = "echo post_rollout $CANARY_STATUS $CANARY_WEIGHTS >> hooks.log"',
            webhook,
        )
        with rolling_out(deployed, config, canary_error_rate=0.0) as proc:
            code, out = ended(proc)
        assert code == 0, out
        # The process waits for its hooks and deliveries before it exits.
        assert notified(webhook) == ["started", "step", "step", "step", "promoted"], out
        bodies = webhook.received()
    url = f"http://{deployed.outputs()['ALBDNS']}"
    rollout_id = bodies[0]["rollout_id"]
    same = f"{rollout_id} {deployed.stack_name} {url} X-Canary: always"
    assert lines(log) == [
        f"pre_step 1/3 80/10/10 {same}",  # stable / canary / baseline
        f"pre_step 2/3 0/50/50 {same}",
        f"pre_step 3/3 0/100 {same}",
        "pre_promote 0/100 repo/app:v2",
        "post_rollout promoted 100/0",
    ], out
    # A `step` event: a step passed, the next one starts (its number), or the promotion.
    assert [(b["step"], b["message"]) for b in bodies[1:4]] == [
        (2, "step 2/3: canary 50%"),
        (3, "step 3/3: canary 100% (soak step: no baseline traffic, latency not judged)"),
        (3, "last step passed: promoting the canary"),
    ]
    assert all(b["stack"] == deployed.stack_name for b in bodies)
    assert bodies[-1]["ended"] and bodies[-1]["canary_image"] == "repo/app:v2"
    assert deployed.live_weights() == Weights(100, 0)
    assert deployed.stack_parameters()["ImageURIStable"] == "repo/app:v2"
    # The history (DynamoDB) has every hook run and every delivery.
    runs = hook_runs(cli)
    assert [r["hook"] for r in runs] == [
        "pre_step", "pre_step", "pre_step", "pre_promote", "post_rollout"
    ]  # fmt: skip
    assert all(r["ok"] and r["exit_code"] == 0 and r["duration_s"] >= 0 for r in runs)
    text = cli("history").stdout
    assert "pre_promote passed in" in text and "post_rollout passed in" in text
    for event in ("started", "step", "promoted"):
        assert f"`{event}` sent to 127.0.0.1:" in text


def test_a_rolled_back_aws_rollout_runs_on_rollback_after_100_0_and_notifies_evidence(
    deployed: AwsEnv, cli: CliRunner, tmp_path: Path
) -> None:
    log = tmp_path / "hooks.log"
    read_listener = json.dumps([sys.executable, "-c", READ_LISTENER])
    with receiver() as webhook:
        config = configure(
            tmp_path,
            f"on_rollback = {read_listener}\n"
            'post_rollout = "echo post_rollout $CANARY_STATUS $CANARY_REASON >> hooks.log"',
            webhook,
        )
        with rolling_out(deployed, config, canary_error_rate=0.5) as proc:
            code, out = ended(proc)
        assert code == 1, out
        assert "rolled back at step 1" in out
        events = notified(webhook)
        bodies = webhook.received()
    assert events == ["started", "rolled_back"], out
    rolled_back = bodies[-1]
    assert rolled_back["status"] == "rolled_back" and rolled_back["ended"]
    assert "worse than stable+baseline on errors" in rolled_back["reason"]
    assert rolled_back["evidence"]["verdict"] == "rollback"
    assert any("errors" in m["explanation"] for m in rolled_back["evidence"]["metrics"])
    assert deployed.live_weights() == Weights(100, 0)
    assert deployed.stack_parameters()["ImageURIStable"] == "repo/app:v1"
    runs = {r["hook"]: r for r in hook_runs(cli)}
    assert sorted(runs) == ["on_rollback", "post_rollout"]
    # on_rollback ran once all traffic was on stable: moto's listener said 100/0/0.
    assert runs["on_rollback"]["ok"], runs["on_rollback"]
    assert runs["on_rollback"]["output"] == "on_rollback 100/0/0 100/0 rolled_back"
    post = lines(log)
    assert len(post) == 1 and post[0].startswith("post_rollout rolled_back ")
    assert "worse than stable+baseline on errors" in post[0]
    text = cli("history").stdout
    assert "on_rollback passed in" in text and "`rolled_back` sent to 127.0.0.1:" in text


def test_a_failing_pre_promote_gate_on_aws_pauses_and_does_not_promote(
    deployed: AwsEnv, cli: CliRunner, tmp_path: Path
) -> None:
    with receiver() as webhook:
        config = configure(
            tmp_path,
            'pre_promote = "echo smoke: /predict failed; exit 1"\n'
            'on_rollback = "echo on_rollback $CANARY_WEIGHTS >> hooks.log"',
            webhook,
        )
        with rolling_out(deployed, config, canary_error_rate=0.0) as proc:
            wait_for(lambda: "paused" in notified(webhook), 45, "the paused notification")
            shown = cli("status", "-o", "json")
            assert shown.exit_code == 0, shown.stderr
            status = json.loads(shown.stdout)
            assert status["rollout"]["status"] == "paused"
            assert status["rollout"]["step"] == 3  # held at the last step, not promoted
            why = "the pre_promote hook failed (exit 1: smoke: /predict failed)"
            assert status["rollout"]["reason"] == why
            paused = webhook.received()[-1]
            assert paused["event"] == "paused" and paused["reason"] == why
            # Not promoted: stable keeps its image, the canary keeps its traffic.
            assert deployed.stack_parameters()["ImageURIStable"] == "repo/app:v1"
            assert deployed.live_weights() == Weights(0, 100)
            assert proc.poll() is None  # the controller holds the paused rollout
            failed = [r for r in hook_runs(cli) if r["hook"] == "pre_promote"]
            assert [(r["ok"], r["exit_code"], r["output"]) for r in failed] == [
                (False, 1, "smoke: /predict failed")
            ]
            # The operator rolls it back; the controller process takes the command.
            aborted = cli("abort")
            assert aborted.exit_code == 0, aborted.stderr
            code, out = ended(proc)
        assert code == 1, out
        wait_for(lambda: "rolled_back" in notified(webhook), 10, "the rolled_back notification")
        assert "promoted" not in notified(webhook)
    assert lines(tmp_path / "hooks.log") == ["on_rollback 100/0"]
    assert deployed.live_weights() == Weights(100, 0)
    assert deployed.stack_parameters()["ImageURIStable"] == "repo/app:v1"


def test_a_stopped_aws_controller_resumes_without_notifying_or_gating_twice(
    deployed: AwsEnv, cli: CliRunner, tmp_path: Path
) -> None:
    """Ctrl-C (here SIGTERM) on `canary rollout` stops the AWS controller while a
    notification is on its way; `canary rollout` again resumes the rollout: each event
    reaches the webhook once, and a gate that passed does not run again."""
    log = tmp_path / "hooks.log"
    with receiver() as webhook:
        config = configure(
            tmp_path, 'pre_step = "echo pre_step $CANARY_STEP >> hooks.log"', webhook
        )
        with rolling_out(deployed, config, canary_error_rate=0.0) as first:

            def stop_at_the_first_step_event(body: dict[str, Any]) -> None:
                if body["event"] == "step" and first.poll() is None:
                    first.send_signal(signal.SIGTERM)
                    time.sleep(0.2)  # answered while the controller is stopping

            webhook.on_post = stop_at_the_first_step_event
            code, out = ended(first)
        assert code == 130, out
        assert "Stopped watching. Rollout #1 is running at step 2" in out, out
        webhook.on_post = None
        with rolling_out(deployed, config, canary_error_rate=0.0) as second:
            code, out = ended(second)
        assert code == 0, out
        assert "Resuming rollout #1 at step 2/3" in out, out
        bodies = webhook.received()
    assert [b["event"] for b in bodies] == ["started", "step", "step", "step", "promoted"]
    ids = [b["event_id"] for b in bodies]
    assert len(set(ids)) == len(ids), bodies
    assert lines(log).count("pre_step 1") == 1 and lines(log)[-1] == "pre_step 3"
    deliveries = [
        e for e in json.loads(cli("history", "-o", "json").stdout) if e["kind"] == "notify"
    ]
    assert sorted(e["data"]["event_id"] for e in deliveries) == sorted(ids)


# ---- the `canary rollout` process


def _rollout_process(argv: list[str]) -> None:
    """`canary ARGV` with what moto cannot do filled in on the target it opens."""
    from canary_deploy.aws.target import AwsTarget
    from canary_deploy.cli import rollout_cmds
    from canary_deploy.cli.app import main
    from canary_deploy.rollout import plan
    from tests.aws.test_rollout import steady
    from tests.rollout.fakes import FakeMetrics, FakeRouter

    real_open = rollout_cmds.open_target  # type: ignore[attr-defined]

    def open_target(settings: Any) -> Any:
        target = real_open(settings)
        assert isinstance(target, AwsTarget)
        steady(target, pytest.MonkeyPatch())
        # Traffic follows the live listener: every weight the controller reads or sets.
        mirror = FakeRouter(target.alb.get_weights())
        get, put = target.alb.get_weights, target.alb.set_weights

        def get_weights() -> Weights:
            mirror.weights = get()
            return mirror.weights

        def set_weights(weights: Weights) -> None:
            put(weights)
            mirror.weights = weights

        target.alb.get_weights = get_weights  # type: ignore[method-assign]
        target.alb.set_weights = set_weights  # type: ignore[method-assign]
        rate = float(os.environ[ERROR_RATE_ENV])
        target.metrics = FakeMetrics(
            mirror, rps=400, stable_error_rate=0.0 if rate == 0 else 0.01, canary_error_rate=rate
        )
        return target

    rollout_cmds.open_target = open_target  # type: ignore[attr-defined]
    # The fake traffic is there every second: judge every `interval`, not on CloudWatch's
    # whole minutes (what a rollout against real CloudWatch must do).
    plan._interval = lambda target, seconds, warn: seconds
    main(argv)


if __name__ == "__main__":
    _rollout_process(sys.argv[1:])
