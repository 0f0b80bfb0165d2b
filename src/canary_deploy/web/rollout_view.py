"""A rollout in HTML: its steps as a timeline with the current step's gate, each judged
metric's e-values against the rollback and promotion thresholds (log scale), the
decision with its evidence, the audit log, and the steering controls."""

from __future__ import annotations

from html import escape

from canary_deploy.rollout.model import Event, RecordedDecision, Rollout
from canary_deploy.web import charts
from canary_deploy.web.fragments import duration, pct, stamp
from canary_deploy.web.rollouts import deciding, e_paths, gate, step_starts, timeline
from canary_deploy.web.snapshot import RolloutSnapshot

_VERDICT = {
    "promoted": "Promoted: the canary's version now runs as stable",
    "rolled_back": "Rolled back: all traffic on stable",
    "promoting": "Promoting the canary…",
    "rolling_back": "Rolling back…",
    "paused": "Paused for a human",
}


def rollout(snap: RolloutSnapshot | None, error: str | None = None) -> str:
    if snap is None:
        body = '<p class="muted">No rollout yet: start one with <code>canary rollout</code>.</p>'
        return body if not error else f'<p class="error">Could not read: {escape(error)}</p>'
    r, events = snap.rollout, snap.events
    parts = [_headline(r), _timeline(r)]
    if not r.status.terminal:
        parts.append(_gate(r))
    parts.append(_verdict(r, events))
    parts.append(e_charts(r, events))
    parts.append(evidence(r.last_decision))
    return "".join(parts)


def _headline(r: Rollout) -> str:
    image = f" · judging <code>{escape(r.canary_image)}</code>" if r.canary_image else ""
    return (
        f'<p><a href="/rollouts/{r.id}">Rollout #{r.id}</a> · started {stamp(r.created_at)} '
        f'· <span class="status s-{r.status}" data-status="{r.status}">'
        f"{escape(str(r.status).replace('_', ' '))}</span>{image}</p>"
    )


def _timeline(r: Rollout) -> str:
    steps = "".join(
        f'<li class="step {s.state}" data-step="{s.number}" data-state="{s.state}">'
        f"<b>{s.canary_weight}%</b><small>step {s.number} · {s.weights}</small></li>"
        for s in timeline(r)
    )
    return f'<ol class="timeline" aria-label="steps">{steps}</ol>'


def _gate(r: Rollout) -> str:
    g = gate(r)
    return (
        f'<p class="gate" data-elapsed="{g.elapsed_s:.0f}" data-requests="{g.canary_requests}">'
        f"Step {r.step + 1} gate: "
        f'<span class="{"ok" if g.time_ok else ""}">{g.elapsed_s:.0f}s of data '
        f"(min {g.min_duration_s:.0f}s, max {g.max_duration_s:.0f}s)</span> · "
        f'<span class="{"ok" if g.requests_ok else ""}">{g.canary_requests:,} canary requests '
        f"(min {g.min_requests:,})</span></p>"
    )


def _verdict(r: Rollout, events: list[Event]) -> str:
    title = _VERDICT.get(str(r.status))
    explained = None if r.last_decision is None else r.last_decision.explanation
    if title is None:
        line = explained or "waiting for the first batch"
        return f'<p class="decision">Judge: {escape(str(line))}</p>'
    # Ended: why it ended (a promotion needs none); under way: the judge's last word.
    reason = r.reason or ("" if r.status.terminal else explained or "")
    return (
        f'<div class="verdict s-{r.status}" data-verdict="{r.status}"><b>{escape(title)}</b>'
        f"<br>{escape(str(reason))}<br><small>decided by: {escape(deciding(r, events))}</small>"
        "</div>"
    )


def e_charts(r: Rollout, events: list[Event]) -> str:
    """One chart per judged metric: e-value paths on a log scale with both thresholds."""
    paths = e_paths(r, events)
    if not paths:
        return ""
    span = max(p.t for path in paths.values() for p in path)
    starts = [charts.Rule(t, label, "step-rule") for t, label in step_starts(r, events)]
    cards = []
    for name, path in paths.items():
        last = path[-1]
        lines = [
            charts.Line("harm", [(p.t, p.e_harm) for p in path], "harm"),
            charts.Line("not worse", [(p.t, p.e_non_inferiority) for p in path], "ni"),
        ]
        rules = [
            charts.Rule(last.harm_threshold, f"rollback at {last.harm_threshold:.3g}", "harm-rule"),
            charts.Rule(
                last.non_inferiority_threshold,
                f"promotion at {last.non_inferiority_threshold:.3g}",
                "ni-rule",
            ),
        ]
        svg = charts.render(
            charts.Chart(
                lines, (0.0, span), duration, _e, log=True, hrules=rules, vrules=starts,
                title=f"e-values of {name}",
            )
        )  # fmt: skip
        cards.append(
            f'<figure class="card" data-metric="{escape(name)}"><figcaption>{escape(name)} '
            f'<span class="key harm" data-latest="{last.e_harm:.6g}">harm '
            f"<b>{_e(last.e_harm)}</b> / {_e(last.harm_threshold)}</span> "
            f'<span class="key ni" data-latest="{last.e_non_inferiority:.6g}">not worse '
            f"<b>{_e(last.e_non_inferiority)}</b> / {_e(last.non_inferiority_threshold)}</span>"
            f"</figcaption>{svg}</figure>"
        )
    return f'<div class="charts e-values">{"".join(cards)}</div>'


def _e(value: float) -> str:
    return f"{value:.3g}" if value < 1e4 else f"{value:.1e}"


def evidence(recorded: RecordedDecision | None) -> str:
    """The judge's last decision per metric: counts, rates with intervals, e-values."""
    if recorded is None or not recorded.decision.metrics:
        return ""
    decision = recorded.decision
    rows = "".join(
        f"<tr><td>{escape(m.name)}</td>"
        f"<td>{m.canary_hits:,}/{m.canary_requests:,} · {pct(m.canary_rate)} "
        f"<small>[{pct(m.canary_interval[0])}, {pct(m.canary_interval[1])}]</small></td>"
        f"<td>{m.stable_hits:,}/{m.stable_requests:,} · {pct(m.stable_rate)} "
        f"<small>[{pct(m.stable_interval[0])}, {pct(m.stable_interval[1])}]</small></td>"
        f"<td>{_e(m.e_harm)} / {_e(m.harm_threshold)}</td>"
        f"<td>{_e(m.e_non_inferiority)} / {_e(m.non_inferiority_threshold)}</td></tr>"
        f'<tr class="explain"><td colspan="5">{escape(m.explanation)}</td></tr>'
        for m in decision.metrics
    )
    errors, latency = decision.controls
    control = escape(f"errors: {errors}, latency: {latency}")
    return (
        f'<table class="evidence"><caption>Evidence (compared with {control})</caption>'
        "<thead><tr><th>metric</th><th>canary</th><th>control</th><th>harm e / threshold</th>"
        f"<th>not-worse e / threshold</th></tr></thead><tbody>{rows}</tbody></table>"
    )


def event_log(events: list[Event], *, batches: bool = False) -> str:
    """What `canary history --rollout N` prints (`--all`: the judge's every batch too)."""
    rows = []
    for e in events:
        if e.kind == "batch" and not batches:
            continue
        rows.append(
            f'<tr class="k-{escape(e.kind)}"><td>{stamp(e.t)}</td><td>{escape(e.kind)}</td>'
            f"<td>{escape(e.actor)}</td><td>{escape(e.message)}</td></tr>"
        )
        decision = e.judged() if e.kind == "decision" else None
        if decision is not None:
            rows.extend(
                f'<tr class="explain"><td></td><td></td><td></td><td>{escape(m.explanation)}'
                "</td></tr>"
                for m in decision.metrics
            )
    return (
        '<table class="log"><thead><tr><th>time</th><th>kind</th><th>actor</th><th>message</th>'
        f"</tr></thead><tbody>{''.join(rows)}</tbody></table>"
    )


# ---- steering


ACTIONS = (
    ("pause", "Pause", "Hold rollout #{id} at its step? The judge keeps watching."),
    ("resume", "Resume", "Resume rollout #{id}? Its step's weights go back on the listener."),
    ("promote", "Promote step", "End rollout #{id}'s current step now and go to the next?"),
    ("promote_full", "Promote fully", "Promote rollout #{id}'s canary to stable now?"),
    ("abort", "Abort", "Abort rollout #{id}? All traffic goes back to stable at once."),
)


def controls(snap: RolloutSnapshot | None, *, allow_control: bool) -> str:
    if not allow_control:
        return (
            '<p class="muted" data-readonly="1">Read-only. Start the dashboard with '
            "<code>canary dashboard --allow-control</code> to steer from here.</p>"
        )
    active = snap is not None and not snap.rollout.status.terminal
    buttons = []
    if active and snap is not None:
        for action, label, question in ACTIONS:
            ask = escape(question.format(id=snap.rollout.id))
            buttons.append(
                f'<button type="button" data-action="{action}" data-confirm="{ask}">'
                f"{label}</button>"
            )
    weights = (
        '<form class="set-weights" data-action="set_weights">'
        '<label>stable <input name="stable" type="number" min="0" max="100" value="100"></label>'
        '<label>canary <input name="canary" type="number" min="0" max="100" value="0"></label>'
        '<button type="submit">Set weights</button></form>'
    )
    return f'<div class="buttons">{"".join(buttons)}</div>{weights}'
