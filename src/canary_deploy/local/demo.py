"""`canary demo`: the seed's canary walk on the local stack, with load and a live view.

The demo is a list of steps run in order against a real local stack; a later step kind
(an automated rollout) only needs a new `DemoStep` and an entry in `default_steps()`.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import socket
import tempfile
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from canary_deploy import usecases
from canary_deploy.backend import Progress, Status
from canary_deploy.config import Settings, load_settings
from canary_deploy.errors import UsageError
from canary_deploy.local.load import LoadGenerator, LoadPlan, Sample
from canary_deploy.local.target import LocalTarget
from canary_deploy.routes import RouteMatch
from canary_deploy.units import plural
from canary_deploy.web.run import background
from canary_deploy.weights import STABLE_ONLY, Weights

SEED_SCHEDULE = (Weights(95, 5), Weights(75, 25), Weights(50, 50), Weights(0, 100))


@dataclass
class StepRecord:
    """What the load generator saw while one step was in effect."""

    title: str
    weights: Weights
    started: float
    ended: float | None = None
    by_version: dict[str, int] = field(default_factory=dict)
    errors: int = 0
    latencies: list[float] = field(default_factory=list)
    note: str = ""  # how long the step's call took to take effect

    @property
    def requests(self) -> int:
        return sum(self.by_version.values())

    def share(self, version: str) -> float | None:
        return self.by_version.get(version, 0) / self.requests if self.requests else None

    def p95_s(self) -> float | None:
        if not self.latencies:
            return None
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))]


class DemoView(Protocol):
    """Where the demo shows itself (a rich Live table, or plain lines)."""

    def started(self, url: str, state_dir: Path, dashboard: str | None = None) -> None: ...

    def step_started(self, record: StepRecord) -> None: ...

    def refresh(self, records: list[StepRecord], status: Status | None) -> None: ...

    def step_done(self, record: StepRecord) -> None: ...

    def note(self, message: str) -> None:
        """A line about something the demo did between steps."""
        ...

    def finished(self, records: list[StepRecord], summary: list[str]) -> None: ...


@dataclass
class DemoContext:
    target: LocalTarget
    view: DemoView
    progress: Progress
    records: list[StepRecord]
    hold_s: float
    url: str = ""  # the listener's, once deployed
    # perf_counter: the same clock as Sample.written, so a response counts for the step
    # in effect when its request was sent, not when it came back.
    clock: Callable[[], float] = time.perf_counter
    in_transition: int = 0  # responses to requests sent while weights were changing
    served: int = 0
    failed: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def begin(self, title: str, weights: Weights, note: str = "") -> StepRecord:
        """Start a step now (the first one, or one that changes no weights)."""
        return self._open(StepRecord(title, weights, self.clock(), note=note))

    def switch(self, title: str, weights: Weights, apply: Callable[[], None]) -> StepRecord:
        """End the current step, `apply` the weight change, start the next step once the
        change is verified. A request sent in between may have met either split, so it
        counts for neither step."""
        t0 = self.clock()
        self._close(t0)
        apply()
        t1 = self.clock()
        return self._open(StepRecord(title, weights, t1, note=f"{(t1 - t0) * 1000:.0f} ms"))

    def _close(self, now: float) -> None:
        with self._lock:
            record = self.records[-1] if self.records else None
            if record is None or record.ended is not None:
                return
            record.ended = now
        self.view.step_done(record)

    def _open(self, record: StepRecord) -> StepRecord:
        self._close(record.started)
        with self._lock:
            self.records.append(record)
        self.view.step_started(record)
        return record

    def observe(self, sample: Sample) -> None:
        """Called from the load thread for every response."""
        with self._lock:
            if not self.records:
                return
            self.served += 1
            self.failed += sample.failed
            # The split a request met is the one in effect when it went on the wire.
            at = sample.written or sample.sent
            record = next(
                (
                    r
                    for r in reversed(self.records)
                    if r.started <= at and (r.ended is None or at < r.ended)
                ),
                None,
            )
            if record is None:
                self.in_transition += 1
                return
            record.by_version[sample.version] = record.by_version.get(sample.version, 0) + 1
            record.errors += sample.failed
            if sample.status:
                record.latencies.append(sample.latency_s)

    def hold(self, seconds: float) -> None:
        """Keep the current step in effect, refreshing the view twice a second."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            status = None
            try:
                status = self.target.status()
            except Exception:  # the view is best effort; the step itself must go on
                status = None
            self.view.refresh(self.records, status)
            time.sleep(min(0.5, max(0.0, deadline - time.monotonic())))


@dataclass(frozen=True)
class DemoStep:
    title: str
    run: Callable[[DemoContext], None]


def _apply(ctx: DemoContext, weights: Weights) -> Callable[[], None]:
    def apply() -> None:
        # The listener call and its read-back, as `set-weights` does, minus the status.
        ctx.target.router.set_weights(weights)
        usecases.wait_for_weights(ctx.target, weights)

    return apply


def weight_step(weights: Weights) -> DemoStep:
    def run(ctx: DemoContext) -> None:
        ctx.switch("set-weights", weights, _apply(ctx, weights))
        ctx.hold(ctx.hold_s)

    return DemoStep(f"set-weights {weights}", run)


def rollback_step() -> DemoStep:
    def run(ctx: DemoContext) -> None:
        ctx.switch("rollback", STABLE_ONLY, _apply(ctx, STABLE_ONLY))
        ctx.hold(ctx.hold_s / 2)

    return DemoStep("rollback", run)


# The tester route the demo shows (`canary route add --header X-Canary=always --to canary`).
TESTER_HEADER = ("X-Canary", "always")


def pinned_tester_step(requests: int = 10) -> DemoStep:
    """Pin a tester to the canary by header, whatever the weights: add the route, send
    `requests` requests carrying the header (they all reach v2; they are tester traffic,
    not in the judge's counts), delete the route. No hold: the walk keeps its length."""

    def run(ctx: DemoContext) -> None:
        name, value = TESTER_HEADER
        route = usecases.add_route(
            ctx.target, RouteMatch.parse("header", f"{name}={value}"), "canary"
        )
        ctx.view.note(f"tester route {route}: canary route add --header {name}={value} --to canary")
        seen: Counter[str] = Counter(_whoami(ctx.url, {name: value}) for _ in range(requests))
        weights = ctx.records[-1].weights if ctx.records else SEED_SCHEDULE[0]
        answered = ", ".join(f"{v} {n}" for v, n in sorted(seen.items()))
        verdict = "all reached the canary" if seen == {"v2": requests} else "NOT all on the canary"
        ctx.view.note(
            f"   {requests} requests with {name}: {value}: {answered} ({verdict} at weights "
            f"{weights}; tester traffic, not judged)"
        )
        usecases.delete_route(ctx.target, str(route.priority))
        ctx.view.note("   tester route deleted: every request follows the weights again")

    return DemoStep("tester route", run)


def _whoami(url: str, headers: dict[str, str]) -> str:
    """The version that answered one GET /whoami ("failed" when none did)."""
    request = urllib.request.Request(url.rstrip("/") + "/whoami", headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return str(json.loads(response.read())["version"])
    except (OSError, ValueError, KeyError):
        return "failed"


def default_steps() -> list[DemoStep]:
    """After the first deploy (95/5): a tester pinned to the canary by header, the seed's
    remaining schedule, then a rollback."""
    return [pinned_tester_step()] + [weight_step(w) for w in SEED_SCHEDULE[1:]] + [rollback_step()]


def pick_listen(preferred: int = 8080) -> str:
    """127.0.0.1:8080 if free, else port 0 (the balancer picks a free one)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", preferred))
        except OSError:
            return "127.0.0.1:0"
    return f"127.0.0.1:{preferred}"


def demo_settings(state_dir: Path, listen: str) -> Settings:
    """The demo's own stack: builtin v1 stable x2, v2 canary x1, 95/5, fast health checks."""
    return load_settings(
        {
            "local.state_dir": state_dir,
            "local.listen": listen,
            "local.health_profile": "fast",
            "image_uri_stable": "builtin:v1",
            "image_uri_canary": "builtin:v2",
            "desired_count_stable": 2,
            "desired_count_canary": 1,
            "stable_weight": SEED_SCHEDULE[0].stable,
            "canary_weight": SEED_SCHEDULE[0].canary,
        },
        env={},
        config_file=Path("/nonexistent/canary.toml"),
    )


# Load during the demo's automated rollouts (why this much: rollout/demo.py's DEMO_PLAN).
DEMO_ROLLOUT_RATE = 500.0


@dataclass(frozen=True)
class DemoOptions:
    hold_s: float = 12.0
    rate: float = 40.0
    keep: bool = False
    state_dir: Path | None = None  # default: a fresh temporary directory
    dashboard: bool = True  # serve `canary dashboard` on a free loopback port meanwhile


# Runs after the walk, on the same stack and listener URL (the automated rollouts).
Epilogue = Callable[[LocalTarget, str], list[str]]


def run_demo(
    options: DemoOptions,
    view: DemoView,
    progress: Progress,
    steps: list[DemoStep] | None = None,
    epilogue: Epilogue | None = None,
) -> tuple[LocalTarget, list[str]]:
    """Deploy, load, walk the steps, roll back, run the epilogue; stop everything unless
    `keep`. Returns the target and the closing summary lines."""
    state_dir = options.state_dir or Path(tempfile.mkdtemp(prefix="canary-demo-"))
    target = LocalTarget.from_settings(demo_settings(state_dir, pick_listen()))
    ctx = DemoContext(target, view, progress, [], options.hold_s)
    stop = threading.Event()
    loader: threading.Thread | None = None
    pages = contextlib.ExitStack()  # the dashboard, served while the demo runs
    try:
        status = _deploy(ctx, state_dir)
        target = ctx.target
        assert status.listener is not None
        dashboard = pages.enter_context(background(target.settings)) if options.dashboard else None
        view.started(status.listener.url, state_dir, dashboard)
        ctx.url = status.listener.url
        plan = LoadPlan(
            status.listener.url.rstrip("/"), "/whoami", rate=options.rate, concurrency=8
        )
        generator = LoadGenerator(plan, on_sample=ctx.observe)
        loader = threading.Thread(target=generator.run, args=(stop,), daemon=True)
        ctx.begin("deploy", SEED_SCHEDULE[0])
        loader.start()
        ctx.hold(options.hold_s)
        for step in steps if steps is not None else default_steps():
            step.run(ctx)
        _stop_walk(ctx, view, stop, loader)
        view.finished(ctx.records, _walk_summary(ctx))
        closing = [] if epilogue is None else epilogue(target, status.listener.url)
    finally:
        _stop_walk(ctx, view, stop, loader)
        pages.close()
        if not options.keep:
            ctx.target.delete(progress, purge=options.state_dir is None)
            if options.state_dir is None:
                shutil.rmtree(state_dir, ignore_errors=True)
    if options.keep:
        closing.append(
            f"still running: canary --state-dir {state_dir} status  "
            f"(stop it: canary --state-dir {state_dir} delete --yes --purge)"
        )
    else:
        closing.append("everything was stopped and the temporary state removed")
    return target, closing


def _deploy(ctx: DemoContext, state_dir: Path) -> Status:
    """The first deploy; when someone took the port between our check and the bind, the
    demo moves to any free one (`ctx.target` is then a new target)."""
    try:
        return usecases.deploy(ctx.target, usecases.release_spec(ctx.target.settings), ctx.progress)
    except UsageError as exc:
        if "already in use" not in exc.message:
            raise
    ctx.target = LocalTarget.from_settings(demo_settings(state_dir, "127.0.0.1:0"))
    return usecases.deploy(ctx.target, usecases.release_spec(ctx.target.settings), ctx.progress)


def _stop_walk(
    ctx: DemoContext, view: DemoView, stop: threading.Event, loader: threading.Thread | None
) -> None:
    stop.set()
    if loader is not None:
        loader.join(timeout=15)
    if ctx.records and ctx.records[-1].ended is None:
        ctx.records[-1].ended = ctx.clock()
        view.step_done(ctx.records[-1])


def _walk_summary(ctx: DemoContext) -> list[str]:
    summary = [f"{ctx.served} requests during the demo, {ctx.failed} failed"]
    if ctx.in_transition:
        summary.append(
            f"{plural(ctx.in_transition, 'request')} went out while a weight change was "
            "being applied and " + ("is" if ctx.in_transition == 1 else "are") + " in no step's row"
        )
    summary.append("weights were changed with one call each; no task restarted")
    return summary
