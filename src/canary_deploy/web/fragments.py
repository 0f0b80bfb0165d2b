"""The dashboard's live parts as HTML fragments: the chain (listener -> target groups ->
services -> task definitions), the traffic charts, the history table and the freshness
line. The server sends a fragment again only when it changed."""

from __future__ import annotations

import time
from collections.abc import Callable
from html import escape

from canary_deploy.backend import Role, RoleStatus, Status
from canary_deploy.units import ms
from canary_deploy.web import charts
from canary_deploy.web.rollouts import HistoryRow
from canary_deploy.web.series import Point, TrafficSeries
from canary_deploy.web.snapshot import Pace, Snapshot


def clock(t: float) -> str:
    return time.strftime("%H:%M:%S", time.localtime(t))


def stamp(t: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t))


def duration(seconds: float | None) -> str:
    """A duration the way people say it.

    >>> duration(5.2), duration(65), duration(3725), duration(None)
    ('5s', '1m 05s', '1h 02m', '-')
    """
    if seconds is None:
        return "-"
    s = round(seconds)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m {s % 60:02d}s"
    return f"{s // 3600}h {s % 3600 // 60:02d}m"


def pct(rate: float | None) -> str:
    return "-" if rate is None else f"{rate:.2%}"


def error_box(message: str | None) -> str:
    return "" if not message else f'<p class="error">Could not read: {escape(message)}</p>'


# ---- the chain


def chain(status: Status | None, error: str | None) -> str:
    if status is None:
        return error_box(error) or '<p class="muted">Reading the stack…</p>'
    head = f"{escape(status.target)} · {escape(status.stack_name)} · {escape(status.stack_status)}"
    listener = status.listener
    if listener is None:
        top = '<div class="node listener"><b>Listener</b> not running</div>'
    else:
        drift = ""
        if listener.drift and listener.configured_weights is not None:
            said = escape(str(listener.configured_weights))
            drift = f' <span class="warn">stack says {said}</span>'
        top = (
            f'<div class="node listener" data-part="listener"><b>Listener</b> '
            f'<a href="{escape(listener.url)}">{escape(listener.url)}</a> · weights '
            f'<span class="weights">{escape(str(listener.weights))}</span>{drift}</div>'
        )
    columns = []
    for role, vs in status.versions.items():
        weight = listener.weights.of(role) if listener is not None else 0
        columns.append(_column(role, vs, weight))
    notes = "".join(f"<li>{escape(n)}</li>" for n in status.notes)
    return (
        f'<p class="muted">{head}</p>{error_box(error)}{top}'
        f'<div class="columns">{"".join(columns)}</div>'
        f'<ul class="notes">{notes}</ul>'
    )


def _column(role: Role, vs: RoleStatus, weight: int) -> str:
    tg, svc, td = vs.target_group, vs.service, vs.task_definition
    group = "-" if tg is None else (
        f'<span class="ok">{tg.healthy} healthy</span> · {tg.unhealthy} unhealthy · '
        f"{tg.initial} initial · {tg.draining} draining"
    )  # fmt: skip
    service = "-" if svc is None else (
        f'{svc.running}/{svc.desired} running · {escape(svc.deployment_state)}'
        + (f" · {escape(svc.message)}" if svc.message else "")
    )  # fmt: skip
    image = "-" if td is None else escape(td.image) + (
        f" (rev {escape(td.revision)})" if td.revision else ""
    )  # fmt: skip
    return (
        f'<div class="column v-{role}" data-version="{role}">'
        f'<div class="arrow">{weight}%</div>'
        f'<div class="node"><b>Target group</b> {escape(tg.name) if tg else ""}<br>{group}</div>'
        f'<div class="arrow">↓</div>'
        f'<div class="node"><b>Service</b> {escape(svc.name) if svc else ""}<br>{service}</div>'
        f'<div class="arrow">↓</div>'
        f'<div class="node"><b>Task definition</b><br><code>{image}</code></div></div>'
    )


# ---- traffic


def _percent(rate: float) -> str:
    """A rate in percent, three significant digits.

    >>> _percent(0.0), _percent(0.0123), _percent(1.0)
    ('0%', '1.23%', '100%')
    """
    return f"{rate * 100:.3g}%"


_SERIES: tuple[tuple[str, str, Callable[[Point], float | None], Callable[[float], str]], ...] = (
    ("rate", "Requests / s", lambda p: p.rate, lambda v: f"{v:.3g}"),
    ("errors", "Error rate", lambda p: p.error_rate, _percent),
    ("p50", "p50 latency", lambda p: p.quantiles_s[0], lambda v: ms(v)),
    ("p95", "p95 latency", lambda p: p.quantiles_s[1], lambda v: ms(v)),
    ("p99", "p99 latency", lambda p: p.quantiles_s[2], lambda v: ms(v)),
)


def traffic(series: TrafficSeries | None, now: float, pace: Pace, error: str | None) -> str:
    if series is None:
        return ""
    roles = series.roles()
    if not roles:
        return error_box(error) + '<p class="muted">No traffic in the last 15 minutes.</p>'
    end = now - pace.lag_s
    cards = []
    for key, title, value, label in _SERIES:
        lines, legend = [], []
        for role in roles:
            points = series.points(role)
            xy = [(p.start + p.seconds - end, value(p)) for p in points]
            lines.append(charts.Line(role, xy, f"v-{role}"))
            latest = next((y for _, y in reversed(xy) if y is not None), None)
            shown = "-" if latest is None else label(latest)
            legend.append(
                f'<span class="key v-{role}" data-version="{role}" '
                f'data-latest="{"" if latest is None else f"{latest:.6g}"}">'
                f"{role} <b>{escape(shown)}</b></span>"
            )
        svg = charts.render(
            charts.Chart(lines, (-series.window_s, 0.0), _ago, label, title=f"{title} per version")
        )
        cards.append(
            f'<figure class="card" data-chart="{key}"><figcaption>{title} '
            f"{''.join(legend)}</figcaption>{svg}</figure>"
        )
    return error_box(error) + f'<div class="charts">{"".join(cards)}</div>'


def _ago(x: float) -> str:
    return "now" if x >= 0 else f"{x / 60:g} min"


# ---- history and freshness


def history(rows: list[HistoryRow]) -> str:
    if not rows:
        return '<p class="muted">No rollouts yet: start one with <code>canary rollout</code>.</p>'
    body = "".join(
        f'<tr data-rollout="{r.id}">'
        f'<td><a href="/rollouts/{r.id}">#{r.id}</a></td><td>{stamp(r.started_at)}</td>'
        f'<td class="s-{escape(r.status)}">{escape(r.status.replace("_", " "))}</td>'
        f"<td>{duration(r.duration_s)}</td>"
        f"<td>{escape(r.deciding)}</td><td><code>{escape(r.canary_image or '-')}</code></td></tr>"
        for r in rows
    )
    return (
        '<table class="history"><thead><tr><th>rollout</th><th>started</th><th>outcome</th>'
        "<th>duration</th><th>decided by</th><th>canary image</th></tr></thead>"
        f"<tbody>{body}</tbody></table>"
    )


def freshness(snapshot: Snapshot) -> str:
    read = snapshot.read_at
    names = ("status", "traffic", "rollout")
    parts = [f"{name} {clock(read[name])}" for name in names if name in read]
    return "Read: " + " · ".join(parts) if parts else "Reading…"
