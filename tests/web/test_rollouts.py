"""What the dashboard reads of rollouts: timeline, e-value paths, what decided, history."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from canary_deploy.rollout.plan import RolloutPlan, Step
from canary_deploy.rollout.store import Rollout, RolloutStatus, RolloutStore
from canary_deploy.web import rollout_view
from canary_deploy.web.rollouts import deciding, e_paths, history_rows, timeline
from canary_deploy.web.snapshot import RolloutSnapshot

S = RolloutStatus
PLAN = RolloutPlan((Step(10, 1, 2), Step(50, 1, 2), Step(100, 1, 2)), baseline=False)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[RolloutStore]:
    s = RolloutStore(tmp_path / "state.db", "demo")
    try:
        yield s
    finally:
        s.close()


def _metric(name: str, e_harm: float, e_ni: float = 1.0) -> dict[str, Any]:
    return {
        "name": name, "canary_requests": 100, "canary_hits": 9, "stable_requests": 900,
        "stable_hits": 9, "canary_rate": 0.09, "canary_interval": [0.05, 0.15],
        "stable_rate": 0.01, "stable_interval": [0.005, 0.02], "e_harm": e_harm,
        "harm_threshold": 33.3, "e_non_inferiority": e_ni, "non_inferiority_threshold": 20.0,
        "explanation": f"{name}: harm e={e_harm}",
    }  # fmt: skip


def _decision(verdict: str, *metrics: dict[str, Any]) -> dict[str, Any]:
    return {"verdict": verdict, "metrics": list(metrics), "explanation": f"judge says {verdict}"}


def _start(store: RolloutStore, now: float = 1000.0) -> Rollout:
    return store.create(PLAN, {}, now=now, canary_image="app:v2", actor="alice")


def test_the_timeline_marks_steps_done_current_and_to_come(store: RolloutStore) -> None:
    r = replace(_start(store), step=1)
    assert [s.state for s in timeline(r)] == ["done", "current", "pending"]
    assert [s.weights for s in timeline(r)] == ["90/10/0", "50/50/0", "0/100/0"]
    rolled_back = replace(r, status=S.ROLLED_BACK)
    assert [s.state for s in timeline(rolled_back)] == ["done", "stopped", "pending"]
    promoted = replace(r, status=S.PROMOTED, step=2)
    assert {s.state for s in timeline(promoted)} == {"done"}


def test_each_metric_has_its_e_value_path_and_the_harmful_one_decides(
    store: RolloutStore,
) -> None:
    r = _start(store)
    store.save(r, now=1002.0, events=[
        ("batch", "judge", "continue", _decision("continue", _metric("errors", 2.0),
                                                 _metric("p95", 1.0))),
    ])  # fmt: skip
    store.save(r, now=1004.0, events=[
        ("decision", "judge", "roll back", _decision("rollback", _metric("errors", 40.0),
                                                     _metric("p95", 0.5))),
    ])  # fmt: skip
    r = store.save(replace(r, status=S.ROLLED_BACK, reason="judge: roll back"), now=1005.0)
    events = store.events(r.id)
    paths = e_paths(r, events)
    assert [(p.t, p.e_harm) for p in paths["errors"]] == [(2.0, 2.0), (4.0, 40.0)]
    assert [p.e_harm for p in paths["p95"]] == [1.0, 0.5]
    assert deciding(r, events) == "errors"
    html = rollout_view.rollout(RolloutSnapshot(r, events))
    assert 'data-verdict="rolled_back"' in html and 'data-metric="errors"' in html
    log = rollout_view.event_log(events)
    assert "roll back" in log and "errors: harm e=40.0" in log and "continue" not in log
    assert "continue" in rollout_view.event_log(events, batches=True)


def test_a_rollout_ended_by_a_person_says_who(store: RolloutStore) -> None:
    r = _start(store)
    store.save(r, now=1001.0, events=[("abort", "bob (dashboard)", "abort requested", None)])
    aborted = replace(r, status=S.ROLLED_BACK, reason="aborted by bob (dashboard)")
    assert deciding(aborted, store.events(r.id)) == "aborted by bob (dashboard)"
    store.save(r, now=1002.0, events=[("promote", "carol", "full promotion", None)])
    promoted = replace(r, status=S.PROMOTED)
    assert deciding(promoted, store.events(r.id)) == "promoted by carol"


def test_history_lists_the_newest_first_and_reads_an_ended_rollout_once(
    store: RolloutStore,
) -> None:
    first = _start(store, now=1000.0)
    store.save(replace(first, status=S.PROMOTED), now=1090.0)
    second = _start(store, now=2000.0)
    cache: dict[int, Any] = {}
    rows = history_rows(store, cache)
    assert [(row.id, row.status, row.duration_s) for row in rows] == [
        (second.id, "running", None),
        (first.id, "promoted", 90.0),
    ]
    assert list(cache) == [first.id]  # the running one is read again next time


def test_the_controls_appear_only_when_steering_is_allowed(store: RolloutStore) -> None:
    snap = RolloutSnapshot(_start(store), [])
    readonly = rollout_view.controls(snap, allow_control=False)
    assert "data-readonly" in readonly and "<button" not in readonly
    html = rollout_view.controls(snap, allow_control=True)
    for action in ("pause", "resume", "promote", "promote_full", "abort"):
        assert f'data-action="{action}"' in html
    assert "All traffic goes back to stable" in html  # what the abort confirmation asks
