"""The reader: each part at its pace, and nothing that would change the stack."""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import replace

from canary_deploy.web.snapshot import PACES, Reader
from tests.web.fakes import FakeTarget, SteadyMetrics, chain_status


def test_each_part_is_read_when_its_pace_says_so() -> None:
    clock = [1000.0]
    target = FakeTarget(SteadyMetrics({"stable": 10.0}))
    reader = Reader(target, lambda: nullcontext(None), PACES["local"], clock=lambda: clock[0])
    assert reader.refresh() == {"status", "traffic", "rollout"}
    clock[0] += 1.0
    assert reader.refresh() == {"status", "rollout"}  # traffic every 2 s
    reader.force("traffic")
    assert reader.refresh() == {"traffic"}
    assert target.status_calls == 2


def test_a_stopped_stack_is_not_asked_for_traffic() -> None:
    """The local target's metrics would start a stopped daemon again: a dashboard only looks."""
    metrics = SteadyMetrics({"stable": 10.0})
    stopped = replace(chain_status(), stack_status="STOPPED", listener=None)
    reader = Reader(FakeTarget(metrics, stopped), lambda: nullcontext(None), PACES["local"])
    reader.refresh()
    assert metrics.count_calls == []
    assert reader.snapshot.errors["traffic"].startswith("the stack is not running")
