"""The daemon's metrics endpoint without a stack: a fake listener behind it, the loopback
port served or (when taken) reported, never fatal."""

from __future__ import annotations

import asyncio
import socket
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from canary_deploy.balancer.metrics import MetricsRecorder
from canary_deploy.local.metrics_endpoint import MetricsEndpoint
from canary_deploy.weights import Weights


class FakeListener:
    def __init__(self) -> None:
        self.metrics = MetricsRecorder()
        self.metrics.record_response("canary", 200, 0.01)

    def get_weights(self) -> Weights:
        return Weights(90, 10)


def endpoint(tmp_path: Path) -> MetricsEndpoint:
    return MetricsEndpoint(FakeListener(), tmp_path)  # type: ignore[arg-type]


def test_the_loopback_port_serves_the_same_text_and_nothing_else(tmp_path: Path) -> None:
    async def main() -> tuple[str, Any, str]:
        e = endpoint(tmp_path)
        url = await e.serve_loopback(0)
        assert url is not None and url == e.url
        try:
            text = await asyncio.to_thread(_get, url)
            refused = await asyncio.to_thread(_status, url.replace("/metrics", "/weights"))
            return text, refused, await e.handle(None, {})
        finally:
            await e.stop()

    text, refused, direct = asyncio.run(main())
    assert text == direct
    assert 'canary_requests_total{group="canary"} 1' in text
    assert 'canary_weight_ratio{group="canary"} 0.1' in text
    assert "canary_rollout_active 0" in text  # no rollout was ever handed to the daemon
    assert refused == 404


def test_a_taken_port_is_reported_not_fatal(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]

        async def main() -> tuple[str | None, MetricsEndpoint]:
            e = endpoint(tmp_path)
            return await e.serve_loopback(port), e

        url, e = asyncio.run(main())
    assert url is None and e.url is None
    assert e.loopback_error == f"cannot serve metrics on 127.0.0.1:{port}: Address already in use"


def test_no_port_set_serves_none(tmp_path: Path) -> None:
    e = endpoint(tmp_path)
    assert asyncio.run(e.serve_loopback(None)) is None
    assert e.url is None and e.loopback_error is None and e.configured_port is None


def _get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as response:
        return str(response.read().decode())


def _status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code
