"""Where one local stack keeps its files: the state directory and the admin socket."""

from __future__ import annotations

import hashlib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

# sun_path holds 108 bytes on Linux; deep project directories need a socket elsewhere.
_MAX_SOCKET_PATH = 100


@dataclass(frozen=True)
class StackPaths:
    state_dir: Path  # absolute

    @classmethod
    def for_dir(cls, state_dir: Path) -> StackPaths:
        return cls(state_dir.expanduser().resolve())

    @property
    def marker(self) -> str:
        """Identifies this stack's processes (see processes.MARKER_ENV)."""
        return hashlib.sha256(str(self.state_dir).encode()).hexdigest()[:16]

    @property
    def socket(self) -> Path:
        path = self.state_dir / "admin.sock"
        if len(str(path)) <= _MAX_SOCKET_PATH:
            return path
        base = os.environ.get("XDG_RUNTIME_DIR") or tempfile.gettempdir()
        return Path(base) / f"canary-{self.marker}.sock"

    @property
    def pid_file(self) -> Path:
        return self.state_dir / "daemon.pid"

    @property
    def lock_file(self) -> Path:
        return self.state_dir / "daemon.lock"

    @property
    def daemon_log(self) -> Path:
        return self.state_dir / "daemon.log"

    @property
    def task_logs(self) -> Path:
        return self.state_dir / "tasks"

    def daemon_pid(self) -> int | None:
        """The recorded daemon PID if that process is alive."""
        try:
            pid = int(self.pid_file.read_text().strip())
        except (OSError, ValueError):
            return None
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except FileNotFoundError:
            return None
        except OSError:
            return pid  # no /proc access: trust the file
        # A reused PID belongs to some other program: then the daemon is not running.
        return pid if b"canary_deploy.local.daemon" in cmdline else None
