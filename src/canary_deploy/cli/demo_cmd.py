"""`canary demo`: the seed's canary flow walked on the local target, then two automated
rollouts, shown as a live table on a terminal and as lines in a log."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.live import Live
from rich.table import Table

from canary_deploy.backend import Status
from canary_deploy.cli.app import app
from canary_deploy.cli.output import ConsoleProgress, console, progress
from canary_deploy.errors import UsageError
from canary_deploy.local.demo import (
    DEMO_ROLLOUT_RATE,
    DemoOptions,
    Epilogue,
    StepRecord,
    run_demo,
)
from canary_deploy.local.target import LocalTarget
from canary_deploy.units import ms


def _steps_table(records: list[StepRecord]) -> Table:
    table = Table(header_style="bold", pad_edge=False)
    for name in ("step", "weights", "v1", "v2", "v2 share", "errors", "p95", "took"):
        table.add_column(name, justify="left" if name == "step" else "right", no_wrap=True)
    for r in records:
        share = r.share("v2")
        table.add_row(
            r.title, str(r.weights), str(r.by_version.get("v1", 0)), str(r.by_version.get("v2", 0)),
            "-" if share is None else f"{share:.0%}", str(r.errors), ms(r.p95_s(), 1), r.note,
        )  # fmt: skip
    return table


class LiveDemoView:
    """The demo on a terminal: one table that updates in place."""

    def __init__(self) -> None:
        self.live = Live(console=console, refresh_per_second=4, transient=False)
        self._status: Status | None = None

    def started(self, url: str, state_dir: Path, dashboard: str | None = None) -> None:
        console.print(
            f"Local stack on [bold]{url}[/bold] (state {state_dir}); load: GET /whoami",
            soft_wrap=True,
        )
        if dashboard:
            console.print(f"Dashboard: [bold]{dashboard}[/bold] (open it to watch)", soft_wrap=True)
        self.live.start()

    def step_started(self, record: StepRecord) -> None:
        pass

    def refresh(self, records: list[StepRecord], status: Status | None) -> None:
        self._status = status or self._status
        self.live.update(self._render(records))

    def _render(self, records: list[StepRecord]) -> Table:
        table = _steps_table(records)
        s = self._status
        if s is not None:
            tasks = "  ".join(
                f"{v}: {vs.service.running}/{vs.service.desired} {vs.service.deployment_state}"
                for v, vs in s.versions.items()
                if vs.service is not None
            )
            table.caption = f"listener {s.listener.weights if s.listener else '-'}   {tasks}"
        return table

    def step_done(self, record: StepRecord) -> None:
        pass

    def note(self, message: str) -> None:
        console.print(message, markup=False, soft_wrap=True)  # above the live table

    def finished(self, records: list[StepRecord], summary: list[str]) -> None:
        if self.live.is_started:
            self.live.update(self._render(records))
            self.live.stop()
        for line in summary:
            console.print(line)


class PlainDemoView:
    """The demo in a log or CI: one line per step."""

    def started(self, url: str, state_dir: Path, dashboard: str | None = None) -> None:
        console.print(
            f"Local stack on {url} (state {state_dir}); load: GET /whoami", soft_wrap=True
        )
        if dashboard:
            console.print(f"Dashboard: {dashboard} (open it to watch)", soft_wrap=True)

    def step_started(self, record: StepRecord) -> None:
        took = f" (took {record.note})" if record.note else ""
        console.print(f"-> {record.title}: weights {record.weights}{took}")

    def refresh(self, records: list[StepRecord], status: Status | None) -> None:
        pass

    def step_done(self, record: StepRecord) -> None:
        share = record.share("v2")
        console.print(
            f"   {record.requests} requests: v1 {record.by_version.get('v1', 0)}, "
            f"v2 {record.by_version.get('v2', 0)} ("
            + ("-" if share is None else f"{share:.0%}")
            + f" canary), {record.errors} errors, p95 {ms(record.p95_s(), 1)}"
        )

    def note(self, message: str) -> None:
        console.print(message, markup=False, soft_wrap=True)

    def finished(self, records: list[StepRecord], summary: list[str]) -> None:
        console.print(_steps_table(records))
        for line in summary:
            console.print(line)


@app.command()
def demo(
    keep: Annotated[bool, typer.Option(help="Leave the stack running afterwards.")] = False,
    step_seconds: Annotated[float, typer.Option(help="How long each step holds.")] = 12.0,
    rate: Annotated[float, typer.Option(help="Background load, requests per second.")] = 40.0,
    rollouts: Annotated[
        bool, typer.Option(help="Then run two automated rollouts (bad canary, healthy one).")
    ] = True,
    rollout_rate: Annotated[
        float, typer.Option(help="Load during the automated rollouts, requests per second.")
    ] = DEMO_ROLLOUT_RATE,
    emulated_aws: Annotated[
        bool,
        typer.Option(
            "--emulated-aws",
            help="Instead: the AWS path against a local moto server (needs the emulator extra).",
        ),
    ] = False,
) -> None:
    """Walk the seed's canary flow locally (95/5 -> 75/25 -> 50/50 -> 0/100, roll back),
    then let `canary rollout` catch a bad canary and promote a healthy one."""
    if emulated_aws:
        from canary_deploy.aws.demo import run as run_aws_demo

        if keep:
            raise UsageError(
                "--keep cannot keep the --emulated-aws stack: the AWS emulator runs inside "
                "the demo and stops with it",
                hint="`canary demo --keep` keeps the local stack",
            )

        raise typer.Exit(run_aws_demo(console))
    if step_seconds <= 0 or rate <= 0 or rollout_rate <= 0:
        raise UsageError("--step-seconds, --rate and --rollout-rate must be positive")
    view = LiveDemoView() if console.is_terminal else PlainDemoView()
    console.print("canary demo: builtin v1 as stable, v2 as canary, on the local target")
    # Plain progress lines: a spinner would fight the live table for the terminal.
    with progress("", quiet=True) as p:
        epilogue = None
        if rollouts:
            epilogue = _rollout_acts(p, rollout_rate)
        _, closing = run_demo(
            DemoOptions(hold_s=step_seconds, rate=rate, keep=keep), view, p, epilogue=epilogue
        )
    for line in closing:
        console.print(line)


def _rollout_acts(p: ConsoleProgress, rate: float) -> Epilogue:
    from canary_deploy.rollout.demo import run_acts
    from canary_deploy.rollout.view import LiveView, PlainView

    def run(target: LocalTarget, url: str) -> list[str]:
        def view() -> LiveView | PlainView:
            return LiveView(console) if console.is_terminal else PlainView(console)

        return run_acts(target.settings, target, url, p, view, rate=rate, announce=console.print)

    return run
