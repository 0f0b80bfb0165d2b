"""`canary rollout` and its steering verbs (promote, abort, pause, resume, history)."""

from __future__ import annotations

import time
from contextlib import closing
from typing import Annotated

import typer
from rich.console import Console

from canary_deploy.backend import Target
from canary_deploy.cli.app import OutputOpt, app, settings_from
from canary_deploy.cli.output import (
    console,
    err_console,
    print_json,
    progress,
    sigterm_as_interrupt,
    warn,
)
from canary_deploy.config import Settings
from canary_deploy.errors import OperationFailed, UsageError
from canary_deploy.rollout import service, steering
from canary_deploy.rollout.state import RolloutState
from canary_deploy.rollout.store import Command, Event, Rollout
from canary_deploy.rollout.view import LiveView, PlainView, headline
from canary_deploy.targets import open_target


def parse_steps(raw: str | None) -> list[int] | None:
    if raw is None:
        return None
    try:
        return [int(part) for part in raw.replace(" ", "").split(",") if part]
    except ValueError:
        raise UsageError(
            f"--steps takes comma-separated percents like 5,25,50,100, got {raw!r}"
        ) from None


Steps = Annotated[str | None, typer.Option(help="Canary percents per step (default 5,25,50,100)")]
MinDuration = Annotated[str | None, typer.Option(help="Least time per step, e.g. 30s or 5m")]
MaxDuration = Annotated[str | None, typer.Option(help="Most time per step before moving on")]
MinRequests = Annotated[int | None, typer.Option(help="Least canary requests per step")]
Interval = Annotated[
    str | None, typer.Option(help="How often the judge gets a batch (local 2s, aws 60s)")
]
Baseline = Annotated[
    bool | None,
    typer.Option(
        "--baseline/--no-baseline",
        help="Judge against a baseline (stable's image, the canary's size and share, "
        "started with it; default) or against stable's tasks",
    ),
]
Warmup = Annotated[
    str | None, typer.Option(help="Latency not judged this long after the tasks start (local 5s)")
]
Detach = Annotated[
    bool,
    typer.Option("--detach", "-d", help="Local: start (or resume) the rollout and return at once."),
]


@app.command()
def rollout(
    ctx: typer.Context,
    steps: Steps = None,
    min_duration: MinDuration = None,
    max_duration: MaxDuration = None,
    min_requests: MinRequests = None,
    interval: Interval = None,
    baseline: Baseline = None,
    warmup: Warmup = None,
    detach: Detach = False,
    output: OutputOpt = "text",
) -> None:
    """Run an automated rollout: step the canary's weight, judge every batch, roll back
    on evidence of harm, promote the canary to stable at the end. Locally the daemon runs
    it (closing this terminal or Ctrl-C only stops watching); run it again to watch or
    resume."""
    settings = settings_from(ctx)
    service.refuse_detach(settings, detach)
    target = open_target(settings)
    with closing(service.open_store(settings)) as store:
        plan = service.plan_from(
            settings,
            steps=parse_steps(steps),
            overrides={
                "min_duration": min_duration,
                "max_duration": max_duration,
                "min_requests": min_requests,
                "interval": interval,
                "baseline": baseline,
                "warmup": warmup,
            },
            warn=warn,
        )
        with progress("Preparing the rollout", quiet=output == "json") as p:
            started = service.start(settings, target, store, plan, p)
        # -o json: stdout carries the one JSON document, everything else goes to stderr.
        shown = err_console if output == "json" else console
        if started.resumed:
            shown.print(_resumed_line(started))
        if started.hosted:
            service.hand_over(settings, store, started.rollout)
            if detach:
                _detached(started.rollout, output)
                return
        final = _watch(settings, target, store, started, output, shown)
    _finish(final, output)


def _resumed_line(started: service.Started) -> str:
    r = started.rollout
    verb = "Watching" if started.hosted else "Resuming"
    return f"{verb} rollout #{r.id} at step {r.step + 1}/{len(r.plan.steps)} ({r.status})"


def _watch(
    settings: Settings,
    target: Target,
    store: RolloutState,
    started: service.Started,
    output: str,
    shown: Console,
) -> Rollout:
    """Show the rollout until it ends; Ctrl-C stops watching and says what goes on."""
    live = console.is_terminal and output == "text"
    view = LiveView(console) if live else PlainView(shown)
    try:
        with view, sigterm_as_interrupt():
            return service.watch(
                settings, target, store, started, view, warn=lambda m: shown.print(f"Warning: {m}")
            )
    except KeyboardInterrupt:
        left = store.get(started.rollout.id)
        goes_on = (
            "it goes on in the local daemon: `canary rollout` watches it again"
            if started.hosted
            else "nothing judges it now: run `canary rollout` to resume"
        )
        shown.print(
            f"\nStopped watching. Rollout #{left.id} is {left.status} at step "
            f"{left.step + 1}; {goes_on}, `canary abort` rolls back."
        )
        raise typer.Exit(130) from None


def _detached(current: Rollout, output: str) -> None:
    if output == "json":
        doc = {"id": current.id, "status": str(current.status), "step": current.step}
        print_json({**doc, "detached": True})
        return
    console.print(
        f"Rollout #{current.id} runs in the local daemon (step {current.step + 1}/"
        f"{len(current.plan.steps)}). Watch it with `canary rollout` or `canary status`; "
        "steer it with `canary pause|resume|promote|abort`."
    )


def _finish(final: Rollout, output: str) -> None:
    if output == "json":
        print_json(
            {
                "id": final.id,
                "status": str(final.status),
                "step": final.step,
                "reason": final.reason,
                "last_decision": None
                if final.last_decision is None
                else final.last_decision.to_dict(),
            }
        )
    elif final.status == "promoted":
        console.print(f"{headline(final)}: the canary's version now runs as stable")
    if final.status == "rolled_back":
        raise OperationFailed(
            f"rollout #{final.id} rolled back at step {final.step + 1} - {final.reason}",
            hint="all traffic is on stable; see the evidence with `canary history`",
        )


def _steer(ctx: typer.Context, command: Command, output: str) -> None:
    """Send a command and return once it is in effect (rc 1 and why, otherwise)."""
    settings = settings_from(ctx)
    target = open_target(settings)
    verb = str(command).replace("_full", " --full")
    with (
        closing(service.open_store(settings)) as store,
        progress(f"canary {verb}", quiet=output == "json") as p,
    ):
        done = steering.steer(target, store, command, actor=steering.operator(), progress=p)
    if output == "json":
        print_json(done.to_dict())
        return
    r = done.rollout
    console.print(f"{headline(r)}, weights {done.weights}", markup=False)
    if r.reason:
        console.print(r.reason, markup=False)
    for note in done.notes:
        console.print(f"note: {note}", markup=False)


@app.command()
def promote(
    ctx: typer.Context,
    full: Annotated[bool, typer.Option("--full", help="Skip all steps: promote now.")] = False,
    output: OutputOpt = "text",
) -> None:
    """End the rollout's current step now (--full: promote the canary to stable now);
    returns once the next step's weights (or the promotion) are in effect."""
    _steer(ctx, Command.PROMOTE_FULL if full else Command.PROMOTE, output)


@app.command()
def abort(ctx: typer.Context, output: OutputOpt = "text") -> None:
    """Roll the running rollout back now; returns once 100/0 is in effect."""
    _steer(ctx, Command.ABORT, output)


@app.command()
def pause(ctx: typer.Context, output: OutputOpt = "text") -> None:
    """Hold the rollout at its current step (auto-rollback stays on); returns once paused."""
    _steer(ctx, Command.PAUSE, output)


@app.command()
def resume(ctx: typer.Context, output: OutputOpt = "text") -> None:
    """Continue a paused rollout; returns once its step's weights are back."""
    _steer(ctx, Command.RESUME, output)


def _event_line(e: Event) -> str:
    stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(e.t))
    return f"{stamp}  #{e.rollout_id} {e.kind:<11} {e.actor:<10} {e.message}"


@app.command()
def history(
    ctx: typer.Context,
    rollout_id: Annotated[
        int | None, typer.Option("--rollout", help="Only this rollout (default: all)")
    ] = None,
    all_batches: Annotated[
        bool, typer.Option("--all", help="Also every batch the judge saw.")
    ] = False,
    output: OutputOpt = "text",
) -> None:
    """The audit log: weight changes, decisions with evidence, steps, with timestamps."""
    settings = settings_from(ctx)
    with closing(service.open_store(settings)) as store:
        events = service.history(store, rollout_id)
        latest = store.latest() if rollout_id is not None and not events else None
    if latest is not None:
        raise UsageError(
            f"there is no rollout #{rollout_id}: the rollouts here are #1 to #{latest.id}",
            hint=f"`canary history --rollout {latest.id}` shows the last one, "
            "`canary history` all of them",
        )
    if not all_batches:
        events = [e for e in events if e.kind != "batch"]
    if output == "json":
        print_json([e.to_dict() for e in events])
        return
    if not events:
        console.print("No rollouts yet. Start one with `canary rollout`.")
        return
    for e in events:
        console.print(_event_line(e), soft_wrap=True, markup=False)
        decision = e.judged() if e.kind == "decision" else None
        for metric in () if decision is None else decision.metrics:
            console.print(f"{'':>24}{metric.explanation}", soft_wrap=True, markup=False)
