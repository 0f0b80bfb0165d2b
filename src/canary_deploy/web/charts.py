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
    dashed: bool = False


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


def render(chart: Chart) -> str:
    """The chart as an inline SVG element."""
    ys = [y for line in chart.lines for _, y in line.points if y is not None]
    ys += [r.at for r in chart.hrules]
    x0, x1 = chart.x_range
    x1 = x1 if x1 > x0 else x0 + 1
    if chart.log:
        ticks = log_ticks(*log_range(ys))
        lo, hi = round(math.log10(ticks[0])), round(math.log10(ticks[-1]))

        def to_y(v: float) -> float:
            frac = (math.log10(max(v, 10.0**lo)) - lo) / (hi - lo)
            return HEIGHT - _BOTTOM - frac * (HEIGHT - _TOP - _BOTTOM)

    else:
        top = nice_max(max(ys, default=0.0))

        def to_y(v: float) -> float:
            return HEIGHT - _BOTTOM - (v / top) * (HEIGHT - _TOP - _BOTTOM)

        ticks = [0.0, top / 2, top]

    def to_x(v: float) -> float:
        return _LEFT + (v - x0) / (x1 - x0) * (WIDTH - _LEFT - _RIGHT)

    parts = [
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'aria-label="{escape(chart.title)}">'
    ]
    for tick in ticks:
        y = to_y(tick)
        parts.append(
            f'<line class="grid" x1="{_LEFT}" x2="{WIDTH - _RIGHT}" y1="{y:.1f}" y2="{y:.1f}"/>'
            f'<text class="tick" x="{_LEFT - 4}" y="{y + 3:.1f}" text-anchor="end">'
            f"{escape(chart.y_label(tick))}</text>"
        )
    for frac in (0.0, 0.5, 1.0):
        xv = x0 + frac * (x1 - x0)
        anchor = ("start", "middle", "end")[int(frac * 2)]
        parts.append(
            f'<text class="tick" x="{to_x(xv):.1f}" y="{HEIGHT - 5}" '
            f'text-anchor="{anchor}">{escape(chart.x_label(xv))}</text>'
        )
    for rule in chart.vrules:
        x = to_x(rule.at)
        parts.append(
            f'<line class="{rule.css}" x1="{x:.1f}" x2="{x:.1f}" y1="{_TOP}" '
            f'y2="{HEIGHT - _BOTTOM}"/><text class="tick" x="{x + 2:.1f}" y="{_TOP + 9}">'
            f"{escape(rule.label)}</text>"
        )
    for rule in chart.hrules:
        y = to_y(rule.at)
        parts.append(
            f'<line class="{rule.css}" x1="{_LEFT}" x2="{WIDTH - _RIGHT}" y1="{y:.1f}" '
            f'y2="{y:.1f}"><title>{escape(rule.label)}</title></line>'
        )
    for line in chart.lines:
        dash = ' stroke-dasharray="4 3"' if line.dashed else ""
        for run in _runs(line.points):
            coords = " ".join(f"{to_x(x):.1f},{to_y(y):.1f}" for x, y in run)
            shape = "polyline" if len(run) > 1 else "circle"
            if shape == "circle":
                x, y = run[0]
                parts.append(
                    f'<circle class="{line.css}" cx="{to_x(x):.1f}" cy="{to_y(y):.1f}" r="2"/>'
                )
            else:
                parts.append(f'<polyline class="{line.css}" points="{coords}"{dash}/>')
    parts.append("</svg>")
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
