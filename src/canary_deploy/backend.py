"""The three Protocols every target implements, and the value types they exchange.

Both targets (aws, local) implement `TrafficRouter`, `Workload`, `MetricsSource` and
`TesterRouter`, and a `Target` bundles them with the stack lifecycle (deploy, status, delete).
Tests use small hand-written fakes of these Protocols.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol, runtime_checkable

from canary_deploy.routes import RouteMatch, TesterRoute
from canary_deploy.weights import Role as Role  # re-exported: importers take it from here
from canary_deploy.weights import Weights

# The roles (`Role`: a target group and the service behind it; an image's version, v1 or
# v2, is not a role). `baseline` runs stable's image beside the canary during a rollout
# (same size, same share, started together): the like-for-like control the judge compares
# the canary with.
SEED_GROUPS: tuple[Role, Role] = ("stable", "canary")  # the seed's two
GROUPS: tuple[Role, Role, Role] = ("stable", "canary", "baseline")


@dataclass(frozen=True)
class ReleaseSpec:
    """What `deploy` asks for: two versions, their task counts, and the listener's setup.

    On the local target an "image" is a command template containing `$PORT`, or
    `builtin:v1` / `builtin:v2` for the sample app.
    """

    image_stable: str
    image_canary: str
    desired_count_stable: int
    desired_count_canary: int
    container_port: int
    weights: Weights
    health_check_path: str = "/"
    stickiness_seconds: int | None = None
    desired_count_baseline: int = 0  # only during a rollout
    slow_start_seconds: int = 0  # ALB slow start: 0 (off) or 30..900
    # AWS: look the ECR images up before the stack changes (`deploy --skip-image-check`).
    check_images: bool = True

    def image(self, role: Role) -> str:
        """The baseline always runs stable's image."""
        return self.image_canary if role == "canary" else self.image_stable

    def desired_count(self, role: Role) -> int:
        if role == "stable":
            return self.desired_count_stable
        return self.desired_count_canary if role == "canary" else self.desired_count_baseline


class TrafficRouter(Protocol):
    """The listener's weighted forward action."""

    def get_weights(self) -> Weights:
        """Read the live weights from the load balancer itself."""
        ...

    def set_weights(self, weights: Weights) -> None:
        """Apply weights with one call to the load balancer (no stack update)."""
        ...

    def verify_weights(self, weights: Weights) -> bool:
        """True when the load balancer reports exactly these weights now."""
        ...


class TesterRouter(Protocol):
    """The listener's rules that pin testers to a target group by header or cookie,
    evaluated before the weighted forward action (which `set_weights` alone changes)."""

    def list_routes(self) -> list[TesterRoute]:
        """The tool's tester routes on the listener now, in priority order."""
        ...

    def add_route(self, match: RouteMatch, to: Role) -> TesterRoute:
        """Add a rule forwarding requests that satisfy `match` to `to`, after the existing
        ones (a free priority); a route with the same condition is a UsageError."""
        ...

    def delete_route(self, route: TesterRoute) -> None:
        """Remove this route's rule (other rules on the listener are never touched)."""
        ...


@runtime_checkable
class OrderedChanges(Protocol):
    """A router whose load balancer numbers weight changes (the local one): a change
    that a later one replaced is told apart from one that did not hold."""

    def replaced_since_set(self, weights: Weights) -> bool:
        """True when `weights`, this router's last change, were applied and a later
        change has replaced them since (last writer wins)."""
        ...


class Workload(Protocol):
    """The services (stable, canary and, during a rollout, baseline) and their tasks."""

    def describe_services(self) -> dict[Role, ServiceStatus]:
        """Running/pending/desired tasks and deployment state, per role."""
        ...

    def canary_image(self) -> str | None:
        """The image the canary's tasks run now, pinned: on AWS `repo@sha256:…` when the
        tasks report a digest (a moved tag is then a different image); None when there
        is no canary service to tell."""
        ...

    def promote(self, image: str, progress: Progress) -> None:
        """Make `image` - the one the rollout judged - stable's image, and wait until
        stable is steady. Idempotent: a stable already on `image` is only waited on."""
        ...

    def scale(self, role: Role, desired_count: int) -> None:
        """Set one service's desired task count and return at once (no waiting: the
        rollout controller watches `healthy_targets` across its ticks)."""
        ...

    def scale_canary(self, desired_count: int) -> None:
        """`scale("canary", desired_count)`."""
        ...

    def healthy_targets(self, roles: Collection[Role]) -> dict[Role, int]:
        """How many targets of each of these target groups the load balancer reports
        healthy now (what it may route to)."""
        ...

    def start_baseline(self, desired_count: int, progress: Progress) -> None:
        """Start `desired_count` baseline tasks on stable's image and restart the canary's
        tasks at the same moment (same age, same warm-up); wait until both are healthy."""
        ...

    def stop_baseline(self) -> None:
        """Scale the baseline service to 0 tasks (its weight must already be 0)."""
        ...


@dataclass(frozen=True)
class RoleCounts:
    """Counts one role served in a window: requests, errors, and per latency
    threshold (in the order asked) how many requests were slower than it."""

    requests: int
    errors: int
    slower_than: tuple[int, ...] = ()


class MetricsSource(Protocol):
    """Per-role counts and latency quantiles for a time window (epoch seconds)."""

    def counts(
        self, start: float, end: float, thresholds_s: Sequence[float] = ()
    ) -> dict[Role, RoleCounts]:
        """Requests, errors (5xx + balancer errors of that group) and latency exceedances."""
        ...

    def quantiles(
        self, role: Role, start: float, end: float, qs: Sequence[float]
    ) -> tuple[float | None, ...]:
        """Latency quantiles in seconds (None where there is no data)."""
        ...


class Progress(Protocol):
    """Where long operations report what they are doing."""

    def update(self, message: str) -> None:
        """Replace the transient status line (spinner text)."""
        ...

    def log(self, message: str) -> None:
        """Print a permanent line (an event worth keeping on screen)."""
        ...


class SilentProgress:
    """A Progress that discards everything (library use, tests)."""

    def update(self, message: str) -> None:
        pass

    def log(self, message: str) -> None:
        pass


# ---- status, following the seed's chain: Task Definition -> Tasks -> ECS Service
# ---- -> Target Group -> ALB Listener -> user


@dataclass(frozen=True)
class TaskDefinitionStatus:
    image: str
    revision: str | None = None
    cpu: str | None = None
    memory: str | None = None
    container_port: int | None = None


@dataclass(frozen=True)
class ServiceStatus:
    name: str
    running: int
    pending: int
    desired: int
    deployment_state: str  # e.g. COMPLETED, IN_PROGRESS, FAILED, crash-looping
    message: str | None = None


@dataclass(frozen=True)
class TargetGroupStatus:
    name: str
    healthy: int = 0
    unhealthy: int = 0
    initial: int = 0
    draining: int = 0
    unused: int = 0


@dataclass(frozen=True)
class TrafficStatus:
    """What one role served over the last `window_seconds`."""

    window_seconds: int
    requests: int
    errors: int
    p50_s: float | None = None
    p95_s: float | None = None
    p99_s: float | None = None

    @property
    def error_rate(self) -> float | None:
        return self.errors / self.requests if self.requests else None


@dataclass(frozen=True)
class RoleStatus:
    task_definition: TaskDefinitionStatus | None
    service: ServiceStatus | None
    target_group: TargetGroupStatus | None
    traffic: TrafficStatus | None = None


@dataclass(frozen=True)
class ListenerStatus:
    url: str
    weights: Weights
    stickiness_seconds: int | None = None
    # The weights the stack (or stored spec) believes in, when they differ from live.
    configured_weights: Weights | None = None

    @property
    def drift(self) -> bool:
        return self.configured_weights is not None and self.configured_weights != self.weights


@dataclass(frozen=True)
class Status:
    target: str
    stack_name: str
    stack_status: str
    listener: ListenerStatus | None
    versions: dict[Role, RoleStatus]
    notes: tuple[str, ...] = field(default=())

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready document; the same shape on both targets."""
        doc = asdict(self)
        if self.listener is not None:
            doc["listener"]["weights"] = self.listener.weights.to_dict()
            cw = self.listener.configured_weights
            doc["listener"]["configured_weights"] = None if cw is None else cw.to_dict()
            doc["listener"]["drift"] = self.listener.drift
        for role, vs in self.versions.items():
            if vs.traffic is not None:
                doc["versions"][role]["traffic"]["error_rate"] = vs.traffic.error_rate
        return doc


def shown_in_status(
    role: Role,
    service: ServiceStatus | None,
    weight: int,
    target_group: TargetGroupStatus | None = None,
) -> bool:
    """Whether a group gets a row in `status`: the seed's two groups always, the baseline
    only while it has tasks, targets or weight (during a rollout).

    >>> idle = ServiceStatus("app-baseline", 0, 0, 0, "COMPLETED")
    >>> shown_in_status("stable", None, 0), shown_in_status("baseline", idle, 0)
    (True, False)
    >>> shown_in_status("baseline", idle, 5)
    True
    >>> shown_in_status("baseline", idle, 0, TargetGroupStatus("tg-baseline", draining=1))
    True
    """
    if role in SEED_GROUPS:
        return True
    busy = service is not None and bool(service.running or service.pending or service.desired)
    targets = target_group is not None and bool(
        target_group.healthy + target_group.unhealthy + target_group.initial + target_group.draining
    )
    return busy or targets or weight > 0


class Target(Protocol):
    """A whole canary stack: its router, workload and metrics, and its lifecycle."""

    name: str
    router: TrafficRouter
    workload: Workload
    metrics: MetricsSource
    routes: TesterRouter

    def deploy(self, spec: ReleaseSpec, progress: Progress) -> None:
        """Create the stack, or update it in place keeping the live weights."""
        ...

    def status(self) -> Status:
        """Everything `canary status` shows, read live."""
        ...

    def delete(self, progress: Progress, *, purge: bool = False) -> None:
        """Tear the stack down (its tester routes too) and wait until it is gone."""
        ...

    def deployed_spec(self) -> ReleaseSpec | None:
        """The spec the last deploy applied, where the target keeps it (local: a deploy
        that names no image keeps the running one); None where it does not (AWS: the
        images are always given, as in the seed)."""
        ...
