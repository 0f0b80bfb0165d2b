"""Listener rules (tester routes): evaluated before the weighted action, on both paths."""

from __future__ import annotations

import asyncio
import random
import re
from dataclasses import dataclass

import pytest

from canary_deploy.backend import Role
from canary_deploy.balancer.metrics import MetricsRecorder
from canary_deploy.balancer.parser import SIMPLE_REQUEST
from canary_deploy.balancer.proxy import ClientConnection, ProxyContext
from canary_deploy.balancer.routing import RegisteredTarget, Router, Stickiness, sticky_token
from canary_deploy.balancer.rules import ListenerRules
from canary_deploy.balancer.upstream import UpstreamConnection
from canary_deploy.routes import RouteMatch
from canary_deploy.routes import TesterRoute as Route  # (not collected as a test class)
from canary_deploy.weights import Weights
from tests.balancer.conftest import FakeTransport


def route(priority: int, kind: str, spec: str, to: Role) -> Route:
    return Route(priority, RouteMatch.parse(kind, spec), to)  # type: ignore[arg-type]


HEADER = route(1, "header", "X-Canary=always", "canary")


@dataclass
class Rig:
    """A client connection before a stable, a canary and a baseline target, each with
    one pooled connection (a group listed in `empty` has no target)."""

    ctx: ProxyContext
    client: ClientConnection
    client_side: FakeTransport
    sides: dict[Role, FakeTransport]
    upstreams: dict[Role, UpstreamConnection]

    def send(self, request: bytes) -> Role | None:
        """The group whose target got the request (None: none did), answered 200."""
        self.client.data_received(request)
        for group, side in self.sides.items():
            if side.data:
                side.take()
                self.upstreams[group].data_received(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
                return group
        return None


def rig(
    loop: asyncio.AbstractEventLoop,
    routes: list[Route],
    weights: Weights = Weights(100, 0),
    *,
    empty: tuple[Role, ...] = (),
    stickiness: Stickiness | None = None,
) -> Rig:
    router = Router(weights, "round_robin")
    ctx = ProxyContext(
        loop,
        router,
        MetricsRecorder(),
        idle_timeout_s=60,
        stickiness=stickiness,
        listen_port=8080,
        rules=ListenerRules(routes),
    )
    sides: dict[Role, FakeTransport] = {}
    upstreams: dict[Role, UpstreamConnection] = {}
    for port, group in enumerate(("stable", "canary", "baseline")):
        if group in empty:
            continue
        target = RegisteredTarget(f"t-{group}", "127.0.0.1", 9001 + port)
        target.state = "healthy"
        router.groups[group].targets[target.target_id] = target
        router.groups[group].refresh()
        upstream = UpstreamConnection(loop, ctx.metrics, target, stickiness)
        sides[group] = FakeTransport()
        upstream.connection_made(sides[group])  # type: ignore[arg-type]
        target.idle.append(upstream)
        upstreams[group] = upstream
    client = ClientConnection(ctx)
    client_side = FakeTransport()
    client.connection_made(client_side)  # type: ignore[arg-type]
    return Rig(ctx, client, client_side, sides, upstreams)


def get(*headers: bytes) -> bytes:
    return b"GET / HTTP/1.1\r\nHost: a\r\n" + b"".join(h + b"\r\n" for h in headers) + b"\r\n"


# ---- matching, as ALB's http-header condition


@pytest.mark.parametrize(
    ("headers", "routed"),
    [
        ([b"X-Canary: always"], True),
        ([b"x-CANARY: always"], True),  # names in any case
        ([b"X-Canary: ALWAYS"], True),  # ALB compares values without case too
        ([b"X-Canary:always  "], True),  # whitespace around the value is not part of it
        ([b"X-Canary: always!"], False),  # the whole value
        ([b"X-Canary: never"], False),
        ([b"X-Canary: never", b"X-Canary: always"], True),  # any occurrence
        ([b"X-Canaryx: always"], False),
        ([], False),
    ],
)
def test_a_header_rule_matches_as_alb_does(
    loop: asyncio.AbstractEventLoop, headers: list[bytes], routed: bool
) -> None:
    r = rig(loop, [HEADER])  # weights 100/0: only the rule reaches the canary
    assert r.send(get(*headers)) == ("canary" if routed else "stable")


@pytest.mark.parametrize(
    ("value", "header", "routed"),
    [
        ("v?-*", b"V2-beta", True),
        ("v?-*", b"v-beta", False),
        ("*", b"anything", True),
        ("a.b", b"axb", False),  # only * and ? are special
    ],
)
def test_wildcards_in_a_header_value_are_albs(
    loop: asyncio.AbstractEventLoop, value: str, header: bytes, routed: bool
) -> None:
    r = rig(loop, [route(1, "header", f"X-Version={value}", "canary")])
    assert r.send(get(b"X-Version: " + header)) == ("canary" if routed else "stable")


@pytest.mark.parametrize(
    ("cookies", "routed"),
    [
        ([b"Cookie: tester=yes"], True),
        ([b"Cookie: a=1; tester=yes"], True),
        ([b"Cookie: tester=yes; a=1"], True),
        ([b"Cookie: a=1; tester=yes; b=2"], True),
        ([b"Cookie: a=1", b"Cookie: tester=yes"], True),
        ([b"Cookie: tester=yess"], False),
        ([b"Cookie: xtester=yes"], False),
        ([b"Cookie: a=tester=yes"], False),
        ([b"Cookie: tester=no"], False),
    ],
)
def test_a_cookie_rule_matches_that_cookie_with_that_value_only(
    loop: asyncio.AbstractEventLoop, cookies: list[bytes], routed: bool
) -> None:
    r = rig(loop, [route(1, "cookie", "tester=yes", "canary")])
    assert r.send(get(*cookies)) == ("canary" if routed else "stable")


def test_rules_are_evaluated_in_priority_order(loop: asyncio.AbstractEventLoop) -> None:
    later = route(2, "header", "X-Who=*", "baseline")
    r = rig(loop, [later, route(1, "header", "X-Who=qa", "canary")])
    assert r.send(get(b"X-Who: qa")) == "canary"
    assert r.send(get(b"X-Who: dev")) == "baseline"


def test_a_rule_beats_the_weights_and_a_sticky_cookie(loop: asyncio.AbstractEventLoop) -> None:
    sticky = Stickiness(60)
    r = rig(
        loop, [route(1, "header", "X-Canary=1", "baseline")], Weights(0, 100), stickiness=sticky
    )
    bound = b"Cookie: AWSALBTG=" + sticky_token("stable")
    assert r.send(get(bound)) == "stable"  # the cookie beats the weights
    assert r.send(get(bound, b"X-Canary: 1")) == "baseline"  # the rule beats both
    assert r.send(get(b"X-Canary: 1")) == "baseline"


def test_a_request_a_rule_routed_gets_no_sticky_cookie(loop: asyncio.AbstractEventLoop) -> None:
    # The rule's forward has one group and no stickiness config (as the tool creates it).
    r = rig(loop, [HEADER], stickiness=Stickiness(60))
    r.send(get(b"X-Canary: always"))
    assert b"Set-Cookie" not in r.client_side.take()
    r.send(get())
    assert b"Set-Cookie: AWSALBTG=" in r.client_side.take()


def test_a_rule_to_an_empty_group_is_a_503_like_alb(loop: asyncio.AbstractEventLoop) -> None:
    r = rig(loop, [route(1, "header", "X-Canary=1", "baseline")], empty=("baseline",))
    assert r.send(get(b"X-Canary: 1")) is None
    assert r.client_side.take().startswith(b"HTTP/1.1 503 ")
    # Booked on the baseline's tester traffic, never on what the judge reads.
    metrics = r.ctx.metrics
    assert metrics.window("tester/baseline", 0, 2e9).balancer_503 == 1
    assert all(c.requests == 0 for c in metrics.counts(0, 2e9).values())


def test_tester_requests_are_not_in_the_judges_counts(loop: asyncio.AbstractEventLoop) -> None:
    r = rig(loop, [HEADER], Weights(50, 50))
    for _ in range(6):
        r.send(get(b"X-Canary: always"))
    for _ in range(4):
        r.send(get())
    counts = r.ctx.metrics.counts(0, 2e9)
    assert (counts["stable"].requests, counts["canary"].requests) == (2, 2)
    assert r.ctx.metrics.tester_requests(0, 2e9) == {"stable": 0, "canary": 6, "baseline": 0}


def test_tester_buckets_survive_an_export_and_import() -> None:
    metrics = MetricsRecorder()
    metrics.record_response("tester/canary", 200, 0.01)
    restored = MetricsRecorder()
    restored.import_buckets(metrics.export_buckets(0))
    assert restored.tester_requests(0, 2e9)["canary"] == 1
    assert restored.counts(0, 2e9)["canary"].requests == 0


# ---- the fast path


def test_with_no_rule_the_fast_path_pattern_is_the_plain_one() -> None:
    rules = ListenerRules()
    assert rules.simple_request == SIMPLE_REQUEST.fullmatch
    rules.set([HEADER])
    assert rules.simple_request(get(b"X-Canary: always")) is None
    assert rules.simple_request(get(b"X-Other: always")) is not None
    rules.set([route(1, "cookie", "t=1", "canary")])  # cookies never take the fast path
    assert rules.simple_request == SIMPLE_REQUEST.fullmatch


def test_rules_changed_live_apply_to_the_next_request_of_an_open_connection(
    loop: asyncio.AbstractEventLoop,
) -> None:
    r = rig(loop, [])
    assert r.send(get(b"X-Canary: always")) == "stable"
    r.ctx.rules.set([HEADER])
    assert r.send(get(b"X-Canary: always")) == "canary"
    r.ctx.rules.set([])
    assert r.send(get(b"X-Canary: always")) == "stable"


_TRACE = re.compile(rb"X-Amzn-Trace-Id: [^\r]*\r\n")
_RULES = [
    HEADER,
    route(2, "header", "X-Team=q?-*", "baseline"),
    route(3, "cookie", "tester=yes", "canary"),
]
_LINES = (
    b"X-Canary: always",
    b"x-canary: ALWAYS",
    b"X-Canary: no",
    b"X-Team: qa-1",
    b"X-TEAM: q-1",
    b"X-Teams: qa-1",
    b"Cookie: tester=yes",
    b"Cookie: a=1; tester=yes",
    b"Accept: */*",
    b"X-Request-Id: 7",
    b"User-Agent: t",
)


def _routed(loop: asyncio.AbstractEventLoop, requests: list[bytes], fast: bool) -> list[object]:
    r = rig(loop, _RULES, Weights(60, 30, 10))
    if not fast:
        r.ctx.rules.simple_request = lambda _: None  # every head through the parser
    seen: list[object] = []
    for request in requests:
        r.client.data_received(request)
        for group, side in r.sides.items():
            if side.data:
                seen.append((group, _TRACE.sub(b"", side.take())))
                r.upstreams[group].data_received(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
        seen.append(r.client_side.take())
    seen.append(sorted(r.ctx.metrics.tester_requests(0, 2e9).items()))
    seen.append({g: c.requests for g, c in r.ctx.metrics.counts(0, 2e9).items()})
    return seen


def test_with_rules_the_fast_path_routes_exactly_as_the_parser_would(
    loop: asyncio.AbstractEventLoop,
) -> None:
    # Generated GET/HEAD requests with and without the rules' headers, in any case:
    # with the fast path and with every head sent to httptools, every request reaches
    # the same group with the same bytes, the client gets the same answers, and the
    # tester and judged counts are the same.
    rng = random.Random(20261130)
    requests = [
        rng.choice((b"GET", b"HEAD"))
        + b" /p HTTP/1.1\r\nHost: a\r\n"
        + b"".join(rng.choice(_LINES) + b"\r\n" for _ in range(rng.randrange(4)))
        + b"\r\n"
        for _ in range(600)
    ]
    fast = _routed(loop, requests, fast=True)
    assert fast == _routed(loop, requests, fast=False)
    groups = [s[0] for s in fast if isinstance(s, tuple)]
    assert {"stable", "canary", "baseline"} <= set(groups)
    assert sum(SIMPLE_REQUEST.fullmatch(q) is not None for q in requests) > 100
