"""The dashboard's pages around the live fragments: the live overview and one rollout's
page (everything `canary history --rollout N` prints)."""

from __future__ import annotations

from html import escape

from canary_deploy.rollout.model import Event, Rollout
from canary_deploy.web import rollout_view
from canary_deploy.web.fragments import duration, stamp
from canary_deploy.web.rollouts import deciding
from canary_deploy.web.snapshot import RolloutSnapshot

# The live parts of the overview, in page order: (fragment name, heading).
SECTIONS = (
    ("chain", "Listener → target groups → services → task definitions"),
    ("traffic", "Traffic per version, last 15 minutes"),
    ("rollout", "Rollout"),
    ("controls", "Steer"),
    ("history", "History"),
)


def _shell(title: str, body: str, *, session_token: str | None = None) -> str:
    token = (
        f'<meta name="canary-session" content="{escape(session_token)}">' if session_token else ""
    )
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<meta name="color-scheme" content="light dark">'
        f"{token}<title>{escape(title)}</title>"
        '<link rel="stylesheet" href="/static/dashboard.css">'
        '<script src="/static/dashboard.js" defer></script></head>'
        f"<body>{body}</body></html>"
    )


def overview(
    stack: str,
    target: str,
    pace_note: str,
    fragments: dict[str, str],
    *,
    session_token: str | None,
) -> str:
    """The live page: each section filled with its latest fragment, then kept up to date
    by server-sent events."""
    sections = "".join(
        f'<section id="{name}-section"><h2>{escape(heading)}</h2>'
        f'<div data-live="{name}">{fragments.get(name, "<p class=muted>Reading…</p>")}</div>'
        "</section>"
        for name, heading in SECTIONS
    )
    header = (
        f"<header><h1>canary · {escape(stack)} <small>({escape(target)})</small></h1>"
        f'<p class="pace">{escape(pace_note)}</p>'
        '<p class="muted"><span id="connection" data-state="connecting">connecting…</span> · '
        f'<span data-live="freshness">{fragments.get("freshness", "")}</span></p></header>'
    )
    dialog = (
        '<dialog id="confirm"><form method="dialog"><p id="confirm-text"></p>'
        '<menu><button value="cancel">Cancel</button>'
        '<button value="ok" id="confirm-ok">Confirm</button></menu></form></dialog>'
        '<p id="action-result" role="status"></p>'
    )
    return _shell(
        f"canary · {stack}",
        f"{header}<main>{sections}</main>{dialog}",
        session_token=session_token,
    )


def rollout_page(stack: str, r: Rollout, events: list[Event], *, batches: bool) -> str:
    """One rollout as `canary history --rollout N` shows it, with its charts and evidence."""
    snap = RolloutSnapshot(r, events)
    toggle = (
        f'<a href="/rollouts/{r.id}">hide the judge\'s batches</a>'
        if batches
        else f'<a href="/rollouts/{r.id}?all=1">show every batch the judge saw</a>'
    )
    ended = f" · ended after {duration(r.updated_at - r.created_at)}" if r.status.terminal else ""
    body = (
        f"<header><h1>canary · {escape(stack)} · rollout #{r.id}</h1>"
        f'<p><a href="/">← live dashboard</a> · started {stamp(r.created_at)}{ended} · '
        f"decided by: {escape(deciding(r, events))}</p></header><main>"
        f"<section><h2>Rollout</h2>{rollout_view.rollout(snap)}</section>"
        f"<section><h2>History</h2><p>{toggle}</p>"
        f"{rollout_view.event_log(events, batches=batches)}</section></main>"
    )
    return _shell(f"canary · rollout #{r.id}", body)
