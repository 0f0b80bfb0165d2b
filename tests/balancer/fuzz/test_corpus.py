"""The fuzz harness's found cases (corpus.py), replayed with the same invariants."""

from __future__ import annotations

import pytest

from tests.balancer.fuzz.corpus import CORPUS, Found
from tests.balancer.fuzz.harness import Rig
from tests.balancer.fuzz.oracle import run_connections

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("found", CORPUS, ids=[f"{f.item}-{f.name}" for f in CORPUS])
def test_found_case_keeps_every_invariant(rig: Rig, found: Found) -> None:
    async def scenario(r: Rig) -> None:
        if found.early:
            await r.fresh_connections(found.early)
        await run_connections(r, found.conns, found.scripts or None)

    for _ in range(found.repeat):
        rig.example(scenario)
