"""Sizing the canary for its share and gating steps on healthy targets (issue 11 items 7
and 9), against the fakes: the canary (and the baseline) are scaled before their weight
is raised, the weights go up only once enough targets are healthy, a step waits (recorded)
and pauses with the reason when it waits too long, and the rollout's endings scale as
before."""

from __future__ import annotations

from pathlib import Path

from canary_deploy.rollout.plan import build_plan
from canary_deploy.rollout.store import Command, RolloutStatus
from canary_deploy.weights import Weights
from tests.rollout.fakes import FakeRouter, FakeWorkload
from tests.rollout.test_controller import Rig


class SizedRouter(FakeRouter):
    """Remembers how many canary and baseline tasks ran at each listener call."""

    workload: FakeWorkload | None = None
    sized: list[tuple[Weights, int, int]]

    def set_weights(self, weights: Weights) -> None:
        assert self.workload is not None
        self.sized.append((weights, self.workload.canary_count, self.workload.baseline_count))
        super().set_weights(weights)


def sized_rig(tmp_path: Path, *, baseline: bool = True, stable: int = 4, **plan: object) -> Rig:
    rig = Rig(tmp_path, baseline=baseline)
    router = SizedRouter()
    router.sized = []
    router.workload = rig.workload
    rig.router = rig.workload.router = rig.metrics.router = router
    rig.workload.stable_count = stable
    if baseline:
        rig.workload.baseline_count = 1  # as `canary rollout` starts it, with the canary's 1
    rig.plan = build_plan(
        "local",
        {"min_duration": 10, "max_duration": 30, "min_requests": 20, "interval": 2,
         "baseline": baseline, "warmup": 0, **plan},
    )  # fmt: skip
    return rig


def kinds(rig: Rig, rollout_id: int) -> list[str]:
    return [e.kind for e in rig.store.events(rollout_id)]


def test_each_step_is_sized_for_its_share_before_its_weights_are_raised(tmp_path: Path) -> None:
    rig = sized_rig(tmp_path)
    c = rig.start()
    assert rig.run(c, 600) is RolloutStatus.PROMOTED
    router = rig.router
    assert isinstance(router, SizedRouter)
    # 4 stable tasks: 5% needs 1 task per arm, 25% (stable at 50%) and 50% (stable at 0%,
    # counted as 100%) need 2, the 100% soak step needs 4 canary tasks (no baseline share).
    assert router.sized == [
        (Weights(90, 5, 5), 1, 1),
        (Weights(50, 25, 25), 2, 2),
        (Weights(0, 50, 50), 2, 2),
        (Weights(0, 100, 0), 4, 2),
        (Weights(100, 0, 0), 4, 0),  # the baseline stopped before the promotion (weight 0)
    ]
    # Only ever scaled up during the rollout; the promotion leaves the canary idle.
    assert rig.workload.scaled == [("canary", 2), ("baseline", 2), ("canary", 4), ("canary", 0)]
    scaled = [e for e in rig.store.events(c.rollout_id) if e.kind == "scale"]
    assert scaled[0].message == (
        "step 2/4 (canary 25%): canary scaled from 1 to 2 task(s), baseline from 1 to 2, "
        "so that none carries more than a stable task"
    )


def test_the_weights_wait_for_healthy_targets_then_go_up(tmp_path: Path) -> None:
    rig = sized_rig(tmp_path)
    c = rig.start()
    rig.workload.healthy_at_most = {"baseline": 1}  # the new baseline task is not healthy yet
    rig.run(c, 40)  # step 1's gate opened long ago
    r = rig.store.get(c.rollout_id)
    assert (r.status, r.step) == (RolloutStatus.RUNNING, 0)
    assert rig.router.weights == Weights(90, 5, 5), "not raised before both arms are healthy"
    assert (rig.workload.canary_count, rig.workload.baseline_count) == (2, 2)
    waiting = [e for e in rig.store.events(c.rollout_id) if e.kind == "waiting"]
    assert len(waiting) == 1, "recorded once, not at every tick"
    assert waiting[0].message == (
        "step 1/4 waits for healthy targets before canary 25%: canary 2 of 2 healthy, "
        "baseline 1 of 2"
    )
    rig.workload.healthy_at_most = {}
    rig.run(c, 1)
    assert rig.router.weights == Weights(50, 25, 25)
    assert kinds(rig, c.rollout_id)[-3:] == ["healthy", "step", "weights"]


def test_a_step_that_waits_longer_than_its_max_duration_pauses_and_says_why(
    tmp_path: Path,
) -> None:
    rig = sized_rig(tmp_path, baseline=False)
    rig.workload.healthy_at_most = {"canary": 0}  # the canary's task never passes its check
    c = rig.start()
    assert rig.run(c, 60) is RolloutStatus.PAUSED
    assert rig.router.calls == [], "no traffic to a canary without a healthy target"
    r = rig.store.get(c.rollout_id)
    assert r.reason == (
        "step 1/4 waited 30s for healthy targets before canary 5%: canary 0 of 1 healthy"
    )
    paused = [e for e in rig.store.events(c.rollout_id) if e.kind == "paused"][-1]
    assert "`canary resume` waits again" in paused.message
    # Resumed once the canary is healthy: the step's weights go on.
    rig.workload.healthy_at_most = {}
    rig.store.send(c.rollout_id, Command.RESUME, actor="user")
    rig.run(c, 1)
    assert rig.router.weights == Weights(95, 5)


def test_a_step_whose_canary_lost_its_healthy_targets_does_not_open(tmp_path: Path) -> None:
    rig = sized_rig(tmp_path, baseline=False)
    c = rig.start()
    rig.run(c, 2)
    assert rig.router.weights == Weights(95, 5)
    rig.workload.healthy_at_most = {"canary": 0}  # its task crashed, say
    # The gate would open after 30 s (max duration); then it waits 30 s more, and pauses.
    assert rig.run(c, 70) is RolloutStatus.PAUSED
    assert rig.store.get(c.rollout_id).step == 0 and rig.router.weights == Weights(95, 5)
    assert "waiting" in kinds(rig, c.rollout_id)


def test_the_cap_and_the_endings(tmp_path: Path) -> None:
    rig = sized_rig(tmp_path / "cap", baseline=False, stable=6, max_canary_tasks=3)
    c = rig.start()
    assert rig.run(c, 600) is RolloutStatus.PROMOTED
    assert max(n for v, n in rig.workload.scaled if v == "canary") == 3
    assert rig.workload.canary_count == 0  # idle_canary_count

    bad = sized_rig(tmp_path / "bad")
    bad.metrics.canary_error_rate = 0.0
    c = bad.start()
    bad.run(c, 45)  # into step 2, sized 2 + 2
    assert (bad.workload.canary_count, bad.workload.baseline_count) == (2, 2)
    bad.store.send(c.rollout_id, Command.ABORT, actor="user")
    assert bad.run(c, 1) is RolloutStatus.ROLLED_BACK
    # Rolled back as before: the canary to post_rollback_canary_count, the baseline stopped;
    # a later rollout scales the canary back to what it had before this one sized it.
    assert (bad.workload.canary_count, bad.workload.baseline_count) == (0, 0)
    ended = [e for e in bad.store.events(c.rollout_id) if e.kind == "rolled_back"][-1]
    assert ended.data == {"canary_count_before": 1}
