"""The server without a browser: the guard in front of every route, the steering endpoint's
refusals, and the pages filled from the reader (hand-written fakes, no sockets)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.testclient import TestClient

from canary_deploy.config import Settings, load_settings
from canary_deploy.errors import UsageError
from canary_deploy.rollout import service
from canary_deploy.rollout.plan import RolloutPlan, Step
from canary_deploy.rollout.store import RolloutStore
from canary_deploy.web import actions
from canary_deploy.web.access import Access
from canary_deploy.web.run import background
from canary_deploy.web.server import Dashboard
from canary_deploy.web.snapshot import PACES, Reader
from tests.web.fakes import FakeTarget, SteadyMetrics

PORT = 9000
OWN = f"http://127.0.0.1:{PORT}"
TOKEN = "a-long-enough-secret-token"


def _settings(tmp_path: Path) -> Settings:
    return load_settings(
        {"local.state_dir": tmp_path / ".canary", "stack_name": "demo", "target": "local"},
        env={},
        config_file=tmp_path / "absent.toml",
    )


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Callable[..., TestClient]]:
    """A test client of a dashboard over fakes, its lifespan (the reader) running."""
    clients: list[TestClient] = []

    def start(
        access: Access, act: Callable[[Settings, Any], actions.Done] | None = None
    ) -> TestClient:
        settings = _settings(tmp_path)
        target = FakeTarget(SteadyMetrics({"stable": 19.0, "canary": 1.0}))
        reader = Reader(target, lambda: service.existing_store(settings), PACES["local"])  # type: ignore[arg-type]
        dashboard = Dashboard(
            settings, access, reader, PACES["local"], act=act or actions.carry_out
        )
        client = TestClient(dashboard.app(), base_url=OWN)
        client.__enter__()
        clients.append(client)
        return client

    try:
        yield start
    finally:
        for client in clients:
            client.__exit__(None, None, None)


def _read(client: TestClient, path: str = "/", **kwargs: Any) -> str:
    """The page once the reader has filled it."""
    deadline = time.monotonic() + 10
    while True:
        page = client.get(path, **kwargs)
        if "Listener" in page.text or time.monotonic() > deadline:
            return page.text
        time.sleep(0.05)


def test_the_page_shows_the_chain_and_the_pace_and_forbids_framing(
    serve: Callable[..., TestClient],
) -> None:
    client = serve(Access("127.0.0.1", PORT))
    html = _read(client)
    assert 'class="weights">95/5<' in html and "app:v1" in html and "2/2 running" in html
    assert "Live from the local balancer" in html
    assert 'name="canary-session"' not in html  # read-only: no token to steal
    headers = client.get("/").headers
    assert headers["x-frame-options"] == "DENY"
    assert "frame-ancestors 'none'" in headers["content-security-policy"]


def test_a_host_that_is_not_this_server_is_refused(serve: Callable[..., TestClient]) -> None:
    client = serve(Access("127.0.0.1", PORT))
    assert client.get("/", headers={"host": "rebound.example"}).status_code == 421
    assert client.get("/static/dashboard.js").status_code == 200


def test_a_remote_dashboard_needs_its_token_then_keeps_it_in_a_cookie(
    serve: Callable[..., TestClient],
) -> None:
    client = serve(Access("0.0.0.0", PORT, access_token=TOKEN))
    client.cookies.clear()
    assert client.get("/").status_code == 401
    first = client.get(f"/?token={TOKEN}")
    assert first.status_code == 200 and "HttpOnly" in first.headers["set-cookie"]
    assert client.get("/").status_code == 200  # the cookie


def _post(client: TestClient, access: Access, body: Any, **headers: str) -> Any:
    sent = {"origin": OWN, "x-canary-token": access.session_token, **headers}
    return client.post("/api/actions", json=body, headers=sent)


def test_steering_is_refused_read_only_cross_origin_or_without_the_token(
    serve: Callable[..., TestClient],
) -> None:
    calls: list[Any] = []

    def act(settings: Settings, body: Any) -> actions.Done:
        calls.append(body)
        return actions.Done("done", {})

    readonly = Access("127.0.0.1", PORT)
    client = serve(readonly, act)
    answer = _post(client, readonly, {"action": "pause"})
    assert answer.status_code == 403 and "read-only" in answer.json()["error"]
    access = Access("127.0.0.1", PORT, allow_control=True)
    client = serve(access, act)
    assert (
        _post(client, access, {"action": "pause"}, origin="http://evil.example").status_code == 403
    )
    assert _post(client, access, {"action": "pause"}, **{"x-canary-token": "x"}).status_code == 403
    text = client.post(
        "/api/actions",
        content=b'{"action": "pause"}',
        headers={
            "origin": OWN,
            "x-canary-token": access.session_token,
            "content-type": "text/plain",
        },
    )
    assert text.status_code == 415
    assert calls == []
    assert _post(client, access, {"action": "pause"}).json() == {
        "ok": True,
        "message": "done",
        "result": {},
    }
    assert calls == [{"action": "pause"}]


def test_a_refused_action_says_why_and_what_to_do(serve: Callable[..., TestClient]) -> None:
    def act(settings: Settings, body: Any) -> actions.Done:
        raise UsageError("rollout #3 is running and owns the weights", hint="pause it first")

    access = Access("127.0.0.1", PORT, allow_control=True)
    answer = _post(
        serve(access, act), access, {"action": "set_weights", "stable": 0, "canary": 100}
    )
    assert answer.status_code == 409
    assert answer.json() == {
        "ok": False, "error": "rollout #3 is running and owns the weights", "hint": "pause it first"
    }  # fmt: skip


def test_actions_are_recorded_as_sent_from_the_dashboard(tmp_path: Path) -> None:
    assert actions.actor().endswith(" (dashboard)")
    with pytest.raises(UsageError, match="unknown action"):
        actions.carry_out(_settings(tmp_path), {"action": "drop_tables"})


def test_a_rollout_has_its_own_page(tmp_path: Path, serve: Callable[..., TestClient]) -> None:
    settings = _settings(tmp_path)
    store = RolloutStore(service.store_path(settings), "demo")
    plan = RolloutPlan((Step(10, 1, 2),), baseline=False)
    r = store.create(plan, {}, now=time.time(), canary_image="app:v2", actor="alice")
    store.close()
    client = serve(Access("127.0.0.1", PORT))
    page = client.get(f"/rollouts/{r.id}")
    assert page.status_code == 200 and "rollout started: canary 10%" in page.text
    assert client.get("/rollouts/99").status_code == 404
    assert f'data-rollout="{r.id}"' in _read(client)


def test_the_dashboard_can_run_beside_another_command_and_stops_with_it(tmp_path: Path) -> None:
    with background(_settings(tmp_path)) as url:
        deadline = time.monotonic() + 10
        while "no local stack" not in (page := httpx.get(url).text):
            assert time.monotonic() < deadline, page
            time.sleep(0.05)
    with pytest.raises(httpx.ConnectError):
        httpx.get(url)
