"""What a running rollout shows: a live panel on a terminal, plain lines otherwise."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from canary_deploy.rollout.controller import TickResult
from canary_deploy.rollout.reading import step_elapsed
from canary_deploy.rollout.store import RecordedDecision, Rollout
from canary_deploy.units import ms

_STYLE = {
    "running": "bold cyan",
    "paused": "bold yellow",
    "rolling_back": "bold red",
    "rolled_back": "bold red",
    "promoting": "bold green",
    "promoted": "bold green",
}


def _pct(rate: float | None) -> str:
    return "-" if rate is None else f"{rate:.2%}"


def _e(value: float) -> str:
    return f"{value:.3g}" if value < 1e4 else f"{value:.1e}"


def _short(name: str) -> str:
    """Shorten "slower than 16 ms (stable p95)" to "> 16 ms (p95)" to fit 80 columns."""
    return name.replace("slower than ", "> ").replace("(stable ", "(")[:24]


def headline(r: Rollout) -> str:
    step = r.plan.steps[min(r.step, len(r.plan.steps) - 1)]
    return (
        f"rollout #{r.id} {r.status} - step {r.step + 1}/{len(r.plan.steps)} "
        f"(canary {step.canary_weight}%)"
    )


def decision_line(recorded: RecordedDecision | None) -> str:
    return "waiting for the first batch" if recorded is None else recorded.explanation


def _evidence_tables(
    d: RecordedDecision | None, quantiles: Mapping[str, float | None]
) -> tuple[Table, Table]:
    """Requests, errors and p99 per version, and each metric's counts and e-values."""
    versions = Table(box=None, pad_edge=False, header_style="bold")
    for col in ("version", "requests", "errors", "p99"):
        versions.add_column(col, justify="right" if col != "version" else "left")
    metrics = Table(box=None, pad_edge=False, header_style="bold")
    for col in ("metric", "canary", "control", "harm e", "not-worse e"):
        metrics.add_column(col, justify="left" if col == "metric" else "right")
    if d is not None and d.decision.metrics:
        evidence = d.decision.metrics
        errors_control = d.decision.controls[0]
        first = evidence[0]
        pooled = errors_control != "stable"
        versions.add_row(
            errors_control,
            f"{first.stable_requests:,}",
            _pct(first.stable_rate),
            "" if pooled else ms(quantiles.get("stable")),
        )
        versions.add_row(
            "canary",
            f"{first.canary_requests:,}",
            _pct(first.canary_rate),
            ms(quantiles.get("canary")),
        )
        if pooled:
            # p99 per group: the pooled row has none of its own.
            for group in ("stable", "baseline"):
                if group in quantiles:
                    versions.add_row(f"{group} p99", "", "", ms(quantiles.get(group)))
        for m in evidence:
            metrics.add_row(
                _short(m.name),
                f"{m.canary_hits}/{m.canary_requests}",
                f"{m.stable_hits}/{m.stable_requests}",
                f"{_e(m.e_harm)}/{_e(m.harm_threshold)}",
                f"{_e(m.e_non_inferiority)}/{_e(m.non_inferiority_threshold)}",
            )
    return versions, metrics


def render(result: TickResult, quantiles: Mapping[str, float | None], now: float) -> Group:
    """The panel; fits 80 columns."""
    r = result.rollout
    step = r.plan.steps[min(r.step, len(r.plan.steps) - 1)]
    # The gate counts the step's time on the data it produced (CloudWatch lags minutes).
    elapsed = step_elapsed(r)
    title = Text(headline(r), style=_STYLE.get(r.status, "bold"))
    timing = Text(
        f"weights {result.live_weights}  |  {elapsed:.0f}s of step data "
        f"(min {step.min_duration_s:.0f}s, max {step.max_duration_s:.0f}s)  |  "
        f"{r.step_canary_requests} canary req (min {step.min_requests})"
    )
    d = result.decision
    versions, metrics = _evidence_tables(d, quantiles)
    parts: list[Any] = [title, timing, versions, metrics, Text(decision_line(d))]
    if r.reason:
        parts.append(Text(r.reason, style="yellow"))
    if r.status == "paused":
        parts.append(
            Text("paused: run `canary resume`, `canary promote` or `canary abort`", style="yellow")
        )
    return Group(*parts)


class LiveView:
    """A rich Live panel, refreshed every tick."""

    def __init__(self, console: Console) -> None:
        self._live = Live(console=console, auto_refresh=False, transient=False)

    def __enter__(self) -> LiveView:
        self._live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self._live.__exit__(None, None, None)

    def show(self, result: TickResult, quantiles: Mapping[str, float | None]) -> None:
        self._live.update(render(result, quantiles, time.time()), refresh=True)


class PlainView:
    """One line per change (step, status, verdict, weights) and a summary every 10 s."""

    def __init__(self, console: Console, every_s: float = 10.0) -> None:
        self._console = console
        self._every = every_s
        self._last_key: tuple[Any, ...] | None = None
        self._paused_key: tuple[Any, ...] | None = None
        self._last_time = 0.0

    def __enter__(self) -> PlainView:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def show(self, result: TickResult, quantiles: Mapping[str, float | None]) -> None:
        r = result.rollout
        d = result.decision
        verdict = None if d is None else str(d.decision.verdict)
        key = (r.status, r.step, str(result.live_weights), verdict)
        now = time.monotonic()
        if key == self._last_key and now - self._last_time < self._every:
            return
        self._last_key, self._last_time = key, now
        stamp = time.strftime("%H:%M:%S")
        if r.status == "promoted":
            why = "promoted: the canary's version now runs as stable"
        elif r.status in ("paused", "rolled_back") and r.reason:
            why = r.reason
        else:
            why = decision_line(d)
        self._console.print(
            f"{stamp} {headline(r)} weights {result.live_weights} - {why}",
            soft_wrap=True,
            markup=False,
        )
        if r.status == "paused" and key != self._paused_key:
            self._paused_key = key
            self._console.print(
                "  paused for a human: `canary resume`, `canary promote` (next step) or "
                "`canary abort` (roll back), from another terminal",
                markup=False,
            )
