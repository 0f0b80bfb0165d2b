"""Fuzzed client requests (valid, borderline, hostile) through a real balancer."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.balancer.fuzz.harness import Rig
from tests.balancer.fuzz.oracle import run_connection, run_connections
from tests.balancer.fuzz.profile import fuzz_settings
from tests.balancer.fuzz.strategies import Conn, connections, hostile_requests

pytestmark = pytest.mark.integration


@fuzz_settings(150)
@given(conn=connections())
def test_any_request_sequence_keeps_every_invariant(rig: Rig, conn: Conn) -> None:
    async def scenario(r: Rig, conn: Conn = conn) -> None:
        await run_connection(r, conn)

    rig.example(scenario)


@fuzz_settings(60)
@given(conn=connections(hostile_requests()))
def test_hostile_requests_get_a_4xx_and_reach_no_target(rig: Rig, conn: Conn) -> None:
    async def scenario(r: Rig, conn: Conn = conn) -> None:
        await run_connection(r, conn)

    rig.example(scenario)


@fuzz_settings(15)
@given(conns=st.lists(connections(), min_size=2, max_size=8))
def test_concurrent_clients_never_see_each_others_bytes(rig: Rig, conns: list[Conn]) -> None:
    async def scenario(r: Rig, conns: list[Conn] = conns) -> None:
        await run_connections(r, conns)

    rig.example(scenario)
