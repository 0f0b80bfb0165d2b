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


def _balancer(admin_socket: Path, columns: int) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            *(sys.executable, "-m", "canary_deploy", "balancer", "--listen", "127.0.0.1:0"),
            *("--stable", "127.0.0.1:9", "--canary", "127.0.0.1:9"),
            *("--admin-socket", str(admin_socket)),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "COLUMNS": str(columns)},
    )


def test_the_banner_is_never_wrapped(tmp_path: Path) -> None:
    # A long socket path (deep test directories, parallel workers) on a narrow terminal:
    # the command to copy stays whole on its line.
    deep = tmp_path / ("d" * (100 - len(str(tmp_path)) - 7))
    deep.mkdir()
    sock = deep / "b.sock"
    proc = _balancer(sock, columns=60)
    try:
        assert proc.stdout is not None
        lines = [proc.stdout.readline(), proc.stdout.readline()]
        assert lines[0].startswith("Listening on http://127.0.0.1:"), lines
        assert f"(`canary set-weights S C --balancer {sock}` changes the weights)" in lines[1]
    finally:
        proc.kill()
        proc.wait()


def test_a_socket_path_too_long_says_so(tmp_path: Path) -> None:
    deep = tmp_path / ("d" * 120)
    deep.mkdir()
    proc = _balancer(deep / "b.sock", columns=200)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 1
    assert "AF_UNIX path too long" in err
    assert "at most 107 bytes: pass a shorter --admin-socket PATH" in err
