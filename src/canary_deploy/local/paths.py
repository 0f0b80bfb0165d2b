"""Where one local stack keeps its files (the state directory and the admin socket), and
keeping them private: the directory 0700, every file in it 0600."""

from __future__ import annotations

import fcntl
import hashlib
import os
import stat
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

# sun_path holds 108 bytes on Linux; deep project directories need a socket elsewhere.
_MAX_SOCKET_PATH = 100
# The spec carries `NAME=value` environment (maybe secrets) and tasks log what they like:
# owner only, like the admin socket.
PRIVATE_DIR_MODE = 0o700
PRIVATE_FILE_MODE = 0o600
# What the tool keeps in a state directory (the admin socket is made 0600 where it binds).
_OWN_FILES = ("state.db*", "daemon.*", "dataplane.*", "controller.*")


def private_dir(path: Path) -> Path:
    """Create the directory `path` owner-only (missing parents as the umask says);
    tighten it when it exists with a looser mode (older versions made it 0755)."""
    path.mkdir(mode=PRIVATE_DIR_MODE, parents=True, exist_ok=True)
    if path.stat().st_mode & 0o777 != PRIVATE_DIR_MODE:
        os.chmod(path, PRIVATE_DIR_MODE)
    return path


def private_opener(path: str | os.PathLike[str], flags: int) -> int:
    """For `open(..., opener=private_opener)`: a new file is created 0600 (whatever the
    umask), an existing one is tightened to it."""
    fd = os.open(path, flags, PRIVATE_FILE_MODE)
    if os.fstat(fd).st_mode & 0o777 != PRIVATE_FILE_MODE:
        os.fchmod(fd, PRIVATE_FILE_MODE)
    return fd


@contextmanager
def sole_holder(lock_file: Path) -> Iterator[bool]:
    """Hold `lock_file`'s lock for the block, so one process of a kind (the daemon, the
    data plane) runs per state directory: True when this process holds it, False when
    another one does (nothing held). The kernel drops the lock when its holder dies."""
    with open(lock_file, "w", opener=private_opener) as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            held = True
        except BlockingIOError:
            held = False
        yield held


def private_file(path: Path) -> Path:
    """Create `path` empty with mode 0600 unless it exists; tighten an existing one.

    An existing file is never opened here: closing any descriptor of a file drops every
    POSIX lock this process holds on it - SQLite's too, when another connection in this
    process has the database open (the daemon's store while its controller host looks)."""
    try:
        os.close(
            os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, PRIVATE_FILE_MODE)
        )
    except FileExistsError:
        if path.stat().st_mode & 0o777 != PRIVATE_FILE_MODE:
            os.chmod(path, PRIVATE_FILE_MODE)
    return path


def tighten_state_dir(state_dir: Path) -> None:
    """Make a state directory an older version left (0755 with 0644 files) private: the
    directory, `tasks/`, and the files the tool keeps there (only those: a state
    directory pointed at a project keeps the project's own modes)."""
    if not state_dir.is_dir():
        return
    private_dir(state_dir)
    tasks = state_dir / "tasks"
    files = [path for pattern in _OWN_FILES for path in state_dir.glob(pattern)]
    if tasks.is_dir() and not tasks.is_symlink():
        private_dir(tasks)
        files += tasks.glob("*.log*")
    for path in files:
        try:
            mode = path.lstat().st_mode
            if stat.S_ISREG(mode) and mode & 0o077:
                os.chmod(path, mode & 0o700)
        except OSError:
            continue  # gone meanwhile (a task log pruned, a file moved aside)


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
