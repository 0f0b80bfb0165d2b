"""The balancer on real sockets in front of tiny recording backends on 127.0.0.1."""

from __future__ import annotations

import asyncio
import errno
import json
import socket

import pytest

from canary_deploy.balancer import Balancer, BalancerConfig, HealthCheckConfig
from canary_deploy.errors import UsageError
from canary_deploy.weights import Weights
from tests.balancer.support import (
    ATTACK_MARKER,
    Backend,
    BackendConnection,
    RawClient,
    Request,
    all_healthy,
    get,
    run,
    stack,
    wait_for,
)

pytestmark = pytest.mark.integration


def test_keep_alive_client_and_pooled_target_connections() -> None:
    async def scenario() -> None:
        async with stack(Weights(100, 0)) as (balancer, (stable,), _):
            client = await RawClient().connect(balancer.port)
            for _ in range(20):
                client.send(b"GET /echo HTTP/1.1\r\nHost: a\r\n\r\n")
                response = await client.read_response()
                assert response is not None and response.status == 200
            await client.close()
            served = [r for r in stable.requests if r.path == "/echo"]
            assert len(served) == 20
            assert len({r.connection for r in served}) == 1  # one pooled target connection

    run(scenario())


def test_request_bodies_and_streamed_response() -> None:
    async def scenario() -> None:
        async with stack(Weights(100, 0)) as (balancer, (stable,), _):
            client = await RawClient().connect(balancer.port)
            client.send(b"POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello")
            response = await client.read_response()
            assert response is not None and json.loads(response.body)["body"] == "hello"
            client.send(
                b"POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
                b"2\r\nhe\r\n3\r\nllo\r\n0\r\n\r\n"
            )
            response = await client.read_response()
            assert response is not None and json.loads(response.body)["body"] == "hello"

            # The first chunk reaches the client while the target still holds the rest.
            client.send(b"GET /stream HTTP/1.1\r\nHost: a\r\n\r\n")
            assert client.reader is not None
            head = await asyncio.wait_for(client.reader.readuntil(b"first\r\n"), 5)
            assert b"Transfer-Encoding: chunked" in head
            stable.gate.set()
            rest = await asyncio.wait_for(client.reader.readuntil(b"0\r\n\r\n"), 5)
            assert rest == b"4\r\nlast\r\n0\r\n\r\n"

            client.send(b"HEAD / HTTP/1.1\r\nHost: a\r\n\r\n")
            response = await client.read_response(head=True)
            assert response is not None and response.header("Content-Length") == "8"
            client.send(b"GET /until-close HTTP/1.1\r\nHost: a\r\n\r\n")
            response = await client.read_response()
            assert response is not None and response.body == b"all of it"
            await client.close()

    run(scenario())


def test_large_bodies_pass_both_ways_with_flow_control() -> None:
    async def scenario() -> None:
        async with stack(Weights(100, 0)) as (balancer, _, _):
            client = await RawClient().connect(balancer.port)
            body = bytes(range(256)) * 8192  # 2 MiB
            client.send(b"POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: %d\r\n\r\n" % len(body))
            client.send(body)
            response = await client.read_response()
            assert response is not None
            assert json.loads(response.body)["body"].encode("latin-1") == body
            client.send(b"GET /big HTTP/1.1\r\nHost: a\r\n\r\n")
            response = await client.read_response()
            assert response is not None and response.body == b"x" * 4_000_000
            await client.close()

    run(scenario())


def test_expect_100_continue_before_the_body() -> None:
    async def scenario() -> None:
        async with stack(Weights(100, 0)) as (balancer, _, _):
            client = await RawClient().connect(balancer.port)
            client.send(
                b"POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\n"
                b"Expect: 100-continue\r\n\r\n"
            )
            assert client.reader is not None
            interim = await asyncio.wait_for(client.reader.readuntil(b"\r\n\r\n"), 5)
            assert interim == b"HTTP/1.1 100 Continue\r\n\r\n"
            client.send(b"body")
            response = await client.read_response()
            assert response is not None and json.loads(response.body)["body"] == "body"
            await client.close()

    run(scenario())


def test_split_is_exact_over_any_100_consecutive_requests() -> None:
    async def scenario() -> None:
        async with stack(Weights(95, 5)) as (balancer, _, _):
            client = await RawClient().connect(balancer.port)
            names = []
            for _ in range(200):
                client.send(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
                response = await client.read_response()
                assert response is not None
                names.append(response.body.decode())
            for start in range(101):
                canary = sum(n.startswith("canary") for n in names[start : start + 100])
                assert 4 <= canary <= 6
            balancer.set_weights(Weights(100, 0))
            for _ in range(100):
                client.send(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
                response = await client.read_response()
                assert response is not None and response.body == b"stable-0"
            await client.close()

    run(scenario())


def test_awsalbtg_cookie_keeps_a_client_on_its_group() -> None:
    async def scenario() -> None:
        async with stack(Weights(50, 50), stickiness_s=600) as (balancer, _, _):
            first = await get(balancer.port)
            cookie = first.header("Set-Cookie")
            assert cookie is not None and "AWSALBTG=" in cookie and "Expires=" in cookie
            value = cookie.split(";")[0]
            bodies = {(await get(balancer.port, headers=f"Cookie: {value}\r\n")).body}
            for _ in range(9):
                bodies.add((await get(balancer.port, headers=f"Cookie: {value}\r\n")).body)
            assert bodies == {first.body}

    run(scenario())


def test_health_states_unhealthy_targets_get_no_traffic_then_fail_open() -> None:
    healthy = {"stable-0": True, "stable-1": True}

    async def handler(conn: BackendConnection, req: Request) -> None:
        if req.path == "/health":
            conn.respond(200 if healthy[conn.backend.name] else 500)
        else:
            conn.respond(200, conn.backend.name.encode())

    async def scenario() -> None:
        fast = HealthCheckConfig.fast("/health")
        async with stack(Weights(100, 0), stable=2, health=fast) as (balancer, stables, _):
            for backend in stables:
                backend.handler = handler

            def states() -> list[str]:
                return [t.state for t in balancer.target_health()["stable"]]

            healthy["stable-1"] = False
            await wait_for(lambda: states() == ["healthy", "unhealthy"])
            reason = balancer.target_health()["stable"][1].reason
            assert reason == "Target.ResponseCodeMismatch"
            assert {(await get(balancer.port)).body for _ in range(6)} == {b"stable-0"}
            healthy["stable-0"] = False
            await wait_for(lambda: states() == ["unhealthy", "unhealthy"])
            # ALB fails open: with every target unhealthy, all of them get traffic.
            assert {(await get(balancer.port)).body for _ in range(6)} == {
                b"stable-0",
                b"stable-1",
            }

    run(scenario())


def test_new_target_is_initial_until_its_first_check() -> None:
    answer_checks = asyncio.Event()

    async def held_checks(conn: BackendConnection, req: Request) -> None:
        await answer_checks.wait()  # no check can pass (or time out) before this
        conn.respond(200)

    async def scenario() -> None:
        # ALB thresholds 5/2; the timeout outlasts the test's wait for a check.
        slow = HealthCheckConfig(interval_s=0.3, timeout_s=30)
        async with stack(Weights(100, 0), health=slow, wait_healthy=False, handler=held_checks) as (
            balancer,
            stables,
            canaries,
        ):
            await wait_for(lambda: all(b.requests for b in stables + canaries))  # checks held
            states = [t.state for ts in balancer.target_health().values() for t in ts]
            assert states == ["initial", "initial"]
            answer_checks.set()
            await wait_for(
                lambda: all(
                    t.state == "healthy" for ts in balancer.target_health().values() for t in ts
                )
            )

    run(scenario())


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_balancer_errors_502_503_504_are_counted_apart_from_target_5xx() -> None:
    async def scenario() -> None:
        async with stack(Weights(100, 0), canary=0, idle_timeout_s=0.6) as (balancer, _, _):
            assert (await get(balancer.port, "/status/500")).status == 500
            assert (await get(balancer.port, "/malformed")).status == 502
            assert (await get(balancer.port, "/reset")).status == 502
            assert (await get(balancer.port, "/sleep/3")).status == 504
            balancer.set_weights(Weights(0, 100))
            assert (await get(balancer.port)).status == 503  # canary has no targets
            balancer.register_target("canary", "gone", "127.0.0.1", _free_port())
            assert (await get(balancer.port)).status == 502  # connection refused
            stable = balancer.metrics.window("stable", 0, 2e10)
            assert (stable.status_5xx, stable.balancer_502, stable.balancer_504) == (1, 2, 1)
            assert stable.errors == 4
            canary = balancer.metrics.window("canary", 0, 2e10)
            assert (canary.balancer_503, canary.balancer_502, canary.status_5xx) == (1, 1, 0)

    run(scenario())


def test_idle_client_connection_is_closed_after_the_idle_timeout() -> None:
    async def scenario() -> None:
        async with stack(Weights(100, 0), idle_timeout_s=0.4) as (balancer, _, _):
            client = await RawClient().connect(balancer.port)
            client.send(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
            assert await client.read_response() is not None
            assert await client.is_closed(timeout=3)

    run(scenario())


def test_forwarded_headers_reach_the_target() -> None:
    async def scenario() -> None:
        async with stack(Weights(100, 0)) as (balancer, _, _):
            response = await get(balancer.port, "/echo", "X-Forwarded-For: 198.51.100.1\r\n")
            headers = {n.lower(): v for n, v in json.loads(response.body)["headers"]}
            assert headers["x-forwarded-for"] == "198.51.100.1, 127.0.0.1"
            assert headers["x-forwarded-port"] == str(balancer.port)
            assert headers["x-forwarded-proto"] == "http"
            assert headers["x-amzn-trace-id"].startswith("Root=1-")
            hop = await get(balancer.port, "/hop")
            assert hop.header("Keep-Alive") is None and hop.header("Connection") is None

    run(scenario())


ATTACKS = [
    b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"0\r\n\r\nGET /" + ATTACK_MARKER + b" HTTP/1.1\r\nHost: a\r\n\r\n",
    b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n"
    b"0\r\n\r\nGET /" + ATTACK_MARKER + b" HTTP/1.1\r\nHost: a\r\n\r\n",
    b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\nContent-Length: 40\r\n\r\n"
    b"GET /" + ATTACK_MARKER + b" HTTP/1.1\r\nHost: a\r\n\r\n",
    b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"0x0\r\n\r\nGET /" + ATTACK_MARKER + b" HTTP/1.1\r\nHost: a\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: a\r\nX-A: 1\r\n Transfer-Encoding: chunked\r\n\r\n"
    b"0\r\n\r\nGET /" + ATTACK_MARKER + b" HTTP/1.1\r\n\r\n",
    b"GET /" + ATTACK_MARKER + b" HTTP/1.1\r\nHost: a\r\nX: " + b"a" * 70000 + b"\r\n\r\n",
    b"GET /" + ATTACK_MARKER + b" HTTP/1.1 extra\r\nHost: a\r\n\r\n",
]


def test_smuggling_attempts_get_400_and_nothing_reaches_the_target() -> None:
    async def scenario() -> None:
        async with stack(Weights(50, 50)) as (balancer, stables, canaries):
            for attack in ATTACKS:
                client = await RawClient().connect(balancer.port)
                client.send(attack)
                response = await client.read_response()
                assert response is not None and response.status == 400, attack[:60]
                assert await client.is_closed()
                await client.close()
            assert (await get(balancer.port)).status == 200  # still serving
            for backend in stables + canaries:
                assert ATTACK_MARKER not in backend.raw
                assert all(
                    r.method == "GET" and r.path in ("/", "/health") for r in backend.requests
                )
            assert balancer.metrics.rejected_400 == len(ATTACKS)

    run(scenario())


def test_zero_failed_requests_while_weights_change_20_times_under_load() -> None:
    async def scenario() -> None:
        async with stack(Weights(95, 5), stable=2) as (balancer, _, _):
            statuses: list[int] = []
            stop = asyncio.Event()

            async def load() -> None:
                client = await RawClient().connect(balancer.port)
                while not stop.is_set():
                    client.send(b"GET /sleep/0.002 HTTP/1.1\r\nHost: a\r\n\r\n")
                    response = await client.read_response()
                    statuses.append(0 if response is None else response.status)
                await client.close()

            async def some_responses() -> None:
                mark = len(statuses)
                await wait_for(lambda: len(statuses) >= mark + 12)

            workers = [asyncio.create_task(load()) for _ in range(8)]
            for i in range(20):
                await some_responses()  # under load between any two changes
                canary = (i * 37) % 101
                balancer.set_weights(Weights(100 - canary, canary))
            await some_responses()
            stop.set()
            await asyncio.gather(*workers)
            assert len(statuses) > 200
            assert set(statuses) == {200}

    run(scenario())


def test_deregistered_target_drains_in_flight_requests_and_gets_no_new_ones() -> None:
    async def scenario() -> None:
        async with stack(Weights(100, 0), stable=2) as (balancer, stables, _):
            in_flight = asyncio.create_task(get(balancer.port, "/sleep/0.5"))
            await wait_for(lambda: any(r.path == "/sleep/0.5" for b in stables for r in b.requests))
            busy = next(b for b in stables if any(r.path == "/sleep/0.5" for r in b.requests))
            drain = asyncio.create_task(balancer.deregister_target("stable", busy.name, delay_s=5))

            def state() -> str:
                return next(
                    t.state for t in balancer.target_health()["stable"] if t.target_id == busy.name
                )

            await wait_for(lambda: state() == "draining")
            others = {(await get(balancer.port)).body for _ in range(4)}
            assert busy.name.encode() not in others
            assert (await in_flight).status == 200
            await asyncio.wait_for(drain, 2)
            assert [t.target_id for t in balancer.target_health()["stable"]] != [busy.name]
            assert len(balancer.target_health()["stable"]) == 1

    run(scenario())


def test_busy_listen_port_raises_eaddrinuse() -> None:
    async def scenario() -> None:
        async with stack(Weights(100, 0)) as (balancer, _, _):
            other = Balancer(BalancerConfig(port=balancer.port))
            with pytest.raises(OSError) as info:
                await other.start()
            assert info.value.errno == errno.EADDRINUSE

    run(scenario())


def test_backend_helper_sanity() -> None:
    # The recording backend itself must see requests, or the smuggling test proves nothing.
    async def scenario() -> None:
        backend = await Backend("b").start()
        try:
            response = await get(backend.port, "/" + ATTACK_MARKER.decode())
            assert response.status == 200
            assert ATTACK_MARKER in backend.raw
        finally:
            await backend.stop()

    run(scenario())


def test_a_sticky_canary_client_outlives_weight_zero_until_stickiness_is_off() -> None:
    async def scenario() -> None:
        async with stack(Weights(50, 50), stickiness_s=600) as (balancer, _, _):
            while not (response := await get(balancer.port)).body.startswith(b"canary"):
                pass
            cookie = (response.header("Set-Cookie") or "").split(";")[0]
            with_cookie = f"Cookie: {cookie}\r\n"
            # The problem, as a real ALB has it: weight 0 does not move a bound client.
            balancer.set_weights(Weights(100, 0))
            assert balancer.stickiness_s == 600
            for _ in range(5):
                assert (await get(balancer.port, headers=with_cookie)).body == b"canary-0"
            # One listener change with stickiness off: the next request goes to stable,
            # and no new binding is issued.
            balancer.set_forward(Weights(100, 0), None)
            moved = await get(balancer.port, headers=with_cookie)
            assert moved.body == b"stable-0" and moved.header("Set-Cookie") is None
            # On again with its duration: old cookies bind again, new ones are issued.
            balancer.set_forward(Weights(50, 50), 600)
            again = await get(balancer.port, headers=with_cookie)
            assert again.body == b"canary-0" and "AWSALBTG=" in (again.header("Set-Cookie") or "")

    run(scenario())


def test_stickiness_cannot_be_turned_on_where_it_was_never_configured() -> None:
    async def scenario() -> None:
        async with stack(Weights(50, 50)) as (balancer, _, _):
            with pytest.raises(UsageError, match="without stickiness"):
                balancer.set_forward(Weights(100, 0), 600)
            assert balancer.get_weights() == Weights(50, 50)  # nothing changed
            balancer.set_forward(Weights(100, 0), None)
            assert balancer.get_weights() == Weights(100, 0)

    run(scenario())


def test_three_groups_split_exactly_and_a_sticky_client_stays_on_the_baseline() -> None:
    async def scenario() -> None:
        async with stack(Weights(90, 5, 5), baseline=1, stickiness_s=600) as (balancer, _, _):
            client = await RawClient().connect(balancer.port)
            names = []
            for _ in range(300):
                client.send(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
                response = await client.read_response()
                assert response is not None and response.status == 200
                names.append(response.body.decode().split("-")[0])
            await client.close()
            for start in range(201):
                window = names[start : start + 100]
                assert [window.count(g) for g in ("stable", "canary", "baseline")] == [90, 5, 5]
            counts = balancer.metrics.counts(0, 1e11)
            assert [counts[g].requests for g in ("stable", "canary", "baseline")] == [270, 15, 15]

            # A client bound to the baseline stays there while it has weight...
            while "baseline" not in (response := await get(balancer.port)).body.decode():
                pass
            cookie = (response.header("Set-Cookie") or "").split(";")[0]
            assert cookie.startswith("AWSALBTG=")
            for _ in range(10):
                sticky = await get(balancer.port, headers=f"Cookie: {cookie}\r\n")
                assert sticky.body == b"baseline-0"
            # ...and, as on ALB, still after its weight drops to 0...
            balancer.set_weights(Weights(95, 5))
            for _ in range(5):
                sticky = await get(balancer.port, headers=f"Cookie: {cookie}\r\n")
                assert sticky.body == b"baseline-0"
            # ...until the listener's stickiness is turned off in a listener change.
            balancer.set_forward(Weights(95, 5), None)
            moved = {(await get(balancer.port, headers=f"Cookie: {cookie}\r\n")).body}
            for _ in range(20):
                moved.add((await get(balancer.port, headers=f"Cookie: {cookie}\r\n")).body)
            assert b"baseline-0" not in moved

    run(scenario())


def test_slow_start_gives_a_new_target_a_small_share_that_grows_to_a_full_one() -> None:
    async def scenario() -> None:
        async with stack(Weights(100, 0), canary=0, slow_start_s=30) as (balancer, _, _):
            newcomer = await Backend("stable-new").start()
            try:
                balancer.register_target("stable", "stable-new", "127.0.0.1", newcomer.port)
                await wait_for(lambda: all_healthy(balancer))
                group = balancer._router.groups["stable"]
                assert group.targets["stable-new"].slow_start_since is not None
                served = [(await get(balancer.port)).body for _ in range(100)]
                assert served.count(b"stable-new") <= 10, "a fresh target starts near zero"
                # Half-way through the duration the balancer's ramp timer has moved it on.
                started = group.clock()
                loop = asyncio.get_running_loop()
                t0 = loop.time()
                group.clock = lambda: started + 15 + (loop.time() - t0)
                # The ramp timer's next step (every 30 s / 100) gives it about half a share.
                await wait_for(lambda: group.pool.count(group.targets["stable-new"]) >= 50)
                served = [(await get(balancer.port)).body for _ in range(300)]
                assert 80 <= served.count(b"stable-new") <= 120  # 0.5 / 1.5 of the picks
                group.clock = lambda: started + 31
                await wait_for(lambda: not group.ramping)
                served = [(await get(balancer.port)).body for _ in range(100)]
                assert served.count(b"stable-new") == 50
                assert balancer._ramper is None, "no ramp timer once nobody ramps"
            finally:
                await newcomer.stop()

    run(scenario())
