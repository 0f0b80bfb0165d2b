"""`canary adopt`: drive your own ALB listener (or rule) and ECS services instead of our
stack; what it finds is checked, then recorded in canary.toml's `[aws.existing]`."""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Annotated

import typer

from canary_deploy.aws.adopt_request import AdoptRequest
from canary_deploy.aws.adoption import Adoption, adopt_setup
from canary_deploy.aws.existing import TABLE, ExistingService, with_table, without_table
from canary_deploy.cli.app import OutputOpt, app, global_options, settings_from
from canary_deploy.cli.output import console, print_json, warn
from canary_deploy.config import CONFIG_FILE
from canary_deploy.errors import UsageError

Listener = Annotated[
    str | None, typer.Option("--listener", help="ARN of the listener whose forward splits traffic")
]
Rule = Annotated[
    str | None,
    typer.Option("--rule", help="ARN of a listener rule whose forward splits traffic instead"),
]
Cluster = Annotated[str | None, typer.Option(help="ECS cluster of the services")]
StableService = Annotated[str | None, typer.Option(help="ECS service serving stable")]
CanaryService = Annotated[str | None, typer.Option(help="ECS service serving the canary")]
BaselineService = Annotated[
    str | None, typer.Option(help="Optional ECS service for the rollout's baseline")
]
Name = Annotated[
    str | None, typer.Option(help="What the rollout state is kept under (default: stable service)")
]
Stickiness = Annotated[
    int | None,
    typer.Option(
        min=0,
        max=604800,  # ALB's bounds (7 days), checked before any AWS call
        help="AWSALBTG seconds to send with each split (0: off; default: what the forward "
        "has, or what an earlier adopt of it recorded)",
    ),
]
DryRun = Annotated[bool, typer.Option("--dry-run", help="Check and show; write nothing.")]
Forget = Annotated[
    bool, typer.Option("--forget", help="Remove [aws.existing] from canary.toml (nothing else).")
]


def config_path(ctx: typer.Context) -> Path:
    """The canary.toml this invocation reads (--config, CANARY_CONFIG, ./canary.toml)."""
    named = global_options(ctx).config
    return named or Path(os.environ.get("CANARY_CONFIG") or CONFIG_FILE)


@app.command()
def adopt(
    ctx: typer.Context,
    listener: Listener = None,
    rule: Rule = None,
    cluster: Cluster = None,
    stable_service: StableService = None,
    canary_service: CanaryService = None,
    baseline_service: BaselineService = None,
    name: Name = None,
    stickiness: Stickiness = None,
    dry_run: DryRun = False,
    forget: Forget = False,
    output: OutputOpt = "text",
) -> None:
    """Drive your own ALB listener (or rule) and ECS services: check them (a forward action,
    each service registered in one of its target groups) and record them in canary.toml.
    Canary never creates or deletes them; deploy and promotion register task definition
    revisions that change the image only."""
    path = config_path(ctx)
    if forget:
        _forget(path, output, dry_run=dry_run)
        return
    if not (cluster and stable_service and canary_service):
        raise UsageError(
            "adopt needs --cluster, --stable-service and --canary-service (and --listener "
            "or --rule)",
            hint="e.g. `canary adopt --listener arn:aws:elasticloadbalancing:...:listener/app/"
            "shop/... --cluster prod --stable-service shop --canary-service shop-canary`",
        )
    request = AdoptRequest(
        cluster, stable_service, canary_service, listener, rule, baseline_service, name, stickiness
    )
    adoption = adopt_setup(settings_from(ctx), request)
    if not dry_run:
        _record(path, adoption.existing)
    _render(adoption, None if dry_run else path, output)
    given = "--stack-name" if global_options(ctx).stack_name else None
    given = given or ("STACK_NAME" if os.environ.get("STACK_NAME") else None)
    if given:
        warn(
            f"{given} is set: commands given a stack name next to [{TABLE}] are refused "
            f"(canary does not guess which to drive); leave {given} unset to drive "
            f"{adoption.existing.name}"
        )


def _render(adoption: Adoption, recorded: Path | None, output: str) -> None:
    if output == "json":
        weights = None if adoption.weights is None else adoption.weights.to_dict()
        print_json(
            {
                "adopted": adoption.existing.model_dump(),
                "weights": weights,
                "recorded_in": None if recorded is None else str(recorded),
            }
        )
        return
    _show(adoption, recorded)


def _record(path: Path, existing: ExistingService) -> None:
    """Write `[aws.existing]` into the config file, then read it back as the settings do."""
    text = path.read_text(encoding="utf-8") if path.is_file() else ""
    updated = with_table(text, existing)
    try:
        tree = tomllib.loads(updated)
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(
            f"{path} is not valid TOML: {exc}", hint="fix it, then adopt again"
        ) from None
    if ExistingService.model_validate(tree["aws"]["existing"]) != existing:
        raise UsageError(
            f"{path} sets {TABLE} in a form canary cannot replace (e.g. an inline table)",
            hint=f"remove it from {path}, then adopt again",
        )
    path.write_text(updated, encoding="utf-8")


def _forget(path: Path, output: str, *, dry_run: bool) -> None:
    text = path.read_text(encoding="utf-8") if path.is_file() else ""
    kept = without_table(text)
    found = kept != text
    if found and not dry_run:
        path.write_text(kept, encoding="utf-8")
    if output == "json":
        print_json({"forgotten": found and not dry_run, "would_forget": found, "config": str(path)})
        return
    if not found:
        what = f"{path} has no [{TABLE}]"
    elif dry_run:
        what = f"Would remove [{TABLE}] from {path}"
    else:
        what = f"Removed [{TABLE}] from {path}"
    lines = [
        f"{what}; your listener, target groups and services are unchanged (tester routes "
        "canary added stay too: `canary route delete` them before forgetting)."
    ]
    if dry_run:
        lines.append("Dry run: nothing written.")
    for line in lines:
        console.print(line, markup=False, soft_wrap=True)


def _show(adoption: Adoption, recorded: Path | None) -> None:
    e = adoption.existing
    where = f"rule {e.rule_arn}" if e.rule_arn else f"listener {e.listener_arn}"
    verb = "Would adopt" if recorded is None else "Adopted"
    lines = [f"{verb} {e.name}: {where} (cluster {e.cluster})"]
    rows = [
        ("stable", e.stable_service, e.stable_target_group_arn, e.tester_stable_target_group_arn),
        ("canary", e.canary_service, e.canary_target_group_arn, e.tester_canary_target_group_arn),
    ]
    if e.baseline_service and e.baseline_target_group_arn:
        rows.append(
            ("baseline", e.baseline_service, e.baseline_target_group_arn,
             e.tester_baseline_target_group_arn)
        )  # fmt: skip
    for role, service, group, tester in rows:
        extra = f", tester group {_short(tester)}" if tester else ""
        lines.append(f"  {role:<8} service {service}, target group {_short(group)}{extra}")
    lines.append(f"  weights now: {adoption.weights or 'every group at 0'}")
    sticky = f"{e.stickiness_seconds} s" if e.stickiness_seconds else "off"
    lines.append(f"  stickiness: {sticky} (sent back with every weight change)")
    if not e.baseline_service:
        lines.append(
            "  no baseline service: run rollouts with --no-baseline (or `[rollout] baseline = "
            "false`) to judge the canary against stable"
        )
    if recorded is None:
        lines.append("Dry run: nothing written.")
    else:
        lines.append(
            f"Recorded in {recorded} [{TABLE}]. `canary --target aws status`, set-weights, "
            "rollback, deploy and rollout now drive it."
        )
    for line in lines:
        console.print(line, markup=False, soft_wrap=True)


def _short(arn: str) -> str:
    """A target group's name from its ARN (`targetgroup/NAME/id`)."""
    parts = arn.split("/")
    return parts[-2] if len(parts) >= 3 else arn
