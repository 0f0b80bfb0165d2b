"""`canary load` (drive traffic at the listener) and `canary repair` (a damaged local state
database)."""

from __future__ import annotations

import time
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from canary_deploy.backend import Target
from canary_deploy.cli.app import OutputOpt, app, settings_from
from canary_deploy.cli.output import (
    console,
    err_console,
    print_json,
    sigterm_as_interrupt,
)
from canary_deploy.errors import OperationFailed, UsageError
from canary_deploy.local.load import (
    LoadGenerator,
    LoadPlan,
    LoadResult,
    Sample,
    balancer_counts,
    request_body,
)
from canary_deploy.local.target import LocalTarget, StateRepair
from canary_deploy.targets import open_target
from canary_deploy.units import ms

PER_REQUEST_LINES_UP_TO = 20  # like the seed's `for i in {1..20}; do curl ...; done`


def _listener(ctx: typer.Context) -> tuple[str, Target]:
    target = open_target(settings_from(ctx))
    status = target.status()
    if status.listener is None:
        raise OperationFailed(
            "the stack has no listener to send load to", hint="run `canary deploy`, or pass --url"
        )
    return status.listener.url, target


def _print_sample(sample: Sample) -> None:
    task = f"  {sample.task_id}" if sample.task_id else ""
    status = str(sample.status) if sample.status else "ERR"
    detail = f"  {sample.error}" if sample.error else ""
    latency = ms(sample.latency_s, 1)
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


class _ProgressLines:
    """Progress for a log, a pipe or `-o json` (stderr, stdout stays one document): a
    line every few seconds."""

    def __init__(self, plan: LoadPlan, every_s: float = 5.0) -> None:
        self.every_s = every_s
        self.started = time.monotonic()
        self.next = self.started + every_s
        self.sent = self.errors = 0

    def __call__(self, sample: Sample) -> None:
        self.sent += 1
        self.errors += sample.failed
        now = time.monotonic()
        if now >= self.next:
            self.next = now + self.every_s
            err_console.print(
                f"load: {self.sent:,} requests, {self.errors:,} errors, {now - self.started:.0f} s",
                soft_wrap=True,
            )


def _run(generator: LoadGenerator) -> LoadResult:
    """Run to the end; Ctrl-C (or SIGTERM) stops early and keeps what was measured."""
    try:
        with sigterm_as_interrupt():
            return generator.run()
    except KeyboardInterrupt:
        err_console.print("interrupted: the summary covers the requests sent so far")
        result = generator.result
        if not result.elapsed_s and result.started:
            result.elapsed_s = time.time() - result.started
        return result


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
            ms(s.percentile(0.5), 1), ms(s.percentile(0.95), 1), ms(s.percentile(0.99), 1),
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


Requests = Annotated[
    int | None, typer.Option("--requests", "-n", help="Number of requests (default 20).")
]
Rate = Annotated[float | None, typer.Option(help="Requests per second (open loop).")]
Duration = Annotated[
    float | None, typer.Option("--duration", "-d", help="Seconds to run (with or without --rate).")
]
Concurrency = Annotated[
    int | None,
    typer.Option("--concurrency", "-c", help="Connections (default 8; 1 for -n <= 20)."),
]
RequestPath = Annotated[str, typer.Option(help="Path to request.")]
Url = Annotated[
    str | None, typer.Option(help="Base URL (default: the stack's listener / ALB DNS).")
]
Method = Annotated[str, typer.Option(help="HTTP method.")]
Data = Annotated[str | None, typer.Option(help="JSON body (e.g. for POST /predict).")]


@app.command()
def load(
    ctx: typer.Context,
    requests: Requests = None,
    rate: Rate = None,
    duration: Duration = None,
    concurrency: Concurrency = None,
    path: RequestPath = "/whoami",
    url: Url = None,
    method: Method = "GET",
    data: Data = None,
    output: OutputOpt = "text",
) -> None:
    """Send requests to the listener and count which version answered (the seed's curl loop)."""
    if requests is None and duration is None:
        requests = 20
    one_by_one = output == "text" and requests is not None and requests <= PER_REQUEST_LINES_UP_TO
    if concurrency is None:
        # Few requests are printed one per line, in order, like the seed's curl loop.
        concurrency = 1 if one_by_one else 8
    body = request_body(data)
    target = None
    if url is None:
        url, target = _listener(ctx)
    plan = LoadPlan(
        url.rstrip("/"), path, requests, rate, duration, concurrency,
        method.upper(), body,
    )  # fmt: skip
    result = _run_shown(plan, output, one_by_one)
    by_group = balancer_counts(target, result)
    if output == "json":
        print_json({**result.to_dict(), "balancer_requests": by_group})
    else:
        _render_summary(result)
        if by_group is not None:
            console.print(
                "the balancer counted, per target group (all clients, same seconds): "
                + ", ".join(f"{v} {n:,}" for v, n in by_group.items())
            )
    if result.unanswered:
        raise OperationFailed(
            f"no response from {plan.url}: {result.last_error}",
            hint="is the stack deployed? see `canary status`",
        )


def _run_shown(plan: LoadPlan, output: str, one_by_one: bool) -> LoadResult:
    """Run the plan with progress as the output allows: a line per request, a bar on a
    terminal, a line every few seconds otherwise."""
    if one_by_one:
        return _run(LoadGenerator(plan, on_sample=_print_sample))
    if output == "json" or not err_console.is_terminal:
        return _run(LoadGenerator(plan, on_sample=_ProgressLines(plan)))
    return _run_with_bar(plan)


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
