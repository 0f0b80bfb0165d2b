"""Notifications (`[[notifications]]`): a rollout's events (started, step passed, paused,
rolled back with the judge's evidence, promoted) posted to webhooks as JSON or as a
Slack message.

Driven from the stored history, with the history itself as the cursor: every delivery,
made or given up after its retries, is recorded as a `notify` event naming the event it
carried. A controller started again after a crash sends what was not recorded yet (an
event whose delivery was under way at the crash may go twice; nothing floods, nothing is
lost). Deliveries run on a thread per webhook, in order, never in a tick's way: a dead
endpoint only delays its own messages.
"""

from __future__ import annotations

import hashlib
import queue
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from canary_deploy.rollout.model import Event, EventRecord, Rollout, RolloutStatus
from canary_deploy.rollout.settings import NOTIFY_EVENTS, NotificationSettings
from canary_deploy.rollout.state import RolloutState
from canary_deploy.rollout.webhooks import Response, host_of, post_json, with_retries

NOTIFY_KIND = "notify"
NOTIFY_ACTOR = "notifier"
Post = Callable[..., Response]


def endpoint_key(url: str) -> str:
    """A webhook's name in the history: a hash (its URL may hold a secret)."""
    return hashlib.sha256(url.encode()).hexdigest()[:12]


def due(
    events: Sequence[Event], endpoints: Sequence[NotificationSettings]
) -> list[tuple[int, Event]]:
    """(endpoint index, event) for each event an endpoint wants and has not been told
    about (no `notify` record for it), in the history's order."""
    done = {
        (str(e.data.get("endpoint")), e.data.get("event_id"))
        for e in events
        if e.kind == NOTIFY_KIND and e.data
    }
    out = []
    for e in events:
        if e.kind not in NOTIFY_EVENTS:
            continue
        for i, endpoint in enumerate(endpoints):
            if e.kind in endpoint.events and (endpoint_key(endpoint.url), e.id) not in done:
                out.append((i, e))
    return out


def evidence(r: Rollout) -> dict[str, Any] | None:
    """The judge's last decision, summarised: its verdict, why, and a line per metric."""
    if r.last_decision is None:
        return None
    d = r.last_decision.decision
    return {
        "verdict": str(d.verdict),
        "explanation": d.explanation,
        "metrics": [{"name": m.name, "explanation": m.explanation} for m in d.metrics],
    }


def payload(e: Event, r: Rollout) -> dict[str, Any]:
    """The JSON document a webhook gets for event `e` of rollout `r`."""
    ended = e.kind in ("rolled_back", "promoted")
    return {
        "event": e.kind,
        "event_id": e.id,
        "time": datetime.fromtimestamp(e.t, UTC).isoformat(),
        "rollout_id": r.id,
        "stack": r.stack,
        "message": e.message,
        "actor": e.actor,
        "step": (e.data or {}).get("step", r.step) + 1 if e.kind == "step" else r.step + 1,
        "steps": len(r.plan.steps),
        "canary_image": r.canary_image,
        "status": str(r.status),
        "reason": r.reason if e.kind in ("paused", "rolled_back") else None,
        "evidence": evidence(r) if e.kind == "rolled_back" else None,
        "ended": ended,
    }


_ICONS = {
    "started": ":arrow_forward:",
    "step": ":white_check_mark:",
    "paused": ":double_vertical_bar:",
    "rolled_back": ":rotating_light:",
    "promoted": ":tada:",
}


def slack_text(doc: Mapping[str, Any]) -> str:
    """A readable one-message summary for Slack (and anything taking `{"text": ...}`)."""
    head = f"{_ICONS.get(doc['event'], '')} Rollout #{doc['rollout_id']} of `{doc['stack']}`"
    lines = [f"{head}: {doc['message']}"]
    if doc["event"] == "rolled_back":
        lines[0] = f"{head} rolled back at step {doc['step']}/{doc['steps']}: {doc['reason']}"
        for metric in (doc.get("evidence") or {}).get("metrics", []):
            lines.append(f"> {metric['explanation']}")
    if doc["event"] in ("started", "promoted") and doc.get("canary_image"):
        lines.append(f"image: `{doc['canary_image']}`")
    return "\n".join(lines)


def formatted(doc: dict[str, Any], fmt: str) -> dict[str, Any]:
    return {"text": slack_text(doc)} if fmt == "slack" else doc


@dataclass(frozen=True)
class Delivery:
    event_id: int
    event: str
    doc: dict[str, Any]


def delivery_event(
    endpoint: NotificationSettings, d: Delivery, answer: Response, tries: int
) -> EventRecord:
    """One delivery, made or given up, as the history's record (and cursor)."""
    where = host_of(endpoint.url)
    if answer.ok:
        message = f"`{d.event}` sent to {where}: {answer.describe()}"
    else:
        message = f"`{d.event}` not delivered to {where} after {tries} tries: {answer.describe()}"
    data = {
        "endpoint": endpoint_key(endpoint.url),
        "event_id": d.event_id,
        "event": d.event,
        "ok": answer.ok,
        "http_status": answer.status,
        "error": answer.error,
        "attempts": tries,
    }
    return EventRecord(NOTIFY_KIND, NOTIFY_ACTOR, message, data)


class _Courier:
    """One webhook's deliveries, in order, on a thread of its own."""

    def __init__(
        self,
        endpoint: NotificationSettings,
        post: Post,
        stop: threading.Event,
        done: Callable[[EventRecord], None],
    ) -> None:
        self.endpoint = endpoint
        self.post = post
        self.stop = stop
        self.done = done
        self._inbox: queue.Queue[Delivery] = queue.Queue()
        self._outstanding = 0
        self._cv = threading.Condition()
        threading.Thread(target=self._work, name="notify", daemon=True).start()

    def send(self, d: Delivery) -> None:
        with self._cv:
            self._outstanding += 1
        self._inbox.put(d)

    def wait_idle(self, timeout_s: float) -> bool:
        with self._cv:
            return self._cv.wait_for(lambda: self._outstanding == 0, timeout_s)

    def _work(self) -> None:
        while not self.stop.is_set():
            try:
                d = self._inbox.get(timeout=0.2)
            except queue.Empty:
                continue
            self._deliver(d)
            with self._cv:
                self._outstanding -= 1
                self._cv.notify_all()

    def _deliver(self, d: Delivery) -> None:
        ep = self.endpoint

        def once() -> Response:
            if self.stop.is_set():
                return Response(None, error="the controller stopped first")
            return self.post(ep.url, d.doc, headers=ep.headers, timeout=ep.timeout)

        answer, tries = with_retries(once, ep.retries, sleep=self.stop.wait)
        if answer.ok or not self.stop.is_set():
            # Not recorded when stopped: the next controller sends it.
            self.done(delivery_event(ep, d, answer, tries))


class Notifier:
    """Sends what `offer` finds due; `records` hands out the finished deliveries."""

    def __init__(
        self, endpoints: Sequence[NotificationSettings], *, post: Post = post_json
    ) -> None:
        self.endpoints = tuple(endpoints)
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._records: list[EventRecord] = []
        self._offered: set[tuple[int, int]] = set()
        self._couriers = [_Courier(ep, post, self._stop, self._record) for ep in self.endpoints]

    def _record(self, record: EventRecord) -> None:
        with self._lock:
            self._records.append(record)

    def offer(self, r: Rollout, events: Sequence[Event]) -> None:
        """Queue every due event of `r`'s history not queued yet."""
        for i, e in due(events, self.endpoints):
            if (i, e.id) in self._offered:
                continue
            self._offered.add((i, e.id))
            doc = formatted(payload(e, r), self.endpoints[i].format)
            self._couriers[i].send(Delivery(e.id, e.kind, doc))

    def records(self) -> list[EventRecord]:
        with self._lock:
            taken, self._records = self._records, []
        return taken

    def close(
        self, timeout_s: float, clock: Callable[[], float] = time.monotonic
    ) -> list[EventRecord]:
        """Wait up to `timeout_s` for the deliveries under way, then stop; returns the
        records not handed out yet."""
        deadline = clock() + timeout_s
        for courier in self._couriers:
            courier.wait_idle(max(0.0, deadline - clock()))
        self._stop.set()
        return self.records()


class NotificationPump:
    """Between ticks: feed the notifier from the history when the rollout changed, and
    record its deliveries (the controller thread does every store read and write)."""

    def __init__(self, notifier: Notifier, store: RolloutState, rollout_id: int) -> None:
        self.notifier = notifier
        self.store = store
        self.rollout_id = rollout_id
        self._seen: tuple[RolloutStatus, int] | None = None

    def after_tick(self, r: Rollout) -> None:
        # Every event notifications carry comes with a new status or step: read the
        # history only then (and once at the start, for what a crash left unsent).
        if (r.status, r.step) != self._seen:
            self._seen = (r.status, r.step)
            self.notifier.offer(r, self.store.events(r.id))
        self._save(self.notifier.records())

    def close(self, timeout_s: float) -> None:
        self._save(self.notifier.close(timeout_s))

    def _save(self, records: list[EventRecord]) -> None:
        if records:
            self.store.save(self.store.get(self.rollout_id), now=time.time(), events=records)
