"""The stack's lifecycle verbs of the seed: `deploy`, `status`, `delete`."""

from __future__ import annotations

import sys
import time
from typing import Annotated

import typer

from canary_deploy import usecases
from canary_deploy.aws.task_config import parse_pairs
from canary_deploy.backend import ReleaseSpec, Target
from canary_deploy.cli.app import OutputOpt, app, settings_from
from canary_deploy.cli.output import (
    console,
    print_json,
    progress,
    show_status,
    warn,
)
from canary_deploy.cli.preview_output import show_preview
from canary_deploy.config import Settings
from canary_deploy.errors import CanaryError, NothingToDelete, UsageError
from canary_deploy.rollout import service, steering
from canary_deploy.rollout.summary import ControllerSummary
from canary_deploy.targets import open_target

# `deploy`'s options: the seed's variables as flags (each wins over its variable).
ImageStable = Annotated[str | None, typer.Option(help="Stable image (env IMAGE_URI_STABLE)")]
ImageCanary = Annotated[str | None, typer.Option(help="Canary image (env IMAGE_URI_CANARY)")]
StableCount = Annotated[int | None, typer.Option(help="Stable tasks (env DESIRED_COUNT_STABLE; 2)")]
CanaryCount = Annotated[int | None, typer.Option(help="Canary tasks (env DESIRED_COUNT_CANARY; 1)")]
ContainerPort = Annotated[
    int | None, typer.Option(help="Container port (env CONTAINER_PORT; 8000)")
]
StableWeight = Annotated[
    int | None, typer.Option(help="First deploy's stable weight (env STABLE_WEIGHT; 95)")
]
CanaryWeight = Annotated[
    int | None, typer.Option(help="First deploy's canary weight (env CANARY_WEIGHT; 5)")
]
TaskCpu = Annotated[int | None, typer.Option(help="Fargate CPU units (env TASK_CPU)")]
TaskMemory = Annotated[int | None, typer.Option(help="MiB (env TASK_MEMORY)")]
HealthCheckPath = Annotated[
    str | None, typer.Option(help="Health check path (env HEALTH_CHECK_PATH; /)")
]
Stickiness = Annotated[
    int | None, typer.Option(help="Enable AWSALBTG stickiness for N seconds (env STICKINESS_*)")
]
SlowStart = Annotated[
    int | None,
    typer.Option(
        help="ALB slow start: a new target's share ramps up over N seconds "
        "(0 off, 30-900; env SLOW_START_SECONDS)"
    ),
]
VpcId = Annotated[str | None, typer.Option(help="AWS VPC (default VPC)")]
SubnetIds = Annotated[str | None, typer.Option(help="Comma-separated subnets (default VPC's)")]
AppEnv = Annotated[
    list[str] | None,
    typer.Option(
        "--env",
        metavar="NAME=VALUE",
        help="AWS: a variable of the app's environment (repeatable; adds to [aws] env)",
    ),
]
AppSecret = Annotated[
    list[str] | None,
    typer.Option(
        "--secret",
        metavar="NAME=ARN",
        help="AWS: a Secrets Manager secret or SSM parameter ECS reads into "
        "the app's environment (repeatable; adds to [aws] secrets)",
    ),
]
Force = Annotated[
    bool,
    typer.Option(
        "--force", help="During a rollout: abort it (rolled back, recorded), then deploy."
    ),
]
Yes = Annotated[
    bool, typer.Option("--yes", "-y", help="Deploy even when a group with traffic gets 0 tasks.")
]
DryRun = Annotated[
    bool,
    typer.Option(
        "--dry-run",
        help="Show what the deploy would change and change nothing (AWS: a CloudFormation "
        "change set, deleted once read).",
    ),
]
SkipImageCheck = Annotated[
    bool,
    typer.Option(
        "--skip-image-check",
        help="AWS: do not look the ECR images up (exist, CPU architecture) before the stack "
        "changes.",
    ),
]


@app.command()
def deploy(
    ctx: typer.Context,
    image_stable: ImageStable = None,
    image_canary: ImageCanary = None,
    stable_count: StableCount = None,
    canary_count: CanaryCount = None,
    container_port: ContainerPort = None,
    stable_weight: StableWeight = None,
    canary_weight: CanaryWeight = None,
    task_cpu: TaskCpu = None,
    task_memory: TaskMemory = None,
    health_check_path: HealthCheckPath = None,
    stickiness: Stickiness = None,
    slow_start: SlowStart = None,
    vpc_id: VpcId = None,
    subnet_ids: SubnetIds = None,
    env: AppEnv = None,
    secret: AppSecret = None,
    force: Force = False,
    yes: Yes = False,
    dry_run: DryRun = False,
    skip_image_check: SkipImageCheck = False,
    output: OutputOpt = "text",
) -> None:
    """Create or update the stack (first deploy 95/5), then print status. Refused while
    a rollout runs (it judges the versions deployed), unless --force. --dry-run shows
    what would change instead."""
    # Long for its options (one per seed variable or deploy setting) and their mapping onto
    # the settings, one line each: the rest reads as check, deploy, render.
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
            "aws.subnet_ids": None if subnet_ids is None else _split(subnet_ids),
            "aws.env": parse_pairs(env, "--env") if env else None,
            "aws.secrets": parse_pairs(secret, "--secret") if secret else None,
        },
        health_check_path=health_check_path,
        stickiness_enabled=None if stickiness is None else stickiness > 0,
        stickiness_duration_seconds=stickiness if stickiness else None,
        slow_start_seconds=slow_start,
    )
    target = open_target(settings)
    _warn_ignored(settings, app_env=bool(env or secret))
    spec = usecases.release_spec(
        settings, target.deployed_spec(), check_images=not skip_image_check
    )
    if dry_run:
        _show_dry_run(settings, target, spec, output)
        return
    _confirm_starved(usecases.starved_groups(spec, usecases.live_weights(target)), yes=yes)
    _yield_to_rollout(settings, target, force=force, quiet=output == "json")
    deployed = _deploy_release(settings, target, spec)
    show_status(deployed.status, output)
    if deployed.warning:
        warn(deployed.warning)


def _show_dry_run(settings: Settings, target: Target, spec: ReleaseSpec, output: str) -> None:
    """`deploy --dry-run`: what the deploy would change; nothing changes."""
    with progress(f"Dry run: {settings.state_name} ({settings.target})") as p:
        preview = usecases.preview(target, spec, p)
    show_preview(preview, output)


def _deploy_release(settings: Settings, target: Target, spec: ReleaseSpec) -> usecases.Deployed:
    """The deploy under a progress line; Ctrl-C on an adopted service says ECS carries on."""
    with progress(f"Deploying {settings.state_name} ({settings.target})") as p:
        try:
            return usecases.deploy_release(target, spec, p)
        except KeyboardInterrupt:
            if settings.adopted is None:
                raise
            raise _interrupted(settings.adopted.canary_service) from None


def _warn_ignored(settings: Settings, *, app_env: bool) -> None:
    """Say once what this deploy is given that does nothing here: the stack's production
    settings on an adopted setup, --env/--secret (`app_env`) on the local target."""
    if settings.adopted is not None:
        from canary_deploy.aws.adopted import ignored_template_settings

        ignored = ignored_template_settings(settings)
        if ignored:
            warn(
                f"{', '.join(ignored)}: settings of canary's stack template, which do not "
                f"apply to your own service {settings.adopted.name} (its load balancer, "
                "listener and services are configured where you manage them)"
            )
    if settings.target == "local" and app_env:
        warn(
            "--env and --secret go into the AWS task definitions; local tasks do not get "
            "them: put variables before a local image's command, e.g. "
            "--image-canary 'LOG_LEVEL=debug python -m app --port $PORT'"
        )


def _interrupted(canary_service: str) -> CanaryError:
    """Ctrl-C during an adopted deploy: only the wait stopped; ECS rolls the service on."""
    return CanaryError(
        f"interrupted: the ECS deployment of {canary_service} carries on without canary "
        "watching it (stopping the wait does not stop ECS)",
        hint="`canary status` shows the canary service's deployment as it goes",
        exit_code=130,
    )


def _split(ids: str) -> tuple[str, ...]:
    """`--subnet-ids a,b` as ("a", "b")."""
    return tuple(i for i in ids.split(",") if i)


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
@app.command()
def status(ctx: typer.Context, output: OutputOpt = "text") -> None:
    """The stack along the chain Task Definition -> Tasks -> Service -> Target Group ->
    Listener -> user, with live weights and recent traffic."""
    settings = settings_from(ctx)
    current = open_target(settings).status()
    active = service.active_rollout(settings)
    if output == "json":
        print_json({**current.to_dict(), "rollout": None if active is None else active.to_dict()})
        return
    show_status(current, output)
    if active is not None:
        r = active.rollout
        judging = f", judging {r.canary_image}" if r.canary_image else ""
        console.print(
            f"Rollout #{r.id}: {r.status} at step {r.step}/{r.steps} "
            f"(canary {r.canary_weight}%{judging})",
            markup=False,
        )
        console.print(f"Latest: {r.last}", markup=False)  # its own line: never wrapped away
        console.print(f"Controller: {controller_line(active.controller)}", markup=False)


def controller_line(controller: ControllerSummary) -> str:
    """Who runs the rollout, in words: 'last tick 0.4s ago (pid 123)' or 'unattended since'."""
    if controller.unattended_since is not None:
        stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(controller.unattended_since))
        return (
            f"unattended since {stamp} ({controller.unattended_s or 0:.0f}s): nothing judges "
            "it or rolls it back; run `canary rollout` to resume it"
        )
    who = f" (pid {controller.pid})" if controller.pid else ""
    return f"last tick {controller.last_tick_s:.1f}s ago{who}"


@app.command()
def delete(
    ctx: typer.Context,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    purge: Annotated[
        bool, typer.Option(help="Local: also remove the state directory and history.")
    ] = False,
    output: OutputOpt = "text",
) -> None:
    """Delete the stack and wait until it is gone (refused on an adopted service: canary
    never deletes your own resources)."""
    settings = settings_from(ctx)
    if settings.adopted is not None:
        from canary_deploy.aws.adopted import refuse_delete

        raise refuse_delete(settings.adopted)
    if not yes:
        if not sys.stdin.isatty():
            raise UsageError(
                f"refusing to delete {settings.stack_name} without confirmation",
                hint="pass --yes",
            )
        typer.confirm(f"Delete {settings.stack_name} on {settings.target}?", abort=True)
    target = open_target(settings)
    try:
        with progress(f"Deleting {settings.stack_name} ({settings.target})") as p:
            with service.existing_store(settings) as store:
                ended = steering.end_for_delete(target, store, progress=p)
            usecases.delete(target, p, purge=purge)
    except NothingToDelete as exc:
        _nothing_deleted(settings, exc, output)
        return
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


def _nothing_deleted(settings: Settings, exc: NothingToDelete, output: str) -> None:
    """Deleting what is not there succeeds, and says so."""
    if output == "json":
        print_json({"deleted": None, "target": settings.target, "nothing_to_delete": exc.message})
        return
    console.print(f"Nothing to delete: {exc.message}.", markup=False, soft_wrap=True)
    if exc.hint:
        console.print(f"({exc.hint})", style="dim", markup=False, soft_wrap=True)
