"""The balancer's admin API: one typed request and response per route, read and written
by the same code on the server (module-level handlers) and in the client
(`BalancerAdmin`). The transport, HTTP/1.1 + JSON on a unix socket, is `admin_http`'s."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlencode

from canary_deploy.backend import GROUPS, Role, RoleCounts
from canary_deploy.balancer.admin_http import (
    AdminClient as AdminClient,  # re-exported: the socket's client and server live there
)
from canary_deploy.balancer.admin_http import AdminError as AdminError
from canary_deploy.balancer.admin_http import AdminServer as AdminServer
from canary_deploy.balancer.admin_http import Handler as Handler
from canary_deploy.balancer.admin_http import IfTaken
from canary_deploy.balancer.config import TargetHealth
from canary_deploy.balancer.metrics import WindowStats
from canary_deploy.balancer.prometheus import prometheus_text
from canary_deploy.errors import UsageError
from canary_deploy.routes import TesterRoute, routes_from_list
from canary_deploy.weights import Weights

if TYPE_CHECKING:
    from canary_deploy.balancer.server import Balancer

DEFAULT_QS = (0.5, 0.95, 0.99)


def group_of(name: object, *, status: int = 400) -> Role:
    """A target group named in a request (body, query or path), or a clear error."""
    for group in GROUPS:
        if name == group:
            return group
    raise AdminError(
        status, f"unknown target group {name!r}", hint="use stable, canary or baseline"
    )


def weights_from_body(body: Any) -> Weights:
    """The body of `PUT /weights`: {"stable": S, "canary": C} and an optional
    "baseline": B (0 when absent); integers (or integer strings) summing to 100."""
    if not isinstance(body, dict) or not {"stable", "canary"} <= body.keys():
        raise UsageError('weights need a JSON body {"stable": S, "canary": C, "baseline": B}')
    for name in sorted(body, key=str):
        group_of(name)
    values: list[int] = []
    for name in GROUPS:
        raw = body.get(name, 0)
        if isinstance(raw, str) and raw.strip().lstrip("-").isdigit():
            raw = int(raw)
        if isinstance(raw, bool) or not isinstance(raw, int):
            raise UsageError(f"{name} weight must be an integer, got {raw!r}")
        values.append(raw)
    return Weights(*values)


def _number(params: dict[str, str], name: str, default: float | None = None) -> float:
    raw = params.get(name)
    if raw is None:
        if default is None:
            raise UsageError(f"query parameter {name!r} is required")
        return default
    try:
        return float(raw)
    except ValueError:
        raise UsageError(f"{name} must be a number, got {raw!r}") from None


def _numbers(params: dict[str, str], name: str) -> tuple[float, ...]:
    raw = params.get(name, "")
    try:
        return tuple(float(x) for x in raw.split(",") if x.strip())
    except ValueError:
        raise UsageError(f"{name} must be comma-separated numbers, got {raw!r}") from None


@dataclass(frozen=True)
class TargetRegistration:
    """`POST /targets`: register a target in a group."""

    group: Role
    target_id: str
    port: int
    host: str = "127.0.0.1"

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, body: Any) -> TargetRegistration:
        if not isinstance(body, dict):
            raise UsageError('body must be {"group", "target_id", "host", "port"}')
        try:
            group, target_id = body["group"], str(body["target_id"])
            host, port = str(body.get("host", "127.0.0.1")), int(body["port"])
        except (KeyError, TypeError, ValueError) as exc:
            raise UsageError(f"invalid target: {exc}") from None
        return cls(group_of(group), target_id, port, host)


@dataclass(frozen=True)
class Deregistration:
    """`DELETE /targets/{group}/{id}?delay_s=`: drain a target (the group's own delay
    when `delay_s` is None). The response is the same record."""

    group: Role
    target_id: str
    delay_s: float | None = None

    def path(self) -> str:
        query = "" if self.delay_s is None else "?" + urlencode({"delay_s": self.delay_s})
        return f"/targets/{self.group}/{quote(self.target_id, safe='')}{query}"

    @classmethod
    def from_params(cls, params: dict[str, str]) -> Deregistration:
        delay = _number(params, "delay_s") if "delay_s" in params else None
        return cls(group_of(params["group"], status=404), params["id"], delay)

    def to_json(self) -> dict[str, Any]:
        return {"deregistered": self.target_id, "group": self.group}


@dataclass(frozen=True)
class Window:
    """`GET /counts?start=&end=&thresholds=`: a time window (epoch seconds) and the
    latency thresholds to count requests over."""

    start: float
    end: float
    thresholds_s: tuple[float, ...] = ()

    def query(self) -> str:
        thresholds = ",".join(map(str, self.thresholds_s))
        return urlencode({"start": self.start, "end": self.end, "thresholds": thresholds})

    @classmethod
    def from_params(cls, params: dict[str, str]) -> Window:
        start, end = _number(params, "start"), _number(params, "end")
        return cls(start, end, _numbers(params, "thresholds"))


@dataclass(frozen=True)
class QuantilesQuery:
    """`GET /quantiles?version=&start=&end=&qs=`: a group's latency quantiles in a window."""

    version: Role
    start: float
    end: float
    qs: tuple[float, ...] = DEFAULT_QS

    def query(self) -> str:
        qs = ",".join(map(str, self.qs))
        return urlencode({"version": self.version, "start": self.start, "end": self.end, "qs": qs})

    @classmethod
    def from_params(cls, params: dict[str, str]) -> QuantilesQuery:
        role = group_of(params.get("version", "canary"))
        start, end = _number(params, "start"), _number(params, "end")
        return cls(role, start, end, _numbers(params, "qs") or DEFAULT_QS)


def targets_to_json(targets: dict[Role, list[TargetHealth]]) -> dict[str, Any]:
    return {group: [asdict(t) for t in health] for group, health in targets.items()}


def targets_from_json(doc: dict[str, Any]) -> dict[Role, list[TargetHealth]]:
    return {group_of(g): [TargetHealth(**t) for t in ts] for g, ts in doc.items()}


def counts_to_json(counts: dict[Role, RoleCounts]) -> dict[str, Any]:
    return {group: asdict(c) for group, c in counts.items()}


def counts_from_json(doc: dict[str, Any]) -> dict[Role, RoleCounts]:
    return {
        group_of(g): RoleCounts(c["requests"], c["errors"], tuple(c["slower_than"]))
        for g, c in doc.items()
    }


def totals_to_json(totals: dict[Role, WindowStats]) -> dict[str, Any]:
    return {group: asdict(stats) for group, stats in totals.items()}


def totals_from_json(doc: dict[str, Any]) -> dict[Role, WindowStats]:
    out: dict[Role, WindowStats] = {}
    for group, stats in doc.items():
        histogram = {int(i): int(n) for i, n in stats.get("histogram", {}).items()}
        out[group_of(group)] = WindowStats(**{**stats, "histogram": histogram})
    return out


# ---- the handlers: (balancer, JSON body, query and path parameters) -> JSON or text


async def get_weights(balancer: Balancer, body: Any, params: dict[str, str]) -> Any:
    return balancer.get_weights().to_dict()


async def put_weights(balancer: Balancer, body: Any, params: dict[str, str]) -> Any:
    balancer.set_weights(weights_from_body(body))
    return balancer.get_weights().to_dict()


async def get_targets(balancer: Balancer, body: Any, params: dict[str, str]) -> Any:
    return targets_to_json(balancer.target_health())


async def post_targets(balancer: Balancer, body: Any, params: dict[str, str]) -> Any:
    target = TargetRegistration.from_json(body)
    balancer.register_target(target.group, target.target_id, target.host, target.port)
    return targets_to_json(balancer.target_health())


async def delete_target(balancer: Balancer, body: Any, params: dict[str, str]) -> Any:
    request = Deregistration.from_params(params)
    await balancer.deregister_target(request.group, request.target_id, delay_s=request.delay_s)
    return request.to_json()


async def get_metrics(balancer: Balancer, body: Any, params: dict[str, str]) -> Any:
    return prometheus_text(balancer.metrics.totals(), balancer.metrics.rejected)


async def get_counts(balancer: Balancer, body: Any, params: dict[str, str]) -> Any:
    window = Window.from_params(params)
    return counts_to_json(balancer.metrics.counts(window.start, window.end, window.thresholds_s))


async def get_quantiles(balancer: Balancer, body: Any, params: dict[str, str]) -> Any:
    q = QuantilesQuery.from_params(params)
    values = balancer.metrics.quantiles(q.version, q.start, q.end, q.qs)
    return {"version": q.version, "qs": list(q.qs), "quantiles": list(values)}


async def get_totals(balancer: Balancer, body: Any, params: dict[str, str]) -> Any:
    return totals_to_json(balancer.metrics.totals())


async def get_buckets(balancer: Balancer, body: Any, params: dict[str, str]) -> Any:
    return balancer.metrics.export_buckets(_number(params, "since", 0.0))


async def get_rejections(balancer: Balancer, body: Any, params: dict[str, str]) -> Any:
    return balancer.metrics.rejections()


async def get_rules(balancer: Balancer, body: Any, params: dict[str, str]) -> Any:
    return [r.to_dict() for r in balancer.get_rules()]


async def put_rules(balancer: Balancer, body: Any, params: dict[str, str]) -> Any:
    """Replace the listener's rules: a JSON list of routes (see routes.TesterRoute)."""
    balancer.set_rules(routes_from_list(body))
    return [r.to_dict() for r in balancer.get_rules()]


async def get_tester_requests(balancer: Balancer, body: Any, params: dict[str, str]) -> Any:
    """Requests the rules routed to each group in a window (never in /counts)."""
    window = Window.from_params(params)
    return balancer.metrics.tester_requests(window.start, window.end)


BalancerHandler = Callable[["Balancer", Any, dict[str, str]], Awaitable[Any]]
ROUTES: tuple[tuple[str, str, BalancerHandler], ...] = (
    ("GET", "/weights", get_weights),
    ("PUT", "/weights", put_weights),
    ("GET", "/targets", get_targets),
    ("POST", "/targets", post_targets),
    ("DELETE", "/targets/{group}/{id}", delete_target),
    ("GET", "/metrics", get_metrics),
    ("GET", "/counts", get_counts),
    ("GET", "/quantiles", get_quantiles),
    ("GET", "/totals", get_totals),
    ("GET", "/buckets", get_buckets),
    ("GET", "/rejections", get_rejections),
    ("GET", "/rules", get_rules),
    ("PUT", "/rules", put_rules),
    ("GET", "/tester-requests", get_tester_requests),
)


def balancer_routes(
    server: AdminServer, balancer: Balancer, *, if_taken: IfTaken = "raise"
) -> None:
    """Register the balancer's admin routes on `server`: weights, targets, metrics.

    An application that embeds the balancer overrides a route explicitly, by adding its
    own afterwards with `if_taken="replace"`; a route it added before is refused (the
    default) or kept (`if_taken="keep"`).
    """
    for method, path, handler in ROUTES:
        server.add_route(method, path, functools.partial(handler, balancer), if_taken=if_taken)


class BalancerAdmin:
    """The balancer's admin API from a program: the routes' typed requests and responses
    over an `AdminClient`."""

    def __init__(self, client: AdminClient) -> None:
        self.client = client

    def weights(self) -> Weights:
        return Weights.from_dict(self.client.request("GET", "/weights"))

    def set_weights(self, weights: Weights) -> Weights:
        return Weights.from_dict(self.client.request("PUT", "/weights", weights.to_dict()))

    def targets(self) -> dict[Role, list[TargetHealth]]:
        return targets_from_json(self.client.request("GET", "/targets"))

    def register(self, target: TargetRegistration) -> dict[Role, list[TargetHealth]]:
        return targets_from_json(self.client.request("POST", "/targets", target.to_json()))

    def deregister(self, request: Deregistration) -> None:
        self.client.request("DELETE", request.path())

    def counts(self, window: Window) -> dict[Role, RoleCounts]:
        return counts_from_json(self.client.request("GET", f"/counts?{window.query()}"))

    def quantiles(self, query: QuantilesQuery) -> tuple[float | None, ...]:
        doc = self.client.request("GET", f"/quantiles?{query.query()}")
        return tuple(doc["quantiles"])

    def rejections(self) -> dict[str, int]:
        return dict(self.client.request("GET", "/rejections"))

    def rules(self) -> list[TesterRoute]:
        return routes_from_list(self.client.request("GET", "/rules"))

    def set_rules(self, routes: list[TesterRoute]) -> list[TesterRoute]:
        doc = self.client.request("PUT", "/rules", [r.to_dict() for r in routes])
        return routes_from_list(doc)

    def metrics_text(self) -> str:
        return str(self.client.request("GET", "/metrics"))
