"""`canary logs [stable|canary|baseline] [-f]`: the tasks' output (local files, or
CloudWatch Logs on AWS), or with no version the local daemon's own log."""

from __future__ import annotations

from collections.abc import Callable
from enum import StrEnum
from typing import Annotated

import typer
from rich.markup import escape

from canary_deploy.cli.app import app, settings_from
from canary_deploy.cli.output import console, sigterm_as_interrupt
from canary_deploy.config import Settings
from canary_deploy.errors import CanaryError, UsageError
from canary_deploy.local.logs import follow as follow_files
from canary_deploy.local.logs import last_lines, task_logs
from canary_deploy.local.paths import StackPaths


class Source(StrEnum):
    stable = "stable"
    canary = "canary"
    baseline = "baseline"


@app.command()
def logs(
    ctx: typer.Context,
    version: Annotated[
        Source | None,
        typer.Argument(help="Whose tasks: stable, canary or baseline (none: the daemon's log)."),
    ] = None,
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Keep printing new lines (Ctrl-C stops).")
    ] = False,
    lines: Annotated[int, typer.Option("--lines", "-n", min=0, help="Lines to show first.")] = 50,
    task: Annotated[
        str | None, typer.Option(help="Local: only this task (its id, or the start of it).")
    ] = None,
) -> None:
    """Show the tasks' output: each line with the task it came from. Local: the task
    logs in the state directory (capped and rotated, 10 MiB x 3 per task); AWS: the
    services' CloudWatch Logs (/ecs/<stack>)."""
    settings = settings_from(ctx)

    def emit(source: str, line: str) -> None:
        console.print(f"[dim]{escape(source)}[/dim] {escape(line)}", soft_wrap=True)

    try:
        with sigterm_as_interrupt():
            if settings.target == "aws":
                if version is None or task is not None:
                    raise UsageError(
                        "on AWS, name the service: `canary logs stable` or `canary logs canary`",
                        hint="--task and the daemon's log are for the local target",
                    )
                _aws(settings, version.value, lines, follow, emit)
            else:
                _local(
                    settings, None if version is None else version.value, task, lines, follow, emit
                )
    except KeyboardInterrupt:
        raise typer.Exit(130) from None


def _local(
    settings: Settings,
    version: str | None,
    task: str | None,
    count: int,
    follow: bool,
    emit: Callable[[str, str], None],
) -> None:
    paths = StackPaths.for_dir(settings.local.state_dir)
    if not paths.state_dir.is_dir():
        raise UsageError(
            f"no local stack in {paths.state_dir}",
            hint="run `canary deploy` first (or pass the --state-dir it used)",
        )
    if version is None:
        files = {"daemon": paths.daemon_log}
    else:
        files = task_logs(paths.task_logs, version, _live_tasks(settings, version))
        if task is not None:
            files = {t: p for t, p in files.items() if t.startswith(task)} or {
                p.name.removesuffix(".log"): p for p in paths.task_logs.glob(f"{task}*.log")
            }
    if not files or not any(p.exists() for p in files.values()):
        what = (
            "the daemon"
            if version is None
            else f"{version}'s tasks" + (f" matching {task!r}" if task else "")
        )
        raise UsageError(f"no logs of {what} in {paths.state_dir}", hint="see `canary status`")
    for source, path in files.items():
        for line in last_lines(path, count):
            emit(source, line)
    if follow:
        follow_files(files, emit)


def _live_tasks(settings: Settings, version: str) -> list[str] | None:
    """The ids of `version`'s tasks the daemon runs now; None when it is not running."""
    from canary_deploy.local.control import DaemonControl

    control = DaemonControl(StackPaths.for_dir(settings.local.state_dir))
    if not control.running():
        return None
    try:
        tasks = control.request("GET", "/tasks")
    except CanaryError:
        return None
    return [t["task_id"] for t in tasks if t.get("version") == version]


def _aws(
    settings: Settings, version: str, count: int, follow: bool, emit: Callable[[str, str], None]
) -> None:
    from canary_deploy.aws.clients import AwsClients
    from canary_deploy.aws.logs import read

    clients = AwsClients.create(
        region=settings.aws.region, profile=settings.aws.profile, stack_name=settings.state_name
    )
    location = None
    if settings.adopted is not None:  # the group its task definition names
        from canary_deploy.aws.adopted import AdoptedTarget

        adopted = AdoptedTarget(clients, settings, settings.adopted)
        location = adopted.revisions.log_location(Source(version).value)
    read(
        clients.logs, clients.region, settings.state_name, version, count, emit,
        follow=follow, location=location,
    )  # fmt: skip
