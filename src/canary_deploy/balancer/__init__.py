"""The local data plane: an ALB-faithful weighted reverse proxy over two target groups."""

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
