"""The rollout's live view fits 80 columns; without a terminal it prints plain lines."""

from __future__ import annotations

import io
from pathlib import Path

from rich.console import Console

from canary_deploy.rollout.controller import Controller
from canary_deploy.rollout.plan import build_plan
from canary_deploy.rollout.start import start_rollout
from canary_deploy.rollout.store import RolloutStore
from canary_deploy.rollout.view import PlainView, render
from tests.rollout.fakes import Clock, FakeMetrics, FakeRouter, FakeWorkload


def a_tick(tmp_path: Path):  # type: ignore[no-untyped-def]
    clock, router = Clock(), FakeRouter()
    metrics = FakeMetrics(router, latency=True, stable_latency_s=0.0156, canary_latency_s=0.0156)
    store = RolloutStore(tmp_path / "state.db", "stack")
    plan = build_plan("local", {"interval": 2})
    r = start_rollout(store, plan, metrics, canary_image="v2", clock=clock)
    controller = Controller(router, FakeWorkload(), metrics, store, r.id, clock=clock)
    result = None
    for _ in range(20):
        clock.advance(1)
        result = controller.tick()
    assert result is not None
    return result, clock


def test_the_live_panel_fits_80_columns_and_shows_the_evidence(tmp_path: Path) -> None:
    result, clock = a_tick(tmp_path)
    out = io.StringIO()
    console = Console(file=out, width=80, force_terminal=True, color_system=None)
    console.print(render(result, {"stable": 0.012, "canary": 0.013, "baseline": 0.014}, clock()))
    lines = out.getvalue().splitlines()
    assert max(len(line) for line in lines) <= 80
    text = out.getvalue()
    assert "step 1/4 (canary 5%)" in text
    assert "weights 90/5/5" in text  # stable / canary / baseline
    assert "stable+baseline" in text  # what the errors are compared with
    assert "errors" in text and "> 15.6 ms" in text
    assert "/33.3" in text  # the error metric's e-value against its threshold
    assert "13 ms" in text  # canary p99
    assert "14 ms" in text  # baseline p99


def test_the_plain_view_prints_one_line_per_change(tmp_path: Path) -> None:
    result, _ = a_tick(tmp_path)
    out = io.StringIO()
    view = PlainView(Console(file=out, width=80, color_system=None))
    view.show(result, {})
    view.show(result, {})  # nothing changed: nothing printed
    lines = out.getvalue().splitlines()
    assert len(lines) == 1
    assert "rollout #1 running - step 1/4 (canary 5%) weights 90/5/5" in lines[0]
