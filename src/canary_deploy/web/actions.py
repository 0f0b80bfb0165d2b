"""Steering from the page: the same use-cases as the CLI's verbs (`canary pause|resume|
promote|abort`, `set-weights`), recorded in the rollout's history as sent from the
dashboard (`alice (dashboard)`)."""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import closing
from dataclasses import dataclass
from typing import Any

from canary_deploy import usecases
from canary_deploy.config import Settings
from canary_deploy.errors import UsageError
from canary_deploy.rollout import service, steering
from canary_deploy.rollout.model import Command
from canary_deploy.targets import open_target
from canary_deploy.weights import Weights

COMMANDS: dict[str, Command] = {
    "pause": Command.PAUSE,
    "resume": Command.RESUME,
    "promote": Command.PROMOTE,
    "promote_full": Command.PROMOTE_FULL,
    "abort": Command.ABORT,
}
ACTION_NAMES = (*COMMANDS, "set_weights")


@dataclass(frozen=True)
class Done:
    """What the page shows once an action is in effect."""

    message: str
    doc: dict[str, Any]


def actor() -> str:
    """Who the history says sent it: the user running the dashboard, and from where."""
    return steering.operator("dashboard")


def carry_out(settings: Settings, body: Mapping[str, Any]) -> Done:
    """Run one action and return once it is in effect (blocking: steering waits for the
    controller, as the CLI's verbs do). UsageError for a bad or refused action."""
    action = body.get("action")
    if action not in ACTION_NAMES:
        raise UsageError(f"unknown action {action!r}", hint=f"one of: {', '.join(ACTION_NAMES)}")
    target = open_target(settings)
    if action == "set_weights":
        weights = Weights.parse(body.get("stable", ""), body.get("canary", ""))
        with service.existing_store(settings) as store:
            steering.refuse_set_weights(store)
        status = usecases.set_weights(target, weights)
        live = status.listener.weights if status.listener else weights
        return Done(f"weights {live} in effect", {"weights": live.to_dict()})
    with closing(service.open_store(settings)) as store:
        done = steering.steer(target, store, COMMANDS[str(action)], actor=actor())
    r = done.rollout
    verb = str(action).replace("_", " ")
    message = f"{verb} in effect: rollout #{r.id} {r.status}, weights {done.weights}"
    return Done(message, done.to_dict())
