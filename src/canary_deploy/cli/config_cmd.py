"""`canary config`: the effective settings, where each came from, and the rollout plan
that would run — a dry run that reads and checks everything and changes nothing."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any
from urllib.parse import urlsplit

import typer
from rich.markup import escape
from rich.table import Table

from canary_deploy.cli.app import OutputOpt, app, settings_inputs
from canary_deploy.cli.output import console, print_json, warn
from canary_deploy.cli.rollout_cmds import parse_steps
from canary_deploy.config import explain_settings
from canary_deploy.rollout.plan import RolloutPlan, build_plan


@app.command("config")
def config(
    ctx: typer.Context,
    steps: Annotated[
        str | None, typer.Option(help="Show the plan with these steps, e.g. 5,25,100.")
    ] = None,
    output: OutputOpt = "text",
) -> None:
    """Check canary.toml, the environment and the flags, and show the effective settings
    (with where each came from) and the rollout plan that would run. Changes nothing."""
    flags, config_file, required = settings_inputs(ctx)
    settings, origins = explain_settings(flags, config_file=config_file, config_required=required)
    plan = build_plan(settings.target, settings.rollout, steps=parse_steps(steps), warn=warn)
    shown_settings = _redacted(settings.model_dump(mode="json"))
    values = _flatten(shown_settings)
    if output == "json":
        print_json(
            {
                "settings": shown_settings,
                "origins": origins,
                "plan": plan.to_dict(),
            }
        )
        return
    table = Table(title="Settings", title_justify="left", box=None, pad_edge=False)
    for column in ("setting", "value", "from"):
        table.add_column(column, style="dim" if column == "from" else None)
    for path, origin in origins.items():
        if path.startswith("rollout.judge.") and origin == "default":
            continue  # the judge's defaults are summarised in the plan below
        table.add_row(path, escape(_show(values.get(path))), escape(origin))
    console.print(table)
    console.print()
    console.print(plan_table(plan, settings.target))
    for line in plan_sentences(plan):
        console.print(escape(line))


def _redacted(value: Any) -> Any:
    """Settings as shown: a webhook's or hook's URL without its path and query, and header
    values as ***, since they often carry a token (Slack's URLs, an Authorization header)."""
    if isinstance(value, list):
        return [_redacted(v) for v in value]
    if not isinstance(value, dict):
        return value
    shown = {k: _redacted(v) for k, v in value.items()}
    if isinstance(shown.get("url"), str):
        parts = urlsplit(shown["url"])
        rest = "/..." if parts.path.strip("/") or parts.query else ""
        shown["url"] = f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}{rest}"
    if isinstance(shown.get("headers"), dict):
        shown["headers"] = dict.fromkeys(shown["headers"], "***")
    return shown


def _flatten(doc: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in doc.items():
        if isinstance(value, dict) and value:
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def _show(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, list):
        return ", ".join(_show(v) for v in value) or "[]"
    if isinstance(value, dict):
        shown = [
            f"{k} {_s(v) if k.endswith('_duration') else _show(v)}"
            for k, v in value.items()
            if k != "weight" and v is not None
        ]
        if "weight" in value:  # a step
            return f"{value['weight']}%" + (f" ({', '.join(shown)})" if shown else "")
        return ", ".join(shown)
    return str(value).lower() if isinstance(value, bool) else str(value)


def _s(seconds: float) -> str:
    if seconds >= 120 and seconds % 60 == 0:
        return f"{seconds / 60:g}m"
    return f"{seconds:g}s"


def plan_table(plan: RolloutPlan, target: str) -> Table:
    """The steps and their gates."""
    arms = "stable/canary/baseline" if plan.baseline else "stable/canary"
    table = Table(
        title=f"Rollout plan ({target} target)", title_justify="left", box=None, pad_edge=False
    )
    for column in ("step", "canary", f"listener {arms}", "min time", "min canary requests"):
        table.add_column(column, justify="right" if column != f"listener {arms}" else "left")
    table.add_column("max time", justify="right")
    for i, step in enumerate(plan.steps):
        w = step.weights(plan.baseline)
        split = f"{w.stable}/{w.canary}/{w.baseline}" if plan.baseline else f"{w.stable}/{w.canary}"
        table.add_row(
            str(i + 1),
            f"{step.canary_weight}%",
            split,
            _s(step.min_duration_s),
            f"{step.min_requests:,}",
            _s(step.max_duration_s),
        )
    return table


def plan_sentences(plan: RolloutPlan) -> list[str]:
    """How the steps are judged, in sentences."""
    control = "a baseline (stable's image, the canary's share and task count)"
    return [
        f"Judged every {_s(plan.interval_s)} on metrics {_s(plan.metrics_lag_s)} old, against "
        + (control if plan.baseline else "stable's tasks")
        + (f"; late data re-read for {_s(plan.reread_s)}" if plan.reread_s else "")
        + ".",
        f"Latency is not judged in the first {_s(plan.warmup_s)} (warm-up) nor "
        f"{_s(plan.latency_settle_s)} after a weight change.",
        *_judge_lines(plan),
        *(
            [f"Rolled back at once when a CloudWatch alarm is in ALARM: {', '.join(plan.alarms)}."]
            if plan.alarms
            else []
        ),
    ]


def _judge_lines(plan: RolloutPlan) -> Sequence[str]:
    cfg = plan.judge
    fixed = cfg.latency_thresholds_s
    n_latency = len(fixed) if fixed is not None else len(cfg.latency_quantiles)
    error_alpha, latency_alpha = cfg.metric_alphas(n_latency)
    if fixed is not None:
        latency = ", ".join(f"{t * 1000:g} ms" for t in fixed)
    else:
        latency = ", ".join(f"p{q * 100:g}" for q in cfg.latency_quantiles)
        latency += f" of stable's last {_s(plan.baseline_window_s)}"
    lines = [
        f"Roll back when the evidence of harm reaches e >= {1 / error_alpha:,.0f} for the "
        f"error rate (alpha {error_alpha:.3g})"
        + (
            f" or e >= {1 / latency_alpha:,.0f} for the share of requests slower than each "
            f"of {latency} (alpha {latency_alpha:.3g} each, tolerance "
            f"{cfg.latency_tolerance:.0%} + {cfg.latency_tolerance_ms:g} ms)"
            if n_latency
            else "; latency not judged"
        )
        + f": at most {cfg.alpha:.0%} false rollbacks of a canary as good as stable.",
        f"Promote early when every metric shows the canary is not worse than "
        f"{cfg.promote_margin:g}x stable (e >= {1 / cfg.promote_alpha:,.0f}).",
        f"No verdict before {cfg.min_canary_requests:,} canary requests. A step moves on "
        "once its minimum is met and the judge promotes, or at its maximum unless the judge "
        f"is still undecided after {cfg.max_canary_requests:,} canary requests (then it "
        "pauses for `canary promote` or `canary abort`).",
    ]
    return lines
