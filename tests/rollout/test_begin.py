"""Starting a rollout: after a rollback scaled the canary to 0 tasks, a new rollout scales
it back to what it had; the image recorded is the one the canary's tasks run."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from canary_deploy.backend import Status, TaskDefinitionStatus
from canary_deploy.errors import UsageError
from canary_deploy.rollout.start import begin
from canary_deploy.rollout.store import RolloutStatus
from tests.rollout.fakes import FakeTarget
from tests.rollout.test_baseline import _Log
from tests.rollout.test_controller import Rig


class _Settings:
    desired_count_canary = 1


def rolled_back(tmp_path: Path, canary_count: int = 2) -> Rig:
    rig = Rig(tmp_path, canary_error_rate=0.3)
    rig.workload.canary_count = canary_count
    c = rig.start()
    assert rig.run(c, 300) is RolloutStatus.ROLLED_BACK
    assert rig.workload.canary_count == 0  # post_rollback_canary_count
    return rig


def test_a_rollout_after_a_rollback_scales_the_canary_back_to_what_it_had(
    tmp_path: Path,
) -> None:
    rig = rolled_back(tmp_path, canary_count=2)
    log = _Log()
    settings: Any = _Settings()
    rollout, resumed = begin(settings, FakeTarget(rig), rig.store, rig.plan, log)
    assert not resumed and rollout.id == 2 and rollout.status is RolloutStatus.RUNNING
    assert rig.workload.canary_count == 2
    said = " ".join(log.lines)
    assert "runs no tasks" in said and "rollout #1 rolled back" in said
    assert "scaling it back to 2 task(s)" in said
    # The same image that was rolled back: said, and kept in the new rollout's history.
    notes = [e.message for e in rig.store.events(rollout.id) if e.kind == "note"]
    assert any("rollout #1 rolled back this image" in n for n in notes)


def test_without_a_record_the_canary_gets_the_configured_count(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    rig.workload.canary_count = 0
    settings: Any = _Settings()
    begin(settings, FakeTarget(rig), rig.store, rig.plan, _Log())
    assert rig.workload.canary_count == 1


def test_after_a_promotion_there_is_nothing_new_to_roll_out(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    c = rig.start()
    assert rig.run(c, 600) is RolloutStatus.PROMOTED  # stable runs v2; the canary has 0
    settings: Any = _Settings()
    with pytest.raises(UsageError, match="runs stable's image") as err:
        begin(settings, FakeTarget(rig), rig.store, rig.plan, _Log())
    assert "canary deploy" in (err.value.hint or "")
    assert rig.workload.canary_count == 0  # nothing was scaled


class _Tagged(FakeTarget):
    """Status shows the task definition's tag; the tasks run a pinned digest."""

    def status(self) -> Status:
        status = super().status()
        canary = replace(status.versions["canary"], task_definition=TaskDefinitionStatus("repo:v2"))
        return replace(status, versions={**status.versions, "canary": canary})


def test_the_rollout_records_the_image_the_canarys_tasks_run(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    rig.workload.canary_runs = "repo@sha256:abc"
    settings: Any = _Settings()
    rollout, _ = begin(settings, _Tagged(rig), rig.store, rig.plan, _Log())
    assert rollout.canary_image == "repo@sha256:abc"
