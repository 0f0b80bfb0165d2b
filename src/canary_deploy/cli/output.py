"""Rendering for the terminal: progress display, status view, JSON, errors."""

from __future__ import annotations

import json
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Literal

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from canary_deploy.backend import GROUPS, RoleStatus, Status, TrafficStatus
from canary_deploy.units import ms

OutputFormat = Literal["text", "json"]

# No emoji codes: ARNs hold ":secret:" (Secrets Manager), which rich would draw as an emoji.
console = Console(highlight=False, emoji=False)
err_console = Console(stderr=True, highlight=False, emoji=False)


class ConsoleProgress:
    """Progress for the terminal: a spinner line on a TTY, plain lines otherwise."""

    def __init__(self, con: Console) -> None:
        self._console = con
        self._status: Any = None
        self._last = ""

    def update(self, message: str) -> None:
        if message == self._last:
            return
        self._last = message
        if self._status is not None:
            self._status.update(message)
        else:
            self._console.print(f"  {message}", style="dim")

    def log(self, message: str) -> None:
        self._console.print(message)


@contextmanager
def progress(message: str, *, quiet: bool = False) -> Iterator[ConsoleProgress]:
    """A Progress shown on stderr (so `--output json` on stdout stays clean)."""
    reporter = ConsoleProgress(err_console)
    if quiet or not err_console.is_terminal:
        if not quiet:
            err_console.print(message)
        yield reporter
        return
    with err_console.status(message) as status:
        reporter._status = status
        yield reporter


def _traffic(t: TrafficStatus | None) -> str:
    if t is None:
        return "no data"
    if t.requests == 0:
        return f"0 requests in {t.window_seconds}s"
    rate = t.error_rate or 0.0
    return (
        f"{t.requests:,} req, {rate:.1%} errors\n"
        f"p50 {ms(t.p50_s)}  p95 {ms(t.p95_s)}  p99 {ms(t.p99_s)}"
    )


def _task_definition(v: RoleStatus | None) -> str:
    td = None if v is None else v.task_definition
    if td is None:
        return "-"
    return td.image + (f"\n{td.revision}" if td.revision else "")


def _service(v: RoleStatus | None) -> str:
    s = None if v is None else v.service
    if s is None:
        return "-"
    text = f"{s.name}: {s.running}/{s.desired} running"
    if s.pending:
        text += f", {s.pending} pending"
    text += f"\n{s.deployment_state}"
    if s.message:
        text += f" - {s.message}"
    return text


def _target_group(v: RoleStatus | None) -> str:
    tg = None if v is None else v.target_group
    if tg is None:
        return "-"
    parts = [f"{tg.healthy} healthy"]
    for label, n in (
        ("unhealthy", tg.unhealthy),
        ("initial", tg.initial),
        ("draining", tg.draining),
    ):
        if n:
            parts.append(f"{n} {label}")
    return f"{tg.name}\n" + ", ".join(parts)


def _chain_table(status: Status) -> Table:
    """One column per target group, one row per link of the chain."""
    # stable and canary always; the baseline only while it is in use (a target leaves
    # it out of `versions` otherwise).
    groups = [g for g in GROUPS if g != "baseline" or g in status.versions]
    table = Table(show_header=True, header_style="bold", expand=False, pad_edge=False)
    table.add_column("", style="bold", no_wrap=True)
    for group in groups:
        table.add_column(group, overflow="fold")
    vs = [status.versions.get(v) for v in groups]
    table.add_row("Task definition", *[_task_definition(v) for v in vs])
    table.add_row("Tasks / service", *[_service(v) for v in vs])
    table.add_row("Target group", *[_target_group(v) for v in vs])
    if status.listener is not None:
        w = status.listener.weights
        table.add_row("Listener weight", *[f"{w.of(g)}%" for g in groups])
    table.add_row("Traffic", *[_traffic(None if v is None else v.traffic) for v in vs])
    return table


def render_status(status: Status) -> None:
    """The stack along the seed's chain: Task Definition -> Tasks -> Service ->
    Target Group -> Listener -> user."""
    console.print(
        f"[bold]{status.stack_name}[/bold] on [bold]{status.target}[/bold] - {status.stack_status}"
    )
    console.print(_chain_table(status))
    if status.listener is not None:
        lst = status.listener
        sticky = f", sticky {lst.stickiness_seconds}s" if lst.stickiness_seconds else ""
        console.print(f"User -> [bold]{lst.url}[/bold]  (weights {lst.weights}{sticky})")
        if lst.drift and lst.configured_weights is not None:
            console.print(
                f"[yellow]drift:[/yellow] the stack says {lst.configured_weights} but the "
                f"listener serves {lst.weights}; the next deploy keeps the live weights"
            )
    for note in status.notes:
        console.print(f"[yellow]note:[/yellow] {escape(note)}")


def print_json(doc: Any) -> None:
    sys.stdout.write(json.dumps(doc, indent=2, sort_keys=False, default=str) + "\n")
    sys.stdout.flush()


def show_status(status: Status, output: OutputFormat) -> None:
    if output == "json":
        print_json(status.to_dict())
    else:
        render_status(status)


def error(message: str, hint: str | None = None) -> None:
    # Messages quote user input and TOML table names like [rollout]: never markup.
    # Not wrapped by us: a terminal wraps long lines itself, and a log or a script reading
    # stderr gets each message whole.
    err_console.print(f"[bold red]error:[/bold red] {escape(message)}", soft_wrap=True)
    if hint:
        err_console.print(f"[dim]hint:[/dim] {escape(hint)}", soft_wrap=True)


def warn(message: str) -> None:
    err_console.print(f"[bold yellow]warning:[/bold yellow] {escape(message)}", soft_wrap=True)


@contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM is Ctrl-C: a command killed by `kill` or a CI runner's timeout ends as it
    does on Ctrl-C (a rollout lets go of its controller at once, `load` prints what it
    measured). Only in the main thread; elsewhere nothing changes."""

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
