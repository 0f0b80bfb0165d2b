"""The SQLite store (local target) and the DynamoDB store (AWS target, on the moto server)
agree: the same scenarios run against both, and the controller drives a rollout the same
way on either."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import replace
from pathlib import Path
from typing import Any, Protocol

import pytest

from canary_deploy.analysis import Judge, Verdict
from canary_deploy.aws.state_open import open_state
from canary_deploy.backend import RoleCounts
from canary_deploy.errors import UsageError
from canary_deploy.rollout.controller import Controller
from canary_deploy.rollout.hooks import Hooks
from canary_deploy.rollout.late import FedWindow
from canary_deploy.rollout.notify import NotificationPump, Notifier
from canary_deploy.rollout.plan import RolloutPlan, build_plan
from canary_deploy.rollout.settings import HooksSettings, NotificationSettings
from canary_deploy.rollout.start import start_rollout
from canary_deploy.rollout.state import RenewingProgress, RolloutState, unattended_since
from canary_deploy.rollout.store import (
    Command,
    RecordedDecision,
    Rollout,
    RolloutStatus,
    RolloutStore,
)
from canary_deploy.rollout.webhooks import Response
from canary_deploy.weights import Weights
from tests.analysis import helpers
from tests.aws.conftest import isolate_env, moto_server  # noqa: F401  (the fixture)
from tests.rollout.fakes import Clock, FakeMetrics, FakeRouter, FakeWorkload
from tests.rollout.test_hooks import FakeRunner

STACK = "shop-api"
T0 = 1_000_000.0
PLAN: RolloutPlan = build_plan(
    "local",
    {"min_duration": 10, "max_duration": 30, "min_requests": 20, "interval": 2, "baseline": False},
)


class Place(Protocol):
    """Where rollout state lives; each `open` is a store as another directory, terminal
    or machine of the same operator would open it."""

    def open(self, *, region: str = "us-east-1") -> RolloutState: ...

    def as_another_process(self) -> AbstractContextManager[None]: ...


class SqlitePlace:
    """One state db (the local target's). It has no regions: a region is its own db file,
    as separate as two regions' tables are."""

    def __init__(self, root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        self.root = root
        self.monkeypatch = monkeypatch

    def open(self, *, region: str = "us-east-1") -> RolloutState:
        return RolloutStore(self.root / region / "state.db", STACK)

    @contextmanager
    def as_another_process(self) -> Iterator[None]:
        """The SQLite store tells controllers apart by pid: act as our (live) parent."""
        parent = os.getppid()
        with self.monkeypatch.context() as m:
            m.setattr(os, "getpid", lambda: parent)
            yield


class DynamoPlace:
    """One state table on the moto server (a fresh one per test)."""

    def __init__(self) -> None:
        self.table = f"state-{uuid.uuid4().hex[:8]}"

    def open(self, *, region: str = "us-east-1") -> RolloutState:
        return open_state(region=region, profile=None, stack_name=STACK, table=self.table)

    def as_another_process(self) -> AbstractContextManager[None]:
        # Every store object is its own controller (host:pid:token): nothing to pretend.
        return nullcontext()


class Opened:
    """Opens stores at a place and closes them all at the end of the test."""

    def __init__(self, place: Place) -> None:
        self.place = place
        self.stores: list[RolloutState] = []

    def __call__(self, *, region: str = "us-east-1") -> RolloutState:
        store = self.place.open(region=region)
        self.stores.append(store)
        return store

    def close(self) -> None:
        for store in self.stores:
            store.close()


def make_place(
    kind: str, request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Place:
    if kind == "sqlite":
        return SqlitePlace(tmp_path / "state", monkeypatch)
    isolate_env(monkeypatch, request.getfixturevalue("moto_server"), STACK, tmp_path)
    return DynamoPlace()


@pytest.fixture(params=["sqlite", "dynamodb"])
def place(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Place]:
    yield make_place(request.param, request, tmp_path, monkeypatch)


@pytest.fixture
def opened(place: Place) -> Iterator[Opened]:
    stores = Opened(place)
    try:
        yield stores
    finally:
        stores.close()


def start(store: RolloutState, *, now: float = T0, actor: str = "alice") -> Rollout:
    return store.create(
        PLAN, Judge(PLAN.judge).to_dict(), now=now, canary_image="repo/app:v2", actor=actor
    )


def log(store: RolloutState, rollout_id: int | None = None) -> list[tuple[Any, ...]]:
    """The audit log without event ids (global in SQLite, per rollout in DynamoDB)."""
    return [
        (e.rollout_id, e.t, e.kind, e.actor, e.message, e.data) for e in store.events(rollout_id)
    ]


def test_a_stack_without_rollouts_has_none_and_names_the_missing_one(opened: Opened) -> None:
    store = opened()
    assert store.latest() is None and store.active() is None and store.events() == []
    with pytest.raises(UsageError, match=f"no rollout 1 for stack {STACK}"):
        store.get(1)


def test_a_new_rollout_is_running_claimed_active_and_latest(opened: Opened) -> None:
    store = opened()
    r = start(store)
    assert r.status is RolloutStatus.RUNNING and (r.step, r.cursor) == (0, T0)
    assert (r.plan, r.canary_image, r.owner_pid, r.heartbeat) == (
        PLAN,
        "repo/app:v2",
        os.getpid(),
        T0,
    )
    assert store.get(r.id) == r and store.active() == r and store.latest() == r
    assert store.controller_alive(r, now=T0 + 1)
    assert log(store) == [
        (r.id, T0, "started", "alice", "rollout started: canary 5% -> 25% -> 50% -> 100%", None)
    ]


def test_a_second_rollout_is_refused_while_one_is_active(opened: Opened) -> None:
    first, elsewhere = opened(), opened()
    r = start(first)
    for store in (first, elsewhere):
        with pytest.raises(UsageError, match=f"a rollout of {STACK} is already in progress"):
            start(store, now=T0 + 5, actor="bob")
    assert elsewhere.latest() == r and len(log(elsewhere)) == 1


def test_an_ended_rollout_stays_latest_and_the_next_gets_the_next_id(opened: Opened) -> None:
    store = opened()
    r = start(store)
    ended = store.save(
        replace(r, status=RolloutStatus.ROLLED_BACK, reason="aborted by bob"),
        now=T0 + 10,
        events=[("rolled_back", "controller", "rolled back", None)],
    )
    assert store.active() is None and store.latest() == replace(ended, heartbeat=T0 + 10)
    second = start(store, now=T0 + 20, actor="carol")
    assert second.id == r.id + 1 and store.active() == second
    assert [(e[0], e[2]) for e in log(store)] == [
        (r.id, "started"),
        (r.id, "rolled_back"),
        (second.id, "started"),
    ]


def test_a_save_writes_state_events_and_consumed_commands_together(opened: Opened) -> None:
    store = opened()
    r = start(store)
    command_id = store.send(r.id, Command.PAUSE, actor="bob")
    decision = RecordedDecision(
        helpers.decision(Verdict.CONTINUE, helpers.evidence("errors", 1.5)), (T0, T0 + 6), 1
    )
    saved = store.save(
        replace(
            r,
            status=RolloutStatus.PAUSED,
            step=1,
            step_started_at=T0 + 4,
            step_canary_requests=321,
            cursor=T0 + 6,
            judge={**r.judge, "stage": 2},
            last_decision=decision,
            reason="paused by bob",
        ),
        now=T0 + 7,
        events=[
            ("paused", "bob", "paused", None),
            ("batch", "judge", "continue", {"window": [T0, T0 + 6], "e": [1.0, 0.5]}),
        ],
        consumed=[command_id],
    )
    got = store.get(r.id)
    assert got == replace(saved, heartbeat=T0 + 7) and got.updated_at == T0 + 7
    assert got.last_decision == decision and got.judge["stage"] == 2
    assert store.pending_commands(r.id) == []
    assert log(store, r.id)[1:] == [
        (r.id, T0 + 7, "paused", "bob", "paused", None),
        (r.id, T0 + 7, "batch", "judge", "continue", {"window": [T0, T0 + 6], "e": [1.0, 0.5]}),
    ]


def test_commands_wait_in_order_until_a_save_consumes_them_once(opened: Opened) -> None:
    store, terminal = opened(), opened()
    r = start(store)
    pause = terminal.send(r.id, Command.PAUSE, actor="bob")
    resume = terminal.send(r.id, Command.RESUME, actor="carol")
    assert resume > pause
    assert store.pending_commands(r.id) == [
        (pause, Command.PAUSE, "bob"),
        (resume, Command.RESUME, "carol"),
    ]
    store.save(store.get(r.id), now=T0 + 1, consumed=[pause])
    assert terminal.pending_commands(r.id) == [(resume, Command.RESUME, "carol")]
    store.save(store.get(r.id), now=T0 + 2, consumed=[resume])
    assert store.pending_commands(r.id) == terminal.pending_commands(r.id) == []


def test_a_withdrawn_command_never_fires_and_is_recorded(opened: Opened) -> None:
    store = opened()
    r = start(store)
    late = store.send(r.id, Command.ABORT, actor="bob")
    assert store.withdraw(late, now=T0 + 10, why="no controller took it within 10s")
    assert store.pending_commands(r.id) == []
    assert log(store)[-1] == (
        r.id,
        T0 + 10,
        "withdrawn",
        "bob",
        "abort withdrawn: no controller took it within 10s",
        None,
    )
    assert not store.withdraw(late, now=T0 + 11, why="again")
    taken = store.send(r.id, Command.PAUSE, actor="bob")
    store.save(store.get(r.id), now=T0 + 12, consumed=[taken])
    assert not store.withdraw(taken, now=T0 + 13, why="too late")


def test_a_second_live_controller_is_refused(place: Place, opened: Opened) -> None:
    first, second = opened(), opened()
    r = start(first)  # the creator runs it
    first.claim(r.id, now=T0 + 5)  # claiming again is fine
    with place.as_another_process(), pytest.raises(UsageError) as refused:
        second.claim(r.id, now=T0 + 10)
    assert "is already being run by" in refused.value.message
    assert refused.value.hint is not None and "canary status" in refused.value.hint


def test_a_lapsed_claim_lets_another_controller_take_over(place: Place, opened: Opened) -> None:
    first, second = opened(), opened()
    r = start(first)
    with place.as_another_process():
        second.claim(r.id, now=T0 + 31)  # the first one stopped renewing 31 s ago
    assert first.controller_alive(first.get(r.id), now=T0 + 32)
    with pytest.raises(UsageError, match="is already being run by"):
        first.claim(r.id, now=T0 + 32)


def test_a_released_rollout_is_unattended_at_once_and_free(place: Place, opened: Opened) -> None:
    first, second = opened(), opened()
    r = start(first)
    first.release(r.id)
    current = second.get(r.id)
    assert not second.controller_alive(current, now=T0 + 1)
    assert unattended_since(second, current, now=T0 + 1) == T0
    with place.as_another_process():
        second.claim(r.id, now=T0 + 1)
    assert unattended_since(first, first.get(r.id), now=T0 + 2) is None


def test_a_controller_that_stops_saving_is_unattended_since_its_last_save(
    opened: Opened,
) -> None:
    controller, status = opened(), opened()
    r = start(controller)
    controller.save(controller.get(r.id), now=T0 + 5)
    assert unattended_since(status, status.get(r.id), now=T0 + 20) is None
    assert unattended_since(status, status.get(r.id), now=T0 + 40) == T0 + 5
    ended = controller.save(
        replace(controller.get(r.id), status=RolloutStatus.PROMOTED), now=T0 + 41
    )
    assert unattended_since(status, ended, now=T0 + 500) is None  # ended: nothing to attend


def test_two_store_objects_see_and_steer_the_same_rollout(opened: Opened) -> None:
    here, there = opened(), opened()
    r = start(here)
    assert there.active() == r
    there.send(r.id, Command.ABORT, actor="bob")
    (command_id, command, actor) = here.pending_commands(r.id)[0]
    assert (command, actor) == (Command.ABORT, "bob")
    here.save(
        replace(here.get(r.id), status=RolloutStatus.ROLLING_BACK, reason="aborted by bob"),
        now=T0 + 3,
        events=[("abort", "bob", "abort requested: rolling back", None)],
        consumed=[command_id],
    )
    seen = there.get(r.id)
    assert (seen.status, seen.reason) == (RolloutStatus.ROLLING_BACK, "aborted by bob")
    assert log(there) == log(here) and log(there)[-1][2] == "abort"


def test_the_same_stack_name_in_two_regions_does_not_collide(opened: Opened) -> None:
    east, west = opened(region="us-east-1"), opened(region="eu-west-1")
    r_east = start(east)
    r_west = start(west, now=T0 + 1, actor="bob")  # not "already in progress"
    assert r_west.id == r_east.id == 1
    west.send(r_west.id, Command.ABORT, actor="bob")
    assert east.pending_commands(r_east.id) == []
    assert [e[3] for e in log(east)] == ["alice"] and [e[3] for e in log(west)] == ["bob"]


# ---- the controller on either store


def drive(store: RolloutState, steer: RolloutState) -> tuple[list[tuple[Any, ...]], Any]:
    """A rollout with fakes: two steps, a pause and a resume from another terminal, then
    an abort. Returns the audit log and the router's calls."""
    clock = Clock(T0)
    router = FakeRouter()
    metrics = FakeMetrics(router)
    workload = FakeWorkload(router=router)
    r = start_rollout(store, PLAN, metrics, canary_image="v2", clock=clock)  # type: ignore[arg-type]
    controller = Controller(router, workload, metrics, store, r.id, clock=clock)  # type: ignore[arg-type]

    def run(seconds: float) -> RolloutStatus:
        for _ in range(int(seconds / 0.5)):
            metrics.record(int(clock.t))
            clock.advance(0.5)
            status = controller.tick().rollout.status
        return status

    run(35)
    steer.send(r.id, Command.PAUSE, actor="bob")
    assert run(5) is RolloutStatus.PAUSED
    steer.send(r.id, Command.RESUME, actor="bob")
    assert run(5) is RolloutStatus.RUNNING
    steer.send(r.id, Command.ABORT, actor="carol")
    assert run(2) is RolloutStatus.ROLLED_BACK
    return log(store), router.calls


def test_the_controller_drives_a_rollout_identically_on_both_stores(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    runs = []
    for kind in ("sqlite", "dynamodb"):
        stores = Opened(make_place(kind, request, tmp_path / kind, monkeypatch))
        try:
            runs.append(drive(stores(), stores()))
        finally:
            stores.close()
    (sqlite_log, sqlite_calls), (dynamo_log, dynamo_calls) = runs
    assert dynamo_calls == sqlite_calls == [Weights(95, 5), Weights(75, 25), Weights(100, 0)]
    assert dynamo_log == sqlite_log
    kinds = [entry[2] for entry in sqlite_log]
    assert {"started", "step", "paused", "resumed", "abort", "rolled_back"} <= set(kinds)


def test_the_fed_windows_and_the_health_wait_survive_a_save(opened: Opened) -> None:
    # Issue 11 item 10: the windows re-read for late datapoints live in the rollout's row,
    # so a controller started elsewhere re-reads exactly what this one fed.
    store, elsewhere = opened(), opened()
    r = start(store)
    fed = (
        FedWindow(T0, T0 + 60, {"canary": RoleCounts(10, 1, (2, 3))}),
        FedWindow(T0 + 60, T0 + 120, {"stable": RoleCounts(190, 2, (9, 1))}),
    )
    saved = store.save(replace(r, fed_windows=fed, health_wait_since=T0 + 3), now=T0 + 4)
    got = elsewhere.get(r.id)
    assert got == replace(saved, heartbeat=T0 + 4)
    assert got.fed_windows == fed and got.health_wait_since == T0 + 3


def test_a_long_action_reporting_progress_keeps_the_lease(place: Place, opened: Opened) -> None:
    """A promotion waits minutes for ECS without saving: its progress reports renew the
    controller's lease, so another controller cannot take the rollout over meanwhile."""
    first, second = opened(), opened()
    r = start(first)
    t = [T0]
    keeper = RenewingProgress(first, r.id, every_s=5.0, clock=lambda: t[0])
    for _ in range(20):  # 100 s of "waiting for the stable service to be steady"
        t[0] += 5
        keeper.update("promoting: stable takes repo/app:v2")
    assert second.controller_alive(second.get(r.id), now=t[0] + 1)
    with place.as_another_process(), pytest.raises(UsageError, match="is already being run by"):
        second.claim(r.id, now=t[0] + 1)
    # Without the reports, the same wait lapses the lease: another controller may go on.
    with place.as_another_process():
        second.claim(r.id, now=t[0] + 40)


def test_hook_runs_and_deliveries_are_recorded_on_either_store(opened: Opened) -> None:
    """Hooks (recorded by the controller) and notifications (by the loop between ticks)
    write to the same history, also once the rollout ended."""
    store = opened()
    clock = Clock(time.time())
    router = FakeRouter()
    metrics = FakeMetrics(router)
    r = start_rollout(store, PLAN, metrics, canary_image="v2", clock=clock)  # type: ignore[arg-type]
    settings = HooksSettings.model_validate({"pre_step": "true", "on_rollback": "true"})
    hooks = Hooks(settings, FakeRunner(router))
    workload = FakeWorkload(router=router)
    controller = Controller(router, workload, metrics, store, r.id, clock=clock, hooks=hooks)  # type: ignore[arg-type]
    sent: list[str] = []

    def post(url: str, doc: dict[str, Any], **kwargs: Any) -> Response:
        sent.append(doc["event"])
        return Response(200)

    endpoint = NotificationSettings(url="http://127.0.0.1:9/hook")
    pump = NotificationPump(Notifier([endpoint], post=post), store, r.id)
    for _ in range(8):
        clock.advance(0.5)
        pump.after_tick(controller.tick().rollout)
    store.send(r.id, Command.ABORT, actor="carol")
    for _ in range(4):
        clock.advance(0.5)
        pump.after_tick(controller.tick().rollout)
    pump.close(5)
    kinds = [
        (e.kind, (e.data or {}).get("key") or (e.data or {}).get("event"))
        for e in store.events(r.id)
    ]
    assert [k for k in kinds if k[0] == "hook"] == [("hook", "pre_step:1"), ("hook", "on_rollback")]
    assert [k for k in kinds if k[0] == "notify"] == [
        ("notify", "started"),
        ("notify", "rolled_back"),
    ]
    assert sent == ["started", "rolled_back"]
