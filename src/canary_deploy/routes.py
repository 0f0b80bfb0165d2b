"""Tester routes: listener rules that send requests carrying a header or a cookie to one
target group, evaluated before the weighted default action (ALB listener rules).

A route's condition is ALB's `http-header` condition: the header name is compared
without regard to case, the value with ALB's rules (case-insensitive, `*` matches any
run of characters, `?` exactly one; a header sent several times matches when any of its
values does). A cookie route is an `http-header` condition on `Cookie` whose values say
"this cookie, with exactly this value, anywhere in the header" (`cookie_patterns`), so
both targets match the same requests. Requests a route matched are tester traffic: they
are counted apart and never reach the judge's counts (they are not a random sample).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from canary_deploy.errors import UsageError
from canary_deploy.weights import Role

GROUPS: tuple[Role, Role, Role] = ("stable", "canary", "baseline")

RouteKind = Literal["header", "cookie"]
# What a request is booked on: its target group, or that group's tester traffic.
TesterBooking = Literal["tester/stable", "tester/canary", "tester/baseline"]
Booking = Role | TesterBooking
TESTER_OF: dict[Role, TesterBooking] = {
    "stable": "tester/stable",
    "canary": "tester/canary",
    "baseline": "tester/baseline",
}
GROUP_OF_TESTER: dict[TesterBooking, Role] = {b: g for g, b in TESTER_OF.items()}
BOOKINGS: tuple[Booking, ...] = (*GROUPS, *TESTER_OF.values())

# ALB's limits: a header name of at most 40 characters, each value at most 128; rule
# priorities 1..50000 (lower is evaluated first).
MAX_NAME_CHARS = 40
MAX_VALUE_CHARS = 128
MAX_PRIORITY = 50_000
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
# Printable ASCII and spaces/tabs inside (what a header value can carry).
_HEADER_VALUE = re.compile(r"[!-~]([\t -~]*[!-~])?")
# RFC 6265 cookie-octets; `*` and `?` are excluded: a cookie value is matched exactly.
_COOKIE_VALUE = re.compile(r"[!#$%&'()+\-./0-9:<=>@A-Z\[\]^_`a-z{|}~]*")
# Headers a route cannot name: ALB refuses Host (a host condition's) and the balancer
# drops, replaces or frames with the others before any rule could see them.
_UNROUTABLE = frozenset(
    {
        "host",
        "connection",
        "keep-alive",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "proxy-authenticate",
        "proxy-authorization",
        "expect",
        "content-length",
        "x-forwarded-for",
        "x-forwarded-proto",
        "x-forwarded-port",
        "x-amzn-trace-id",
    }
)


def group_named(name: str) -> Role:
    """A `--to` value: stable, canary or baseline, or a clear error."""
    for group in GROUPS:
        if name.strip().lower() == group:
            return group
    raise UsageError(
        f"unknown target group {name!r} for --to", hint="use --to stable, canary or baseline"
    )


@dataclass(frozen=True)
class RouteMatch:
    """A route's condition: a header (name, ALB value pattern) or a cookie (name, value)."""

    kind: RouteKind
    name: str
    value: str

    @classmethod
    def parse(cls, kind: RouteKind, spec: str) -> RouteMatch:
        """`NAME=VALUE` as given to `--header` or `--cookie`, checked against ALB's rules.

        >>> RouteMatch.parse("header", "X-Canary=always")
        RouteMatch(kind='header', name='X-Canary', value='always')
        >>> RouteMatch.parse("cookie", " tester = yes ").value
        'yes'
        """
        option = f"--{kind}"
        name, sep, value = spec.partition("=")
        name, value = name.strip(), value.strip()
        example = "X-Canary=always" if kind == "header" else "canary-tester=yes"
        if not sep or not name:
            raise UsageError(
                f"{option} takes NAME=VALUE, got {spec!r}", hint=f"e.g. {option} {example}"
            )
        if not _TOKEN.fullmatch(name) or len(name) > MAX_NAME_CHARS:
            raise UsageError(
                f"{option} name {name!r} is not a valid {kind} name",
                hint=f"letters, digits and !#$%&'*+-.^_`|~, at most {MAX_NAME_CHARS} characters",
            )
        if kind == "header":
            lname = name.lower()
            if lname == "cookie":
                raise UsageError(
                    "route a cookie with --cookie NAME=VALUE", hint="e.g. --cookie tester=yes"
                )
            if lname in _UNROUTABLE:
                raise UsageError(
                    f"a route cannot match the {name} header",
                    hint="the balancer sets, drops or frames with it before rules are "
                    "evaluated (ALB routes Host with a host condition)",
                )
            if not _HEADER_VALUE.fullmatch(value) or len(value) > MAX_VALUE_CHARS:
                raise UsageError(
                    f"{option} value {value!r} is not a header value ALB can match",
                    hint=f"1-{MAX_VALUE_CHARS} printable ASCII characters; * and ? are wildcards",
                )
        elif not value or not _COOKIE_VALUE.fullmatch(value):
            raise UsageError(
                f"{option} value {value!r} is not a cookie value",
                hint="a non-empty cookie value without spaces, quotes, ;, ,, \\, * or ?",
            )
        elif len(name) + len(value) + 4 > MAX_VALUE_CHARS:
            raise UsageError(f"{option} {name}={value} is too long for an ALB condition")
        return cls(kind, name, value)

    @property
    def header_name(self) -> str:
        """The header ALB's condition reads."""
        return self.name if self.kind == "header" else "Cookie"

    def patterns(self) -> tuple[str, ...]:
        """The condition's values, in ALB's wildcard syntax."""
        return (self.value,) if self.kind == "header" else cookie_patterns(self.name, self.value)

    def same_condition(self, other: RouteMatch) -> bool:
        """Both match exactly the same requests (names and values compare as ALB does)."""
        return (self.kind, self.header_name.lower(), self.value.lower()) == (
            other.kind,
            other.header_name.lower(),
            other.value.lower(),
        )

    def __str__(self) -> str:
        return f"--{self.kind} {self.name}={self.value}"


def cookie_patterns(name: str, value: str) -> tuple[str, ...]:
    """The Cookie header values (ALB wildcards) that carry cookie `name` set to `value`:
    alone, first, last or in the middle (cookies are separated by "; ", RFC 6265 4.2.1).
    Four values, four wildcards: within ALB's five of each per rule.

    >>> cookie_patterns("t", "1")
    ('t=1', 't=1;*', '*; t=1', '*; t=1;*')
    """
    pair = f"{name}={value}"
    return (pair, f"{pair};*", f"*; {pair}", f"*; {pair};*")


def glob_regex(pattern: str) -> re.Pattern[bytes]:
    """An ALB condition value as a regex over header bytes: whole value, any case.

    >>> bool(glob_regex("v?-*").fullmatch(b"V2-BETA")), bool(glob_regex("a.b").fullmatch(b"axb"))
    (True, False)
    """
    parts = [b".*" if c == "*" else b"." if c == "?" else re.escape(c.encode()) for c in pattern]
    return re.compile(b"".join(parts), re.IGNORECASE | re.DOTALL)


@dataclass(frozen=True)
class TesterRoute:
    """One listener rule the tool manages: its priority (lower is evaluated first; also
    the route's id), its condition and the target group it forwards to."""

    priority: int
    match: RouteMatch
    to: Role

    def to_dict(self) -> dict[str, Any]:
        return {
            "priority": self.priority,
            "kind": self.match.kind,
            "name": self.match.name,
            "value": self.match.value,
            "to": self.to,
        }

    @classmethod
    def from_dict(cls, doc: Any) -> TesterRoute:
        if not isinstance(doc, dict):
            raise UsageError('a route is {"priority", "kind", "name", "value", "to"}')
        try:
            kind, priority = doc["kind"], int(doc["priority"])
            spec, to = f"{doc['name']}={doc['value']}", str(doc["to"])
        except (KeyError, TypeError, ValueError) as exc:
            raise UsageError(f"invalid route: {exc}") from None
        if kind not in ("header", "cookie"):
            raise UsageError(f"invalid route kind {kind!r}", hint="header or cookie")
        if not 1 <= priority <= MAX_PRIORITY:
            raise UsageError(f"route priority must be 1-{MAX_PRIORITY}, got {priority}")
        return cls(priority, RouteMatch.parse(kind, spec), group_named(to))

    @property
    def booking(self) -> TesterBooking:
        return TESTER_OF[self.to]

    def __str__(self) -> str:
        return f"#{self.priority} {self.match} -> {self.to}"


def routes_from_list(doc: Any) -> list[TesterRoute]:
    """A JSON list of routes, in priority order; priorities must be distinct."""
    if not isinstance(doc, list):
        raise UsageError("routes must be a JSON list")
    routes = sorted((TesterRoute.from_dict(d) for d in doc), key=lambda r: r.priority)
    priorities = [r.priority for r in routes]
    if len(set(priorities)) != len(priorities):
        raise UsageError("two routes have the same priority")
    return routes


def next_priority(taken: Iterable[int], ours: Iterable[int]) -> int:
    """The priority for a new route: after every route of ours (so routes are evaluated
    in the order they were added), and not taken by any rule on the listener.

    >>> next_priority([], []), next_priority([1, 2, 5], [1, 2]), next_priority([3, 4], [])
    (1, 3, 1)
    """
    used = set(taken)
    priority = max(ours, default=0) + 1
    while priority in used:
        priority += 1
    if priority > MAX_PRIORITY:
        raise UsageError(f"no free listener rule priority up to {MAX_PRIORITY}")
    return priority


def add_route(routes: Sequence[TesterRoute], match: RouteMatch, to: Role) -> TesterRoute:
    """The route to add for `match` -> `to`, or a clear error when one exists already
    (two rules with the same condition: the second would never be evaluated)."""
    for route in routes:
        if route.match.same_condition(match):
            same = "already exists" if route.to == to else f"already routes to {route.to}"
            raise UsageError(
                f"route {match} {same} (priority {route.priority})",
                hint=f"`canary route delete {route.priority}` first to change it",
            )
    priorities = [r.priority for r in routes]
    return TesterRoute(next_priority(priorities, priorities), match, to)


def find_route(routes: Sequence[TesterRoute], which: str | RouteMatch) -> TesterRoute:
    """The route a `route delete` names: by priority (its id) or by the same condition."""
    for route in routes:
        if isinstance(which, RouteMatch):
            if route.match.same_condition(which):
                return route
        elif which.strip().lstrip("#") == str(route.priority):
            return route
    shown = which if isinstance(which, RouteMatch) else repr(which)
    listed = ", ".join(str(r) for r in routes) or "none"
    raise UsageError(
        f"no tester route {shown}",
        hint=f"routes now: {listed} (`canary route list`)",
    )


def route_notes(doc: Any) -> list[str]:
    """`status` lines for the daemon's tester-route document (see local.report): each
    route, and what it routed in the window, which the traffic figures leave out."""
    if not isinstance(doc, dict) or not doc.get("routes"):
        return []
    requests = doc.get("tester_requests", {})
    window = doc.get("window_seconds", 60)
    notes = []
    for route in routes_from_list(doc["routes"]):
        notes.append(f"tester route {route} (before the weights)")
    routed = ", ".join(f"{g} {requests.get(g, 0)}" for g in GROUPS if requests.get(g, 0))
    notes.append(
        f"tester requests in the last {window} s: {routed or 'none'} "
        "(routed by rules: not in the traffic figures, never judged)"
    )
    return notes
