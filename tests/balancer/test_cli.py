"""`canary balancer` as a user runs it: starts, serves, changes weights, stops on Ctrl-C."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from canary_deploy.balancer.admin import AdminClient
from tests.balancer.support import Backend, get, run

pytestmark = pytest.mark.integration


def test_balancer_command_serves_and_stops_cleanly(tmp_path: Path) -> None:
    sock = tmp_path / "b.sock"

    async def scenario() -> None:
        stable = await Backend("v1").start()
        canary = await Backend("v2").start()
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "canary_deploy",
                "balancer",
                "--listen",
                "127.0.0.1:0",
                "--stable",
                f"127.0.0.1:{stable.port}",
                "--canary",
                f"127.0.0.1:{canary.port}",
                "--weights",
                "0",
                "100",
                "--health-profile",
                "fast",
                "--admin-socket",
                str(sock),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "COLUMNS": "200"},
        )
        try:
            assert proc.stdout is not None
            line = await asyncio.to_thread(proc.stdout.readline)
            match = re.search(r"http://127\.0\.0\.1:(\d+)", line)
            assert match, line
            port = int(match.group(1))
            assert (await get(port)).body == b"v2"
            client = AdminClient(sock)
            await asyncio.to_thread(client.request, "PUT", "/weights", {"stable": 100, "canary": 0})
            assert (await get(port)).body == b"v1"
            # What the banner says changes the weights from the command line does.
            banner = await asyncio.to_thread(proc.stdout.readline)
            assert f"canary set-weights S C --balancer {sock}" in banner
            done = await asyncio.to_thread(
                subprocess.run,
                [
                    *(sys.executable, "-m", "canary_deploy", "set-weights", "0", "100"),
                    *("--balancer", str(sock), "-o", "json"),
                ],
                capture_output=True,
                text=True,
                timeout=60,
            )
            assert done.returncode == 0, done.stderr
            assert '"canary": 100' in done.stdout
            assert (await get(port)).body == b"v2"
            proc.send_signal(signal.SIGINT)
            assert await asyncio.to_thread(proc.wait, 10) == 0
            assert not sock.exists()
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            await stable.stop()
            await canary.stop()

    run(scenario())


def test_balancer_command_rejects_bad_input() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "canary_deploy", "balancer", "--stable", "nope", "--canary", ""],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    assert "--stable must be host:port" in result.stderr


@pytest.mark.parametrize(
    ("option", "message"),
    [
        (("--max-connections", "0"), "max connections must be at least 1, got 0"),
        (("--head-timeout", "0"), "head timeout must be positive"),
    ],
)
def test_balancer_command_rejects_bad_limits(option: tuple[str, str], message: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "canary_deploy", "balancer", "--stable", ":1", "--canary=", *option],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    assert message in result.stderr and "Traceback" not in result.stderr
