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
        """The daemon's admin socket (what the CLI talks to)."""
        return self._socket("admin")

    @property
    def dataplane_socket(self) -> Path:
        """The data-plane process's socket (only the daemon talks to it)."""
        return self._socket("dataplane")

    def _socket(self, name: str) -> Path:
        path = self.state_dir / f"{name}.sock"
        if len(str(path)) <= _MAX_SOCKET_PATH:
            return path
        base = os.environ.get("XDG_RUNTIME_DIR") or tempfile.gettempdir()
        suffix = "" if name == "admin" else f"-{name}"
        return Path(base) / f"canary-{self.marker}{suffix}.sock"

    @property
    def pid_file(self) -> Path:
        return self.state_dir / "daemon.pid"

    @property
    def lock_file(self) -> Path:
        return self.state_dir / "daemon.lock"

    @property
    def dataplane_pid_file(self) -> Path:
        return self.state_dir / "dataplane.pid"

    @property
    def dataplane_lock_file(self) -> Path:
        return self.state_dir / "dataplane.lock"

    @property
    def daemon_log(self) -> Path:
        return self.state_dir / "daemon.log"

    @property
    def task_logs(self) -> Path:
        return self.state_dir / "tasks"

    def daemon_pid(self) -> int | None:
        """The recorded daemon PID if that process is alive."""
        return _live_pid(self.pid_file, b"canary_deploy.local.daemon")

    def dataplane_pid(self) -> int | None:
        """The recorded data-plane PID if that process is alive."""
        return _live_pid(self.dataplane_pid_file, b"canary_deploy.local.dataplane")


def _live_pid(pid_file: Path, module: bytes) -> int | None:
    """The PID in `pid_file` if that process is alive and runs `module`."""
    try:
        pid = int(pid_file.read_text().strip())
    except (OSError, ValueError):
        return None
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except FileNotFoundError:
        return None
    except OSError:
        return pid  # no /proc access: trust the file
    # A reused PID belongs to some other program (a zombie has no command line): then
    # the process is not running.
    return pid if module in cmdline else None
