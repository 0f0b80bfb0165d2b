"""Running hooks for real: commands (exit code, environment, timeout, missing command)
and HTTP calls (2xx, retries, unreachable) on 127.0.0.1."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from canary_deploy.local.processes import free_port
from canary_deploy.rollout.hook_runner import HookContext, ThreadedHookRunner, execute
from canary_deploy.rollout.hooks import hook_event
from canary_deploy.rollout.settings import HookSettings
from canary_deploy.weights import Weights
from tests.local.conftest import pid_gone, wait_for
from tests.rollout.receiver import receiver

CONTEXT = HookContext(
    hook="pre_step",
    rollout_id=7,
    stack="shop",
    step=2,
    steps=3,
    weights=Weights(90, 5, 5),
    step_weights=Weights(0, 50, 50),
    status="running",
    canary_image="app:v2",
    listener_url="http://127.0.0.1:8080",
    tester_header="X-Canary: always",
)


def hook(**values: object) -> HookSettings:
    return HookSettings.model_validate(values)


def test_a_command_gets_the_rollout_in_its_environment(tmp_path: Path) -> None:
    script = 'echo "$CANARY_ROLLOUT_ID $CANARY_STEP $CANARY_WEIGHTS $CANARY_STEP_WEIGHTS"; '
    script += 'echo "$CANARY_LISTENER_URL|$CANARY_TESTER_HEADER" > seen.txt'
    result = execute(hook(command=script), CONTEXT, tmp_path)
    assert result.ok and result.exit_code == 0
    assert result.output == "7 2 90/5/5 0/50/50"
    assert (tmp_path / "seen.txt").read_text() == "http://127.0.0.1:8080|X-Canary: always\n"


def test_a_failing_command_keeps_the_tail_of_its_output(tmp_path: Path) -> None:
    script = "for i in $(seq 1 3000); do echo line $i; done; echo boom >&2; exit 3"
    result = execute(hook(command=script), CONTEXT, tmp_path)
    assert not result.ok and result.exit_code == 3
    assert result.output.endswith("line 3000\nboom") and len(result.output) <= 2003
    event = hook_event("pre_step", "pre_step:2", 2, result, gate=True)
    assert event.message.startswith("pre_step (step 2) failed in ")
    assert event.message.endswith(": exit 3; output: boom")


def test_a_command_that_runs_over_its_timeout_is_killed_with_its_children(tmp_path: Path) -> None:
    start = time.monotonic()
    result = execute(hook(command="sleep 30 & sleep 30; wait", timeout="0.5s"), CONTEXT, tmp_path)
    assert time.monotonic() - start < 5
    assert not result.ok and result.error == "timed out after 0.5s"


def test_a_missing_command_is_a_failed_run_not_a_crash(tmp_path: Path) -> None:
    as_list = execute(hook(command=["no-such-smoke-test", "--fast"]), CONTEXT, tmp_path)
    assert not as_list.ok
    assert as_list.error is not None and "cannot run 'no-such-smoke-test --fast'" in as_list.error
    via_shell = execute(hook(command="./no-such-script.sh"), CONTEXT, tmp_path)
    assert not via_shell.ok and via_shell.exit_code == 127
    assert "not found" in via_shell.output


def test_retries_run_a_flaky_command_again(tmp_path: Path) -> None:
    script = "n=$(cat n 2>/dev/null || echo 0); echo $((n+1)) > n; [ $n -ge 1 ]"
    pauses: list[float] = []
    result = execute(hook(command=script, retries=2), CONTEXT, tmp_path, sleep=pauses.append)
    assert result.ok and result.attempts == 2 and pauses == [1.0]


def test_an_http_hook_posts_the_rollout_as_json() -> None:
    with receiver() as got:
        result = execute(hook(url=got.url, headers={"Authorization": "Bearer t"}), CONTEXT, None)
    assert result.ok and result.http_status == 200 and result.output == "ok"
    (body,) = got.received()
    assert body["hook"] == "pre_step" and body["rollout_id"] == 7 and body["step"] == 2
    assert body["step_weights"] == {"stable": 0, "canary": 50, "baseline": 50}
    assert body["tester_header"] == "X-Canary: always"
    assert got.headers[0]["Authorization"] == "Bearer t"


def test_a_non_2xx_answer_fails_after_its_retries() -> None:
    with receiver() as got:
        got.status = 503
        result = execute(hook(url=got.url, retries=2), CONTEXT, None, sleep=lambda s: None)
    assert not result.ok and result.http_status == 503 and result.attempts == 3
    assert len(got.received()) == 3


def test_an_unreachable_url_fails_with_a_reason() -> None:
    url = f"http://127.0.0.1:{free_port()}/gate"
    result = execute(hook(url=url, timeout=2), CONTEXT, None)
    assert not result.ok and result.http_status is None
    assert result.error is not None and result.error.startswith("cannot reach 127.0.0.1:")


def test_the_threaded_runner_answers_at_once_and_hands_the_result_out_once(
    tmp_path: Path,
) -> None:
    runner = ThreadedHookRunner(tmp_path)
    slow = hook(command=[sys.executable, "-c", "import time; time.sleep(0.3)"])
    try:
        start = time.monotonic()
        assert runner.poll("pre_step:2", slow, CONTEXT) is None  # started, not waited for
        assert time.monotonic() - start < 0.2
        result = None
        while result is None:
            time.sleep(0.05)
            result = runner.poll("pre_step:2", slow, CONTEXT)
        assert result.ok and result.duration_s >= 0.3
        assert runner.poll("pre_step:2", slow, CONTEXT) is None  # a new run
    finally:
        runner.close()


def test_closing_the_runner_kills_the_hooks_under_way(tmp_path: Path) -> None:
    runner = ThreadedHookRunner(tmp_path)
    endless = hook(command="echo $$ > pid; sleep 60", timeout="2m")
    assert runner.poll("post_step:1", endless, CONTEXT) is None
    pid_file = tmp_path / "pid"
    wait_for(lambda: pid_file.exists() and pid_file.read_text().strip(), 5, "the hook")
    runner.close()
    assert wait_for(lambda: pid_gone(int(pid_file.read_text())), 5, "the hook to be killed")
