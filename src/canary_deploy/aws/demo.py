"""The emulated-AWS demo: the seed's walk-through against a moto server on 127.0.0.1."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager

from rich.console import Console

from canary_deploy import usecases
from canary_deploy.aws import emulator
from canary_deploy.aws.target import AwsTarget
from canary_deploy.backend import Status
from canary_deploy.config import load_settings
from canary_deploy.errors import EXIT_OK, CanaryError
from canary_deploy.weights import Weights

DEMO_STACK = "canary-demo-emulated"
DEMO_IMAGES = ("public.ecr.aws/example/fastapi-app:v1", "public.ecr.aws/example/fastapi-app:v2")
STEPS = (Weights(75, 25), Weights(50, 50), Weights(0, 100))


class _ConsoleProgress:
    def __init__(self, console: Console) -> None:
        self._console = console

    def update(self, message: str) -> None:
        pass  # the emulator finishes stack operations at once; nothing to animate

    def log(self, message: str) -> None:
        self._console.print(f"  {message}", style="dim")


@contextmanager
def _environment(values: Mapping[str, str]) -> Iterator[None]:
    """Point boto3 at the emulator for the demo only, then restore the environment."""
    saved = {key: os.environ.get(key) for key in values}
    hidden = {key: os.environ.pop(key) for key in ("AWS_PROFILE",) if key in os.environ}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        os.environ.update(hidden)


def _summary(status: Status) -> str:
    listener = status.listener
    weights = "-" if listener is None else str(listener.weights)
    drift = "" if listener is None or not listener.drift else " (stack parameters differ: drift)"
    return f"stack {status.stack_status}, listener weights stable/canary = {weights}{drift}"


def run(console: Console, *, show_status: Callable[[Status], None] | None = None) -> int:
    """deploy -> status -> set-weights 75 25 -> 50 50 -> 0 100 -> rollback -> delete.

    Starts a moto server, runs every step through the same use-cases as the CLI,
    always stops the server, and returns an exit code.
    """
    say = console.print
    say(
        "[bold]EMULATED AWS (moto)[/bold]: this demo talks to moto, a local AWS emulator "
        "on 127.0.0.1, not to AWS. CloudFormation, the ALB listener and ECS are emulated: "
        "no container task really runs, no target turns healthy, no request is served. "
        "The stack and weight changes are the same API calls `canary --target aws` makes "
        "on AWS.\n"
    )
    try:
        with emulator.running() as server:
            say(f"moto server started on {server.endpoint_url} (pid {server.process.pid})")
            env = {**server.env, "CANARY_TARGET": "aws", "STACK_NAME": DEMO_STACK}
            with _environment(env):
                _walk_through(console, show_status)
            say(f"stopping the moto server (pid {server.process.pid})")
    except CanaryError as exc:
        say(f"[red]demo failed:[/red] {exc.message}")
        if exc.hint:
            say(f"hint: {exc.hint}")
        return exc.exit_code
    say("[green]done[/green]: the emulator is stopped; nothing is left running.")
    return EXIT_OK


def _walk_through(console: Console, show_status: Callable[[Status], None] | None) -> None:
    say = console.print
    settings = load_settings(
        {
            "target": "aws",
            "stack_name": DEMO_STACK,
            "aws.region": emulator.EMULATOR_ENV["AWS_REGION"],
            "image_uri_stable": DEMO_IMAGES[0],
            "image_uri_canary": DEMO_IMAGES[1],
        },
        config_file=None,
    )
    target = AwsTarget.from_settings(settings)
    progress = _ConsoleProgress(console)

    say(f"\n[bold]$ canary --target aws deploy[/bold]   (stack {settings.stack_name})")
    status = usecases.deploy(target, usecases.release_spec(settings), progress)
    say(f"  {_summary(status)}")
    say("\n[bold]$ canary --target aws status[/bold]")
    status = target.status()
    if show_status is not None:
        show_status(status)
    else:
        say(f"  {_summary(status)}")
    for weights in STEPS:
        say(f"\n[bold]$ canary --target aws set-weights {weights.stable} {weights.canary}[/bold]")
        say("  one ModifyListener call, then read back and verified")
        say(f"  {_summary(usecases.set_weights(target, weights))}")
    say("\n[bold]$ canary --target aws rollback[/bold]")
    say(f"  {_summary(usecases.rollback(target))}")
    say("\n[bold]$ canary --target aws delete --yes[/bold]")
    usecases.delete(target, progress)
    say(f"  stack {settings.stack_name} deleted")
