"""`LocalStack`: the daemon of one state directory, reached through its admin socket."""

from __future__ import annotations

from typing import Any

from canary_deploy.backend import ReleaseSpec
from canary_deploy.config import Settings
from canary_deploy.errors import OperationFailed
from canary_deploy.local.control import DaemonArgs, DaemonControl, Listen
from canary_deploy.local.paths import StackPaths
from canary_deploy.local.store import StateStore

STEADY_TIMEOUT_S = {"fast": 60.0, "alb": 600.0}


class LocalStack:
    """The daemon of one state directory; restarts it when a spec is stored but it died."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.paths = StackPaths.for_dir(settings.local.state_dir)
        self.control = DaemonControl(self.paths)

    def stored(self) -> tuple[ReleaseSpec | None, Listen | None]:
        """The desired spec and the last listener address, from the state directory."""
        if not (self.paths.state_dir / "state.db").exists():
            return None, None
        store = StateStore(self.paths.state_dir)
        try:
            spec, listener = store.load_spec(), store.load_listener()
        finally:
            store.close()
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
        )

    def request(self, method: str, path: str, body: Any = None) -> Any:
        """One admin call; a crashed daemon with a stored spec is restarted first (it
        restores spec and weights), so `rollback` works even after a crash."""
        if not self.control.running():
            spec, listener = self.stored()
            if spec is None:
                raise OperationFailed(
                    f"no local stack in {self.paths.state_dir}",
                    hint="run `canary deploy` first (or pass the --state-dir it used)",
                )
            self.control.start(self.daemon_args(spec, listener))
        return self.control.request(method, path, body)
