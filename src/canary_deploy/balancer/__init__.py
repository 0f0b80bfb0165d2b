"""The local data plane: an ALB-faithful weighted reverse proxy over two target groups."""

from canary_deploy.speedups import search_path

# The hot modules compiled with mypyc, when built and matching these sources (speedups).
__path__ = search_path(__path__)

from canary_deploy.balancer.config import (
    ALGORITHMS,
    Algorithm,
    BalancerConfig,
    HealthCheckConfig,
    TargetHealth,
)
from canary_deploy.balancer.metrics import MetricsRecorder, WindowStats
from canary_deploy.balancer.server import Balancer

__all__ = [
    "ALGORITHMS",
    "Algorithm",
    "Balancer",
    "BalancerConfig",
    "HealthCheckConfig",
    "MetricsRecorder",
    "TargetHealth",
    "WindowStats",
]
