"""`canary load` and `canary demo`: drive traffic at the listener and walk the canary flow."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.live import Live
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from canary_deploy.backend import Status, Target
from canary_deploy.cli.app import OutputOpt, app, settings_from
from canary_deploy.cli.output import ConsoleProgress, console, err_console, print_json, progress
from canary_deploy.errors import OperationFailed, UsageError
from canary_deploy.local.demo import (
    DEMO_ROLLOUT_RATE,
    DemoOptions,
    Epilogue,
    StepRecord,
    run_demo,
)
from canary_deploy.local.load import (
    UNKNOWN_VERSION,
    LoadGenerator,
    LoadPlan,
    LoadResult,
    Sample,
    VersionSummary,
)
from canary_deploy.local.target import LocalTarget, StateRepair
from canary_deploy.targets import open_target

PER_REQUEST_LINES_UP_TO = 20  # like the seed's `for i in {1..20}; do curl ...; done`


def _ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1000:.1f} ms"


def _listener(ctx: typer.Context) -> tuple[str, Target]:
    target = open_target(settings_from(ctx))
    status = target.status()
    if status.listener is None:
        raise OperationFailed(
            "the stack has no listener to send load to", hint="run `canary deploy`, or pass --url"
        )
    return status.listener.url, target


def _balancer_view(target: Target | None, result: LoadResult) -> dict[str, int] | None:
    """Requests per target group as the local balancer counted them during the run, for
    responses that do not say their version (everything but /whoami and /predict)."""
    if target is None or target.name != "local" or UNKNOWN_VERSION not in result.by_version:
        return None
    end = result.started + result.elapsed_s
    return {v: c.requests for v, c in target.metrics.counts(result.started - 1, end + 1).items()}


def _print_sample(sample: Sample) -> None:
    task = f"  {sample.task_id}" if sample.task_id else ""
    status = str(sample.status) if sample.status else "ERR"
    detail = f"  {sample.error}" if sample.error else ""
    latency = _ms(sample.latency_s)
    console.print(f"{sample.index:>4}  {status:>3}  {sample.version:<6}{task}  {latency}{detail}")


def _run_with_bar(plan: LoadPlan) -> LoadResult:
    total = plan.requests if plan.requests is not None else None
    if plan.requests is None and plan.rate is not None and plan.duration_s is not None:
        total = int(plan.rate * plan.duration_s)
    columns = [
        TextColumn("[bold]load[/bold]"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[errors]} errors"),
        TimeElapsedColumn(),
    ]
    with Progress(*columns, console=err_console, transient=True) as bar:
        task = bar.add_task("load", total=total, errors=0)
        errors = 0

        def tick(sample: Sample) -> None:
            nonlocal errors
            errors += sample.failed
            bar.update(task, advance=1, errors=errors)

        return _run(LoadGenerator(plan, on_sample=tick))


def _run(generator: LoadGenerator) -> LoadResult:
    """Run to the end; Ctrl-C stops early and keeps what was measured so far."""
    try:
        return generator.run()
    except KeyboardInterrupt:
        err_console.print("interrupted: the summary covers the requests sent so far")
        result = generator.result
        if not result.elapsed_s and result.started:
            result.elapsed_s = time.time() - result.started
        return result


def _summary_doc(result: LoadResult) -> dict[str, Any]:
    def one(s: VersionSummary) -> dict[str, Any]:
        return {
            "requests": s.requests,
            "errors": s.errors,
            "error_rate": s.error_rate,
            "p50_s": s.percentile(0.5),
            "p95_s": s.percentile(0.95),
            "p99_s": s.percentile(0.99),
        }

    return {
        "elapsed_s": result.elapsed_s,
        "requests_per_s": result.throughput,
        "statuses": {str(k): v for k, v in sorted(result.statuses.items())},
        "versions": {v: one(s) for v, s in sorted(result.by_version.items())},
        "total": one(result.total),
    }


def _render_summary(result: LoadResult) -> None:
    table = Table(title=None, header_style="bold", pad_edge=False)
    for name in ("version", "requests", "share", "errors", "p50", "p95", "p99"):
        table.add_column(name, justify="left" if name == "version" else "right")
    rows = [*sorted(result.by_version.values(), key=lambda s: s.version), result.total]
    for s in rows:
        share = s.requests / result.total.requests if result.total.requests else 0
        rate = s.error_rate or 0.0
        table.add_row(
            s.version, f"{s.requests:,}", f"{share:.1%}", f"{s.errors} ({rate:.1%})",
            _ms(s.percentile(0.5)), _ms(s.percentile(0.95)), _ms(s.percentile(0.99)),
        )  # fmt: skip
    console.print(table)
    codes = ", ".join(f"{k or 'no response'}: {v}" for k, v in sorted(result.statuses.items()))
    console.print(
        f"{result.total.requests:,} requests in {result.elapsed_s:.1f} s "
        f"({result.throughput:,.0f}/s); status codes {codes}"
    )
    if "?" in result.by_version:
        console.print(
            "[dim]? = the response did not say its version (/whoami and /predict do)[/dim]"
        )


@app.command()
def load(
    ctx: typer.Context,
    requests: Annotated[
        int | None, typer.Option("--requests", "-n", help="Number of requests (default 20).")
    ] = None,
    rate: Annotated[float | None, typer.Option(help="Requests per second (open loop).")] = None,
    duration: Annotated[
        float | None,
        typer.Option("--duration", "-d", help="Seconds to run (with or without --rate)."),
    ] = None,
    concurrency: Annotated[
        int | None,
        typer.Option("--concurrency", "-c", help="Connections (default 8; 1 for -n <= 20)."),
    ] = None,
    path: Annotated[str, typer.Option(help="Path to request.")] = "/whoami",
    url: Annotated[
        str | None, typer.Option(help="Base URL (default: the stack's listener / ALB DNS).")
    ] = None,
    method: Annotated[str, typer.Option(help="HTTP method.")] = "GET",
    data: Annotated[str | None, typer.Option(help="JSON body (e.g. for POST /predict).")] = None,
    output: OutputOpt = "text",
) -> None:
    """Send requests to the listener and count which version answered (the seed's curl loop)."""
    if requests is None and duration is None:
        requests = 20
    one_by_one = output == "text" and requests is not None and requests <= PER_REQUEST_LINES_UP_TO
    if concurrency is None:
        # Few requests are printed one per line, in order, like the seed's curl loop.
        concurrency = 1 if one_by_one else 8
    body = None
    if data is not None:
        try:
            json.loads(data)
        except ValueError as exc:
            raise UsageError(f"--data is not valid JSON: {exc}") from None
        body = data.encode()
    target = None
    if url is None:
        url, target = _listener(ctx)
    plan = LoadPlan(
        url.rstrip("/"), path, requests, rate, duration, concurrency,
        method.upper(), body,
    )  # fmt: skip
    if output == "json":
        result = _run(LoadGenerator(plan))
    elif one_by_one:
        result = _run(LoadGenerator(plan, on_sample=_print_sample))
    else:
        result = _run_with_bar(plan)
    by_group = _balancer_view(target, result)
    if output == "json":
        print_json({**_summary_doc(result), "balancer_requests": by_group})
    else:
        _render_summary(result)
        if by_group is not None:
            console.print(
                "the balancer counted, per target group (all clients, same seconds): "
                + ", ".join(f"{v} {n:,}" for v, n in by_group.items())
            )
    if result.total.requests and result.statuses.get(0, 0) == result.total.requests:
        raise OperationFailed(
            f"no response from {plan.url}: {result.last_error}",
            hint="is the stack deployed? see `canary status`",
        )


@app.command()
def repair(ctx: typer.Context, output: OutputOpt = "text") -> None:
    """Local: move a damaged state database (.canary/state.db) aside. A running daemon
    rebuilds it from what it holds (spec, weights, listener, recent metrics); with no
    daemon, the next `canary deploy` starts afresh."""
    settings = settings_from(ctx)
    if settings.target != "local":
        raise UsageError("`canary repair` is for the local target's state directory")
    done = LocalTarget.from_settings(settings).repair_state()
    if output == "json":
        print_json(
            {
                "path": str(done.path),
                "problem": done.problem,
                "moved_to": None if done.moved_to is None else str(done.moved_to),
                "rebuilt_by_daemon": done.rebuilt_by_daemon,
            }
        )
        return
    console.print(_repair_text(done), markup=False, soft_wrap=True)


def _repair_text(done: StateRepair) -> str:
    if done.problem is None:
        return f"{done.path} is sound (SQLite's quick_check): nothing to repair."
    found = f"{done.path} was damaged ({done.problem}); moved to {done.moved_to}."
    if done.rebuilt_by_daemon:
        return (
            f"{found}\nThe running daemon rebuilt it from what it holds: spec, weights, "
            "listener and the last hour of metrics (earlier events and rollout history stay "
            "in the moved file)."
        )
    return (
        f"{found}\nNo daemon was running, so nothing could rebuild it: `canary deploy` "
        "starts the stack afresh (give it your images again; the old spec and history stay "
        "in the moved file)."
    )


# ---- demo views


def _steps_table(records: list[StepRecord]) -> Table:
    table = Table(header_style="bold", pad_edge=False)
    for name in ("step", "weights", "v1", "v2", "v2 share", "errors", "p95", "took"):
        table.add_column(name, justify="left" if name == "step" else "right", no_wrap=True)
    for r in records:
        share = r.share("v2")
        table.add_row(
            r.title, str(r.weights), str(r.by_version.get("v1", 0)), str(r.by_version.get("v2", 0)),
            "-" if share is None else f"{share:.0%}", str(r.errors), _ms(r.p95_s()), r.note,
        )  # fmt: skip
    return table


class LiveDemoView:
    """The demo on a terminal: one table that updates in place."""

    def __init__(self) -> None:
        self.live = Live(console=console, refresh_per_second=4, transient=False)
        self._status: Status | None = None

    def started(self, url: str, state_dir: Path) -> None:
        console.print(f"Local stack on [bold]{url}[/bold] (state {state_dir}); load: GET /whoami")
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

    def finished(self, records: list[StepRecord], summary: list[str]) -> None:
        if self.live.is_started:
            self.live.update(self._render(records))
            self.live.stop()
        for line in summary:
            console.print(line)


class PlainDemoView:
    """The demo in a log or CI: one line per step."""

    def started(self, url: str, state_dir: Path) -> None:
        console.print(f"Local stack on {url} (state {state_dir}); load: GET /whoami")

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
            + f" canary), {record.errors} errors, p95 {_ms(record.p95_s())}"
        )

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
