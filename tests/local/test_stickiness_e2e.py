"""Stickiness against a rollback, end to end: a client bound to the canary by its AWSALBTG
cookie leaves it at the rollback (the balancer gives the cookie precedence over the
weights, as ALB does, so the rollback must turn stickiness off in the same change)."""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Callable
from email.utils import parsedate_to_datetime

from tests.local.conftest import LocalStack


def whoami(stack: LocalStack, cookie: str | None = None) -> tuple[str, str | None]:
    """Which version answered, and the AWSALBTG cookie the balancer set (if any)."""
    request = urllib.request.Request(f"{stack.url}/whoami")
    if cookie is not None:
        request.add_header("Cookie", cookie)
    with urllib.request.urlopen(request, timeout=10) as response:
        version = json.loads(response.read())["version"]
        set_cookie = response.headers.get("Set-Cookie")
    return version, set_cookie


def test_a_client_pinned_to_the_canary_leaves_it_at_the_rollback_and_binds_again_after(
    new_stack: Callable[[], LocalStack],
) -> None:
    stack = new_stack()
    stack.ok("deploy", "--stickiness", "600")
    stack.ok("set-weights", "50", "50")
    cookie = pinned_to_canary(stack)
    assert {whoami(stack, cookie)[0] for _ in range(10)} == {"v2"}  # pinned

    stack.ok("rollback")
    version, set_cookie = whoami(stack, cookie)
    assert version == "v1", "the sticky client still reached the canary after the rollback"
    assert set_cookie is None  # no new binding while stickiness is off
    assert {whoami(stack, cookie)[0] for _ in range(10)} == {"v1"}
    events = [e["message"] for e in stack.admin("GET", "/events") if e["kind"] == "weights"]
    assert events[-2:] == ["set to 50/50, stickiness 600 s", "set to 100/0, stickiness off"]

    # The next split gives both versions weight: stickiness is back with the configured
    # duration (600 s from the spec, not whatever the listener had last).
    stack.ok("set-weights", "95", "5")
    version, set_cookie = whoami(stack, cookie)
    assert version == "v2" and set_cookie is not None
    expires = set_cookie.split("Expires=", 1)[1].split(";", 1)[0]
    assert 590 <= parsedate_to_datetime(expires).timestamp() - time.time() <= 601


def pinned_to_canary(stack: LocalStack) -> str:
    """An AWSALBTG cookie that binds to the canary (the split must give it weight)."""
    for _ in range(100):
        version, set_cookie = whoami(stack)
        if version == "v2" and set_cookie is not None:
            return set_cookie.split(";")[0]
    raise AssertionError("no request reached the canary")


def test_a_daemon_restarted_after_a_rollback_starts_with_stickiness_off(
    new_stack: Callable[[], LocalStack],
) -> None:
    stack = new_stack()
    stack.ok("deploy", "--stickiness", "600")
    stack.ok("set-weights", "50", "50")
    cookie = pinned_to_canary(stack)
    stack.ok("rollback")
    pid = stack.paths.daemon_pid()
    # A new stickiness duration restarts the daemon; it comes back at the stored 100/0.
    stack.ok("deploy", "--stickiness", "700")
    assert stack.paths.daemon_pid() not in (None, pid)
    assert {whoami(stack, cookie)[0] for _ in range(10)} == {"v1"}
    stack.ok("set-weights", "95", "5")
    version, set_cookie = whoami(stack, cookie)
    assert version == "v2" and set_cookie is not None
    expires = set_cookie.split("Expires=", 1)[1].split(";", 1)[0]
    assert 690 <= parsedate_to_datetime(expires).timestamp() - time.time() <= 701
