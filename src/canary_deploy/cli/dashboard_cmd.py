"""`canary dashboard`: the live web page of the stack and its rollouts."""

from __future__ import annotations

import os
import webbrowser
from typing import Annotated

import typer

from canary_deploy.cli.app import app, settings_from
from canary_deploy.cli.output import console

Host = Annotated[
    str, typer.Option(help="Address to serve on; anything but loopback needs --allow-remote")
]
Port = Annotated[int, typer.Option(help="Port (0: a free one)")]
AllowControl = Annotated[
    bool,
    typer.Option(
        "--allow-control",
        help="Let the page pause, resume, promote, abort and set weights (each confirmed, "
        "recorded in history as sent from the dashboard)",
    ),
]
AllowRemote = Annotated[
    bool,
    typer.Option("--allow-remote", help="Allow a non-loopback --host (needs --token)"),
]
Token = Annotated[
    str | None,
    typer.Option(
        help="Access token a remote dashboard requires (env CANARY_DASHBOARD_TOKEN)",
        show_default=False,
    ),
]
OpenBrowser = Annotated[bool, typer.Option("--open", help="Open the page in the default browser.")]


@app.command()
def dashboard(
    ctx: typer.Context,
    host: Host = "127.0.0.1",
    port: Port = 0,
    allow_control: AllowControl = False,
    allow_remote: AllowRemote = False,
    token: Token = None,
    open_browser: OpenBrowser = False,
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
    serve(settings, options, lambda url: _ready(url, allow_control, open_browser))


def _ready(url: str, allow_control: bool, open_browser: bool) -> None:
    """Where the dashboard serves and in which mode; the browser opened on it if asked."""
    mode = "steering allowed" if allow_control else "read-only"
    console.print(f"Dashboard on {url} ({mode}); Ctrl-C stops it.", markup=False, soft_wrap=True)
    if open_browser:
        webbrowser.open(url)
