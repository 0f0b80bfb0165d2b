"""How a rollout ends: rolled back (100/0 at once, then the canary scaled in) or promoted
(stable takes exactly the image the rollout judged, then 100/0)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace

from canary_deploy.backend import Progress, TrafficRouter, Workload
from canary_deploy.errors import CanaryError
from canary_deploy.rollout.model import ACTOR, EventRecord, Rollout, RolloutStatus
from canary_deploy.rollout.ownership import change_weights
from canary_deploy.rollout.state import RolloutState
from canary_deploy.weights import STABLE_ONLY, Weights


def image_changed(r: Rollout, running: str | None) -> str | None:
    """Why the rollout must not go on, when the canary no longer runs the image it judged.

    >>> from types import SimpleNamespace as R
    >>> image_changed(R(canary_image="repo@sha256:aa"), "repo@sha256:aa") is None
    True
    >>> image_changed(R(canary_image="app:v2"), "app:v3").split(":")[0]
    'the canary runs app'
    """
    if r.canary_image is not None and running == r.canary_image:
        return None
    judged = r.canary_image or "an image it did not record"
    now = running or "an image canary cannot tell"
    return (
        f"the canary runs {now}, not {judged} that this rollout judged (deployed outside "
        "the rollout?): not promoting it; `canary abort` rolls back, then `canary rollout` "
        "judges the new image"
    )


class Endings:
    """The two ways a rollout ends, each recorded as it happens."""

    def __init__(
        self,
        router: TrafficRouter,
        workload: Workload,
        store: RolloutState,
        progress: Progress,
        clock: Callable[[], float],
        timer: Callable[[], float] = time.perf_counter,
    ) -> None:
        self.router = router
        self.timer = timer
        self.workload = workload
        self.store = store
        self.progress = progress
        self.clock = clock

    def roll_back(
        self, r: Rollout, live: Weights, t0: float | None
    ) -> tuple[Rollout, float | None]:
        """100/0 with one listener call, then the baseline stopped and the canary scaled
        in. Returns the rollout and the seconds from `t0` (the verdict) to 100/0."""
        latency = None
        events: list[EventRecord] = []
        if live != STABLE_ONLY:
            t0 = t0 or self.timer()
            event = change_weights(self.router, live, STABLE_ONLY, "rollback")
            # From the verdict (or the abort command) to the balancer answering 100/0.
            latency = self.timer() - t0
            assert event.data is not None
            event.data["seconds"] = round(latency, 4)
            events.append(event)
        self.stop_baseline(r, events)
        before = self._canary_count(r)
        self.workload.scale_canary(r.plan.post_rollback_canary_count)
        events.append(
            EventRecord(
                "rolled_back",
                ACTOR,
                f"rolled back: all traffic on stable; canary scaled to "
                f"{r.plan.post_rollback_canary_count} task(s)",
                # What a later `canary rollout` scales the canary back to.
                {"canary_count_before": before},
            )
        )
        done = replace(r, status=RolloutStatus.ROLLED_BACK, applied_weights=STABLE_ONLY)
        return self.store.save(done, now=self.clock(), events=events), latency

    def _canary_count(self, r: Rollout) -> int | None:
        """The canary's task count before this rollout sized it for a larger share (what a
        later rollout starts again from), else its count now."""
        try:
            for event in self.store.events(r.id):
                before = (event.data or {}).get("from", {}) if event.kind == "scale" else {}
                if isinstance(before.get("canary"), int):
                    return int(before["canary"])
            canary = self.workload.describe_services().get("canary")
        except CanaryError:
            return None  # the rollback goes on; a later rollout falls back to the setting
        return None if canary is None else canary.desired

    def stop_baseline(self, r: Rollout, events: list[EventRecord]) -> None:
        """After the listener call that gave the baseline weight 0: stop its tasks."""
        if r.plan.baseline:
            self.workload.stop_baseline()
            events.append(EventRecord("baseline", ACTOR, "baseline stopped (weight 0, 0 tasks)"))

    def promote(self, r: Rollout, live: Weights) -> Rollout:
        """Stable takes the judged image, then 100/0; paused instead when the canary no
        longer runs that image."""
        events: list[EventRecord] = []
        image = r.canary_image
        why = image_changed(r, self.workload.canary_image())
        if why is not None or image is None:
            why = why or "no judged image recorded"
            events.append(EventRecord("paused", ACTOR, why))
            paused = replace(r, status=RolloutStatus.PAUSED, reason=why)
            return self.store.save(paused, now=self.clock(), events=events)
        stopped = False
        if r.plan.baseline and live.baseline == 0:
            # Not serving (a soak step): stop it now, or the promotion would first roll
            # its tasks onto the new stable image only to stop them after.
            self.stop_baseline(r, events)
            stopped = True
        self.progress.update(f"promoting: stable takes {image}")
        self.workload.promote(image, self.progress)
        if live != STABLE_ONLY:
            events.append(
                change_weights(self.router, live, STABLE_ONLY, "stable runs the new version")
            )
        if not stopped:
            self.stop_baseline(r, events)
        self.workload.scale_canary(r.plan.idle_canary_count)
        events.append(EventRecord("promoted", ACTOR, f"promoted: stable now runs {image}"))
        done = replace(r, status=RolloutStatus.PROMOTED, applied_weights=STABLE_ONLY)
        return self.store.save(done, now=self.clock(), events=events)
