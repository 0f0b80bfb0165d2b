"""`canary dashboard`: the live web page of the stack and its rollouts."""

from __future__ import annotations

import os
import webbrowser
from typing import Annotated

import typer

from canary_deploy.cli.app import app, settings_from
from canary_deploy.cli.output import console


@app.command()
def dashboard(
    ctx: typer.Context,
    host: Annotated[
        str, typer.Option(help="Address to serve on; anything but loopback needs --allow-remote")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port (0: a free one)")] = 0,
    allow_control: Annotated[
        bool,
        typer.Option(
            "--allow-control",
            help="Let the page pause, resume, promote, abort and set weights (each confirmed, "
            "recorded in history as sent from the dashboard)",
        ),
    ] = False,
    allow_remote: Annotated[
        bool,
        typer.Option("--allow-remote", help="Allow a non-loopback --host (needs --token)"),
    ] = False,
    token: Annotated[
        str | None,
        typer.Option(
            help="Access token a remote dashboard requires (env CANARY_DASHBOARD_TOKEN)",
            show_default=False,
        ),
    ] = None,
    open_browser: Annotated[
        bool, typer.Option("--open", help="Open the page in the default browser.")
    ] = False,
) -> None:
    """Serve a live web dashboard: the chain, traffic charts, the rollout's steps and
    e-values, history. Read-only unless --allow-control. Runs until Ctrl-C."""
    from canary_deploy.web.run import Options, serve

    settings = settings_from(ctx)
    options = Options(
        host=host,
        port=port,
        allow_control=allow_control,
        allow_remote=allow_remote,
        token=token or os.environ.get("CANARY_DASHBOARD_TOKEN") or None,
    )

    def ready(url: str) -> None:
        mode = "steering allowed" if allow_control else "read-only"
        console.print(
            f"Dashboard on {url} ({mode}); Ctrl-C stops it.", markup=False, soft_wrap=True
        )
        if open_browser:
            webbrowser.open(url)

    serve(settings, options, ready)
