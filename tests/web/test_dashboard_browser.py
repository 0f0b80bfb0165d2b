"""The dashboard in a real browser (headless Debian Chromium via Playwright) against a real
local stack under load: the chain and charts show live numbers, a rollout's timeline
advances and its verdict appears with the evidence, steering works only when allowed,
and another site's POST is refused."""

from __future__ import annotations

import http.server
import re
import threading
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from playwright.sync_api import Page, expect

from tests.local.conftest import LocalStack
from tests.web.conftest import ARTIFACTS, Dashboard, start_dashboard, start_load

pytestmark = pytest.mark.integration

# A rollout that holds its first step (60 s at least) unless steered.
HELD = ("--steps", "10,50,100", "--min-duration", "60s", "--max-duration", "120s",
        "--interval", "1s", "--no-baseline")  # fmt: skip


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    """One stack (v1 x2 stable, v2 x1 canary, 95/5) under a steady load."""
    stack = LocalStack(tmp_path_factory.mktemp("dashboard"))
    load = None
    try:
        stack.ok("deploy")
        load = start_load(stack, rate=150, seconds=600)
        yield stack
    finally:
        if load is not None:
            load.stop()
        stack.stop_everything()


@pytest.fixture(scope="module")
def readonly(stack: LocalStack) -> Iterator[Dashboard]:
    d = start_dashboard(stack)
    try:
        yield d
    finally:
        d.stop()


@pytest.fixture(scope="module")
def control(stack: LocalStack) -> Iterator[Dashboard]:
    d = start_dashboard(stack, "--allow-control")
    try:
        yield d
    finally:
        d.stop()


def _open(page: Page, url: str) -> Page:
    page.goto(url)
    expect(page.locator("#connection")).to_have_attribute("data-state", "live")
    return page


def _latest_above_zero(page: Page, chart: str, version: str) -> None:
    """Wait until a chart's legend shows a number above 0 for `version`."""
    page.wait_for_function(
        """([chart, version]) => {
            const key = document.querySelector(
                `[data-chart="${chart}"] .key[data-version="${version}"]`);
            return key !== null && parseFloat(key.dataset.latest) > 0;
        }""",
        arg=[chart, version],
    )


def _history(stack: LocalStack) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = stack.ok("history", "-o", "json").json()
    return events


def test_the_chain_and_the_charts_show_the_live_stack(
    stack: LocalStack, readonly: Dashboard, pages: Callable[..., Page]
) -> None:
    page = _open(pages(), readonly.url)
    chain = page.locator('[data-live="chain"]')
    expect(chain.locator(".weights")).to_have_text("95/5")
    stable = chain.locator('[data-version="stable"]')
    expect(stable).to_contain_text("2/2 running")
    expect(stable).to_contain_text("2 healthy")
    expect(stable).to_contain_text("builtin:v1")
    expect(chain.locator('[data-version="canary"]')).to_contain_text("builtin:v2")
    for version in ("stable", "canary"):
        _latest_above_zero(page, "rate", version)
        _latest_above_zero(page, "p99", version)
    p99 = page.locator('[data-chart="p99"] .key[data-version="stable"] b')
    assert re.fullmatch(r"[\d.]+ ms", p99.inner_text())
    expect(page.locator('[data-chart="rate"] polyline.v-canary').first).to_be_attached()
    # Live, with no reload: a weight change made elsewhere shows up.
    stack.ok("set-weights", "90", "10")
    expect(chain.locator(".weights")).to_have_text("90/10")
    stack.ok("set-weights", "95", "5")
    expect(chain.locator(".weights")).to_have_text("95/5")


def test_a_read_only_dashboard_refuses_actions(
    stack: LocalStack, readonly: Dashboard, pages: Callable[..., Page]
) -> None:
    page = _open(pages(), readonly.url)
    expect(page.locator("[data-readonly]")).to_contain_text("--allow-control")
    expect(page.locator("button[data-action]")).to_have_count(0)
    status, answer = page.evaluate(
        """async () => {
            const r = await fetch("/api/actions", {method: "POST",
                headers: {"Content-Type": "application/json"},
                body: JSON.stringify({action: "set_weights", stable: 0, canary: 100})});
            return [r.status, await r.json()];
        }"""
    )
    assert status == 403 and "read-only" in answer["error"]
    assert stack.status()["listener"]["weights"]["canary"] == 5


def _confirm(page: Page, action: str, question: str) -> None:
    page.click(f'button[data-action="{action}"]')
    expect(page.locator("#confirm-text")).to_contain_text(question)
    page.click("#confirm-ok")


def test_steering_from_the_page_is_confirmed_applied_and_in_history(
    stack: LocalStack, control: Dashboard, pages: Callable[..., Page]
) -> None:
    stack.ok("rollout", "--detach", *HELD)
    rollout_id = stack.status()["rollout"]["id"]
    page = _open(pages(), control.url)
    rollout = page.locator('[data-live="rollout"]')
    status = rollout.locator(".status")
    expect(rollout.locator('[data-step="1"]')).to_have_attribute("data-state", "current")
    # Cancelled in the dialog: nothing is sent.
    page.click('button[data-action="pause"]')
    page.click('#confirm button[value="cancel"]')
    expect(status).to_have_attribute("data-status", "running")
    result = page.locator("#action-result")
    _confirm(page, "pause", f"Hold rollout #{rollout_id}")
    expect(result).to_have_attribute("data-state", "ok")
    expect(status).to_have_attribute("data-status", "paused")
    paused = [e for e in _history(stack) if e["kind"] == "paused"]
    assert paused and paused[-1]["actor"].endswith("(dashboard)")
    _confirm(page, "resume", "Resume rollout")
    expect(status).to_have_attribute("data-status", "running")
    _confirm(page, "promote", "go to the next")
    expect(rollout.locator('[data-step="2"]')).to_have_attribute("data-state", "current")
    expect(rollout.locator('[data-step="1"]')).to_have_attribute("data-state", "done")
    _confirm(page, "abort", "All traffic goes back to stable")
    verdict = rollout.locator("[data-verdict]")
    expect(verdict).to_have_attribute("data-verdict", "rolled_back")
    expect(verdict).to_contain_text("(dashboard)")
    kinds = {e["kind"]: e["actor"] for e in _history(stack) if e["rollout_id"] == rollout_id}
    for kind in ("paused", "resumed", "promote", "abort"):
        assert kinds[kind].endswith("(dashboard)"), (kind, kinds)
    assert stack.status()["listener"]["weights"] == {"stable": 100, "canary": 0, "baseline": 0}


class _EvilSite(http.server.BaseHTTPRequestHandler):
    """Another origin on this machine whose page posts to the dashboard."""

    target = ""

    def do_GET(self) -> None:
        body = (
            "<!doctype html><form id=f method=post enctype=text/plain "
            f'action="{self.target}api/actions">'
            '<input name=\'{"action":"set_weights","stable":0,"canary":100,"x":"\' value=\'"}\'>'
            "</form><script>document.getElementById('f').submit()</script>"
        ).encode()
        self.send_response(200)
        self.send_header("content-type", "text/html")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def test_a_post_from_another_origin_is_refused(
    stack: LocalStack, control: Dashboard, pages: Callable[..., Page]
) -> None:
    before = stack.status()["listener"]["weights"]
    _EvilSite.target = control.url
    evil = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _EvilSite)
    thread = threading.Thread(target=evil.serve_forever, daemon=True)
    thread.start()
    try:
        page = pages()
        page.goto(f"http://127.0.0.1:{evil.server_address[1]}/")
        expect(page.locator("body")).to_contain_text("cross-origin request refused")
    finally:
        evil.shutdown()
        evil.server_close()
    assert stack.status()["listener"]["weights"] == before
    html = httpx.get(control.url).text
    token = re.search(r'name="canary-session" content="([^"]+)"', html)
    assert token is not None
    body = {"action": "set_weights", "stable": 95, "canary": 5}
    own = control.url.rstrip("/")
    for origin, given in (("http://evil.example", token[1]), (own, "wrong"), (None, token[1])):
        headers = {"x-canary-token": given, **({"origin": origin} if origin else {})}
        refused = httpx.post(f"{own}/api/actions", json=body, headers=headers)
        assert refused.status_code == 403, (origin, given, refused.text)
    # A site that makes its name resolve to 127.0.0.1 (DNS rebinding) cannot read it.
    rebound = httpx.get(control.url, headers={"host": "evil.example"})
    assert rebound.status_code == 421
    # The page's own request, for contrast, is applied.
    ok = httpx.post(
        f"{own}/api/actions", json=body, headers={"origin": own, "x-canary-token": token[1]}
    )
    assert ok.status_code == 200, ok.text
    assert stack.status()["listener"]["weights"]["canary"] == 5


def test_the_judges_verdict_appears_with_its_evidence(
    stack: LocalStack, readonly: Dashboard, pages: Callable[..., Page]
) -> None:
    stack.ok("deploy", "--image-canary", "CANARY_FAULT_ERROR_RATE=0.5 builtin:v2")
    stack.ok("rollout", "--detach", "--steps", "10,50", "--min-duration", "30s",
             "--max-duration", "60s", "--interval", "1s", "--no-baseline")  # fmt: skip
    rollout_id = stack.status()["rollout"]["id"]
    page = _open(pages(), readonly.url)
    rollout = page.locator('[data-live="rollout"]')
    expect(rollout.locator('[data-step="1"]')).to_have_attribute("data-state", "current")
    verdict = rollout.locator("[data-verdict]")
    expect(verdict).to_have_attribute("data-verdict", "rolled_back", timeout=90_000)
    expect(verdict).to_contain_text("decided by: errors")
    expect(rollout.locator('[data-step="1"]')).to_have_attribute("data-state", "stopped")
    errors = rollout.locator('[data-metric="errors"] .key.harm')
    harm, threshold = (float(x) for x in re.findall(r"[\d.e+]+", errors.inner_text())[:2])
    assert harm >= threshold
    expect(rollout.locator("table.evidence")).to_contain_text("errors")
    row = page.locator(f'[data-live="history"] tr[data-rollout="{rollout_id}"]')
    expect(row).to_contain_text("rolled back")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "dashboard.png"), full_page=True)
    # The rollout's own page: what `canary history --rollout N` prints.
    row.locator("a").click()
    log = page.locator("table.log")
    expect(log).to_contain_text("rollout started")
    expect(log.locator("tr.k-rollback")).to_contain_text("judge:")
    expect(log.locator("tr.explain").first).to_contain_text("harm e=")
    # Readable on a phone: nothing wider than the screen.
    phone = _open(pages(width=390, height=844), readonly.url)
    expect(phone.locator("[data-verdict]")).to_be_visible()
    assert phone.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
