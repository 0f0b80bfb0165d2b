"""The demo's second half: two automated rollouts on the local stack, one bad canary
(rolled back by the judge) and one healthy canary (promoted)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager, closing
from dataclasses import dataclass, replace
from typing import Any

from canary_deploy import usecases
from canary_deploy.backend import Progress, Target
from canary_deploy.config import Settings
from canary_deploy.local.demo import DEMO_ROLLOUT_RATE
from canary_deploy.local.load import LoadGenerator, LoadPlan
from canary_deploy.rollout import loop, service
from canary_deploy.rollout.controller import TickResult
from canary_deploy.rollout.plan import build_plan
from canary_deploy.rollout.start import begin
from canary_deploy.rollout.state import RolloutState
from canary_deploy.rollout.store import Command, RecordedDecision, Rollout, RolloutStatus
from canary_deploy.weights import STABLE_ONLY

# Short steps so both rollouts fit in about two minutes at demo traffic (500 req/s). At
# 300 req/s a simulation of this plan with the real judge caught the 2x canary in 97% of
# runs and the real demo let it through in 1 of 5; at 500 req/s the simulation caught it
# in 150 of 150 and rolled back 1 of 150 healthy canaries (bench/demo_acts.py measures
# the real thing).
DEMO_PLAN: Mapping[str, Any] = {
    "steps": [5, 25, 50, 100],
    "min_duration": "4s",
    "max_duration": "12s",
    "min_requests": 20,
    "interval": "1s",
}
BASELINE_S = 4.0  # stable traffic before a rollout, to freeze the latency thresholds from


def image(version: str, error_rate: float) -> str:
    """A builtin sample app that fails `error_rate` of its requests."""
    return f"CANARY_FAULT_ERROR_RATE={error_rate:g} builtin:{version}"


@dataclass(frozen=True)
class Act:
    title: str
    stable_image: str
    canary_image: str
    expected: RolloutStatus


ACTS = (
    Act(
        "bad canary: v2 fails 4% of requests, twice stable's 2%",
        image("v1", 0.02),
        image("v2", 0.04),
        RolloutStatus.ROLLED_BACK,
    ),
    Act(
        "healthy canary: v2 fails 2% of requests, like stable",
        image("v1", 0.02),
        image("v2", 0.02),
        RolloutStatus.PROMOTED,
    ),
)


class _Timed:
    """Wraps a view to remember when 100/0 took effect after a verdict, and plays the
    human when a rollout pauses for one (the demo must end): it aborts."""

    def __init__(self, inner: loop.RolloutView, store: RolloutState) -> None:
        self.inner = inner
        self.store = store
        self.rollback_latency_s: float | None = None
        self.aborted = False

    def show(self, result: TickResult, quantiles: Mapping[str, float | None]) -> None:
        if result.rollback_latency_s is not None:
            self.rollback_latency_s = result.rollback_latency_s
        self.inner.show(result, quantiles)
        if result.rollout.status is RolloutStatus.PAUSED and not self.aborted:
            self.aborted = True
            self.store.send(result.rollout.id, Command.ABORT, actor="demo")


def decided_by(recorded: RecordedDecision | None) -> str:
    """The metrics whose evidence of harm reached its threshold, e.g. "errors"."""
    names = () if recorded is None else recorded.decision.harmful
    return ", ".join(names) or "no metric (aborted)"


def outcome_line(act: Act, final: Rollout, rollback_latency_s: float | None) -> str:
    """One line for the summary: what happened, and what it cost."""
    decision = final.last_decision
    canary_requests = 0 if decision is None else decision.decision.canary_requests
    if final.status is RolloutStatus.ROLLED_BACK and final.reason == "aborted by demo":
        return f"{act.title}: paused for a human at step {final.step + 1}; the demo aborted it"
    if final.status is RolloutStatus.ROLLED_BACK:
        took = (
            ""
            if rollback_latency_s is None
            else f", 100% stable {rollback_latency_s * 1000:.0f} ms after the verdict"
        )
        metrics = () if decision is None else decision.decision.metrics
        failed = metrics[0].canary_hits if metrics else "?"
        return (
            f"{act.title}: rolled back at step {final.step + 1} on {decided_by(decision)} "
            f"after {canary_requests} canary requests ({failed} failed){took}"
        )
    if final.status is RolloutStatus.PROMOTED:
        return f"{act.title}: promoted after {len(final.plan.steps)} steps; stable now runs v2"
    return f"{act.title}: ended {final.status} ({final.reason})"


def _run_act(
    act: Act,
    settings: Settings,
    target: Target,
    progress: Progress,
    view: Callable[[], AbstractContextManager[loop.RolloutView]],
) -> str:
    """Deploy the act's versions at 100/0, run a rollout to its end; its outcome line."""
    base = usecases.release_spec(settings)
    # The rollout runs a baseline beside the canary (same size, same share,
    # started together), so the canary's size does not bias the comparison.
    spec = replace(
        base,
        image_stable=act.stable_image,
        image_canary=act.canary_image,
        weights=STABLE_ONLY,
    )
    target.deploy(spec, progress)
    if target.router.get_weights() != STABLE_ONLY:
        usecases.set_weights(target, STABLE_ONLY)
    time.sleep(BASELINE_S)
    with closing(service.open_store(settings)) as store:
        plan = build_plan("local", DEMO_PLAN)
        rollout, _ = begin(settings, target, store, plan, progress)
        with view() as shown:
            timed = _Timed(shown, store)
            final = loop.run(target, store, rollout, timed)
    return outcome_line(act, final, timed.rollback_latency_s)


def run_acts(
    settings: Settings,
    target: Target,
    url: str,
    progress: Progress,
    view: Callable[[], AbstractContextManager[loop.RolloutView]],
    *,
    rate: float = DEMO_ROLLOUT_RATE,
    announce: Callable[[str], None] = print,
    acts: Sequence[Act] = ACTS,
) -> list[str]:
    """Deploy each act's versions, run an automated rollout under load, report outcomes."""
    summary: list[str] = []
    stop = threading.Event()
    generator = LoadGenerator(LoadPlan(url.rstrip("/"), "/whoami", rate=rate, concurrency=16))
    loader = threading.Thread(target=generator.run, args=(stop,), daemon=True)
    loader.start()
    try:
        for act in acts:
            announce(f"\nAutomated rollout - {act.title}")
            line = _run_act(act, settings, target, progress, view)
            announce(line)
            summary.append(line)
    finally:
        stop.set()
        loader.join(timeout=15)
    result = generator.result
    unanswered = result.statuses.get(0, 0)
    summary.append(
        f"{result.total.requests:,} requests during the automated rollouts: "
        f"{result.total.errors - unanswered:,} injected 500s, {unanswered} without a response"
    )
    return summary
