"""Tester routes on the local stack, end to end through the CLI: a header pins testers to
a version whatever the weights, their requests are never judged, and the routes live
as long as the stack (daemon and data plane restarts) but not past `delete`."""

from __future__ import annotations

import json
import os
import signal
import time
import urllib.request
from collections import Counter
from collections.abc import Callable

from canary_deploy.local.processes import stack_processes
from tests.local.conftest import LocalStack, wait_for


def answered_by(stack: LocalStack, n: int, headers: dict[str, str] | None = None) -> Counter[str]:
    """Which version answered each of `n` requests to /whoami."""
    seen: Counter[str] = Counter()
    for _ in range(n):
        request = urllib.request.Request(f"{stack.url}/whoami", headers=headers or {})
        with urllib.request.urlopen(request, timeout=10) as response:
            seen[json.loads(response.read())["version"]] += 1
    return seen


def routes(stack: LocalStack) -> list[dict[str, object]]:
    doc: list[dict[str, object]] = stack.ok("route", "list", "-o", "json").json()
    return doc


TESTER = {"X-Canary": "always"}


def test_a_header_pins_testers_to_the_canary_whatever_the_weights_until_deleted(
    new_stack: Callable[[], LocalStack],
) -> None:
    stack = new_stack()
    stack.ok("deploy", "--stable-weight", "100", "--canary-weight", "0")
    since = time.time()
    added = stack.ok("route", "add", "--header", "X-Canary=always", "--to", "canary")
    assert "Added tester route #1 --header X-Canary=always -> canary" in added.stdout
    assert routes(stack) == [
        {"priority": 1, "kind": "header", "name": "X-Canary", "value": "always", "to": "canary"}
    ]
    assert answered_by(stack, 12, TESTER) == {"v2": 12}
    assert answered_by(stack, 12, {"x-canary": "ALWAYS"}) == {"v2": 12}  # as ALB: any case
    assert answered_by(stack, 12) == {"v1": 12}  # without it: the weights (100/0)

    # Tester requests are counted apart: the judge's counts never see them.
    counts = stack.admin("GET", f"/counts?start={since - 1}&end={time.time() + 1}")
    assert counts["canary"]["requests"] == 0 and counts["stable"]["requests"] == 12, counts
    notes = "\n".join(stack.status()["notes"])
    assert "tester route #1 --header X-Canary=always -> canary" in notes
    assert "tester requests in the last 60 s: canary 24" in notes

    # A weight change never touches the rule, and without the header the split holds.
    stack.ok("set-weights", "0", "100")
    assert answered_by(stack, 6) == {"v2": 6}
    stack.ok("route", "add", "--cookie", "tester=stable", "--to", "stable")
    assert answered_by(stack, 6, {"Cookie": "a=1; tester=stable"}) == {"v1": 6}
    stack.ok("set-weights", "50", "50")
    assert [r["priority"] for r in routes(stack)] == [1, 2]
    assert answered_by(stack, 10, TESTER) == {"v2": 10}
    assert answered_by(stack, 10) == {"v1": 5, "v2": 5}

    # The rules survive the daemon's death (the data plane kept them, the store has them)...
    daemon = stack.paths.daemon_pid()
    assert daemon is not None
    os.kill(daemon, signal.SIGKILL)
    wait_for(lambda: stack.paths.daemon_pid() not in (None, daemon), 30, "a new daemon")
    assert [r["priority"] for r in routes(stack)] == [1, 2]
    assert answered_by(stack, 6, TESTER) == {"v2": 6}
    # ... and the data plane's: a restarted stack restores them with the weights.
    plane = stack.paths.dataplane_pid()
    assert plane is not None
    os.kill(plane, signal.SIGKILL)
    wait_for(lambda: not stack_processes(stack.paths.marker), 15, "the stack's processes to die")
    stack.ok("set-weights", "100", "0")  # restarts the stack
    assert [r["priority"] for r in routes(stack)] == [1, 2]
    assert answered_by(stack, 6, TESTER) == {"v2": 6}

    # Deleted by the same condition (or by id): requests follow the weights again.
    deleted = stack.ok("route", "delete", "--header", "x-canary=ALWAYS")
    assert "Deleted tester route #1" in deleted.stdout
    assert answered_by(stack, 6, TESTER) == {"v1": 6}
    stack.ok("route", "delete", "2")
    assert stack.ok("route", "list").stdout.startswith("No tester routes")

    # `delete` removes them with the stack: a new deploy starts with none.
    stack.ok("route", "add", "--header", "X-Canary=always", "--to", "canary")
    stack.ok("delete", "--yes")
    stack.ok("deploy")
    assert routes(stack) == []


def test_route_mistakes_get_clear_errors(new_stack: Callable[[], LocalStack]) -> None:
    stack = new_stack()
    stack.ok("deploy")
    stack.ok("route", "add", "--header", "X-Canary=always", "--to", "canary")
    cases = [
        (("route", "add", "--header", "X-Canary", "--to", "canary"), "--header takes NAME=VALUE"),
        (("route", "add", "--header", "X-A=1", "--to", "prod"), "unknown target group 'prod'"),
        (("route", "add", "--header", "X-A=1"), "route add needs --to"),
        (("route", "add", "--to", "canary"), "needs --header NAME=VALUE or --cookie"),
        (("route", "add", "--header", "Host=a", "--to", "canary"), "cannot match the Host"),
        (
            ("route", "add", "--header", "x-canary=ALWAYS", "--to", "baseline"),
            "route --header x-canary=ALWAYS already routes to canary (priority 1)",
        ),
        (("route", "delete", "7"), "no tester route '7'"),
        (("route", "delete", "--header", "X-Other=1"), "no tester route --header X-Other=1"),
        (("route", "delete"), "by its id or by its --header/--cookie"),
    ]
    for args, message in cases:
        result = stack.run(*args)
        assert result.exit_code == 2, (args, result)
        assert message in result.stderr, (args, result.stderr)
        assert "Traceback" not in result.stderr
    assert len(routes(stack)) == 1
