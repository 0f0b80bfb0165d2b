"""The rollout controller as a process of its own: `python -m canary_deploy.rollout.runner`.

The local daemon starts it (see `local/controller_host.py`) whenever a rollout is active
and no controller ticks it, so a rollout goes on when the terminal that started it
closes, is interrupted or sleeps. It reads the settings the CLI saved next to the state,
claims the active rollout (a live controller elsewhere wins: this one exits) and runs it
to its end.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Mapping
from contextlib import closing
from pathlib import Path

from canary_deploy.config import Settings
from canary_deploy.errors import CanaryError
from canary_deploy.rollout.controller import TickResult
from canary_deploy.rollout.handover import SETTINGS_FILE, load_settings
from canary_deploy.rollout.state import RenewingProgress

log = logging.getLogger("canary.controller")


class _LogView:
    """Logs each decision and weight change once (the daemon keeps the log)."""

    def __init__(self) -> None:
        self._last: tuple[object, ...] | None = None

    def show(self, result: TickResult, quantiles: Mapping[str, float | None]) -> None:
        r = result.rollout
        key = (r.status, r.step, str(result.live_weights))
        if key != self._last:
            self._last = key
            log.info(
                "rollout #%s %s, step %s/%s, weights %s",
                r.id,
                r.status,
                r.step + 1,
                len(r.plan.steps),
                result.live_weights,
            )


class _LogProgress:
    def update(self, message: str) -> None:
        pass

    def log(self, message: str) -> None:
        log.info("%s", message)


def run_active(settings: Settings) -> int:
    """Claim and run the stack's active rollout to its end; 0 when there is none to run."""
    from canary_deploy.rollout import arms, loop, service
    from canary_deploy.targets import open_target

    with closing(service.open_store(settings)) as store:
        active = store.active()
        if active is None:
            log.info("no active rollout")
            return 0
        try:
            store.claim(active.id, now=time.time())
        except CanaryError as exc:
            log.info("not running rollout #%s: %s", active.id, exc.message)
            return 0
        log.info("running rollout #%s from step %s", active.id, active.step + 1)
        target = open_target(settings)
        arms.ensure_baseline(target, active, RenewingProgress(store, active.id, _LogProgress()))
        final = loop.run(
            target,
            store,
            active,
            _LogView(),
            warn=log.warning,
            hooks=loop.hooks_for(settings, target),
            notifier=loop.notifier_for(settings),
        )
        log.info("rollout #%s ended %s: %s", final.id, final.status, final.reason or "")
        return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m canary_deploy.rollout.runner")
    parser.add_argument("--state-dir", type=Path, required=True)
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", force=True
    )
    settings = load_settings(args.state_dir)
    if settings is None:
        log.error("no readable %s in %s", SETTINGS_FILE, args.state_dir)
        return 2
    try:
        return run_active(settings)
    except CanaryError as exc:
        # The daemon starts a new controller after a pause; the rollout's state is safe.
        log.error("controller stopped: %s", exc.message)
        return 1


if __name__ == "__main__":
    sys.exit(main())
