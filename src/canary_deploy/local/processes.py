"""Task processes: start them in their own process group, tied to the data plane's life,
and find and kill any that escaped (a grandchild after `kill -9` of the data plane)."""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import socket
import subprocess
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path

from canary_deploy.local.commands import TaskCommand

# Every task carries this variable (inherited by its children), so a leftover process of
# this stack can be found in /proc without trusting recorded PIDs that may have been reused.
MARKER_ENV = "CANARY_LOCAL_STACK"
_PR_SET_PDEATHSIG = 1

try:
    _libc: ctypes.CDLL | None = ctypes.CDLL(None, use_errno=True)
except OSError:  # not Linux: rely on process-group kills and the /proc-less sweep
    _libc = None


def tie_to_parent(parent_pid: int, sig: int = signal.SIGKILL) -> None:
    """Runs in the child between fork and exec: get `sig` when the parent (the data plane
    for a task, the daemon for the rollout controller) dies.

    PR_SET_PDEATHSIG survives execve (for non-setuid programs), so the task itself is
    covered; the re-check closes the race where the parent died before prctl ran.
    """
    if _libc is not None:
        _libc.prctl(_PR_SET_PDEATHSIG, sig, 0, 0, 0)
    if os.getppid() != parent_pid:
        os._exit(1)


def free_port(host: str = "127.0.0.1") -> int:
    """A port nobody listens on right now (the task may still lose a race; it then exits
    and is replaced)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


@dataclass
class TaskProcess:
    """One running task process and where its output goes."""

    pid: int
    port: int
    log_path: Path
    popen: subprocess.Popen[bytes]

    def poll(self) -> int | None:
        return self.popen.poll()

    def signal_group(self, sig: int) -> None:
        """Signal the whole process group, so children of a shell command go too."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, sig)

    def output_tail(self, max_chars: int = 600) -> str:
        try:
            with self.log_path.open("rb") as fh:
                fh.seek(0, os.SEEK_END)
                size = fh.tell()
                fh.seek(max(0, size - max_chars))
                return fh.read().decode("utf-8", "replace").strip()
        except OSError:
            return ""


class ProcessLauncher:
    """Starts task processes for one stack; output goes to `<log_dir>/<task_id>.log`."""

    def __init__(self, log_dir: Path, stack_marker: str, host: str = "127.0.0.1") -> None:
        self.log_dir = log_dir
        self.stack_marker = stack_marker
        self.host = host

    def free_port(self) -> int:
        return free_port(self.host)

    def start(self, task_id: str, command: TaskCommand, port: int) -> TaskProcess:
        argv, extra_env = command.render(port)
        env = dict(os.environ)
        env.update(extra_env)
        env.update({MARKER_ENV: self.stack_marker, "CANARY_TASK_ID": task_id})
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log_path = self.log_dir / f"{task_id}.log"
        parent = os.getpid()
        with log_path.open("wb") as log:
            popen = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                process_group=0,
                preexec_fn=lambda: tie_to_parent(parent),
                close_fds=True,
            )
        return TaskProcess(pid=popen.pid, port=port, log_path=log_path, popen=popen)


def prune_task_logs(log_dir: Path, keep: int = 200) -> None:
    """Delete all but the newest `keep` task logs (each replaced task leaves one)."""
    logs = sorted(log_dir.glob("*.log"), key=lambda p: p.stat().st_mtime, reverse=True)
    for old in logs[keep:]:
        with contextlib.suppress(OSError):
            old.unlink()


def stack_processes(stack_marker: str, spare: Collection[int] = ()) -> list[int]:
    """PIDs of live processes that carry this stack's marker (the data plane, the daemon,
    the tasks and their children, the rollout controller), except ours and `spare`."""
    needle = f"{MARKER_ENV}={stack_marker}".encode()
    found = []
    skip = {os.getpid(), *spare}
    for entry in Path("/proc").iterdir() if Path("/proc").is_dir() else ():
        if not entry.name.isdigit() or int(entry.name) in skip:
            continue
        try:
            environ = (entry / "environ").read_bytes()
        except OSError:
            continue  # gone, or not ours
        if needle in environ.split(b"\0"):
            found.append(int(entry.name))
    return found


def kill_stack_processes(stack_marker: str, spare: Collection[int] = ()) -> list[int]:
    """SIGKILL every process of this stack still alive (but ours and `spare`); returns
    their PIDs."""
    pids = stack_processes(stack_marker, spare)
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)
    return pids
