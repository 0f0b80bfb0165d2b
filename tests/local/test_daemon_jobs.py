"""A daemon whose supervisor (or another job) fails exits, so that the data plane starts a
fresh one that takes the stack over, instead of running on without it."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from canary_deploy.errors import OperationFailed
from canary_deploy.local.daemon import StackDaemon
from canary_deploy.local.options import StackOptions


def test_a_failed_job_fails_the_daemon(tmp_path: Path) -> None:
    async def main() -> None:
        daemon = StackDaemon(StackOptions(tmp_path))

        async def supervisor() -> None:
            raise OperationFailed("admin socket: timed out")

        async def idle() -> None:
            await asyncio.sleep(60)

        jobs = [asyncio.ensure_future(supervisor()), asyncio.ensure_future(idle())]
        try:
            with pytest.raises(OperationFailed, match="timed out"):
                await asyncio.wait_for(daemon._until_stopped(jobs), 5)
        finally:
            for job in jobs:
                job.cancel()

    asyncio.run(main())


def test_a_stop_request_ends_the_wait(tmp_path: Path) -> None:
    async def main() -> None:
        daemon = StackDaemon(StackOptions(tmp_path))
        job = asyncio.ensure_future(asyncio.sleep(60))
        asyncio.get_running_loop().call_soon(daemon._stop.set)
        await asyncio.wait_for(daemon._until_stopped([job]), 5)
        assert not job.done()
        job.cancel()

    asyncio.run(main())
