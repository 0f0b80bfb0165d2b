"""The balancer's compiled modules (canary_deploy.speedups): used only when they match
the sources, the same behaviour either way, and nothing mypyc gets wrong silently."""

from __future__ import annotations

import asyncio
import gc
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from canary_deploy import speedups
from canary_deploy.balancer import proxy
from canary_deploy.balancer.exchange import Exchange
from canary_deploy.balancer.metrics import MetricsRecorder
from canary_deploy.balancer.proxy import ClientConnection, ProxyContext
from canary_deploy.balancer.routing import RegisteredTarget, Router
from canary_deploy.balancer.upstream import UpstreamConnection
from canary_deploy.weights import Weights

REPO = Path(__file__).resolve().parents[2]


def _fake_build(root: Path, **changes: object) -> Path:
    """A build directory whose manifest says what `changes` say (no compiling)."""
    compiled = root / "canary_deploy" / "balancer"
    compiled.mkdir(parents=True)
    manifest: dict[str, object] = {
        "abi": speedups._abi(),
        "sources": speedups._sources_digest(speedups.PACKAGE_DIR),
    }
    manifest.update(changes)
    (compiled / speedups.MANIFEST).write_text(json.dumps(manifest))
    return compiled


def test_a_build_is_used_only_while_every_source_matches_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(speedups.PURE_ENV, raising=False)
    path = ["/src/canary_deploy/balancer"]
    assert speedups.search_path(path, tmp_path / "none") == path
    assert "not compiled" in speedups.status(tmp_path / "none")[1]

    good = _fake_build(tmp_path / "good")
    assert speedups.status(tmp_path / "good")[0]
    assert speedups.search_path(path, tmp_path / "good") == [str(good), *path]

    sources = speedups._sources_digest(speedups.PACKAGE_DIR)
    edited = {**sources, "proxy": "0" * 64}  # proxy.py edited since the build
    _fake_build(tmp_path / "edited", sources=edited)
    assert speedups.search_path(path, tmp_path / "edited") == path
    assert "sources changed" in speedups.status(tmp_path / "edited")[1]

    _fake_build(tmp_path / "other", abi=".cpython-399-x.so")
    assert speedups.search_path(path, tmp_path / "other") == path
    assert "another Python" in speedups.status(tmp_path / "other")[1]

    monkeypatch.setenv(speedups.PURE_ENV, "1")
    assert speedups.search_path(path, tmp_path / "good") == path
    assert f"{speedups.PURE_ENV} is set" in speedups.status(tmp_path / "good")[1]


def test_the_balancer_runs_compiled_exactly_when_a_matching_build_exists() -> None:
    usable, why = speedups.status()
    loaded = Path(proxy.__file__ or "")
    assert (loaded.suffix == ".so") == usable, (loaded, why)
    if usable:
        assert loaded.parent == speedups.build_dir() / "canary_deploy" / "balancer"


def _client_and_upstream() -> tuple[ClientConnection, UpstreamConnection, Exchange]:
    loop = asyncio.new_event_loop()
    loop.close()  # nothing runs: the objects are only inspected
    router = Router(Weights(100, 0), "round_robin")
    target = RegisteredTarget("t1", "127.0.0.1", 9)
    ctx = ProxyContext(loop, router, MetricsRecorder(), idle_timeout_s=60, stickiness=None)
    client = ClientConnection(ctx)
    upstream = UpstreamConnection(loop, ctx.metrics, target, None)
    exchange = Exchange(client, b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
    client.queue.append(exchange)
    upstream.exchange = exchange
    exchange.upstream = upstream
    return client, upstream, exchange


def test_every_connection_object_shows_the_gc_each_reference_it_holds_once() -> None:
    """A compiled class that reported a reference twice (mypyc did, for an attribute its
    base class declares and the subclass annotated again) lets the GC free a live
    exchange: the next access to it crashed the balancer."""
    client, upstream, exchange = _client_and_upstream()
    for holder in (client, upstream, exchange, client.flow, upstream.flow):
        seen = [o for o in gc.get_referents(holder) if o is not None]
        counted = {id(o): sum(1 for other in seen if other is o) for o in seen}
        shared = {id(o) for o in seen if isinstance(o, bool | int | float | str | bytes)}
        twice = [type(o).__name__ for o in seen if counted[id(o)] > 1 and id(o) not in shared]
        assert not twice, f"{type(holder).__name__} reports {twice} more than once"


@pytest.mark.integration
def test_the_balancer_tests_pass_as_pure_python_too() -> None:
    """The suite runs what is installed (compiled when built); these run the same
    protocol tests on the pure-Python modules."""
    if not speedups.status()[0]:
        pytest.skip("the balancer is not compiled here: the whole suite ran it as pure Python")
    tests = [
        "tests/balancer/test_fast_path.py",
        "tests/balancer/test_protocol.py",
        "tests/balancer/test_upstream_hostile.py",
        "tests/balancer/test_request_checks.py",
        "tests/balancer/fuzz/test_parsers.py",
    ]
    env = {**os.environ, speedups.PURE_ENV: "1"}
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *tests],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert " passed" in done.stdout
