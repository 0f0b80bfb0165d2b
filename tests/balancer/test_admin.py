"""The admin socket: routes for weights, targets and metrics, and the sync client."""

from __future__ import annotations

import asyncio
import stat
from pathlib import Path

import pytest

from canary_deploy.balancer.admin import AdminClient, AdminServer, balancer_routes
from canary_deploy.errors import OperationFailed, UsageError
from canary_deploy.weights import Weights
from tests.balancer.support import get, run, stack, wait_for

pytestmark = pytest.mark.integration


def test_admin_routes_change_weights_and_targets_and_report_metrics(tmp_path: Path) -> None:
    sock = tmp_path / "admin.sock"

    async def scenario() -> None:
        async with stack(Weights(100, 0)) as (balancer, _, (canary,)):
            admin = AdminServer(sock)
            balancer_routes(admin, balancer)
            await admin.start()
            try:
                assert stat.S_IMODE(sock.stat().st_mode) == 0o600
                client = AdminClient(sock)

                def call(method: str, path: str, body: object = None) -> object:
                    return client.request(method, path, body)

                assert await asyncio.to_thread(call, "GET", "/weights") == {
                    "stable": 100,
                    "canary": 0,
                }
                changed = await asyncio.to_thread(
                    call, "PUT", "/weights", {"stable": 0, "canary": 100}
                )
                assert changed == {"stable": 0, "canary": 100}
                assert (await get(balancer.port)).body == b"canary-0"  # next request

                with pytest.raises(UsageError, match="sum to 100"):
                    await asyncio.to_thread(call, "PUT", "/weights", {"stable": 50, "canary": 5})
                with pytest.raises(UsageError, match="no route"):
                    await asyncio.to_thread(call, "GET", "/nope")

                await asyncio.to_thread(
                    call,
                    "POST",
                    "/targets",
                    {"group": "canary", "target_id": "c2", "port": canary.port},
                )
                targets = await asyncio.to_thread(call, "GET", "/targets")
                assert [t["target_id"] for t in targets["canary"]] == ["canary-0", "c2"]  # type: ignore[index]
                await wait_for(
                    lambda: all(t.state == "healthy" for t in balancer.target_health()["canary"])
                )
                await asyncio.to_thread(call, "DELETE", "/targets/canary/c2?delay_s=0")
                assert [t.target_id for t in balancer.target_health()["canary"]] == ["canary-0"]

                assert (await get(balancer.port, "/status/503")).status == 503
                text = await asyncio.to_thread(call, "GET", "/metrics")
                assert (
                    'canary_balancer_target_responses_total{target_group="canary",code="5xx"} 1'
                    in str(text)
                )
                counts = await asyncio.to_thread(
                    call, "GET", "/counts?start=0&end=1e11&thresholds=0,10"
                )
                assert counts["canary"] == {"requests": 2, "errors": 1, "slower_than": [2, 0]}  # type: ignore[index]
                quantiles = await asyncio.to_thread(
                    call, "GET", "/quantiles?version=canary&start=0&end=1e11&qs=0.5"
                )
                assert quantiles["quantiles"][0] > 0  # type: ignore[index]
            finally:
                await admin.stop()
            assert not sock.exists()

    run(scenario())


def test_client_says_clearly_when_nothing_listens(tmp_path: Path) -> None:
    with pytest.raises(OperationFailed, match="nothing is listening"):
        AdminClient(tmp_path / "missing.sock").request("GET", "/weights")


def test_second_server_on_a_live_socket_is_refused_and_a_stale_one_replaced(tmp_path: Path) -> None:
    sock = tmp_path / "admin.sock"

    async def scenario() -> None:
        first = AdminServer(sock)
        await first.start()
        try:
            with pytest.raises(OSError, match="in use"):
                await AdminServer(sock).start()
        finally:
            await first.stop()
        sock.touch()  # a leftover file from a crashed process
        second = AdminServer(sock)
        await second.start()
        await second.stop()

    run(scenario())
