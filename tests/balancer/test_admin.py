"""The admin socket: routes for weights, targets and metrics, the typed client, and
requests it must refuse."""

from __future__ import annotations

import asyncio
import socket
import stat
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from canary_deploy.balancer import Balancer
from canary_deploy.balancer.admin import (
    AdminClient,
    AdminServer,
    BalancerAdmin,
    Deregistration,
    QuantilesQuery,
    TargetRegistration,
    Window,
    balancer_routes,
)
from canary_deploy.errors import OperationFailed, UsageError
from canary_deploy.weights import Weights
from tests.balancer.support import Backend, get, run, stack, wait_for

pytestmark = pytest.mark.integration


@dataclass
class Admin:
    """A balancer with its admin socket, and a client of it."""

    balancer: Balancer
    canary: Backend
    socket: Path
    client: AdminClient

    async def call(self, method: str, path: str, body: object = None) -> Any:
        return await asyncio.to_thread(self.client.request, method, path, body)

    async def typed(self, fn: Callable[[BalancerAdmin], Any]) -> Any:
        return await asyncio.to_thread(fn, BalancerAdmin(self.client))


@asynccontextmanager
async def admin_socket(tmp_path: Path, weights: Weights = Weights(100, 0)) -> AsyncIterator[Admin]:
    sock = tmp_path / "admin.sock"
    async with stack(weights) as (balancer, _, (canary,)):
        server = AdminServer(sock)
        balancer_routes(server, balancer)
        await server.start()
        try:
            yield Admin(balancer, canary, sock, AdminClient(sock))
        finally:
            await server.stop()


def with_admin(tmp_path: Path, scenario: Callable[[Admin], Coroutine[Any, Any, None]]) -> None:
    async def main() -> None:
        async with admin_socket(tmp_path) as admin:
            await scenario(admin)

    run(main())


def test_the_socket_is_owner_only_and_removed_on_stop(tmp_path: Path) -> None:
    async def main() -> None:
        async with admin_socket(tmp_path) as admin:
            assert stat.S_IMODE(admin.socket.stat().st_mode) == 0o600
        assert not admin.socket.exists()

    run(main())


def test_weights_are_read_and_changed_and_the_next_request_follows(tmp_path: Path) -> None:
    async def scenario(admin: Admin) -> None:
        assert await admin.call("GET", "/weights") == {"stable": 100, "canary": 0, "baseline": 0}
        changed = await admin.call("PUT", "/weights", {"stable": 0, "canary": 100})
        assert changed == {"stable": 0, "canary": 100, "baseline": 0}
        assert (await get(admin.balancer.port)).body == b"canary-0"  # next request
        assert await admin.typed(lambda c: c.set_weights(Weights(90, 10))) == Weights(90, 10)
        assert await admin.typed(BalancerAdmin.weights) == Weights(90, 10)

    with_admin(tmp_path, scenario)


def test_invalid_weights_are_refused_and_change_nothing(tmp_path: Path) -> None:
    async def scenario(admin: Admin) -> None:
        with pytest.raises(UsageError, match="sum to 100"):
            await admin.call("PUT", "/weights", {"stable": 50, "canary": 5})
        with pytest.raises(UsageError, match=r"sum to 100, got 90 \+ 5 \+ 10"):
            await admin.call("PUT", "/weights", {"stable": 90, "canary": 5, "baseline": 10})
        with pytest.raises(UsageError, match="baseline weight must be an integer"):
            await admin.call("PUT", "/weights", {"stable": 90, "canary": 5, "baseline": 5.0})
        with pytest.raises(UsageError, match="unknown target group 'baselin'"):
            await admin.call("PUT", "/weights", {"stable": 90, "canary": 5, "baselin": 5})
        assert admin.balancer.get_weights() == Weights(100, 0), "a refused call changes nothing"

    with_admin(tmp_path, scenario)


def test_an_unknown_route_is_a_usage_error(tmp_path: Path) -> None:
    async def scenario(admin: Admin) -> None:
        with pytest.raises(UsageError, match="no route"):
            await admin.call("GET", "/nope")

    with_admin(tmp_path, scenario)


def test_a_target_is_registered_and_deregistered(tmp_path: Path) -> None:
    async def scenario(admin: Admin) -> None:
        balancer = admin.balancer
        await admin.call(
            "POST", "/targets", {"group": "canary", "target_id": "c2", "port": admin.canary.port}
        )
        targets = await admin.call("GET", "/targets")
        assert [t["target_id"] for t in targets["canary"]] == ["canary-0", "c2"]
        await wait_for(
            lambda: all(t.state == "healthy" for t in balancer.target_health()["canary"])
        )
        await admin.call("DELETE", "/targets/canary/c2?delay_s=0")
        assert [t.target_id for t in balancer.target_health()["canary"]] == ["canary-0"]

    with_admin(tmp_path, scenario)


def test_the_typed_client_registers_and_deregisters_a_target(tmp_path: Path) -> None:
    async def scenario(admin: Admin) -> None:
        registration = TargetRegistration("canary", "c 3", admin.canary.port)
        targets = await admin.typed(lambda c: c.register(registration))
        assert [t.target_id for t in targets["canary"]] == ["canary-0", "c 3"]
        await admin.typed(lambda c: c.deregister(Deregistration("canary", "c 3", delay_s=0)))
        assert [t.target_id for t in (await admin.typed(BalancerAdmin.targets))["canary"]] == [
            "canary-0"
        ]

    with_admin(tmp_path, scenario)


def test_metrics_counts_quantiles_and_rejections_are_reported(tmp_path: Path) -> None:
    async def scenario(admin: Admin) -> None:
        admin.balancer.set_weights(Weights(0, 100))
        assert (await get(admin.balancer.port)).status == 200
        assert (await get(admin.balancer.port, "/status/503")).status == 503
        text = await admin.call("GET", "/metrics")
        assert 'canary_balancer_target_responses_total{target_group="canary",code="5xx"} 1' in text
        counts = await admin.call("GET", "/counts?start=0&end=1e11&thresholds=0,10")
        assert counts["canary"] == {"requests": 2, "errors": 1, "slower_than": [2, 0]}
        quantiles = await admin.call("GET", "/quantiles?version=canary&start=0&end=1e11&qs=0.5")
        assert quantiles["quantiles"][0] > 0
        rejections = await admin.call("GET", "/rejections")
        assert rejections == {"400": 0, "405": 0, "408": 0, "417": 0, "501": 0, "503": 0}
        window = Window(0, 1e11, thresholds_s=(0, 10))
        typed = await admin.typed(lambda c: c.counts(window))
        assert (typed["canary"].requests, typed["canary"].slower_than) == (2, (2, 0))
        (p50,) = await admin.typed(lambda c: c.quantiles(QuantilesQuery("canary", 0, 1e11, (0.5,))))
        assert p50 == quantiles["quantiles"][0]

    with_admin(tmp_path, scenario)


def raw_request(sock: Path, data: bytes) -> bytes:
    """Send bytes as they are to the admin socket; what it answers before closing."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
        conn.settimeout(10)
        conn.connect(str(sock))
        conn.sendall(data)
        conn.shutdown(socket.SHUT_WR)
        out = b""
        while chunk := conn.recv(65536):
            out += chunk
    return out


MALFORMED = {
    "no target": (b"GET\r\n\r\n", b"400", b"malformed request line"),
    "no version": (b"GET /weights\r\n\r\n", b"400", b"malformed request line"),
    "bad length": (b"PUT /weights HTTP/1.1\r\nContent-Length: x\r\n\r\n", b"400", b"Content"),
    "negative length": (
        b"PUT /weights HTTP/1.1\r\nContent-Length: -1\r\n\r\n",
        b"400",
        b"Content-Length",
    ),
    "body too large": (
        b"PUT /weights HTTP/1.1\r\nContent-Length: 9999999\r\n\r\n",
        b"413",
        b"too large",
    ),
    "not JSON": (
        b"PUT /weights HTTP/1.1\r\nContent-Length: 3\r\n\r\n{x}",
        b"400",
        b"not JSON",
    ),
    "not UTF-8": (
        b"PUT /weights HTTP/1.1\r\nContent-Length: 2\r\n\r\n\xff\xfe",
        b"400",
        b"not JSON",
    ),
    "head too long": (b"GET /" + b"a" * 70000 + b" HTTP/1.1\r\n\r\n", b"400", b"too large"),
}


@pytest.mark.parametrize("request_bytes, status, message", MALFORMED.values(), ids=list(MALFORMED))
def test_a_malformed_admin_request_is_answered_400_and_the_socket_keeps_serving(
    tmp_path: Path, request_bytes: bytes, status: bytes, message: bytes
) -> None:
    async def scenario(admin: Admin) -> None:
        answer = await asyncio.to_thread(raw_request, admin.socket, request_bytes)
        assert answer.startswith(b"HTTP/1.1 " + status + b" ")
        assert message in answer
        assert admin.balancer.get_weights() == Weights(100, 0)
        assert await admin.call("GET", "/weights") == {"stable": 100, "canary": 0, "baseline": 0}

    with_admin(tmp_path, scenario)


def test_a_route_is_overridden_only_when_asked(tmp_path: Path) -> None:
    async def own_weights(body: Any, params: dict[str, str]) -> Any:
        return {"own": True}

    async def main() -> None:
        async with stack(Weights(100, 0)) as (balancer, _, _):
            before = AdminServer(tmp_path / "before.sock")
            before.add_route("GET", "/weights", own_weights)
            with pytest.raises(ValueError, match="GET /weights is already routed"):
                balancer_routes(before, balancer)  # a taken route is refused by default
            balancer_routes(before, balancer, if_taken="keep")  # the application's stays
            after = AdminServer(tmp_path / "after.sock")
            balancer_routes(after, balancer)
            with pytest.raises(ValueError, match="GET /weights is already routed"):
                after.add_route("GET", "/weights", own_weights)
            after.add_route("GET", "/weights", own_weights, if_taken="replace")
            for server in (before, after):
                await server.start()
                try:
                    got = await asyncio.to_thread(
                        AdminClient(server.socket_path).request, "GET", "/weights"
                    )
                    assert got == {"own": True}
                finally:
                    await server.stop()

    run(main())


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
