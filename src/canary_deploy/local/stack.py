"""`LocalStack`: the daemon of one state directory, reached through its admin socket."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Sequence
from contextlib import closing
from typing import Any

from canary_deploy.backend import GROUPS, Progress, ReleaseSpec, Role
from canary_deploy.config import Settings
from canary_deploy.errors import OperationFailed
from canary_deploy.local.control import DaemonArgs, DaemonControl, Listen
from canary_deploy.local.paths import StackPaths
from canary_deploy.local.report import DaemonStatus
from canary_deploy.local.store import StateStore
from canary_deploy.weights import Weights

STEADY_TIMEOUT_S = {"fast": 60.0, "alb": 600.0}


class _StderrProgress:
    """Plain progress lines on stderr (stdout may carry `-o json`)."""

    def __init__(self) -> None:
        self._last = ""

    def update(self, message: str) -> None:
        if message != self._last:
            self._last = message
            print(f"  {message}", file=sys.stderr, flush=True)

    def log(self, message: str) -> None:
        print(message, file=sys.stderr, flush=True)


class LocalStack:
    """The daemon of one state directory; restarts it when a spec is stored but it died."""

    def __init__(self, settings: Settings, progress: Progress | None = None) -> None:
        self.settings = settings
        self.paths = StackPaths.for_dir(settings.local.state_dir)
        self.control = DaemonControl(self.paths)
        self.progress: Progress = progress or _StderrProgress()
        self.restarted = False  # this process started a stopped stack: its tasks start

    def stored(self) -> tuple[ReleaseSpec | None, Listen | None]:
        """The desired spec and the last listener address, from the state directory."""
        if not (self.paths.state_dir / "state.db").exists():
            return None, None
        with closing(StateStore(self.paths.state_dir)) as store:
            spec, listener = store.load_spec(), store.load_listener()
        return spec, None if listener is None else Listen(*listener)

    def stored_spec(self) -> ReleaseSpec | None:
        return self.stored()[0]

    def daemon_args(self, spec: ReleaseSpec | None, listen: Listen | None = None) -> DaemonArgs:
        return DaemonArgs(
            listen=listen or Listen.parse(self.settings.local.listen),
            health_profile=self.settings.local.health_profile,
            deregistration_delay_s=self.settings.local.deregistration_delay_s,
            health_check_path=None if spec is None else spec.health_check_path,
            stickiness_s=None if spec is None else spec.stickiness_seconds,
            metrics_port=self.settings.local.metrics_port,
        )

    def request(self, method: str, path: str, body: Any = None) -> Any:
        """One admin call; a crashed stack with a stored spec is restarted first (it
        restores spec and weights), so `rollback` works even after a crash."""
        self.ensure_running()
        return self.control.request(method, path, body)

    def daemon_status(self) -> DaemonStatus | None:
        """What the running daemon reports; None when it does not run (never restarted
        for this: a stopped stack's status is what is stored)."""
        if not self.control.running():
            return None
        return DaemonStatus.from_dict(self.request("GET", "/status"))

    def ensure_running(self) -> None:
        """Restart the stack from its stored spec unless it runs (a daemon that died is
        brought back by the data plane; a dead data plane needs this)."""
        if self.control.running():
            return
        spec, listener = self.stored()
        if spec is None:
            raise OperationFailed(
                f"no local stack in {self.paths.state_dir}",
                hint="run `canary deploy` first (or pass the --state-dir it used)",
            )
        self.progress.log(f"The local stack was not running: restarting it ({spec_line(spec)})")
        self.control.start(self.daemon_args(spec, listener))
        self.restarted = True

    def wait_serving(self, weights: Weights) -> None:
        """After this process restarted the stack, its tasks are only starting: wait until
        every group with weight in `weights` has a healthy target, so a command (an
        emergency `rollback`) never says it is done while the listener answers 503."""
        if not self.restarted:
            return
        wait_serving(
            lambda: self.request("GET", "/targets"),
            [v for v in GROUPS if weights.of(v) > 0],
            self.progress,
            STEADY_TIMEOUT_S[self.settings.local.health_profile],
        )


def spec_line(spec: ReleaseSpec) -> str:
    return f"stable {spec.desired_count_stable} x {spec.image_stable}, canary " + (
        f"{spec.desired_count_canary} x {spec.image_canary}"
    )


def wait_serving(
    read_targets: Callable[[], dict[str, list[dict[str, Any]]]],
    groups: Sequence[Role],
    progress: Progress,
    timeout_s: float,
    *,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> None:
    """Wait until each of `groups` has a healthy target, reporting how many each has;
    OperationFailed naming the groups that have none after `timeout_s`."""
    deadline = clock() + timeout_s
    while True:
        targets = read_targets()
        healthy = {v: sum(t["state"] == "healthy" for t in targets.get(v, [])) for v in groups}
        missing = [v for v in groups if healthy[v] == 0]
        if not missing:
            return
        counts = ", ".join(f"{v} {healthy[v]}/{len(targets.get(v, []))}" for v in groups)
        progress.update(f"waiting for healthy targets before the listener can serve: {counts}")
        if clock() >= deadline:
            names = " and ".join(missing)
            raise OperationFailed(
                f"the weights are set, but {names} has no healthy target yet after "
                f"{timeout_s:.0f} s: the listener answers 503 for its share",
                hint="its tasks were restarted with the stack; see `canary status` and the "
                "task logs in the state directory's tasks/",
            )
        sleep(0.1)
