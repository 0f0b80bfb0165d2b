"""Who may reach the dashboard and who may steer from it."""

from __future__ import annotations

import pytest

from canary_deploy.errors import UsageError
from canary_deploy.web.access import Access, check_bind

TOKEN = "a-long-enough-secret-token"


def test_loopback_is_served_without_asking() -> None:
    for host in ("127.0.0.1", "localhost", "::1"):
        check_bind(host, allow_remote=False, token=None)


def test_a_non_loopback_bind_needs_allow_remote_and_a_token() -> None:
    with pytest.raises(UsageError) as refused:
        check_bind("0.0.0.0", allow_remote=False, token=TOKEN)
    assert "--allow-remote" in (refused.value.hint or "")
    with pytest.raises(UsageError, match="needs a token"):
        check_bind("0.0.0.0", allow_remote=True, token=None)
    with pytest.raises(UsageError, match="too short"):
        check_bind("0.0.0.0", allow_remote=True, token="short")
    check_bind("0.0.0.0", allow_remote=True, token=TOKEN)


def test_a_loopback_dashboard_answers_only_to_loopback_names_on_its_port() -> None:
    access = Access("127.0.0.1", 9000)
    assert access.host_allowed("localhost:9000") and access.host_allowed("[::1]:9000")
    assert not access.host_allowed("attacker.example:9000")  # DNS rebinding
    assert not access.host_allowed("127.0.0.1:9001")
    assert Access("0.0.0.0", 9000, access_token=TOKEN).host_allowed("box.lan:9000")


def test_a_remote_dashboard_takes_its_token_from_the_link_a_cookie_or_a_bearer() -> None:
    access = Access("0.0.0.0", 9000, access_token=TOKEN)
    assert access.token_ok({}, f"token={TOKEN}")
    assert access.token_ok({"cookie": f"canary_dashboard={TOKEN}"}, "")
    assert access.token_ok({"authorization": f"Bearer {TOKEN}"}, "")
    assert not access.token_ok({}, "")
    assert not access.token_ok({"cookie": "canary_dashboard=guess"}, "token=guess")
    assert Access("127.0.0.1", 9000).token_ok({}, "")


def _headers(access: Access, **changes: str | None) -> dict[str, str]:
    headers = {
        "host": "127.0.0.1:9000",
        "origin": "http://127.0.0.1:9000",
        "sec-fetch-site": "same-origin",
        "x-canary-token": access.session_token,
    }
    for key, value in changes.items():
        name = key.replace("_", "-")
        if value is None:
            del headers[name]
        else:
            headers[name] = value
    return headers


def test_steering_needs_control_the_own_origin_and_the_session_token() -> None:
    readonly = Access("127.0.0.1", 9000)
    assert "read-only" in (readonly.steering_refusal(_headers(readonly)) or "")
    access = Access("127.0.0.1", 9000, allow_control=True)
    assert access.steering_refusal(_headers(access)) is None
    refusals = {
        "other origin": _headers(access, origin="http://evil.example"),
        "no origin": _headers(access, origin=None),
        "cross-site": _headers(access, sec_fetch_site="cross-site"),
        "no token": _headers(access, x_canary_token=None),
        "wrong token": _headers(access, x_canary_token="guess"),
    }
    for what, headers in refusals.items():
        assert access.steering_refusal(headers) is not None, what


def test_each_run_of_the_server_has_its_own_session_token() -> None:
    assert Access("127.0.0.1", 1).session_token != Access("127.0.0.1", 1).session_token
