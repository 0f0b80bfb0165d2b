"""The hand-drawn charts: lines break where data is missing, thresholds are drawn, a log
scale spans the e-values and their thresholds."""

from __future__ import annotations

import re

from canary_deploy.web.charts import Chart, Line, Rule, render


def _chart(**kw: object) -> str:
    line = Line(
        "canary",
        [(0, 1.0), (1, 2.0), (2, None), (3, 4.0), (4, 5.0), (5, None), (6, 1.0)],
        "v-canary",
    )
    defaults: dict[str, object] = {
        "lines": [line], "x_range": (0.0, 6.0), "x_label": str, "y_label": lambda v: f"{v:g}",
    }  # fmt: skip
    defaults.update(kw)
    return render(Chart(**defaults))  # type: ignore[arg-type]


def test_a_line_breaks_where_data_is_missing_and_a_lone_point_is_a_dot() -> None:
    svg = _chart()
    assert svg.count("<polyline") == 2 and svg.count("<circle") == 1
    assert re.findall(r">([\d.]+)</text>", svg)[:3] == ["0", "2.5", "5"]


def test_a_log_scale_spans_the_values_and_the_thresholds() -> None:
    svg = _chart(log=True, hrules=[Rule(33.3, "rollback at 33.3", "harm-rule")])
    assert "rollback at 33.3" in svg and 'class="harm-rule"' in svg
    labels = re.findall(r'text-anchor="end">([^<]+)</text>', svg)
    assert labels[:4] == ["0.1", "1", "10", "100"]
