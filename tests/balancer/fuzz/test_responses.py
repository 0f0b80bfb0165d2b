"""Fuzzed target responses (valid, borderline, broken, leaking) through a real balancer."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.balancer.fuzz.harness import Rig, Script
from tests.balancer.fuzz.oracle import run_connections
from tests.balancer.fuzz.profile import fuzz_settings
from tests.balancer.fuzz.strategies import Conn, connections, scripts, simple_requests

pytestmark = pytest.mark.integration

# A client connection and how the target answers each of its requests.
Case = tuple[Conn, list[Script]]
cases = st.tuples(connections(simple_requests()), st.lists(scripts(), min_size=4, max_size=4))
EARLY = b"HTTP/1.1 200 OK\r\nX-Fuzz-Echo: LEAK\r\nContent-Length: 10\r\n\r\nLEAK-EARLY"


async def _run(rig: Rig, batch: list[Case], early: bool) -> None:
    if early:
        # Fresh target connections, each of which starts with bytes nobody asked for.
        await rig.fresh_connections(EARLY)
    await run_connections(rig, [conn for conn, _ in batch], [plan for _, plan in batch])


@fuzz_settings(120)
@given(case=cases, early=st.booleans())
def test_any_target_response_keeps_every_invariant(rig: Rig, case: Case, early: bool) -> None:
    async def scenario(r: Rig, case: Case = case, early: bool = early) -> None:
        await _run(r, [case], early)

    rig.example(scenario)


@fuzz_settings(12)
@given(batch=st.lists(cases, min_size=2, max_size=10), early=st.booleans())
def test_concurrent_clients_and_misbehaving_targets_never_mix_exchanges(
    rig: Rig, batch: list[Case], early: bool
) -> None:
    async def scenario(r: Rig, batch: list[Case] = batch, early: bool = early) -> None:
        await _run(r, batch, early)

    rig.example(scenario)
