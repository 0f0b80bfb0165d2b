"""Issue 12, the request side on real sockets: the balancer's memory stays bounded under a
pipelined upload behind a slow request, and the connection cap refuses clearly."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import resource
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from canary_deploy.balancer.admin import AdminClient
from canary_deploy.weights import Weights
from tests.balancer.support import Backend, RawClient, get, run, stack

pytestmark = pytest.mark.integration

MiB = 1024 * 1024


def _status_kib(pid: int, field: str) -> int:
    """A `VmRSS`/`VmHWM` line of /proc/<pid>/status, in KiB."""
    text = Path(f"/proc/{pid}/status").read_text()
    match = re.search(rf"^{field}:\s+(\d+) kB", text, re.M)
    assert match, text
    return int(match.group(1))


@contextlib.asynccontextmanager
async def standalone_balancer(
    stable: Backend, sock: Path, *options: str, open_files: int | None = None
) -> AsyncIterator[tuple[int, int]]:
    """`canary balancer` in its own process in front of `stable`: (port, pid).
    `open_files`: the process's open-file limit (RLIMIT_NOFILE)."""

    def limit_open_files() -> None:
        if open_files is not None:
            _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
            resource.setrlimit(resource.RLIMIT_NOFILE, (open_files, hard))

    proc = subprocess.Popen(
        [
            *(sys.executable, "-m", "canary_deploy", "balancer", "--listen", "127.0.0.1:0"),
            *("--stable", f"127.0.0.1:{stable.port}", "--canary", "", "--weights", "100", "0"),
            *("--health-profile", "fast", "--admin-socket", str(sock), *options),
        ],
        stdout=subprocess.PIPE,
        stderr=(sock.parent / "balancer.stderr").open("w"),
        text=True,
        env={**os.environ, "COLUMNS": "200"},
        preexec_fn=limit_open_files,
    )
    try:
        assert proc.stdout is not None
        line = await asyncio.to_thread(proc.stdout.readline)
        match = re.search(r"http://127\.0\.0\.1:(\d+)", line)
        assert match, line
        yield int(match.group(1)), proc.pid
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            await asyncio.to_thread(proc.wait, 10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_a_huge_pipelined_upload_behind_a_slow_request_does_not_grow_the_balancer(
    tmp_path: Path,
) -> None:
    """Issue 12 item 2: GET to a slow target, then a POST with a 256 MiB body on the same
    connection. The balancer used to read the whole body into memory while the GET waited;
    now it stops reading the client at its bound, so its peak RSS barely moves."""

    async def scenario() -> None:
        stable = await Backend("v1").start()
        try:
            async with standalone_balancer(stable, tmp_path / "b.sock") as (port, pid):
                assert (await get(port)).status == 200  # warm: the pool and the parser
                before = _status_kib(pid, "VmRSS")
                client = await RawClient().connect(port)
                client.send(b"GET /sleep/3 HTTP/1.1\r\nHost: a\r\n\r\n")
                client.send(
                    b"POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: %d\r\n\r\n" % (256 * MiB)
                )
                assert client.writer is not None
                writer = client.writer

                async def upload() -> None:
                    chunk = b"x" * MiB
                    for _ in range(256):
                        writer.write(chunk)
                        await writer.drain()  # as fast as the balancer reads, no faster

                uploading = asyncio.create_task(upload())
                response = await client.read_response()
                assert response is not None and response.status == 200
                peak = _status_kib(pid, "VmHWM")
                uploading.cancel()
                with contextlib.suppress(asyncio.CancelledError, ConnectionError):
                    await uploading
                await client.close()
                assert peak - before < 64 * 1024, f"RSS grew by {(peak - before) // 1024} MiB"
        finally:
            await stable.stop()

    run(scenario())


def test_a_pipelined_upload_behind_a_slow_request_arrives_whole() -> None:
    """The bound only delays the upload: every byte reaches the target, in order."""

    async def scenario() -> None:
        async with stack(Weights(100, 0)) as (balancer, _, _):
            body = bytes(range(256)) * (16 * 1024)  # 4 MiB, far over the bound
            client = await RawClient().connect(balancer.port)
            client.send(b"GET /sleep/0.5 HTTP/1.1\r\nHost: a\r\n\r\n")
            client.send(b"POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: %d\r\n\r\n" % len(body))
            client.send(body)
            first = await client.read_response()
            assert first is not None and first.status == 200
            second = await client.read_response()
            assert second is not None and second.status == 200
            assert json.loads(second.body)["body"].encode("latin-1") == body
            await client.close()
            assert balancer._ctx is not None and balancer._ctx.held_total == 0

    run(scenario())


def test_connections_over_the_cap_are_refused_with_503_and_the_others_keep_working() -> None:
    async def scenario() -> None:
        async with stack(Weights(100, 0), max_connections=2) as (balancer, _, _):
            first = await RawClient().connect(balancer.port)
            second = await RawClient().connect(balancer.port)
            third = await RawClient().connect(balancer.port)
            third.send(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
            refused = await third.read_response()
            assert refused is not None and refused.status == 503
            assert refused.header("Connection") == "close"
            assert await third.is_closed()
            for client in (first, second):
                client.send(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
                response = await client.read_response()
                assert response is not None and response.status == 200
                await client.close()
            await third.close()
            assert balancer.metrics.rejected[503] == 1
            counts = balancer.metrics.counts(0, 2e10)
            assert counts["stable"].errors == 0 and counts["stable"].requests == 2

    run(scenario())


def test_running_out_of_file_descriptors_is_never_booked_on_a_group(tmp_path: Path) -> None:
    """Issue 12 item 5: at the open-file limit, clients got 502s counted as the group's
    errors (a target connection failed with EMFILE). Now they get 503, on no group, and
    the listener keeps serving once descriptors are free again."""

    async def scenario() -> None:
        stable = await Backend("v1").start()
        sock = tmp_path / "b.sock"
        try:
            # 40 clients, each with a slow request in flight, need 80 descriptors.
            async with standalone_balancer(
                stable, sock, "--max-connections", "1000", open_files=64
            ) as (port, _):

                async def slow_request() -> int:
                    client = await RawClient().connect(port)
                    try:
                        client.send(b"GET /sleep/1 HTTP/1.1\r\nHost: a\r\n\r\n")
                        response = await client.read_response()
                        return 0 if response is None else response.status
                    except ConnectionResetError:
                        return 0
                    finally:
                        await client.close()

                statuses = await asyncio.gather(*(slow_request() for _ in range(40)))
                # 0: a connection the event loop could not accept and dropped (libuv, under
                # uvloop, accepts and closes one when out of descriptors): no response, and
                # nothing booked. Never a 502 or 504 of the group.
                assert set(statuses) <= {0, 200, 503}, statuses
                assert 503 in statuses  # the limit was reached
                assert (await get(port)).status == 200  # and the listener still serves
                text = await asyncio.to_thread(AdminClient(sock).request, "GET", "/metrics")
                assert 'elb_errors_total{target_group="stable",code="502"} 0' in text
                assert re.search(r'rejected_requests_total\{code="503"\} [1-9]', text), text
        finally:
            await stable.stop()

    run(scenario())


def test_a_trickled_head_is_cut_off_at_the_head_deadline_on_a_real_socket() -> None:
    """Issue 12 item 5: one header line now and then used to hold a connection forever."""

    async def scenario() -> None:
        async with stack(Weights(100, 0), head_timeout_s=0.3) as (balancer, (stable,), _):
            client = await RawClient().connect(balancer.port)
            assert client.reader is not None
            client.send(b"GET / HTTP/1.1\r\nHost: a\r\n")
            answer = b""
            for i in range(600):  # a line every 50 ms, far longer than the deadline
                client.send(b"X-%d: 1\r\n" % i)
                with contextlib.suppress(TimeoutError):
                    answer = await asyncio.wait_for(client.reader.read(65536), 0.05)
                if answer:
                    break
            assert answer.startswith(b"HTTP/1.1 408 Request Timeout\r\n")
            assert await client.is_closed()
            await client.close()
            assert balancer.metrics.rejected[408] == 1
            assert not [r for r in stable.requests if r.header("X-0") is not None]

    run(scenario())
