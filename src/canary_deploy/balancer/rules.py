"""The listener's rules (tester routes), evaluated before the weighted default action.

The fast path never looks at a header, so while rules exist its pattern also refuses
any head carrying a header a rule reads (`simple_request`, rebuilt when the rules
change): those requests take the parser, which calls `match`. With no rule the pattern
is the plain one and nothing else runs per request.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

from canary_deploy.balancer.parser import SIMPLE_REQUEST, simple_request_pattern
from canary_deploy.routes import TesterBooking, TesterRoute, glob_regex


class _Compiled:
    """One rule as the parser path evaluates it."""

    __slots__ = ("booking", "header", "patterns")

    def __init__(self, route: TesterRoute) -> None:
        self.header = route.match.header_name.lower().encode()
        self.patterns = tuple(glob_regex(p) for p in route.match.patterns())
        self.booking: TesterBooking = route.booking


class ListenerRules:
    """The rules of one listener, changed in place (connections keep a reference)."""

    __slots__ = ("_compiled", "routes", "simple_request")

    def __init__(self, routes: Sequence[TesterRoute] = ()) -> None:
        self.routes: tuple[TesterRoute, ...] = ()
        self._compiled: tuple[_Compiled, ...] = ()
        # The fast path's test of a whole head (a compiled pattern's bound fullmatch).
        self.simple_request: Callable[[bytes], re.Match[bytes] | None] = SIMPLE_REQUEST.fullmatch
        self.set(routes)

    def set(self, routes: Sequence[TesterRoute]) -> None:
        """Replace every rule; effective for the next request."""
        ordered = tuple(sorted(routes, key=lambda r: r.priority))
        compiled = tuple(_Compiled(r) for r in ordered)
        names = {c.header for c in compiled}
        pattern = simple_request_pattern(names) if names else SIMPLE_REQUEST
        self._compiled = compiled
        self.simple_request = pattern.fullmatch
        self.routes = ordered

    def match(self, headers: Sequence[tuple[bytes, bytes]]) -> TesterBooking | None:
        """The booking of the first rule (by priority) the request's headers satisfy: a
        header sent several times matches when any of its values does (as on ALB)."""
        # llhttp keeps whitespace after a value; it is not part of it (RFC 9110 5.5).
        lowered = [(name.lower(), value.rstrip(b" \t")) for name, value in headers]
        for rule in self._compiled:
            for name, value in lowered:
                if name == rule.header and any(p.fullmatch(value) for p in rule.patterns):
                    return rule.booking
        return None
