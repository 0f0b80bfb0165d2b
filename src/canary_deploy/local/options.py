"""How one local stack's processes are started: their options, as flags and back."""

from __future__ import annotations

import argparse
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from canary_deploy.backend import ReleaseSpec
from canary_deploy.balancer import BalancerConfig, HealthCheckConfig
from canary_deploy.weights import Weights

HealthProfile = Literal["alb", "fast"]
DEFAULT_WEIGHTS = Weights(95, 5)
# Fast profile: a drained task stops within seconds; alb: ALB's default 300 s.
DEREGISTRATION_DELAY_S: dict[HealthProfile, float] = {"fast": 2.0, "alb": 300.0}


@dataclass(frozen=True)
class StackOptions:
    """What the data plane and the daemon of one state directory are started with (the
    data plane passes them on to every daemon it starts)."""

    state_dir: Path
    host: str = "127.0.0.1"
    port: int = 8080
    health_profile: HealthProfile = "fast"
    deregistration_delay_s: float | None = None
    # The listener's health check path and stickiness; None = from the stored spec.
    health_check_path: str | None = None
    stickiness_s: int | None = None
    # The daemon serves /metrics on 127.0.0.1:metrics_port too (None: socket only).
    metrics_port: int | None = None

    @property
    def deregistration_delay(self) -> float:
        if self.deregistration_delay_s is not None:
            return self.deregistration_delay_s
        return DEREGISTRATION_DELAY_S[self.health_profile]

    def to_argv(self) -> list[str]:
        """The flags `add_arguments` parses back into these options.

        >>> o = StackOptions(Path("/s"), port=0, stickiness_s=60, metrics_port=9464)
        >>> StackOptions.parse(o.to_argv()) == o
        True
        """
        argv = [
            "--state-dir", str(self.state_dir), "--host", self.host, "--port", str(self.port),
            "--health-profile", self.health_profile,
        ]  # fmt: skip
        if self.deregistration_delay_s is not None:
            argv += ["--deregistration-delay", str(self.deregistration_delay_s)]
        if self.health_check_path:
            argv += ["--health-check-path", self.health_check_path]
        if self.stickiness_s:
            argv += ["--stickiness", str(self.stickiness_s)]
        if self.metrics_port is not None:
            argv += ["--metrics-port", str(self.metrics_port)]
        return argv

    @staticmethod
    def add_arguments(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--state-dir", type=Path, required=True)
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8080)
        parser.add_argument("--health-profile", choices=("fast", "alb"), default="fast")
        parser.add_argument("--deregistration-delay", type=float, default=None)
        parser.add_argument("--health-check-path", default=None)
        parser.add_argument("--stickiness", type=int, default=None)
        parser.add_argument("--metrics-port", type=int, default=None)

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> StackOptions:
        return cls(
            state_dir=args.state_dir,
            host=args.host,
            port=args.port,
            health_profile=args.health_profile,
            deregistration_delay_s=args.deregistration_delay,
            health_check_path=args.health_check_path,
            stickiness_s=args.stickiness,
            metrics_port=args.metrics_port,
        )

    @classmethod
    def parse(cls, argv: list[str]) -> StackOptions:
        parser = argparse.ArgumentParser()
        cls.add_arguments(parser)
        return cls.from_args(parser.parse_args(argv))

    def balancer_config(self, spec: ReleaseSpec | None, weights: Weights) -> BalancerConfig:
        """The listener these options and the stored spec describe."""
        path = self.health_check_path or (spec.health_check_path if spec else "/")
        stickiness = self.stickiness_s or (spec.stickiness_seconds if spec else None)
        health = (
            HealthCheckConfig.fast(path)
            if self.health_profile == "fast"
            else HealthCheckConfig(path=path)
        )
        return BalancerConfig(
            host=self.host,
            port=self.port,
            weights=weights,
            stickiness_s=stickiness,
            health=health,
            deregistration_delay_s=self.deregistration_delay,
            slow_start_s=spec.slow_start_seconds if spec else 0,
        )


def process_options(module: str, argv: list[str] | None) -> tuple[StackOptions, int | None]:
    """The command line of one of a stack's processes (`python -m <module>`: the daemon,
    the data plane): its options and the file descriptor to report readiness on. Logging
    goes to stderr (the stack's log file), with times."""
    parser = argparse.ArgumentParser(prog=f"python -m {module}")
    StackOptions.add_arguments(parser)
    parser.add_argument("--ready-fd", type=int, default=None)
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", force=True
    )
    return StackOptions.from_args(args), args.ready_fd
