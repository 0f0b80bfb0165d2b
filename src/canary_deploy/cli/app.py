"""`canary`: the command-line entry point and the seed's verbs."""

from __future__ import annotations

import sys
import time
import traceback
from pathlib import Path
from typing import Annotated, Any

import typer

from canary_deploy import __version__, usecases
from canary_deploy.backend import Target
from canary_deploy.cli.argv import reorder
from canary_deploy.cli.output import (
    OutputFormat,
    console,
    error,
    print_json,
    progress,
    show_status,
    warn,
)
from canary_deploy.config import Settings, load_settings
from canary_deploy.errors import EXIT_FAILED, CanaryError, UsageError
from canary_deploy.targets import open_target
from canary_deploy.weights import Weights

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
    ctx.obj = {
        "flags": {
            "target": target,
            "stack_name": stack_name,
            "aws.region": region,
            "aws.profile": profile,
            "local.state_dir": state_dir,
            "local.listen": listen,
        },
        "config": config,
    }


def settings_inputs(ctx: typer.Context, **flags: Any) -> tuple[dict[str, Any], Path | None, bool]:
    """This command's flags on top of the global ones, the config file named and whether
    it was named (then it must exist)."""
    obj = ctx.find_root().obj or {}
    merged = dict(obj.get("flags", {}))
    merged.update(flags)
    named = obj.get("config")
    return merged, named, named is not None


def settings_from(ctx: typer.Context, **flags: Any) -> Settings:
    """Settings from this command's flags on top of the global ones."""
    merged, named, required = settings_inputs(ctx, **flags)
    return load_settings(merged, config_file=named, config_required=required)


@app.command()
def deploy(
    ctx: typer.Context,
    image_stable: Annotated[
        str | None, typer.Option(help="Stable image (env IMAGE_URI_STABLE)")
    ] = None,
    image_canary: Annotated[
        str | None, typer.Option(help="Canary image (env IMAGE_URI_CANARY)")
    ] = None,
    stable_count: Annotated[
        int | None, typer.Option(help="Stable tasks (env DESIRED_COUNT_STABLE; 2)")
    ] = None,
    canary_count: Annotated[
        int | None, typer.Option(help="Canary tasks (env DESIRED_COUNT_CANARY; 1)")
    ] = None,
    container_port: Annotated[
        int | None, typer.Option(help="Container port (env CONTAINER_PORT; 8000)")
    ] = None,
    stable_weight: Annotated[
        int | None, typer.Option(help="First deploy's stable weight (env STABLE_WEIGHT; 95)")
    ] = None,
    canary_weight: Annotated[
        int | None, typer.Option(help="First deploy's canary weight (env CANARY_WEIGHT; 5)")
    ] = None,
    task_cpu: Annotated[int | None, typer.Option(help="Fargate CPU units (env TASK_CPU)")] = None,
    task_memory: Annotated[int | None, typer.Option(help="MiB (env TASK_MEMORY)")] = None,
    health_check_path: Annotated[
        str | None, typer.Option(help="Health check path (env HEALTH_CHECK_PATH; /)")
    ] = None,
    stickiness: Annotated[
        int | None,
        typer.Option(help="Enable AWSALBTG stickiness for N seconds (env STICKINESS_*)"),
    ] = None,
    slow_start: Annotated[
        int | None,
        typer.Option(
            help="ALB slow start: a new target's share ramps up over N seconds "
            "(0 off, 30-900; env SLOW_START_SECONDS)"
        ),
    ] = None,
    vpc_id: Annotated[str | None, typer.Option(help="AWS VPC (default VPC)")] = None,
    subnet_ids: Annotated[
        str | None, typer.Option(help="Comma-separated subnets (default VPC's)")
    ] = None,
    force: Annotated[
        bool,
        typer.Option(
            "--force", help="During a rollout: abort it (rolled back, recorded), then deploy."
        ),
    ] = False,
    yes: Annotated[
        bool,
        typer.Option("--yes", "-y", help="Deploy even when a group with traffic gets 0 tasks."),
    ] = False,
    output: OutputOpt = "text",
) -> None:
    """Create or update the stack (first deploy 95/5), then print status. Refused while
    a rollout runs (it judges the versions deployed), unless --force."""
    settings = settings_from(
        ctx,
        image_uri_stable=image_stable,
        image_uri_canary=image_canary,
        desired_count_stable=stable_count,
        desired_count_canary=canary_count,
        container_port=container_port,
        stable_weight=stable_weight,
        canary_weight=canary_weight,
        **{
            "aws.task_cpu": task_cpu,
            "aws.task_memory": task_memory,
            "aws.vpc_id": vpc_id,
            "aws.subnet_ids": None
            if subnet_ids is None
            else tuple(s for s in subnet_ids.split(",") if s),
        },
        health_check_path=health_check_path,
        stickiness_enabled=None if stickiness is None else stickiness > 0,
        stickiness_duration_seconds=stickiness if stickiness else None,
        slow_start_seconds=slow_start,
    )
    target = open_target(settings)
    current = None
    if settings.target == "local":
        from canary_deploy.local.target import LocalTarget

        assert isinstance(target, LocalTarget)
        current = target.stack.stored_spec()
    spec = usecases.release_spec(settings, current)
    _confirm_starved(usecases.starved_groups(spec, usecases.live_weights(target)), yes=yes)
    _yield_to_rollout(settings, target, force=force, quiet=output == "json")
    before = usecases.canary_image_live(target)
    with progress(f"Deploying {settings.stack_name} ({settings.target})") as p:
        status = usecases.deploy(target, spec, p)
    show_status(status, output)
    warning = usecases.new_canary_warning(before, spec, status)
    if warning:
        warn(warning)


def _confirm_starved(problems: list[str], *, yes: bool) -> None:
    """A group with traffic and no task answers 503: deploy that only when asked to."""
    if not problems:
        return
    what = "; ".join(problems) + ": those requests would fail with 503"
    if yes:
        warn(what)
        return
    if not sys.stdin.isatty():
        raise UsageError(
            what,
            hint="move the traffic first (`canary set-weights 0 100` or `100 0`), give the "
            "group tasks, or pass --yes to deploy anyway",
        )
    typer.confirm(f"{what}. Deploy anyway?", abort=True)


def _yield_to_rollout(settings: Settings, target: Target, *, force: bool, quiet: bool) -> None:
    """`deploy` during a rollout: refused, or with --force the rollout ends first."""
    from canary_deploy.rollout import service, steering

    with service.existing_store(settings) as store:
        if not force:
            steering.refuse_deploy(store)
            return
        active = None if store is None else store.active()
        if active is None:
            return
        with progress(f"Aborting rollout #{active.id} before the deploy", quiet=quiet) as p:
            ended = steering.end_rollout(target, store, via="deploy --force", progress=p)
    if ended is not None:
        warn(
            f"rollout #{ended.rollout.id} aborted by {ended.actor}: rolled back, all traffic "
            "on stable"
        )


# A negative weight (`set-weights -5 105`) is a wrong weight, not an unknown option.
@app.command("set-weights", context_settings={"ignore_unknown_options": True})
def set_weights(
    ctx: typer.Context,
    stable: Annotated[str | None, typer.Argument(help="Stable weight, 0-100")] = None,
    canary: Annotated[
        str | None, typer.Argument(help="Canary weight, 0-100; the two sum to 100")
    ] = None,
    balancer: Annotated[
        Path | None,
        typer.Option(
            "--balancer",
            help="A standalone `canary balancer`'s admin socket: change its weights instead.",
        ),
    ] = None,
    output: OutputOpt = "text",
) -> None:
    """Split traffic S/C percent with one listener call (no stack update). Refused while
    a rollout runs (it owns the weights); allowed while it is paused."""
    from canary_deploy.rollout import service, steering

    if stable is None or canary is None:
        given = " ".join(repr(v) for v in (stable, canary) if v is not None)
        raise UsageError(
            "set-weights takes two weights, stable and canary"
            + (f", got only {given}" if given else ""),
            hint="e.g. `canary set-weights 90 10`: integers 0-100 that sum to 100",
        )
    weights = Weights.parse(stable, canary)
    if balancer is not None:
        _set_standalone_weights(balancer, weights, output)
        return
    settings = settings_from(ctx)
    target = open_target(settings)
    with service.existing_store(settings) as store:
        steering.refuse_set_weights(store)
        paused = None if store is None else store.active()
    status = usecases.set_weights(target, weights)
    live = None if status.listener is None else status.listener.weights
    if output == "json":
        print_json({**status.to_dict(), "weights_set": weights.to_dict()})
    else:
        show_status(status, output)
        console.print(_weights_outcome(weights, live), markup=False)
    if paused is not None:
        warn(
            f"rollout #{paused.id} is paused: it records this change as made outside it; "
            "`canary resume` puts its step's weights back, `canary abort` rolls back"
        )


def _set_standalone_weights(socket: Path, weights: Weights, output: str) -> None:
    """One PUT /weights on a standalone balancer's admin socket (S/C, so its baseline, if
    any, gets 0 as on the stack), then what it says is live."""
    from canary_deploy.balancer.admin import AdminClient

    applied = AdminClient(socket).request("PUT", "/weights", weights.to_dict())
    if output == "json":
        print_json({"balancer": str(socket), "weights": applied})
        return
    now = Weights.from_dict(applied)
    console.print(f"Weights on the balancer at {socket}: {now}", markup=False)


def _weights_outcome(weights: Weights, live: Weights | None) -> str:
    """What `set-weights` set and what is live now: concurrent changes are applied one
    at a time and the last one wins, which is no error for the others."""
    if live is None or live == weights:
        return f"Set {weights}; live now {weights}."
    return f"Set {weights}; another change came after it (last writer wins): live now {live}."


@app.command()
def rollback(ctx: typer.Context, output: OutputOpt = "text") -> None:
    """All traffic to stable now (100/0), one listener call. During a rollout: the
    rollout ends as `canary abort` ends it (recorded in its history)."""
    from canary_deploy.rollout import service, steering

    settings = settings_from(ctx)
    target = open_target(settings)
    ended = None
    try:
        with service.existing_store(settings) as store:
            active = None if store is None else store.active()
            if active is not None:
                quiet = output == "json"
                with progress(f"Ending rollout #{active.id}: rolling back", quiet=quiet) as p:
                    ended = steering.end_rollout(target, store, via="rollback", progress=p)
    except CanaryError as exc:
        # The emergency button works without the rollout's state or controller: one
        # listener call. The rollout sees weights it did not set and pauses.
        show_status(usecases.rollback(target), output)
        from canary_deploy.local.statedb import CorruptState

        if isinstance(exc, CorruptState):
            warn(f"{exc.message}: all traffic is on stable anyway (one listener call); {exc.hint}")
            return
        warn(
            f"the rollout could not be ended ({exc.message}); all traffic is on stable "
            "anyway (one listener call): the rollout pauses on weights it did not set - "
            "`canary abort` ends it"
        )
        return
    if ended is None:
        show_status(usecases.rollback(target), output)
        return
    show_status(target.status(), output)
    warn(f"rollout #{ended.rollout.id} ended: rolled back by {ended.actor}")


@app.command()
def status(ctx: typer.Context, output: OutputOpt = "text") -> None:
    """The stack along the chain Task Definition -> Tasks -> Service -> Target Group ->
    Listener -> user, with live weights and recent traffic."""
    settings = settings_from(ctx)
    target = open_target(settings)
    current = target.status()
    rollout = _rollout_summary(settings)
    if output == "json":
        print_json({**current.to_dict(), "rollout": rollout})
        return
    show_status(current, output)
    if rollout is not None:
        judging = f", judging {rollout['canary_image']}" if rollout["canary_image"] else ""
        console.print(
            f"Rollout #{rollout['id']}: {rollout['status']} at step {rollout['step']}/"
            f"{rollout['steps']} (canary {rollout['canary_weight']}%{judging}) - "
            f"{rollout['last']}",
            markup=False,
        )
        console.print(f"Controller: {controller_line(rollout['controller'])}", markup=False)


def controller_line(doc: dict[str, Any]) -> str:
    """Who runs the rollout, in words: 'last tick 0.4s ago (pid 123)' or 'unattended since'."""
    if doc["unattended_since"] is not None:
        stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(doc["unattended_since"]))
        return (
            f"unattended since {stamp} ({doc['unattended_s']:.0f}s): nothing judges it or "
            "rolls it back; run `canary rollout` to resume it"
        )
    who = f" (pid {doc['pid']})" if doc.get("pid") else ""
    return f"last tick {doc['last_tick_s']:.1f}s ago{who}"


def _rollout_summary(settings: Settings) -> dict[str, Any] | None:
    """The rollout in progress on this stack, if any, and who runs it (from the store)."""
    from canary_deploy.rollout.service import existing_store
    from canary_deploy.rollout.state import unattended_since
    from canary_deploy.rollout.view import summary

    with existing_store(settings) as store:
        active = None if store is None else store.active()
        if store is None or active is None:
            return None
        now = time.time()
        since = unattended_since(store, active, now=now)
    beat = active.heartbeat if active.heartbeat is not None else active.created_at
    controller = {
        "pid": active.owner_pid if since is None else None,
        "last_tick": beat,
        "last_tick_s": max(0.0, now - beat),
        "unattended_since": since,
        "unattended_s": None if since is None else max(0.0, now - since),
    }
    return {**summary(active), "controller": controller}


@app.command()
def delete(
    ctx: typer.Context,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    purge: Annotated[
        bool, typer.Option(help="Local: also remove the state directory and history.")
    ] = False,
    output: OutputOpt = "text",
) -> None:
    """Delete the stack and wait until it is gone."""
    settings = settings_from(ctx)
    if not yes:
        if not sys.stdin.isatty():
            raise UsageError(
                f"refusing to delete {settings.stack_name} without confirmation",
                hint="pass --yes",
            )
        typer.confirm(f"Delete {settings.stack_name} on {settings.target}?", abort=True)
    from canary_deploy.rollout import service, steering

    target = open_target(settings)
    with progress(f"Deleting {settings.stack_name} ({settings.target})") as p:
        with service.existing_store(settings) as store:
            ended = steering.end_for_delete(target, store, progress=p)
        usecases.delete(target, p, purge=purge)
    if ended is not None:
        warn(f"rollout #{ended.id} ended before the delete: {ended.reason}")
    if output == "json":
        print_json(
            {
                "deleted": settings.stack_name,
                "target": settings.target,
                "purged": purge,
                "ended_rollout": None if ended is None else ended.id,
            }
        )
        return
    typer.echo(f"Deleted {settings.stack_name}.")


@app.command("help")
def help_(ctx: typer.Context) -> None:
    """Show this help."""
    root = ctx.find_root()
    typer.echo(root.get_help())


def _register_optional_commands() -> None:
    """Commands contributed by other modules (each registers itself on `app`)."""
    import importlib

    for module in (
        "canary_deploy.cli.balancer_cmd",
        "canary_deploy.cli.config_cmd",
        "canary_deploy.cli.dashboard_cmd",
        "canary_deploy.cli.local_cmds",
        "canary_deploy.cli.rollout_cmds",
    ):
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name != module:
                raise


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
