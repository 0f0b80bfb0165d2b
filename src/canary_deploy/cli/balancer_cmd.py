"""`canary balancer`: run the ALB-like weighted balancer in front of your own servers."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import typer

from canary_deploy.backend import Role
from canary_deploy.balancer.config import BalancerConfig, HealthCheckConfig
from canary_deploy.balancer.limits import HEAD_TIMEOUT_S
from canary_deploy.balancer.standalone import Ready, parse_endpoint, parse_endpoints, serve
from canary_deploy.cli.app import app
from canary_deploy.cli.output import console
from canary_deploy.errors import UsageError
from canary_deploy.weights import Weights

DEFAULT_ADMIN_SOCKET = Path(".canary/balancer.sock")


# The options: one per listener or target-group setting.
StableTargets = Annotated[str, typer.Option(help="Stable targets, host:port[,host:port...]")]
CanaryTargets = Annotated[
    str, typer.Option(help="Canary targets, host:port[,...] (may be empty: '')")
]
Listen = Annotated[str, typer.Option(help="Listener host:port (port 0 = any free)")]
StartWeights = Annotated[
    tuple[int, int], typer.Option(help="Stable and canary percent, summing to 100")
]
Stickiness = Annotated[
    int | None, typer.Option(help="AWSALBTG target-group stickiness for N seconds")
]
HealthPath = Annotated[str, typer.Option(help="Health check path")]
HealthProfile = Annotated[
    Literal["alb", "fast"],
    typer.Option(help="alb: 30 s interval, 5/2 thresholds; fast: 0.5 s, 2/2"),
]
Algorithm = Annotated[
    Literal["round_robin", "least_outstanding_requests"],
    typer.Option(help="Target choice inside a group"),
]
IdleTimeout = Annotated[float, typer.Option(help="Idle timeout in seconds (504 after)")]
HeadTimeout = Annotated[
    float, typer.Option(help="Seconds a client has to send a whole request head (408 after)")
]
MaxConnections = Annotated[
    int | None,
    typer.Option(help="Client connections at most (503 beyond); default from the fd limit"),
]
DeregistrationDelay = Annotated[float, typer.Option(help="Seconds a deregistered target drains")]
AdminSocket = Annotated[Path, typer.Option(help="Unix socket for run-time changes (mode 0600)")]
BaselineTargets = Annotated[
    str, typer.Option(help="Baseline targets, host:port[,...] (a third target group)")
]
BaselineWeight = Annotated[
    int, typer.Option(help="Baseline percent; --weights then sum to 100 minus it")
]
SlowStart = Annotated[
    int, typer.Option(help="ALB slow start: a newly healthy target ramps up over N s")
]


@app.command("balancer")
def balancer(
    stable: StableTargets,
    canary: CanaryTargets,
    listen: Listen = "127.0.0.1:8080",
    weights: StartWeights = (95, 5),
    stickiness: Stickiness = None,
    health_path: HealthPath = "/",
    health_profile: HealthProfile = "alb",
    algorithm: Algorithm = "round_robin",
    idle_timeout: IdleTimeout = 60,
    head_timeout: HeadTimeout = HEAD_TIMEOUT_S,
    max_connections: MaxConnections = None,
    deregistration_delay: DeregistrationDelay = 300,
    admin_socket: AdminSocket = DEFAULT_ADMIN_SOCKET,
    baseline: BaselineTargets = "",
    baseline_weight: BaselineWeight = 0,
    slow_start: SlowStart = 0,
) -> None:
    """Weighted reverse proxy like an ALB listener; Ctrl-C stops it."""
    host, port = parse_endpoint(listen, "--listen")
    targets = _targets(stable, canary, baseline)
    health = (
        HealthCheckConfig.fast(health_path)
        if health_profile == "fast"
        else HealthCheckConfig(path=health_path)
    )
    config = BalancerConfig(
        host=host,
        port=port,
        weights=Weights(weights[0], weights[1], baseline_weight),
        stickiness_s=stickiness,
        idle_timeout_s=idle_timeout,
        head_timeout_s=head_timeout,
        max_connections=max_connections,
        health=health,
        algorithm=algorithm,
        deregistration_delay_s=deregistration_delay,
        slow_start_s=slow_start,
    )
    serve(config, targets, admin_socket, lambda where: _ready(where, config.weights))


def _targets(stable: str, canary: str, baseline: str) -> dict[Role, list[tuple[str, int]]]:
    """Each group's targets from its option; at least one target in all."""
    targets: dict[Role, list[tuple[str, int]]] = {
        "stable": parse_endpoints(stable, "--stable"),
        "canary": parse_endpoints(canary, "--canary"),
        "baseline": parse_endpoints(baseline, "--baseline"),
    }
    if not any(targets.values()):
        raise UsageError("give at least one target with --stable, --canary or --baseline")
    return targets


def _ready(where: Ready, weights: Weights) -> None:
    # Never wrapped: a script reads these lines and a user copies the command whole.
    console.print(f"Listening on [bold]{where.url}[/bold] (weights {weights})", soft_wrap=True)
    console.print(
        f"Admin socket: {where.admin_socket} "
        f"(`canary set-weights S C --balancer {where.admin_socket}` changes the weights)",
        markup=False,
        soft_wrap=True,
    )
    console.print("Press Ctrl-C to stop.")
