"""Notifications: what is due from the history (the history is the cursor), the JSON and
Slack formats, delivery with retries that never blocks, and a restart that neither
floods nor loses."""

from __future__ import annotations

import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from canary_deploy.analysis import Verdict
from canary_deploy.local.processes import free_port
from canary_deploy.rollout import loop
from canary_deploy.rollout.model import ACTOR, EventRecord, Rollout, RolloutStatus
from canary_deploy.rollout.notify import NotificationPump, Notifier, due, payload, slack_text
from canary_deploy.rollout.plan import build_plan
from canary_deploy.rollout.settings import NotificationSettings
from canary_deploy.rollout.store import RecordedDecision, RolloutStore
from canary_deploy.rollout.webhooks import Response
from tests.analysis import helpers
from tests.local.conftest import wait_for
from tests.rollout.fakes import FakeTarget
from tests.rollout.receiver import receiver
from tests.rollout.test_controller import Rig

DECISION = RecordedDecision(
    helpers.decision(
        Verdict.ROLLBACK,
        helpers.evidence("errors", 40.0, explanation="errors: canary 30/100 vs stable 1/1900"),
        explanation="canary worse on errors",
    ),
    (0.0, 2.0),
    1,
)


def endpoint(url: str, **values: Any) -> NotificationSettings:
    return NotificationSettings.model_validate({"url": url, **values})


def rolled_back_rollout(tmp_path: Path) -> tuple[RolloutStore, Rollout]:
    store = RolloutStore(tmp_path / "state.db", "shop")
    plan = build_plan("local", {"steps": [10, 50]})
    r = store.create(plan, {}, now=1000.0, canary_image="app:v2", actor="ana")
    r = store.save(r, now=1001.0, events=[EventRecord("note", ACTOR, "not notified")])
    ended = replace(r, status=RolloutStatus.ROLLED_BACK, reason="judge: canary worse on errors",
                    last_decision=DECISION)  # fmt: skip
    r = store.save(ended, now=1002.0, events=[EventRecord("rolled_back", ACTOR, "rolled back")])
    return store, r


def test_due_follows_each_endpoints_events_and_the_recorded_deliveries(tmp_path: Path) -> None:
    store, r = rolled_back_rollout(tmp_path)
    everything = endpoint("http://a.example/x")
    endings = endpoint("http://b.example/y", events=["rolled_back", "promoted"])
    events = store.events(r.id)
    assert [(i, e.kind) for i, e in due(events, [everything, endings])] == [
        (0, "started"), (0, "rolled_back"), (1, "rolled_back"),
    ]  # fmt: skip
    notifier = Notifier([everything], post=lambda *a, **k: Response(200))
    notifier.offer(r, events)
    store.save(r, now=1003.0, events=notifier.close(5))
    assert [(i, e.kind) for i, e in due(store.events(r.id), [everything, endings])] == [
        (1, "rolled_back")
    ]


def test_a_rollback_carries_the_judges_evidence_in_json_and_slack(tmp_path: Path) -> None:
    store, r = rolled_back_rollout(tmp_path)
    event = store.events(r.id)[-1]
    doc = payload(event, r)
    assert doc["event"] == "rolled_back" and doc["rollout_id"] == r.id and doc["stack"] == "shop"
    assert doc["reason"] == "judge: canary worse on errors"
    assert doc["evidence"]["metrics"][0]["explanation"].startswith("errors: canary 30/100")
    text = slack_text(doc)
    assert text.splitlines() == [
        f":rotating_light: Rollout #{r.id} of `shop` rolled back at step 1/2: "
        "judge: canary worse on errors",
        "> errors: canary 30/100 vs stable 1/1900",
    ]


def test_webhooks_receive_events_in_order_and_deliveries_are_recorded(tmp_path: Path) -> None:
    store, r = rolled_back_rollout(tmp_path)
    with receiver() as json_hook, receiver() as slack_hook:
        notifier = Notifier([endpoint(json_hook.url), endpoint(slack_hook.url, format="slack")])
        pump = NotificationPump(notifier, store, r.id)
        pump.after_tick(r)
        pump.close(5)
        assert [b["event"] for b in json_hook.received()] == ["started", "rolled_back"]
        assert [set(b) for b in slack_hook.received()] == [{"text"}, {"text"}]
        assert "rolled back at step 1/2" in slack_hook.received()[1]["text"]
    sent = [e for e in store.events(r.id) if e.kind == "notify"]
    assert len(sent) == 4 and all(e.data and e.data["ok"] for e in sent)
    # Each endpoint delivers on its own thread: in order per endpoint, interleaved between them.
    for hook in (json_hook, slack_hook):
        host = hook.url.split("/")[2]
        assert [e.message for e in sent if host in e.message] == [
            f"`started` sent to {host}: HTTP 200",
            f"`rolled_back` sent to {host}: HTTP 200",
        ]


def test_a_dead_endpoint_never_slows_a_tick_and_its_failure_is_recorded(tmp_path: Path) -> None:
    store, r = rolled_back_rollout(tmp_path)
    dead = endpoint(f"http://127.0.0.1:{free_port()}/hook", retries=1, timeout=1)
    with receiver() as live:
        notifier = Notifier([dead, endpoint(live.url)])
        pump = NotificationPump(notifier, store, r.id)
        start = time.monotonic()
        pump.after_tick(r)
        assert time.monotonic() - start < 0.5  # the tick goes on at once
        wait_for(lambda: len(live.received()) == 2, 5, "the live endpoint")  # not held up
        pump.close(10)
    failed = [e for e in store.events(r.id) if e.kind == "notify" and e.data and not e.data["ok"]]
    assert len(failed) == 2
    assert failed[0].data is not None and failed[0].data["attempts"] == 2
    assert "not delivered to 127.0.0.1:" in failed[0].message
    assert "after 2 tries: cannot reach" in failed[0].message


def test_a_restarted_controller_sends_only_what_was_not_recorded(tmp_path: Path) -> None:
    store, r = rolled_back_rollout(tmp_path)
    with receiver() as got:
        first = NotificationPump(Notifier([endpoint(got.url)]), store, r.id)
        first.after_tick(r)
        first.close(5)
        store.save(r, now=1004.0, events=[EventRecord("promoted", ACTOR, "(for the test)")])
        again = NotificationPump(Notifier([endpoint(got.url)]), store, r.id)  # a new process
        again.after_tick(store.get(r.id))
        again.close(5)
        assert [b["event"] for b in got.received()] == ["started", "rolled_back", "promoted"]


def test_deliveries_under_way_are_waited_for_at_most_the_close_timeout(tmp_path: Path) -> None:
    store, r = rolled_back_rollout(tmp_path)

    def hang(*args: Any, **kwargs: Any) -> Response:
        time.sleep(0.3)
        return Response(None, error="no answer")

    notifier = Notifier([endpoint("http://x.example/", retries=10)], post=hang)
    notifier.offer(r, store.events(r.id))
    start = time.monotonic()
    assert notifier.close(0.5) == []  # given up unrecorded: the next controller sends it
    assert time.monotonic() - start < 1.0


class _NoView:
    def show(self, result: object, quantiles: object) -> None:
        pass


def test_a_stopped_controller_records_the_deliveries_under_way(tmp_path: Path) -> None:
    """Ctrl-C stops the controller while a delivery is on its way: it waits briefly for
    it and records it, so the controller that resumes the rollout does not send it again."""
    rig = Rig(tmp_path)
    r = rig.start().tick().rollout
    posting = threading.Event()

    def slow(*args: Any, **kwargs: Any) -> Response:
        posting.set()
        time.sleep(0.3)
        return Response(200)

    def sleep(seconds: float) -> None:
        if posting.wait(5):
            raise KeyboardInterrupt
        rig.clock.advance(seconds)

    notifier = Notifier([endpoint("http://x.example/")], post=slow)
    with pytest.raises(KeyboardInterrupt):
        loop.run(
            FakeTarget(rig),  # type: ignore[arg-type]
            rig.store,
            r,
            _NoView(),
            sleep=sleep,
            clock=rig.clock,
            notifier=notifier,
        )
    sent = [e.data for e in rig.store.events(r.id) if e.kind == "notify" and e.data]
    assert [(d["event"], d["ok"]) for d in sent] == [("started", True)]
    assert due(rig.store.events(r.id), [endpoint("http://x.example/")]) == []
