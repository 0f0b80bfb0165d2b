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
                    "baseline": 0,
                }
                changed = await asyncio.to_thread(
                    call, "PUT", "/weights", {"stable": 0, "canary": 100}
                )
                assert changed == {"stable": 0, "canary": 100, "baseline": 0}
                assert (await get(balancer.port)).body == b"canary-0"  # next request

                with pytest.raises(UsageError, match="sum to 100"):
                    await asyncio.to_thread(call, "PUT", "/weights", {"stable": 50, "canary": 5})
                with pytest.raises(UsageError, match=r"sum to 100, got 90 \+ 5 \+ 10"):
                    await asyncio.to_thread(
                        call, "PUT", "/weights", {"stable": 90, "canary": 5, "baseline": 10}
                    )
                with pytest.raises(UsageError, match="baseline weight must be an integer"):
                    await asyncio.to_thread(
                        call, "PUT", "/weights", {"stable": 90, "canary": 5, "baseline": 5.0}
                    )
                with pytest.raises(UsageError, match="unknown target group 'baselin'"):
                    await asyncio.to_thread(
                        call, "PUT", "/weights", {"stable": 90, "canary": 5, "baselin": 5}
                    )
                assert balancer.get_weights() == Weights(0, 100), "a refused call changes nothing"
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
                rejections = await asyncio.to_thread(call, "GET", "/rejections")
                assert rejections == {"400": 0, "405": 0, "408": 0, "417": 0, "501": 0, "503": 0}
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


def test_admin_routes_carry_the_baseline_group(tmp_path: Path) -> None:
    sock = tmp_path / "admin.sock"

    async def scenario() -> None:
        async with stack(Weights(100, 0), baseline=1) as (balancer, _, _):
            admin = AdminServer(sock)
            balancer_routes(admin, balancer)
            await admin.start()
            try:
                client = AdminClient(sock)

                def call(method: str, path: str, body: object = None) -> object:
                    return client.request(method, path, body)

                changed = await asyncio.to_thread(
                    call, "PUT", "/weights", {"stable": 0, "canary": 0, "baseline": 100}
                )
                assert changed == {"stable": 0, "canary": 0, "baseline": 100}
                assert await asyncio.to_thread(call, "GET", "/weights") == changed
                assert (await get(balancer.port)).body == b"baseline-0"
                assert (await get(balancer.port, "/status/503")).status == 503
                targets = await asyncio.to_thread(call, "GET", "/targets")
                assert [t["target_id"] for t in targets["baseline"]] == ["baseline-0"]  # type: ignore[index]
                counts = await asyncio.to_thread(call, "GET", "/counts?start=0&end=1e11")
                assert counts["baseline"] == {"requests": 2, "errors": 1, "slower_than": []}  # type: ignore[index]
                assert counts["canary"]["requests"] == 0  # type: ignore[index]
                quantiles = await asyncio.to_thread(
                    call, "GET", "/quantiles?version=baseline&start=0&end=1e11&qs=0.5"
                )
                assert quantiles["quantiles"][0] > 0  # type: ignore[index]
                text = str(await asyncio.to_thread(call, "GET", "/metrics"))
                assert 'canary_balancer_requests_total{target_group="baseline"} 2' in text
                # The seed's two-number call still works and means baseline 0.
                two = await asyncio.to_thread(call, "PUT", "/weights", {"stable": 95, "canary": 5})
                assert two == {"stable": 95, "canary": 5, "baseline": 0}
                with pytest.raises(UsageError, match="unknown target group 'blue'"):
                    await asyncio.to_thread(
                        call, "POST", "/targets", {"group": "blue", "target_id": "x", "port": 1}
                    )
            finally:
                await admin.stop()

    run(scenario())
