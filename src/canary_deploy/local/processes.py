"""Task processes: start them in their own process group, tied to the data plane's life,
and find and kill any that escaped (a grandchild after `kill -9` of the data plane)."""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path

from canary_deploy.local.commands import TaskCommand
from canary_deploy.local.paths import private_dir
from canary_deploy.local.tasklog import log_files, read_tail

# Every task carries this variable (inherited by its children), so a leftover process of
# this stack can be found in /proc without trusting recorded PIDs that may have been reused.
MARKER_ENV = "CANARY_LOCAL_STACK"
# A task's log writer (see tasklog.py) carries this instead of the marker.
LOG_WRITER_ENV = "CANARY_TASK_LOG"
# How long a tail of an exited task waits for its writer to write the last bytes.
_WRITER_DRAIN_S = 0.2
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
    """One running task process and where its output goes (through `writer`)."""

    pid: int
    port: int
    log_path: Path
    popen: subprocess.Popen[bytes]
    writer: subprocess.Popen[bytes] | None = None

    def poll(self) -> int | None:
        code = self.popen.poll()
        if code is not None and self.writer is not None:
            self.writer.poll()  # reaped once the task's output has ended
        return code

    def signal_group(self, sig: int) -> None:
        """Signal the whole process group, so children of a shell command go too."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, sig)

    def output_tail(self, max_chars: int = 600) -> str:
        if self.writer is not None and self.popen.poll() is not None:
            # The task has exited: its last words may still be in the pipe.
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.writer.wait(_WRITER_DRAIN_S)
        return read_tail(self.log_path, max_chars)


class ProcessLauncher:
    """Starts task processes for one stack; output goes to `<log_dir>/<task_id>.log`,
    capped and rotated by a log writer per task (see tasklog.py)."""

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
        private_dir(self.log_dir)
        log_path = self.log_dir / f"{task_id}.log"
        parent = os.getpid()
        read_end, write_end = os.pipe()
        try:
            writer = self._start_writer(task_id, log_path, read_end)
        finally:
            os.close(read_end)
        try:
            popen = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=write_end,
                stderr=subprocess.STDOUT,
                env=env,
                process_group=0,
                preexec_fn=lambda: tie_to_parent(parent),
                close_fds=True,
            )
        finally:
            os.close(write_end)  # the task holds the only write end: EOF ends the writer
        return TaskProcess(popen.pid, port, log_path, popen, writer)

    def _start_writer(self, task_id: str, log_path: Path, pipe: int) -> subprocess.Popen[bytes]:
        """The task's log writer: not tied to the daemon and without the stack's marker
        (sweeps leave it alone), in its own process group (signals for the task's group
        do not cut its last words): it ends when the task and all it started are gone."""
        env = {**os.environ, LOG_WRITER_ENV: task_id}
        for name in (MARKER_ENV, "CANARY_TASK_ID"):
            env.pop(name, None)
        return subprocess.Popen(
            [sys.executable, "-m", "canary_deploy.local.tasklog", str(log_path)],
            stdin=pipe,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=env,
            process_group=0,
            close_fds=True,
        )


def prune_task_logs(log_dir: Path, keep: int = 100) -> None:
    """Delete the logs of all but the `keep` most recently written tasks (each replaced
    task leaves its files): at most keep x tasklog.FILES x tasklog.MAX_FILE_BYTES."""

    def written(log: Path) -> float:
        with contextlib.suppress(OSError):
            return log.stat().st_mtime
        return 0.0

    logs = sorted(log_dir.glob("*.log"), key=written, reverse=True)
    for old in logs[keep:]:
        for path in log_files(old):
            with contextlib.suppress(OSError):
                path.unlink()


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
