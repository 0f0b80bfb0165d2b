"""Hand-drawn SVG line charts (linear or log scale), rendered on the server: no charting
library, no build step, and the same picture in every browser."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from html import escape

WIDTH, HEIGHT = 480, 160
_LEFT, _RIGHT, _TOP, _BOTTOM = 46, 8, 8, 20


@dataclass(frozen=True)
class Line:
    """One series: (x, y) points, y None where there is no data (the line breaks)."""

    label: str
    points: Sequence[tuple[float, float | None]]
    css: str  # the class that colours it: v-stable, v-canary, v-baseline, harm, ni


@dataclass(frozen=True)
class Rule:
    """A horizontal (threshold) or vertical (event) rule with a label."""

    at: float
    label: str
    css: str


@dataclass(frozen=True)
class Chart:
    lines: Sequence[Line]
    x_range: tuple[float, float]
    x_label: Callable[[float], str]
    y_label: Callable[[float], str]
    log: bool = False
    hrules: Sequence[Rule] = field(default=())
    vrules: Sequence[Rule] = field(default=())
    title: str = ""


def nice_max(value: float) -> float:
    """The smallest 1/2/5 x 10^n at or above `value` (an axis' top).

    >>> nice_max(0.0), nice_max(7.3), nice_max(120), nice_max(0.031)
    (1.0, 10.0, 200.0, 0.05)
    """
    if value <= 0:
        return 1.0
    power = 10.0 ** math.floor(math.log10(value))
    for step in (1, 2, 5, 10):
        if step * power >= value * (1 - 1e-9):
            return step * power
    return 10.0 * power


def log_range(values: Sequence[float]) -> tuple[int, int]:
    """Whole decades around the values (and 1, where an e-value starts).

    >>> log_range([0.2, 40.0])
    (-1, 2)
    >>> log_range([1.0])
    (-1, 1)
    """
    positive = [v for v in values if v > 0] or [1.0]
    low = min(-1, math.floor(math.log10(min(positive))))
    high = max(1, math.ceil(math.log10(max(positive))))
    return low, high


def log_ticks(low: int, high: int, most: int = 5) -> list[float]:
    """At most `most` powers of ten from 10^low up to 10^high, evenly spaced.

    >>> log_ticks(-1, 2)
    [0.1, 1.0, 10.0, 100.0]
    >>> ticks = log_ticks(-2, 17)
    >>> len(ticks), ticks[0], ticks[-1] >= 1e17
    (5, 0.01, True)
    """
    step = max(1, math.ceil((high - low) / (most - 1)))
    return [10.0**p for p in range(low, high + step, step)]


@dataclass(frozen=True)
class _Frame:
    """Data to pixels: x linear over `x_range`; y linear from 0 to `top`, or over whole
    decades 10^low..10^high on a log scale."""

    x0: float
    x1: float
    ticks: list[float]
    log: bool

    def x(self, v: float) -> float:
        return _LEFT + (v - self.x0) / (self.x1 - self.x0) * (WIDTH - _LEFT - _RIGHT)

    def y(self, v: float) -> float:
        if self.log:
            low, high = (math.log10(t) for t in (self.ticks[0], self.ticks[-1]))
            frac = (math.log10(max(v, self.ticks[0])) - low) / (high - low)
        else:
            frac = v / self.ticks[-1]
        return HEIGHT - _BOTTOM - frac * (HEIGHT - _TOP - _BOTTOM)


def _frame(chart: Chart) -> _Frame:
    ys = [y for line in chart.lines for _, y in line.points if y is not None]
    ys += [r.at for r in chart.hrules]
    x0, x1 = chart.x_range
    x1 = x1 if x1 > x0 else x0 + 1
    if chart.log:
        return _Frame(x0, x1, log_ticks(*log_range(ys)), log=True)
    top = nice_max(max(ys, default=0.0))
    return _Frame(x0, x1, [0.0, top / 2, top], log=False)


def render(chart: Chart) -> str:
    """The chart as an inline SVG element."""
    f = _frame(chart)
    return (
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'aria-label="{escape(chart.title)}">'
        f"{_axes(f, chart)}{_rules(f, chart)}{_lines(f, chart)}</svg>"
    )


def _axes(f: _Frame, chart: Chart) -> str:
    parts = []
    for tick in f.ticks:
        y = f.y(tick)
        parts.append(
            f'<line class="grid" x1="{_LEFT}" x2="{WIDTH - _RIGHT}" y1="{y:.1f}" y2="{y:.1f}"/>'
            f'<text class="tick" x="{_LEFT - 4}" y="{y + 3:.1f}" text-anchor="end">'
            f"{escape(chart.y_label(tick))}</text>"
        )
    for frac, anchor in ((0.0, "start"), (0.5, "middle"), (1.0, "end")):
        xv = f.x0 + frac * (f.x1 - f.x0)
        parts.append(
            f'<text class="tick" x="{f.x(xv):.1f}" y="{HEIGHT - 5}" '
            f'text-anchor="{anchor}">{escape(chart.x_label(xv))}</text>'
        )
    return "".join(parts)


def _rules(f: _Frame, chart: Chart) -> str:
    parts = []
    for rule in chart.vrules:
        x = f.x(rule.at)
        parts.append(
            f'<line class="{rule.css}" x1="{x:.1f}" x2="{x:.1f}" y1="{_TOP}" '
            f'y2="{HEIGHT - _BOTTOM}"/><text class="tick" x="{x + 2:.1f}" y="{_TOP + 9}">'
            f"{escape(rule.label)}</text>"
        )
    for rule in chart.hrules:
        y = f.y(rule.at)
        parts.append(
            f'<line class="{rule.css}" x1="{_LEFT}" x2="{WIDTH - _RIGHT}" y1="{y:.1f}" '
            f'y2="{y:.1f}"><title>{escape(rule.label)}</title></line>'
        )
    return "".join(parts)


def _lines(f: _Frame, chart: Chart) -> str:
    """Each line as polylines between gaps; a lone point as a dot."""
    parts = []
    for line in chart.lines:
        for run in _runs(line.points):
            if len(run) == 1:
                ((x, y),) = run
                parts.append(
                    f'<circle class="{line.css}" cx="{f.x(x):.1f}" cy="{f.y(y):.1f}" r="2"/>'
                )
                continue
            coords = " ".join(f"{f.x(x):.1f},{f.y(y):.1f}" for x, y in run)
            parts.append(f'<polyline class="{line.css}" points="{coords}"/>')
    return "".join(parts)


def _runs(points: Sequence[tuple[float, float | None]]) -> list[list[tuple[float, float]]]:
    """The points split where data is missing.

    >>> _runs([(0, 1.0), (1, None), (2, 2.0), (3, 3.0)])
    [[(0, 1.0)], [(2, 2.0), (3, 3.0)]]
    """
    runs: list[list[tuple[float, float]]] = [[]]
    for x, y in points:
        if y is None:
            if runs[-1]:
                runs.append([])
        else:
            runs[-1].append((x, y))
    return [run for run in runs if run]
