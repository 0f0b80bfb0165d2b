"""Fixtures for the dashboard's browser tests: Debian's Chromium driven by Playwright (never
a downloaded browser), `canary dashboard` processes stopped by PID, and a screenshot of
every page a failed test left open (build/test-artifacts/web/)."""

from __future__ import annotations

import contextlib
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, Playwright, sync_playwright

from tests.local.conftest import LocalStack

CHROMIUM = "/usr/bin/chromium"
# What Chromium needs on a machine with a closed network and no GPU (Playwright runs it
# headless with a fresh profile of its own).
CHROMIUM_FLAGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip
ARTIFACTS = Path(__file__).resolve().parents[2] / "build" / "test-artifacts" / "web"


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> object:
    report = yield
    if call.when == "call":
        item.stash[_FAILED] = bool(getattr(report, "failed", False))
    return report


_FAILED = pytest.StashKey[bool]()


# Per module, not per session: while Playwright's sync API is open, its event loop is the
# running loop of the main thread, and any later test's asyncio.run() in the same process
# fails ("cannot be called from a running event loop") — as when the suite runs in
# parallel workers, where a worker's other test files run after the browser's.
@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    with sync_playwright() as p:
        yield p


@pytest.fixture(scope="module")
def browser(playwright: Playwright) -> Iterator[Browser]:
    assert Path(CHROMIUM).exists(), "Debian's chromium is missing: `make test` installs it"
    browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
    try:
        yield browser
    finally:
        browser.close()


@pytest.fixture
def pages(browser: Browser, request: pytest.FixtureRequest) -> Iterator[Callable[..., Page]]:
    """New pages (1280x800 unless told); on failure each is saved as a screenshot."""
    opened: list[Page] = []

    def new_page(width: int = 1280, height: int = 800) -> Page:
        context = browser.new_context(viewport={"width": width, "height": height})
        page = context.new_page()
        page.set_default_timeout(60_000)
        opened.append(page)
        return page

    try:
        yield new_page
    finally:
        for i, page in enumerate(opened):
            if request.node.stash.get(_FAILED, False):
                ARTIFACTS.mkdir(parents=True, exist_ok=True)
                path = ARTIFACTS / f"{request.node.name}-{i}.png"
                with contextlib.suppress(Exception):  # a crashed page has no picture
                    page.screenshot(path=str(path), full_page=True)
                    print(f"screenshot of the failed page: {path}")
            page.context.close()


@dataclass
class Dashboard:
    """A `canary dashboard` process and the URL it printed."""

    proc: subprocess.Popen[str]
    url: str

    def stop(self) -> None:
        """Ctrl-C (it closes its streams and stops), then a kill if it does not."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def start_dashboard(stack: LocalStack, *flags: str) -> Dashboard:
    proc = subprocess.Popen(
        [sys.executable, "-m", "canary_deploy", "dashboard", "--port", "0", *flags],
        cwd=stack.root, env=stack.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert proc.stdout is not None
    line = proc.stdout.readline()  # "Dashboard on http://127.0.0.1:PORT/ (...)"
    if not line.startswith("Dashboard on "):
        proc.kill()
        _, err = proc.communicate()
        raise AssertionError(f"canary dashboard did not start: {line}{err}")
    return Dashboard(proc, line.split()[2])


@dataclass
class Load:
    """`canary load` running in the background, stopped by PID."""

    proc: subprocess.Popen[str]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def start_load(stack: LocalStack, rate: int, seconds: int) -> Load:
    proc = subprocess.Popen(
        [sys.executable, "-m", "canary_deploy", "load", "--rate", str(rate), "-d", str(seconds)],
        cwd=stack.root, env=stack.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        text=True,
    )  # fmt: skip
    return Load(proc)
