"""One owner of the weights during a rollout: a change the controller did not make pauses
the rollout (never overwritten), and only the image the rollout judged is promoted."""

from __future__ import annotations

from pathlib import Path

import pytest

from canary_deploy.rollout.store import Command, RolloutStatus
from canary_deploy.weights import Weights
from tests.rollout.test_controller import Rig


def kinds(rig: Rig, rollout_id: int) -> list[str]:
    return [e.kind for e in rig.store.events(rollout_id)]


def test_a_weight_change_the_controller_did_not_make_pauses_the_rollout(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    c = rig.start()
    rig.run(c, 3)
    assert rig.router.weights == Weights(95, 5)
    rig.router.weights = Weights(50, 50)  # someone used the console
    r = c.tick().rollout
    assert r.status is RolloutStatus.PAUSED
    assert r.reason is not None and "changed outside the rollout" in r.reason
    assert "95/5" in r.reason and "50/50" in r.reason
    # Never overwritten, however long it stays paused, and said once.
    assert rig.run(c, 60) is RolloutStatus.PAUSED
    assert rig.router.weights == Weights(50, 50)
    assert rig.router.calls == [Weights(95, 5)]
    assert kinds(rig, c.rollout_id).count("external") == 1
    paused = [e for e in rig.store.events(c.rollout_id) if e.kind == "paused"]
    assert len(paused) == 1 and "canary resume" in paused[0].message


def test_resume_after_an_external_change_puts_the_steps_weights_back(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    c = rig.start()
    rig.run(c, 3)
    rig.router.weights = Weights(100, 0)
    assert c.tick().rollout.status is RolloutStatus.PAUSED
    rig.store.send(c.rollout_id, Command.RESUME, actor="alice")
    r = c.tick().rollout
    assert (r.status, r.step) == (RolloutStatus.RUNNING, 0)
    assert rig.router.weights == Weights(95, 5)
    assert r.applied_weights == Weights(95, 5)


def test_evidence_still_rolls_back_while_paused_on_an_external_change(tmp_path: Path) -> None:
    rig = Rig(tmp_path, canary_error_rate=0.3)
    c = rig.start()
    rig.run(c, 1)
    rig.router.weights = Weights(50, 50)
    assert c.tick().rollout.status is RolloutStatus.PAUSED
    assert rig.run(c, 300) is RolloutStatus.ROLLED_BACK
    assert rig.router.weights == Weights(100, 0)


def test_weights_set_while_paused_are_recorded_and_kept(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    c = rig.start()
    rig.run(c, 3)
    rig.store.send(c.rollout_id, Command.PAUSE, actor="alice")
    c.tick()
    rig.router.weights = Weights(80, 20)  # `set-weights 80 20` is allowed while paused
    rig.run(c, 10)
    assert rig.router.weights == Weights(80, 20)
    external = [e for e in rig.store.events(c.rollout_id) if e.kind == "external"]
    assert len(external) == 1 and "95/5 -> 80/20" in external[0].message
    r = rig.store.get(c.rollout_id)
    assert r.reason == "paused by alice"  # still the operator's pause


def test_a_failed_listener_call_at_a_step_change_is_retried_not_taken_for_an_outside_change(
    tmp_path: Path,
) -> None:
    rig = Rig(tmp_path)
    c = rig.start()
    rig.run(c, 3)
    rig.store.send(c.rollout_id, Command.PROMOTE, actor="alice")
    rig.router.fail_next = True
    with pytest.raises(RuntimeError):
        c.tick()
    r = c.tick().rollout
    assert (r.status, r.step) == (RolloutStatus.RUNNING, 1)
    assert rig.router.weights == Weights(75, 25)


def test_a_crash_right_after_the_listener_call_is_not_taken_for_an_outside_change(
    tmp_path: Path,
) -> None:
    rig = Rig(tmp_path)
    c = rig.start()
    rig.run(c, 3)
    rig.store.send(c.rollout_id, Command.PROMOTE, actor="alice")
    rig.router.crash_after_next = True
    with pytest.raises(KeyboardInterrupt):
        c.tick()
    again = rig.controller(c.rollout_id)  # a new process
    r = again.tick().rollout
    assert (r.status, r.step) == (RolloutStatus.RUNNING, 1)
    assert r.applied_weights == Weights(75, 25)
    assert rig.router.calls == [Weights(95, 5), Weights(75, 25)]
    weights = [e.message for e in rig.store.events(c.rollout_id) if e.kind == "weights"]
    assert [m.split(" (")[0] for m in weights] == [
        "weights 100/0 -> 95/5",
        "weights 95/5 -> 75/25",  # recorded once, not lost
    ]


def test_the_promotion_promotes_the_image_the_rollout_judged(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    c = rig.start()
    assert rig.run(c, 600) is RolloutStatus.PROMOTED
    assert rig.workload.promoted_images == ["v2"]


@pytest.mark.parametrize("command", [None, Command.PROMOTE_FULL])
def test_a_canary_image_changed_during_the_rollout_is_never_promoted(
    tmp_path: Path, command: Command | None
) -> None:
    rig = Rig(tmp_path)
    c = rig.start()
    rig.run(c, 3)
    rig.workload.canary_runs = "v3"  # someone deployed outside canary
    if command is not None:
        rig.store.send(c.rollout_id, command, actor="alice")
    assert rig.run(c, 600) is RolloutStatus.PAUSED
    r = rig.store.get(c.rollout_id)
    assert r.reason is not None and "v3" in r.reason and "v2" in r.reason
    assert rig.workload.promoted_images == [] and rig.workload.stable_image == "v1"
    assert rig.router.weights == Weights(95, 5)  # not raised either
