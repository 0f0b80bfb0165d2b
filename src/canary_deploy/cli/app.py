"""`canary`: the command-line entry point and the seed's verbs."""

from __future__ import annotations

import sys
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer

from canary_deploy import __version__
from canary_deploy.cli.argv import reorder
from canary_deploy.cli.output import (
    OutputFormat,
    error,
)
from canary_deploy.config import Settings, load_settings
from canary_deploy.errors import EXIT_FAILED, CanaryError

app = typer.Typer(
    name="canary",
    help="Canary releases of an HTTP API on ECS Fargate + ALB, or locally (the default).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)

OutputOpt = Annotated[
    OutputFormat, typer.Option("--output", "-o", help="text, or json for scripts.")
]


def _version(value: bool) -> None:
    if value:
        typer.echo(f"canary {__version__}")
        raise typer.Exit()


@app.callback()
def _global(
    ctx: typer.Context,
    target: Annotated[
        str | None, typer.Option(help="aws or local (env CANARY_TARGET; default local)")
    ] = None,
    stack_name: Annotated[
        str | None, typer.Option(help="Stack name (env STACK_NAME; default ecs-canary-demo-stack)")
    ] = None,
    region: Annotated[
        str | None,
        typer.Option(
            help="AWS region (env AWS_REGION, then AWS_DEFAULT_REGION, the profile's, us-east-1)"
        ),
    ] = None,
    profile: Annotated[str | None, typer.Option(help="AWS profile (env AWS_PROFILE)")] = None,
    state_dir: Annotated[
        Path | None, typer.Option(help="Local state directory (env CANARY_STATE_DIR; .canary)")
    ] = None,
    listen: Annotated[
        str | None,
        typer.Option(help="Local listener host:port (env CANARY_LISTEN; 127.0.0.1:8080)"),
    ] = None,
    config: Annotated[
        Path | None, typer.Option(help="Config file (env CANARY_CONFIG; canary.toml)")
    ] = None,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show version.")
    ] = False,
) -> None:
    ctx.obj = GlobalOptions(target, stack_name, region, profile, state_dir, listen, config)


@dataclass(frozen=True)
class GlobalOptions:
    """The options every command shares (given before or after the verb), as parsed."""

    target: str | None = None
    stack_name: str | None = None
    region: str | None = None
    profile: str | None = None
    state_dir: Path | None = None
    listen: str | None = None
    config: Path | None = None

    def flags(self) -> dict[str, Any]:
        """As `load_settings` takes flags: dotted keys for the sections."""
        return {
            "target": self.target,
            "stack_name": self.stack_name,
            "aws.region": self.region,
            "aws.profile": self.profile,
            "local.state_dir": self.state_dir,
            "local.listen": self.listen,
        }


def global_options(ctx: typer.Context) -> GlobalOptions:
    """The global options of this invocation (their defaults when the CLI's callback did
    not run, e.g. a command invoked on its own in a test)."""
    obj = ctx.find_root().obj
    return obj if isinstance(obj, GlobalOptions) else GlobalOptions()


def settings_inputs(ctx: typer.Context, **flags: Any) -> tuple[dict[str, Any], Path | None, bool]:
    """This command's flags on top of the global ones, the config file named and whether
    it was named (then it must exist)."""
    options = global_options(ctx)
    return {**options.flags(), **flags}, options.config, options.config is not None


def settings_from(ctx: typer.Context, **flags: Any) -> Settings:
    """Settings from this command's flags on top of the global ones."""
    merged, named, required = settings_inputs(ctx, **flags)
    return load_settings(merged, config_file=named, config_required=required)


def help_(ctx: typer.Context) -> None:
    """Show this help."""
    root = ctx.find_root()
    typer.echo(root.get_help())


def _register_optional_commands() -> None:
    """Commands contributed by other modules (each registers itself on `app`)."""
    import importlib

    for module in (
        "canary_deploy.cli.stack_cmds",
        "canary_deploy.cli.traffic_cmds",
        "canary_deploy.cli.route_cmds",
        "canary_deploy.cli.balancer_cmd",
        "canary_deploy.cli.config_cmd",
        "canary_deploy.cli.dashboard_cmd",
        "canary_deploy.cli.local_cmds",
        "canary_deploy.cli.demo_cmd",
        "canary_deploy.cli.logs_cmd",
        "canary_deploy.cli.rollout_cmds",
        "canary_deploy.cli.adopt_cmd",
    ):
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name != module:
                raise
    if not any(c.name == "help" for c in app.registered_commands):
        app.command("help")(help_)  # listed last


def main(argv: list[str] | None = None) -> None:
    """Run the CLI: user errors print a message and hint, bugs print a traceback."""
    _register_optional_commands()
    command = typer.main.get_command(app)
    args = reorder(command, sys.argv[1:] if argv is None else argv)
    try:
        # Standalone mode: the CLI library handles its own usage errors (exit 2).
        command.main(args=args, prog_name="canary", standalone_mode=True)
    except CanaryError as exc:
        error(exc.message, exc.hint)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        error("interrupted")
        sys.exit(130)
    except Exception:
        traceback.print_exc()
        error(
            "this is a bug in canary-deploy, not something you did",
            hint="please report it with the traceback above",
        )
        sys.exit(EXIT_FAILED)
