"""`canary history --rollout N` for a rollout that does not exist names the range
instead of saying there are none (issue 13, item 12)."""

from dataclasses import replace
from pathlib import Path

from canary_deploy.analysis import Judge
from canary_deploy.rollout.plan import build_plan
from canary_deploy.rollout.store import RolloutStatus, RolloutStore
from tests.unit.cli import canary


def test_a_missing_rollout_is_named_with_the_range(tmp_path: Path) -> None:
    state = tmp_path / ".canary"
    state.mkdir()
    store = RolloutStore(state / "state.db", "ecs-canary-demo-stack")
    plan = build_plan("local")
    for i in range(3):
        r = store.create(
            plan, Judge(plan.judge).to_dict(), now=100.0 + i, canary_image="x", actor="t"
        )
        store.save(replace(r, status=RolloutStatus.PROMOTED), now=101.0 + i)
    store.close()

    missing = canary(tmp_path, "history", "--rollout", "99")
    assert missing.returncode == 2
    assert "there is no rollout #99: the rollouts here are #1 to #3" in missing.stderr
    assert "No rollouts yet" not in missing.stdout

    one = canary(tmp_path, "history", "--rollout", "2")
    assert one.returncode == 0, one.stderr
    assert "#2 " in one.stdout and "#1 " not in one.stdout


def test_no_rollouts_at_all_says_so(tmp_path: Path) -> None:
    state = tmp_path / ".canary"
    state.mkdir()
    RolloutStore(state / "state.db", "ecs-canary-demo-stack").close()
    done = canary(tmp_path, "history", "--rollout", "1")
    assert done.returncode == 0
    assert "No rollouts yet" in done.stdout
