"""The seed's traffic verbs: `set-weights` and the emergency `rollback`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from canary_deploy import usecases
from canary_deploy.cli.app import OutputOpt, app, settings_from
from canary_deploy.cli.output import (
    console,
    print_json,
    progress,
    show_status,
    warn,
)
from canary_deploy.errors import CanaryError, UsageError
from canary_deploy.local.statedb import CorruptState
from canary_deploy.rollout import service, steering
from canary_deploy.targets import open_target
from canary_deploy.weights import Weights


@app.command("set-weights", context_settings={"ignore_unknown_options": True})
def set_weights(
    ctx: typer.Context,
    stable: Annotated[str | None, typer.Argument(help="Stable weight, 0-100")] = None,
    canary: Annotated[
        str | None, typer.Argument(help="Canary weight, 0-100; the two sum to 100")
    ] = None,
    balancer: Annotated[
        Path | None,
        typer.Option(
            "--balancer",
            help="A standalone `canary balancer`'s admin socket: change its weights instead.",
        ),
    ] = None,
    output: OutputOpt = "text",
) -> None:
    """Split traffic S/C percent with one listener call (no stack update). Refused while
    a rollout runs (it owns the weights); allowed while it is paused."""
    if stable is None or canary is None:
        given = " ".join(repr(v) for v in (stable, canary) if v is not None)
        raise UsageError(
            "set-weights takes two weights, stable and canary"
            + (f", got only {given}" if given else ""),
            hint="e.g. `canary set-weights 90 10`: integers 0-100 that sum to 100",
        )
    weights = Weights.parse(stable, canary)
    if balancer is not None:
        _set_standalone_weights(balancer, weights, output)
        return
    settings = settings_from(ctx)
    target = open_target(settings)
    with service.existing_store(settings) as store:
        steering.refuse_set_weights(store)
        paused = None if store is None else store.active()
    status = usecases.set_weights(target, weights)
    live = None if status.listener is None else status.listener.weights
    if output == "json":
        print_json({**status.to_dict(), "weights_set": weights.to_dict()})
    else:
        show_status(status, output)
        console.print(_weights_outcome(weights, live), markup=False)
    if paused is not None:
        warn(
            f"rollout #{paused.id} is paused: it records this change as made outside it; "
            "`canary resume` puts its step's weights back, `canary abort` rolls back"
        )


def _set_standalone_weights(socket: Path, weights: Weights, output: str) -> None:
    """One PUT /weights on a standalone balancer's admin socket (S/C, so its baseline, if
    any, gets 0 as on the stack), then what it says is live."""
    from canary_deploy.balancer.admin import AdminClient

    applied = AdminClient(socket).request("PUT", "/weights", weights.to_dict())
    if output == "json":
        print_json({"balancer": str(socket), "weights": applied})
        return
    now = Weights.from_dict(applied)
    console.print(f"Weights on the balancer at {socket}: {now}", markup=False)


def _weights_outcome(weights: Weights, live: Weights | None) -> str:
    """What `set-weights` set and what is live now: concurrent changes are applied one
    at a time and the last one wins, which is no error for the others."""
    if live is None or live == weights:
        return f"Set {weights}; live now {weights}."
    return f"Set {weights}; another change came after it (last writer wins): live now {live}."


@app.command()
def rollback(ctx: typer.Context, output: OutputOpt = "text") -> None:
    """All traffic to stable now (100/0), one listener call. During a rollout: the
    rollout ends as `canary abort` ends it (recorded in its history)."""
    settings = settings_from(ctx)
    target = open_target(settings)
    ended = None
    try:
        with service.existing_store(settings) as store:
            active = None if store is None else store.active()
            if active is not None:
                quiet = output == "json"
                with progress(f"Ending rollout #{active.id}: rolling back", quiet=quiet) as p:
                    ended = steering.end_rollout(target, store, via="rollback", progress=p)
    except CanaryError as exc:
        # The emergency button works without the rollout's state or controller: one
        # listener call. The rollout sees weights it did not set and pauses.
        show_status(usecases.rollback(target), output)
        if isinstance(exc, CorruptState):
            warn(f"{exc.message}: all traffic is on stable anyway (one listener call); {exc.hint}")
            return
        warn(
            f"the rollout could not be ended ({exc.message}); all traffic is on stable "
            "anyway (one listener call): the rollout pauses on weights it did not set - "
            "`canary abort` ends it"
        )
        return
    if ended is None:
        show_status(usecases.rollback(target), output)
        return
    show_status(target.status(), output)
    warn(f"rollout #{ended.rollout.id} ended: rolled back by {ended.actor}")
